"""Attribution: records to tenants, directions and volumes seen from the tenant, counters."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from egress.attribution import ATTRIBUTION_FIELDS, Attributor
from egress.columns import CONN_SCHEMA
from egress.geo import RangeCsvGeo
from egress.inventory import Inventory, load_inventory
from egress.records import (
    Attributed,
    CopyRecord,
    DriveAttach,
    Flow,
    ObjectStoreRequest,
    Provenance,
    Record,
)

SAMPLE = Path(__file__).parent / "data" / "inventory" / "inventory.yaml"
JUNE = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory(SAMPLE)


@pytest.fixture
def geo(tmp_path: Path) -> RangeCsvGeo:
    country = tmp_path / "country.csv"
    country.write_text(
        "203.0.113.0,203.0.113.255,CN\n198.51.100.0,198.51.100.255,MY\n", encoding="utf-8"
    )
    asn = tmp_path / "asn.csv"
    asn.write_text("203.0.113.0,203.0.113.255,4134,Chinanet\n", encoding="utf-8")
    return RangeCsvGeo([country, asn])


@pytest.fixture
def attributor(inventory: Inventory, geo: RangeCsvGeo) -> Attributor:
    return Attributor(inventory, geo)


def flow(orig: str, resp: str, orig_ip: int, resp_ip: int, *, at: datetime = JUNE,
         vni: int | None = None, resp_p: int = 443) -> Flow:
    return Flow(
        uid="C1", start=at, duration_s=10.0, orig_h=orig, orig_p=51000, resp_h=resp,
        resp_p=resp_p, proto="tcp", ip_proto=6, conn_state="SF", history="ShADadFf",
        orig_pkts=10, orig_ip_bytes=orig_ip, orig_bytes=orig_ip - 400, resp_pkts=10,
        resp_ip_bytes=resp_ip, resp_bytes=resp_ip - 400, community_id="1:x", vni=vni,
    )


def request(bucket: str | None, *, remote: str | None = "203.0.113.50",
            operation: str = "put_object", bytes_in: int = 1000,
            at: datetime = JUNE) -> ObjectStoreRequest:
    return ObjectStoreRequest(
        time=at, store="minio", operation=operation, raw_operation=operation, bucket=bucket,
        key="k", status=200, bytes_in=bytes_in, object_size_bytes=bytes_in, remote_addr=remote,
        requester=None, user_agent=None, request_id=None,
        provenance=Provenance(path="access.log", line=1),
    )


def drive(serial: str | None, attached: datetime | None) -> DriveAttach:
    return DriveAttach(
        station="ingest-1", device="sdb", serial=serial, model="X", bus="usb",
        capacity_bytes=20_000_000_000_000, attached=attached, detached=None,
        provenance=Provenance(path="kern.log", line=7),
    )


def copy(path: str, bytes_copied: int | None) -> CopyRecord:
    return CopyRecord(
        time=JUNE, station="ingest-1", tool="rsync", path="data/a.bin",
        bytes_copied=bytes_copied, provenance=Provenance(path=path, line=3),
    )


# -- flows ----------------------------------------------------------------------------------


def test_inbound_upload_to_responding_tenant(attributor: Attributor) -> None:
    f = flow("203.0.113.50", "10.42.1.5", 5_000_000, 80_000)
    assert attributor.attribute(f) == Attributed(
        record=f, tenant="t-0042", how="address", direction="inbound",
        remote_addr="203.0.113.50", remote_country="CN", remote_asn=4134, cross_border=True,
        bytes_in=5_000_000, bytes_out=80_000,
    )


def test_inbound_download_initiated_by_tenant(attributor: Attributor) -> None:
    f = flow("10.42.1.5", "203.0.113.50", 90_000, 7_000_000)
    got = attributor.attribute(f)
    assert (got.tenant, got.direction, got.bytes_in, got.bytes_out) == (
        "t-0042", "inbound", 7_000_000, 90_000,
    )
    assert (got.remote_addr, got.remote_country, got.cross_border) == (
        "203.0.113.50", "CN", True,
    )


def test_outbound_same_country(attributor: Attributor) -> None:
    got = attributor.attribute(flow("10.42.1.5", "198.51.100.7", 9_000_000, 100_000))
    assert (got.tenant, got.direction, got.bytes_in, got.bytes_out) == (
        "t-0042", "outbound", 100_000, 9_000_000,
    )
    assert (got.remote_country, got.remote_asn, got.cross_border) == ("MY", None, False)


def test_equal_volumes_have_unknown_direction(attributor: Attributor) -> None:
    got = attributor.attribute(flow("10.42.1.5", "203.0.113.50", 500, 500))
    assert (got.tenant, got.direction) == ("t-0042", "unknown")


def test_internal_same_tenant(attributor: Attributor) -> None:
    got = attributor.attribute(flow("10.42.1.5", "10.42.1.6", 1_000, 2_000))
    assert (got.tenant, got.how, got.direction, got.remote_addr, got.cross_border) == (
        "t-0042", "address", "internal", None, None,
    )


def test_internal_tenant_and_site_host(attributor: Attributor) -> None:
    got = attributor.attribute(flow("10.50.0.1", "10.42.1.5", 3_000, 100))
    assert (got.tenant, got.direction, got.remote_addr, got.bytes_in, got.cross_border) == (
        "t-0042", "internal", "10.50.0.1", 3_000, False,
    )


def test_internal_between_tenants_belongs_to_receiver(attributor: Attributor) -> None:
    got = attributor.attribute(flow("10.42.1.5", "10.42.7.9", 1_000_000, 10))
    assert (got.tenant, got.direction, got.remote_addr, got.bytes_in, got.bytes_out) == (
        "t-0050", "internal", "10.42.1.5", 1_000_000, 10,
    )
    tie = attributor.attribute(flow("10.42.1.5", "10.42.7.9", 10, 10))
    assert (tie.tenant, tie.how, tie.direction) == (None, "unattributed", "internal")


def test_unattributed_addresses(attributor: Attributor) -> None:
    outside = attributor.attribute(flow("192.0.2.1", "198.51.100.7", 10, 20))
    assert (outside.tenant, outside.how, outside.direction, outside.remote_addr) == (
        None, "unattributed", "unknown", None,
    )
    site_only = attributor.attribute(flow("10.50.0.1", "203.0.113.50", 10, 2_000))
    assert (site_only.tenant, site_only.how, site_only.direction) == (
        None, "unattributed", "inbound",
    )
    assert (site_only.remote_addr, site_only.bytes_in, site_only.cross_border) == (
        "203.0.113.50", 2_000, True,
    )
    assert attributor.stats().reasons == {("flow", "outside_site"): 1, ("flow", "no_tenant"): 1}


def test_vni_wins_over_address(attributor: Attributor) -> None:
    # 10.42.7.9 is t-0050's by address; VNI 4242 is t-0042's overlay.
    got = attributor.attribute(flow("203.0.113.50", "10.42.7.9", 4_000, 10, vni=4242))
    assert (got.tenant, got.how, got.direction, got.bytes_in) == (
        "t-0042", "vni", "inbound", 4_000,
    )
    # overlay space outside the site plan is still inside the tenant
    overlay = attributor.attribute(flow("192.168.5.5", "203.0.113.50", 10, 4_000, vni=4242))
    assert (overlay.tenant, overlay.direction, overlay.remote_addr) == (
        "t-0042", "inbound", "203.0.113.50",
    )
    unknown = attributor.attribute(flow("203.0.113.50", "10.42.7.9", 4_000, 10, vni=999))
    assert (unknown.tenant, unknown.how) == (None, "unattributed")
    assert attributor.stats().reasons == {("flow", "unknown_vni"): 1}


@pytest.mark.parametrize(
    ("at", "tenant"),
    [
        (utc(2026, 3, 1), "t-0017"),
        (utc(2026, 5, 1, 12), None),  # handed over the next day
        (utc(2026, 6, 1), "t-0042"),
        (utc(2026, 7, 2), "t-0050"),
    ],
)
def test_address_reassignment_over_time(
    attributor: Attributor, at: datetime, tenant: str | None
) -> None:
    got = attributor.attribute(flow("203.0.113.50", "10.42.1.5", 4_000, 10, at=at))
    assert got.tenant == tenant
    assert got.how == ("address" if tenant else "unattributed")


def test_no_geo_leaves_remote_unknown(inventory: Inventory) -> None:
    got = Attributor(inventory).attribute(flow("203.0.113.50", "10.42.1.5", 4_000, 10))
    assert (got.tenant, got.remote_country, got.remote_asn, got.cross_border) == (
        "t-0042", None, None, None,
    )


# -- object store ---------------------------------------------------------------------------


def test_object_store_by_bucket_and_glob(attributor: Attributor) -> None:
    exact = request("t0042-datasets", bytes_in=6_000)
    assert attributor.attribute(exact) == Attributed(
        record=exact, tenant="t-0042", how="bucket", direction="inbound",
        remote_addr="203.0.113.50", remote_country="CN", remote_asn=4134, cross_border=True,
        bytes_in=6_000, bytes_out=0,
    )
    assert attributor.attribute(request("t0042-raw")).tenant == "t-0042"
    assert attributor.attribute(request("t0042-datasets-mirror")).tenant == "t-0050"
    read = attributor.attribute(request("t0042-raw", operation="get_object", bytes_in=0))
    assert (read.direction, read.bytes_in) == ("outbound", 0)
    unknown = attributor.attribute(request("nobody"))
    assert (unknown.tenant, unknown.how) == (None, "unattributed")
    assert attributor.attribute(request(None)).how == "unattributed"
    assert attributor.stats().reasons == {
        ("object_store", "unknown_bucket"): 1, ("object_store", "no_bucket"): 1,
    }


def test_object_store_write_from_ingest_station(attributor: Attributor) -> None:
    got = attributor.attribute(request("t0042-datasets", remote="10.9.0.11", bytes_in=9_000))
    assert (got.tenant, got.how, got.direction, got.bytes_in, got.cross_border) == (
        "t-0042", "ingest_bucket", "inbound", 9_000, False,
    )
    gpu = attributor.attribute(request("t0042-datasets", remote="10.42.1.5"))
    assert (gpu.how, gpu.direction) == ("bucket", "internal")
    odd = attributor.attribute(request("t0042-datasets", remote="-"))
    assert (odd.tenant, odd.remote_addr, odd.remote_country, odd.direction) == (
        "t-0042", "-", None, "inbound",
    )


# -- drives and copies ----------------------------------------------------------------------


def test_drive_serials(attributor: Attributor) -> None:
    listed = drive("ZR5A01", utc(2026, 5, 21))
    assert attributor.attribute(listed) == Attributed(
        record=listed, tenant="t-0042", how="drive_serial", direction="inbound", job="imp-77",
    )
    later = attributor.attribute(drive("ZR5A02", utc(2026, 9, 2)))
    assert (later.tenant, later.job) == ("t-0050", "imp-90")
    unlisted = attributor.attribute(drive("QQ000", utc(2026, 5, 21)))
    assert (unlisted.tenant, unlisted.how, unlisted.bytes_in) == (None, "unlisted_drive", 0)
    early = attributor.attribute(drive("ZR5A01", utc(2026, 5, 1)))
    assert (early.tenant, early.how) == (None, "unattributed")
    assert attributor.attribute(drive("ZR5A01", None)).how == "unattributed"
    assert attributor.attribute(drive(None, utc(2026, 5, 21))).how == "unattributed"
    stats = attributor.stats()
    assert (stats.unlisted_drives, stats.unlisted_serials) == (1, ("QQ000",))
    assert stats.reasons == {
        ("drive", "unlisted_drive"): 1, ("drive", "not_received"): 1,
        ("drive", "no_time"): 1, ("drive", "no_serial"): 1,
    }


def test_copy_logs(attributor: Attributor) -> None:
    got = attributor.attribute(copy("/var/log/ingest/imp-77-station1.log", 123_456))
    assert (got.tenant, got.how, got.job, got.direction, got.bytes_in) == (
        "t-0042", "copy_log", "imp-77", "inbound", 123_456,
    )
    sizeless = attributor.attribute(copy("imp-90-a.log", None))
    assert (sizeless.tenant, sizeless.job, sizeless.bytes_in) == ("t-0050", "imp-90", 0)
    assert isinstance(sizeless.record, CopyRecord)
    assert sizeless.record.bytes_copied is None
    unknown = attributor.attribute(copy("other.log", 5))
    assert (unknown.tenant, unknown.how, unknown.job, unknown.bytes_in) == (
        None, "unattributed", None, 5,
    )


# -- counters and dispatch ------------------------------------------------------------------


def test_counters_exact(attributor: Attributor) -> None:
    records: list[Record] = [
        flow("203.0.113.50", "10.42.1.5", 4_000, 10),
        flow("192.0.2.1", "198.51.100.7", 10, 20),
        request("t0042-datasets"),
        request("nobody"),
        request("t0042-x"),
        drive("ZR5A01", utc(2026, 5, 21)),
        drive("QQ000", utc(2026, 5, 21)),
        drive("QQ001", None),
        copy("imp-77.log", 1),
    ]
    got = list(attributor.attribute_all(records))
    assert [a.record for a in got] == records
    stats = attributor.stats()
    assert stats.attributed == {"flow": 1, "object_store": 2, "drive": 1, "copy": 1}
    assert stats.unattributed == {"flow": 1, "object_store": 1, "drive": 2}
    assert (stats.unlisted_drives, stats.unlisted_serials) == (2, ("QQ000", "QQ001"))


def test_unknown_record_type_is_rejected(attributor: Attributor) -> None:
    with pytest.raises(TypeError, match="cannot attribute a str"):
        attributor.attribute("flow")  # type: ignore[arg-type]


# -- conn batches ---------------------------------------------------------------------------


def conn_batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    defaults: dict[str, Any] = {"interim": False, "line": 1}
    columns = {
        f.name: pa.array([row.get(f.name, defaults.get(f.name)) for row in rows], f.type)
        for f in CONN_SCHEMA
    }
    return pa.RecordBatch.from_pydict(columns, schema=CONN_SCHEMA.with_metadata(
        {b"egress.path": b"conn.log"}))


def test_attribute_batch(attributor: Attributor) -> None:
    rows: list[dict[str, Any]] = [
        # interim record of an upload, then the final one adding only the increment
        {"ts": JUNE, "uid": "C1", "orig_h": "203.0.113.50", "resp_h": "10.42.1.5",
         "orig_ip_bytes": 1_000, "resp_ip_bytes": 40, "interim": True,
         "delta_orig_ip_bytes": 1_000, "delta_resp_ip_bytes": 40},
        {"ts": JUNE, "uid": "C1", "orig_h": "203.0.113.50", "resp_h": "10.42.1.5",
         "orig_ip_bytes": 5_000, "resp_ip_bytes": 100,
         "delta_orig_ip_bytes": 4_000, "delta_resp_ip_bytes": 60},
        # tenant downloads
        {"ts": JUNE, "uid": "C2", "orig_h": "10.42.1.5", "resp_h": "203.0.113.50",
         "delta_orig_ip_bytes": 90, "delta_resp_ip_bytes": 7_000},
        # overlay by VNI
        {"ts": JUNE, "uid": "C3", "orig_h": "203.0.113.50", "resp_h": "10.42.7.9", "vni": 4242,
         "delta_orig_ip_bytes": 10, "delta_resp_ip_bytes": 20},
        # nobody's, and a row without volume
        {"ts": JUNE, "uid": "C4", "orig_h": "192.0.2.1", "resp_h": "198.51.100.7",
         "delta_orig_ip_bytes": 1, "delta_resp_ip_bytes": 2},
        {"ts": JUNE, "uid": "C5", "orig_h": "10.42.1.5", "resp_h": "10.42.1.6"},
        {"ts": None, "uid": "C6", "orig_h": "10.42.1.5", "resp_h": "10.42.1.6"},
    ]
    batch = conn_batch(rows)
    out = attributor.attribute_batch(batch)
    assert out.schema == pa.schema([*CONN_SCHEMA, *ATTRIBUTION_FIELDS]).with_metadata(
        {b"egress.path": b"conn.log"})
    assert out.column("uid").to_pylist() == ["C1", "C1", "C2", "C3", "C4", "C5", "C6"]
    assert out.column("tenant").to_pylist() == [
        "t-0042", "t-0042", "t-0042", "t-0042", None, "t-0042", None,
    ]
    assert out.column("how").to_pylist() == [
        "address", "address", "address", "vni", "unattributed", "address", "unattributed",
    ]
    assert out.column("direction").to_pylist() == [
        "inbound", "inbound", "inbound", "outbound", "unknown", "internal", "unknown",
    ]
    assert out.column("bytes_in").to_pylist() == [1_000, 4_000, 7_000, 10, 1, None, None]
    assert out.column("bytes_out").to_pylist() == [40, 60, 90, 20, 2, None, None]
    assert out.column("remote_addr").to_pylist() == [*["203.0.113.50"] * 4, None, None, None]
    assert out.column("remote_country").to_pylist() == [*["CN"] * 4, None, None, None]
    assert out.column("remote_asn").to_pylist() == [*[4134] * 4, None, None, None]
    assert out.column("cross_border").to_pylist() == [*[True] * 4, None, None, None]
    stats = attributor.stats()
    assert (stats.attributed, stats.unattributed) == ({"conn": 5}, {"conn": 2})
    assert stats.reasons == {("conn", "outside_site"): 1, ("conn", "no_time"): 1}
