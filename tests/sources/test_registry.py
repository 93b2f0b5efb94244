"""Input detection from content and the registry of input kinds."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from egress.errors import SourceError
from egress.sources.registry import BUILTIN_KINDS, Detected, detect, group_by_kind, input_kinds
from tests.conftest import REPO

DATA = REPO / "tests" / "data"


@pytest.mark.parametrize(("path", "kind", "fmt"), [
    (REPO / "pcaps" / "ethernet.pcap", "capture", "pcap"),
    (REPO / "pcaps" / "ethernet-be-nsec.pcap", "capture", "pcap-ns"),
    (REPO / "pcaps" / "pcapng-multi.pcapng", "capture", "pcapng"),
    (REPO / "pcaps" / "datacenter-upload.pcap.gz", "capture", "pcap"),
    (DATA / "objectstore" / "s3_aws_docs_example.log", "objectstore", "s3"),
    (DATA / "objectstore" / "minio_audit_docs_example.jsonl", "objectstore", "minio"),
    (DATA / "objectstore" / "ceph_rgw_ops_2021.log", "objectstore", "ceph-rgw"),
    (DATA / "drives" / "kern.log-station-1", "drives", "kern.log"),
    (DATA / "drives" / "journal-k-station-3.json", "drives", "journal-json"),
    (DATA / "drives" / "udev-monitor-station-1.txt", "drives", "udev-monitor"),
    (DATA / "copylogs" / "rclone.json.log", "copylog", "rclone"),
    (DATA / "copylogs" / "rsync-n-l.log", "copylog", "rsync"),
])
def test_each_input_is_recognized_from_its_content(path: Path, kind: str, fmt: str) -> None:
    assert detect(path) == Detected(path, kind, fmt)


def test_gzip_is_looked_into(tmp_path: Path) -> None:
    packed = tmp_path / "kern.gz"
    packed.write_bytes(gzip.compress((DATA / "drives" / "kern.log-station-1").read_bytes()))
    assert detect(packed) == Detected(packed, "drives", "kern.log")


def test_unknown_content_is_a_source_error_naming_the_file(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list: milk, eggs\n")
    with pytest.raises(SourceError, match=r"notes\.txt: not a recognized input"):
        detect(notes)


def test_registry_lists_the_builtin_kinds_in_detection_order() -> None:
    assert list(BUILTIN_KINDS) == ["capture", "zeek", "objectstore", "drives", "copylog"]
    assert list(input_kinds())[:5] == list(BUILTIN_KINDS)


def test_grouping_keeps_file_order() -> None:
    a, b, c = (Detected(Path(n), k, "f") for n, k in (("a", "capture"), ("b", "drives"),
                                                          ("c", "capture")))
    assert group_by_kind([a, b, c]) == {"capture": [a, c], "drives": [b]}


def test_zeek_logs_are_recognized(corpus: Path) -> None:
    conn = corpus / "zeek__wikipedia" / "conn.log"
    http = corpus / "zeek__wikipedia" / "http.log"
    assert detect(conn) == Detected(conn, "zeek", "conn")
    assert detect(http) == Detected(http, "zeek", "http")
