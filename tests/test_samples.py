"""The sample scenario in ``samples/scenario`` is reproducible and reads cleanly.

``samples/generate_scenario.py`` counts its totals from what it writes (``expected.json``); these
tests read the files with egress's own readers, attribute the records with the scenario's
inventory and geo files, and check that the two agree exactly.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner

from egress.attribution import UNLISTED_DRIVE, Attributor
from egress.cli import cli
from egress.geo import GeoDatabase, load_geo
from egress.inventory import Inventory, load_inventory
from egress.records import CopyRecord, DriveAttach, ObjectStoreRequest
from egress.sources.copylogs import CopyLogReader
from egress.sources.drives import DriveLogReader
from egress.sources.objectstore import ObjectStoreLogReader
from egress.sources.registry import ReadOptions, detect, input_kinds
from egress.sources.zeek import ZeekLogReader

REPO = Path(__file__).resolve().parent.parent
SCENARIO = REPO / "samples" / "scenario"
EXPECTED: dict[str, Any] = json.loads((SCENARIO / "expected.json").read_text())
TENANTS = ("t-0003", "t-0008", "t-0017", "t-0042", "t-0051")
COPY_LOGS = sorted((SCENARIO / "storage").glob("imp-77-*.log"))
STATION = "kul1-ingest-01"
BULK_START = datetime(2026, 5, 14, tzinfo=UTC)
OUTBOUND_START = datetime(2026, 6, 4, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory(SCENARIO / "inventory.yaml")


@pytest.fixture(scope="module")
def geo() -> GeoDatabase:
    return load_geo([SCENARIO / "geo" / "dbip-country-lite.csv",
                     SCENARIO / "geo" / "ip2asn-combined.tsv"])


def _content(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def test_generator_rewrites_the_committed_files_exactly(tmp_path: Path) -> None:
    out = tmp_path / "scenario"
    script = REPO / "samples" / "generate_scenario.py"
    subprocess.run([sys.executable, str(script), "--out", str(out)], check=True,
                   capture_output=True, cwd=tmp_path)
    committed = sorted(p.relative_to(SCENARIO) for p in SCENARIO.rglob("*") if p.is_file())
    fresh = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert fresh == committed
    for rel in committed:
        # gzip compares by content: the compressed bytes may differ between zlib builds.
        assert _content(out / rel) == _content(SCENARIO / rel), rel
    assert len(committed) == 40
    assert sum((SCENARIO / rel).stat().st_size for rel in committed) < 2_000_000


def test_inventory_loads_with_the_scenario_facts(inventory: Inventory) -> None:
    assert inventory.site.name == "kul-1" and inventory.site.country == "MY"
    assert inventory.concern_countries == ("CN", "MO")
    assert [t.id for t in inventory.tenants] == list(TENANTS)
    assert inventory.gpus_allocated("t-0042", utc(2026, 5, 9)) == 0
    assert inventory.gpus_allocated("t-0042", utc(2026, 5, 10)) == 2048
    assert inventory.tenant_for_address("10.42.8.10", utc(2026, 4, 20)) == "t-0017"
    assert inventory.tenant_for_address("10.42.8.10", utc(2026, 5, 14)) == "t-0042"
    assert inventory.tenant_for_address("10.0.1.53", utc(2026, 5, 14)) is None
    assert inventory.is_ingest_station("10.9.0.11")
    assert [s.what for s in inventory.shared_identity("t-0042")] == [
        "contact:+60 3 2788 4410", "contact:infra@lianhe-ai.example",
        "payment_ref:PAY-MY-88213"]
    t42 = inventory.tenant("t-0042")
    assert (t42.predecessor, t42.kyc, t42.payment, t42.parent_country) == (
        "t-0017", "basic", "crypto", "CN")
    (job,) = t42.media_imports
    assert len(job.serials) == 30
    unlisted = EXPECTED["unattributed"]["unlisted_drives"][0]["serial"]
    assert unlisted not in job.serials
    ref = inventory.tenant_for_drive_serial(job.serials[0], utc(2026, 5, 19, 7))
    assert ref is not None and (ref.tenant_id, ref.job) == ("t-0042", "imp-77")


def test_geo_maps_the_remote_ranges(geo: GeoDatabase) -> None:
    cn = geo.lookup("198.18.70.1")
    assert (cn.country, cn.asn, cn.as_org) == ("CN", 64497, "EXAMPLE-CN-NORTH")
    assert geo.lookup("203.0.113.7").country == "MY"
    assert geo.lookup("198.18.200.1").country == "MO"
    assert geo.lookup("10.42.8.10").country is None


@pytest.mark.parametrize("rel, kind, fmt, records", [
    ("zeek/conn.log", "zeek", "conn", EXPECTED["scenario"]["conn_log_rows"]),
    ("zeek/conn_long.log", "zeek", "conn_long", EXPECTED["scenario"]["conn_long_rows"]),
    ("storage/kern.log", "drives", "kern.log", 31),
    ("storage/s3-access.log.gz", "objectstore", "s3",
     sum(t["object_store"]["requests"] for t in EXPECTED["tenants"].values())),
    ("storage/imp-77-d26.log", "copylog", "rsync", None),
])
def test_each_file_is_detected_and_read_without_issues(rel: str, kind: str, fmt: str,
                                                        records: int | None) -> None:
    path = SCENARIO / rel
    found = detect(path)
    assert (found.kind, found.format) == (kind, fmt)
    spec = input_kinds()[kind]
    reader = spec.reader(ReadOptions(station=STATION))
    n = sum(1 for _ in reader.read([path]))
    assert list(spec.issues(reader)) == []
    if records is not None:
        assert n == records


def test_all_copy_logs_read_without_issues() -> None:
    assert len(COPY_LOGS) == 31
    reader = CopyLogReader(station=STATION)
    records = list(reader.read(COPY_LOGS))
    assert list(reader.issues) == []
    assert len(records) == EXPECTED["findings"]["drive_ingest"]["files_copied"]
    assert len(reader.summaries) == 31
    assert all(s.total_size_bytes == s.bytes_copied for s in reader.summaries)


def test_egress_read_cli_reports_no_skipped_lines(tmp_path: Path) -> None:
    inputs = [SCENARIO / "zeek" / "conn_long.log", SCENARIO / "zeek" / "conn.log",
              SCENARIO / "storage" / "kern.log", SCENARIO / "storage" / "s3-access.log.gz",
              *COPY_LOGS]
    result = CliRunner().invoke(cli, ["read", *map(str, inputs), "--out",
                                      str(tmp_path / "records.jsonl")])
    assert result.exit_code == 0, result.output
    assert "skipped or doubtful" not in result.stderr
    rows = EXPECTED["scenario"]["conn_log_rows"] + EXPECTED["scenario"]["conn_long_rows"]
    assert f"egress: zeek: {rows:,} records" in result.stderr
    assert "egress: drives: 31 records" in result.stderr


def _conn_totals(inventory: Inventory, geo: GeoDatabase) -> dict[str, dict[str, Any]]:
    reader = ZeekLogReader()
    attributor = Attributor(inventory, geo)
    out: dict[str, dict[str, Any]] = defaultdict(lambda: {
        "rows": 0, "bytes_in": 0, "bytes_out": 0, "in_by": Counter(), "out_by": Counter(),
        "remotes": set(), "uids": set()})
    bulk: dict[str, Any] = {"bytes": 0, "remotes": set()}
    leaving = 0
    for batch in reader.read_conn([SCENARIO / "zeek"]):
        table = pa.Table.from_batches([attributor.attribute_batch(batch)])
        for row in table.select(["ts", "uid", "orig_h", "resp_h", "tenant", "direction",
                                 "bytes_in", "bytes_out"]).to_pylist():
            key = row["tenant"] or "unattributed"
            t = out[key]
            t["rows"] += 1
            t["uids"].add(row["uid"])
            remote = row["resp_h"] if inventory.is_site_address(row["orig_h"]) else row["orig_h"]
            country = geo.lookup(remote).country
            t["bytes_in"] += row["bytes_in"]
            t["bytes_out"] += row["bytes_out"]
            t["in_by"][country] += row["bytes_in"]
            t["out_by"][country] += row["bytes_out"]
            t["remotes"].add(remote)
            if key == "t-0042" and country == "CN" and row["direction"] == "inbound" and (
                    row["ts"] >= BULK_START) and row["bytes_in"] > 0:
                bulk["bytes"] += row["bytes_in"]
                bulk["remotes"].add(remote)
            if key == "t-0042" and country == "CN" and row["ts"] >= OUTBOUND_START:
                leaving += row["bytes_out"]
    stats = reader.stats
    assert (stats.issues, stats.long_conn_states_expired, stats.long_conn_states_open,
            stats.totals_decreased) == ((), 0, 0, 0)
    out["bulk"] = bulk
    out["leaving"] = {"bytes": leaving}
    return out


def test_network_totals_per_tenant_equal_expected(inventory: Inventory,
                                                  geo: GeoDatabase) -> None:
    got = _conn_totals(inventory, geo)
    for tid in TENANTS:
        want = EXPECTED["tenants"][tid]["conn"]
        t = got[tid]
        assert (t["rows"], len(t["uids"]), t["bytes_in"], t["bytes_out"],
                len(t["remotes"])) == (want["rows"], want["connections"], want["bytes_in"],
                                       want["bytes_out"], want["remote_addrs"]), tid
        assert {k: v for k, v in t["in_by"].items() if v} == {
            k: v for k, v in want["bytes_in_by_country"].items() if v}, tid
        assert {k: v for k, v in t["out_by"].items() if v} == {
            k: v for k, v in want["bytes_out_by_country"].items() if v}, tid
    assert got["unattributed"]["rows"] == EXPECTED["unattributed"]["conn_rows"]
    arrival = EXPECTED["findings"]["bulk_arrival"]
    assert got["bulk"]["bytes"] == arrival["bytes"]
    assert len(got["bulk"]["remotes"]) == arrival["remote_addrs"] == 38
    assert got["leaving"]["bytes"] == EXPECTED["findings"]["follow_on_outbound"]["bytes"]


def test_storage_totals_per_tenant_equal_expected(inventory: Inventory) -> None:
    attributor = Attributor(inventory)
    objects: dict[str | None, Counter[str]] = defaultdict(Counter)
    for request in ObjectStoreLogReader().read([SCENARIO / "storage" / "s3-access.log.gz"]):
        assert isinstance(request, ObjectStoreRequest)
        a = attributor.attribute(request)
        objects[a.tenant]["requests"] += 1
        objects[a.tenant]["put_bytes"] += a.bytes_in or 0
        objects[a.tenant]["puts"] += request.operation in ("put_object", "put_part")
    drives: dict[str | None, Counter[str]] = defaultdict(Counter)
    unlisted = []
    for drive in DriveLogReader().read([SCENARIO / "storage" / "kern.log"]):
        assert isinstance(drive, DriveAttach)
        a = attributor.attribute(drive)
        if a.how == UNLISTED_DRIVE:
            unlisted.append({"serial": drive.serial, "capacity_bytes": drive.capacity_bytes})
            continue
        drives[a.tenant]["attached"] += 1
        drives[a.tenant]["capacity_bytes"] += drive.capacity_bytes or 0
    copies: dict[str | None, Counter[str]] = defaultdict(Counter)
    for copy in CopyLogReader(station=STATION).read(COPY_LOGS):
        assert isinstance(copy, CopyRecord)
        a = attributor.attribute(copy)
        copies[a.tenant]["files"] += 1
        copies[a.tenant]["bytes"] += a.bytes_in or 0
    assert None not in objects and None not in drives and None not in copies
    for tid in TENANTS:
        want = EXPECTED["tenants"][tid]
        assert dict(objects[tid]) == {k: v for k, v in want["object_store"].items() if v}, tid
        assert dict(drives[tid]) == {k: v for k, v in want["drives"].items() if v}, tid
        assert dict(copies[tid]) == {k: v for k, v in want["copies"].items() if v}, tid
    assert unlisted == [{k: d[k] for k in ("serial", "capacity_bytes")}
                        for d in EXPECTED["unattributed"]["unlisted_drives"]]
    ingest = EXPECTED["findings"]["object_store_ingest"]
    assert objects["t-0042"]["put_bytes"] == ingest["put_bytes"]
