"""Golden JSON lines of normalized records."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from egress.formats.records_json import record_dict, record_json_line
from egress.records import CopyRecord, DriveAttach, ObjectStoreRequest, Provenance

WHEN = datetime(2026, 5, 20, 8, 30, 0, 250000, tzinfo=UTC)


def test_object_store_request() -> None:
    request = ObjectStoreRequest(
        time=WHEN, store="s3", operation="put_part", raw_operation="REST.PUT.PART",
        bucket="t0042-datasets", key="shard-0001.tar", status=200, bytes_in=104857600,
        object_size_bytes=104857600, remote_addr="203.0.113.50", requester=None,
        user_agent="aws-cli/2.15", request_id="3E57427F3EXAMPLE",
        provenance=Provenance(path="/logs/s3/2026-05-20-08-30-00", line=17),
    )
    assert record_json_line(request) == (
        '{"record":"ObjectStoreRequest","time":"2026-05-20T08:30:00.250000Z","store":"s3",'
        '"operation":"put_part","raw_operation":"REST.PUT.PART","bucket":"t0042-datasets",'
        '"key":"shard-0001.tar","status":200,"bytes_in":104857600,'
        '"object_size_bytes":104857600,"remote_addr":"203.0.113.50","user_agent":"aws-cli/2.15",'
        '"request_id":"3E57427F3EXAMPLE","source.path":"/logs/s3/2026-05-20-08-30-00",'
        '"source.line":17}\n'
    )


def test_drive_and_copy_records() -> None:
    drive = DriveAttach(
        station="ingest-1", device="sdb", serial="ZR5A01", model="ST20000NM007D", bus="usb",
        capacity_bytes=20000588955648, attached=WHEN, detached=None,
        provenance=Provenance(path="kern.log", line=3),
    )
    assert record_dict(drive) == {
        "record": "DriveAttach", "station": "ingest-1", "device": "sdb", "serial": "ZR5A01",
        "model": "ST20000NM007D", "bus": "usb", "capacity_bytes": 20000588955648,
        "attached": "2026-05-20T08:30:00.250000Z", "source.path": "kern.log", "source.line": 3,
    }
    copy = CopyRecord(time=None, station="ingest-1", tool="rsync", path="data/a.tar",
                      bytes_copied=10, provenance=Provenance(path="imp-77.log", offset=120))
    assert record_dict(copy) == {
        "record": "CopyRecord", "station": "ingest-1", "tool": "rsync", "path": "data/a.tar",
        "bytes_copied": 10, "source.path": "imp-77.log", "source.offset": 120,
    }


def test_rejects_non_records() -> None:
    with pytest.raises(TypeError, match="not a record"):
        record_dict({"a": 1})
