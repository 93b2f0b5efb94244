"""The pipeline: inputs -> attribution -> windows, with sensor de-duplication."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest

from egress.errors import SourceError
from egress.inventory import Inventory, load_inventory
from egress.pipeline import RunOptions, run_windows
from egress.records import Flow
from egress.sources.pcap import read_flows

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
UPLOAD = PCAPS / "datacenter-upload.pcap.gz"
# The upload in datacenter-upload.pcap.gz: 203.0.113.50 -> 10.42.7.15:443 (pcaps/README.md).
UPLOAD_IP_BYTES = 2_250_027_517
DAY = datetime(2024, 3, 2, tzinfo=UTC)

INVENTORY = """
site: {name: kul-1, country: MY, networks: [10.0.0.0/8], ingest_stations: [10.9.0.11]}
concern_countries: [CN]
tenants:
  - id: t-1
    name: One
    registered: 2024-02-20
    country: MY
    kyc: basic
    payment: crypto
    networks: [{cidr: 10.42.7.0/24, from: 2024-02-20}]
"""

CONN_LOG = """#separator \\x09
#set_separator\t,
#empty_field\t(empty)
#unset_field\t-
#path\tconn
#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\t\
orig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\t\
orig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents
#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\t\
bool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]
1709337600.000000\tCa\t203.0.113.9\t40000\t10.42.7.20\t443\ttcp\t-\t7200.0\t3600000\t100\tSF\t\
F\tT\t0\tShADadFf\t100\t3600000\t50\t7200\t(empty)
1709337600.000000\tCb\t10.42.7.20\t40001\t10.42.7.21\t22\ttcp\t-\t1.0\t500\t500\tSF\t\
T\tT\t0\tShADadFf\t10\t900\t10\t900\t(empty)
1709337600.000000\tCc\t198.51.100.1\t40002\t192.0.2.1\t22\ttcp\t-\t1.0\t500\t500\tSF\t\
F\tF\t0\tShADadFf\t10\t900\t10\t900\t(empty)
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    return load_inventory(path)


def day_row(result_windows: list[dict[str, Any]], tenant: str) -> dict[str, Any]:
    [row] = [r for r in result_windows if r["span"] == "24h" and r["tenant"] == tenant]
    return row


def tenant_volume(flows: list[Flow]) -> tuple[int, int]:
    """Bytes into and out of 10.42.7.0/24, from the flows by hand."""
    net = ip_network("10.42.7.0/24")
    into = out = 0
    for f in flows:
        orig_in, resp_in = ip_address(f.orig_h) in net, ip_address(f.resp_h) in net
        if orig_in != resp_in:
            into += f.resp_ip_bytes if orig_in else f.orig_ip_bytes
            out += f.orig_ip_bytes if orig_in else f.resp_ip_bytes
    return into, out


def test_capture_to_windows(inventory: Inventory) -> None:
    result = run_windows([UPLOAD], inventory)
    row = day_row(result.tables.windows.to_pylist(), "t-1")
    assert row["window_start"] == DAY
    assert (row["bytes_in"], row["bytes_out"]) == tenant_volume(
        list(read_flows([UPLOAD])))
    assert result.records == {"capture": 34}
    assert result.dedup is None
    top = max(result.tables.evidence.to_pylist(), key=lambda e: e["bytes_in"])
    assert (top["remote_addr"], top["bytes_in"], top["ref"], top["community_id"]) == (
        "203.0.113.50", UPLOAD_IP_BYTES, "C0cWl2lG8r2S", "1:2xgWjeOzixXYpKDUjB1dhpN1sgc=")


def test_two_sensors_count_a_connection_once(inventory: Inventory, tmp_path: Path) -> None:
    once = run_windows([UPLOAD], inventory)
    for sensor in ("a", "b"):
        (tmp_path / sensor).mkdir()
        shutil.copy(UPLOAD, tmp_path / sensor / UPLOAD.name)
    twice = run_windows([tmp_path / "a" / UPLOAD.name, tmp_path / "b" / UPLOAD.name],
                        inventory)
    assert twice.records == {"capture": 34 * 2 - 34}  # the second sensor's flows dropped
    assert twice.dedup is not None and twice.dedup.duplicates == 34
    assert twice.tables.windows.equals(once.tables.windows)
    forced_off = run_windows([tmp_path / "a" / UPLOAD.name, tmp_path / "b" / UPLOAD.name],
                             inventory, options=RunOptions(dedupe=False))
    assert day_row(forced_off.tables.windows.to_pylist(), "t-1")["bytes_in"] == 2 * day_row(
        once.tables.windows.to_pylist(), "t-1")["bytes_in"]


def test_conn_log_to_windows(inventory: Inventory, tmp_path: Path) -> None:
    log = tmp_path / "conn.log"
    log.write_text(CONN_LOG)
    result = run_windows([log], inventory)
    assert result.records == {"zeek": 3}
    windows = result.tables.windows.to_pylist()
    hours = [(r["window_start"].hour, r["bytes_in"], r["bytes_out"], r["flows"])
             for r in windows if r["span"] == "1h"]
    # 3.6 MB over two hours from outside; the east-west flow adds no bytes but a flow.
    assert hours == [(0, 1_800_000, 3_600, 2), (1, 1_800_000, 3_600, 0)]
    assert result.attribution.unattributed == {"conn": 1}
    evidence = result.tables.evidence.to_pylist()
    assert [(e["ref"], e["where"]) for e in evidence] == [
        ("Ca", f"{log}:8"), ("Cb", f"{log}:9")]


def test_unknown_input_is_a_source_error(inventory: Inventory, tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(SourceError, match=r"junk\.bin"):
        run_windows([junk], inventory)


def test_two_zeek_sensors_count_a_connection_once(inventory: Inventory, tmp_path: Path) -> None:
    for sensor in ("a", "b"):
        (tmp_path / sensor).mkdir()
    (tmp_path / "a" / "conn.log").write_text(CONN_LOG)
    # Sensor b saw the same connections, 0.4 s later, under other uids (no Community ID).
    later = CONN_LOG.replace("1709337600.000000\tC", "1709337600.400000\tD")
    (tmp_path / "b" / "conn.log").write_text(later)
    once = run_windows([tmp_path / "a" / "conn.log"], inventory)
    both = run_windows([tmp_path / "a" / "conn.log", tmp_path / "b" / "conn.log"], inventory)
    assert both.records == {"zeek": 6}
    assert both.dedup is not None and both.dedup.duplicates == 3
    assert both.tables.windows.equals(once.tables.windows)
    doubled = run_windows([tmp_path / "a" / "conn.log", tmp_path / "b" / "conn.log"],
                          inventory, options=RunOptions(dedupe=False))
    assert day_row(doubled.tables.windows.to_pylist(), "t-1")["bytes_in"] == 2 * day_row(
        once.tables.windows.to_pylist(), "t-1")["bytes_in"]


def test_conn_columns_left_unparsed_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sample scenario's windows, evidence and counts are the same whether the reader
    parses every conn column or only WINDOW_CONN_COLUMNS, and the projection is used."""
    import egress.pipeline as pipeline_module
    from egress.geo import load_geo
    from egress.inventory import load_inventory

    asked: list[object] = []
    from egress.sources.zeek import ZeekLogReader as reader
    narrow_columns = pipeline_module.WINDOW_CONN_COLUMNS

    def spy(**options: Any) -> Any:
        asked.append(options.get("columns"))
        return reader(**options)

    monkeypatch.setattr(pipeline_module, "ZeekLogReader", spy)
    scenario = Path(__file__).parent.parent / "samples" / "scenario"
    inputs = sorted(p for p in (scenario / "zeek").rglob("*") if p.is_file())
    stock = load_inventory(scenario / "inventory.yaml")
    deduped = RunOptions(dedupe=True)
    with load_geo(sorted((scenario / "geo").iterdir())) as geo:
        narrow = run_windows(inputs, stock, geo)  # one sensor: no de-duplication
        narrow_deduped = run_windows(inputs, stock, geo, deduped)
        monkeypatch.setattr(pipeline_module, "WINDOW_CONN_COLUMNS", None)
        whole = run_windows(inputs, stock, geo)
        whole_deduped = run_windows(inputs, stock, geo, deduped)
    assert narrow_columns is not None and "history" not in narrow_columns
    five_tuple = ("orig_p", "resp_p", "proto")
    assert five_tuple == pipeline_module.DEDUP_CONN_COLUMNS
    assert asked == [tuple(c for c in narrow_columns if c not in five_tuple), narrow_columns,
                     None, None]
    for one, other in ((narrow, whole), (narrow_deduped, whole_deduped)):
        assert one.records == other.records and one.records.get("zeek", 0) > 0
        for name in ("windows", "countries", "evidence"):
            assert getattr(one.tables, name).equals(getattr(other.tables, name)), name
        assert one.attribution == other.attribution
        assert one.issues == other.issues
        assert one.dedup == other.dedup
    assert narrow.dedup is None and narrow_deduped.dedup is not None


def test_conn_read_in_small_chunks_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sample scenario read as the run reads conn logs (CONN_READ: large chunks, one
    batch each) and in chunks of a few kilobytes, batches of 100 rows, one read ahead: the
    same windows, evidence and counts."""
    import egress.pipeline as pipeline_module
    from egress.geo import load_geo

    assert pipeline_module.CONN_READ == {"chunk_bytes": 16 << 20, "batch_rows": 1 << 18,
                                         "read_ahead": 6}
    scenario = Path(__file__).parent.parent / "samples" / "scenario"
    inputs = sorted(p for p in (scenario / "zeek").rglob("*") if p.is_file())
    stock = load_inventory(scenario / "inventory.yaml")
    with load_geo(sorted((scenario / "geo").iterdir())) as geo:
        large = run_windows(inputs, stock, geo)
        monkeypatch.setattr(pipeline_module, "CONN_READ",
                            {"chunk_bytes": 4096, "batch_rows": 100, "read_ahead": 1})
        small = run_windows(inputs, stock, geo)
    assert large.records == small.records and large.records.get("zeek", 0) > 1_000
    for name in ("windows", "countries", "evidence"):
        assert getattr(large.tables, name).equals(getattr(small.tables, name)), name
