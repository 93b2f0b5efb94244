"""Findings and cases: messages, evidence transfers, stable ids, timelines."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from egress.findings import Finding, build_cases, build_findings, finding_id
from egress.formats.ecs import ecs_dict
from egress.formats.findings_json import cases_json, finding_json_line
from egress.inventory import Inventory
from egress.signatures.evaluate import evaluate
from egress.signatures.load import load_signatures, shipped_directory
from egress.windows import EVIDENCE_SCHEMA, WINDOWS_SCHEMA
from tests.signatures.builders import (
    TB,
    WINDOW_COLUMNS,
    inventory,
    utc,
    window,
    windows_table,
)

SIGNATURES = load_signatures(shipped_directory())
COUNTRIES = pa.schema([
    ("tenant", pa.string()), ("span", pa.string()),
    ("window_start", pa.timestamp("us", tz="UTC")), ("window_end", pa.timestamp("us", tz="UTC")),
    ("country", pa.string()), ("bytes_in", pa.uint64()), ("bytes_out", pa.uint64()),
    ("remote_addrs", pa.int64())])


def test_builders_follow_the_windows_schema() -> None:
    assert sorted((n, str(t)) for n, t in WINDOW_COLUMNS) == sorted(
        (f.name, str(f.type)) for f in WINDOWS_SCHEMA)


def evidence(rows: list[dict[str, object]]) -> pa.Table:
    base = {"kind": "network", "bytes_out": 0, "remote_country": "CN", "quality": False}
    return pa.Table.from_pylist([{**base, **r} for r in rows], schema=EVIDENCE_SCHEMA)


def one_day_findings(inv: Inventory, share_of_top: int = 90) -> list[Finding]:
    """The bulk-inbound-24h finding of one day; the top transfer has ``share_of_top`` TB."""
    day = utc(2026, 3, 10)
    rows = [window("t-new", "24h", day, bytes_in=412 * TB, remote_addrs=38)]
    windows = windows_table(rows)
    countries = pa.Table.from_pylist([
        {"tenant": "t-new", "span": "24h", "window_start": day, "window_end": day
         + timedelta(days=1), "country": c, "bytes_in": b, "bytes_out": 0, "remote_addrs": n}
        for c, b, n in (("CN", 400 * TB, 30), ("MO", 12 * TB, 8))], schema=COUNTRIES)
    matches = [m for m in evaluate(SIGNATURES, windows, inv, countries=countries)
               if m.signature_id == "bulk-inbound-24h"]
    ev = evidence([
        {"tenant": "t-new", "start": day + timedelta(hours=1), "end": day + timedelta(hours=9),
         "bytes_in": share_of_top * TB, "remote_addr": "198.18.0.7", "where": "conn.log:12",
         "ref": "C1", "community_id": "1:abc="},
        {"tenant": "t-new", "start": day - timedelta(days=3), "end": day - timedelta(days=2),
         "bytes_in": 500 * TB, "remote_addr": "198.18.0.8", "where": "conn.log:2", "ref": "C0"},
        {"tenant": "t-new", "start": day + timedelta(hours=2), "end": day + timedelta(hours=2),
         "kind": "copy", "bytes_in": 95 * TB, "where": "imp.log:3", "ref": "/d/f"},
        {"tenant": "t-old", "start": day, "end": day + timedelta(hours=1),
         "bytes_in": 99 * TB, "where": "conn.log:7", "ref": "C9"},
    ])
    return list(build_findings(matches, SIGNATURES, inv, ev))


def one_day(inv: Inventory) -> list[dict[str, Any]]:
    return [json.loads(finding_json_line(f)) for f in one_day_findings(inv)]


def test_ecs_names_the_dominant_connection(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    [small] = one_day_findings(inv)  # 90 TB of 412: no single connection dominates
    assert "community_id" not in ecs_dict(small)["network"]
    [big] = one_day_findings(inv, share_of_top=300)
    doc = ecs_dict(big)
    assert doc["network"] == {"direction": "inbound", "bytes": 412 * TB,
                              "community_id": "1:abc="}
    assert doc["source"] == {"ip": "198.18.0.7", "geo": {"country_iso_code": "CN"}}


def test_message_says_who_received_what_from_where(tmp_path: Path) -> None:
    [finding] = one_day(inventory(tmp_path))
    assert finding["message"] == (
        "Tenant t-new (New Rental Ltd) received 412 TB from 30 addresses in CN between "
        "2026-03-10 00:00 and 2026-03-11 00:00 UTC (1 day) (threshold bytes_in >= 50 TB).")
    assert finding["direction"] == "inbound"
    # Evidence: the network transfers of that tenant overlapping the window, largest first.
    assert [(t["ref"], t["where"], t["bytes_in"]) for t in finding["transfers"]] == [
        ("C1", "conn.log:12", 90 * TB)]
    assert [(f["name"], f["points"]) for f in finding["risk_factors"]] == [
        ("severity medium", 50), ("crypto payment", 15), ("weak KYC", 10)]
    assert finding["risk_score"] == 75
    assert finding["attack"] == ["T1105"]


def test_ids_are_stable_across_overlapping_runs(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    days = [utc(2026, 3, 10) + timedelta(days=k) for k in range(6)]
    rows = [window("t-new", "7d", d, bytes_in=300 * TB) for d in days]
    sigs = [s for s in SIGNATURES if s.id == "new-tenant-gpu-bulk-arrival"]
    first = list(build_findings(evaluate(sigs, windows_table(rows[:4]), inv), sigs, inv))
    second = list(build_findings(evaluate(sigs, windows_table(rows[1:]), inv), sigs, inv))
    assert len(first) == len(second) == 1  # suppressed for 7 days after the first hit
    assert first[0].id == second[0].id
    assert first[0].message == (
        "Tenant t-new (New Rental Ltd) received 300 TB between 2026-03-10 00:00 and "
        "2026-03-17 00:00 UTC (7 days) (threshold bytes_in >= 100 TB), after 2400 H100 GPUs "
        "on h100-a from 2026-03-05.")


def test_finding_id_buckets() -> None:
    a = finding_id("k", utc(2026, 3, 10), 7 * 86400)
    assert a == finding_id("k", utc(2026, 3, 11, 5), 7 * 86400)  # same epoch-aligned week
    assert a != finding_id("k", utc(2026, 3, 20), 7 * 86400)
    assert finding_id("k", utc(2026, 3, 10), 0) != finding_id("k", utc(2026, 3, 10, 1), 0)


def test_case_timeline(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    rows = [window("t-new", "24h", utc(2026, 3, 10), bytes_in=60 * TB),
            window("t-new", "24h", utc(2026, 3, 25), bytes_out=2 * TB)]
    findings = list(build_findings(evaluate(SIGNATURES, windows_table(rows), inv), SIGNATURES,
                                   inv))
    [case] = build_cases(findings, inv)
    assert (case.tenant, case.risk_score, case.severity) == ("t-new", 100, "critical")
    assert [(e.at, e.what) for e in case.timeline if e.finding_id is None] == [
        (utc(2026, 3, 1), "registered in MY (parent in CN); KYC none, pays by crypto"),
        (utc(2026, 3, 5), "allocated 2,400 H100 GPUs on h100-a"),
    ]
    assert [f.signature_id for f in findings] == ["bulk-inbound-24h", "follow-on-outbound"]
    follow = findings[1]
    assert follow.direction == "outbound"
    assert follow.message == (
        "Tenant t-new (New Rental Ltd) sent 2 TB out between 2026-03-25 00:00 and "
        "2026-03-26 00:00 UTC (1 day) (threshold bytes_out >= 1 TB), after bulk arrival "
        "(received 60 TB) on 2026-03-10.")
    assert json.loads(cases_json([case]))[0]["findings"] == [f.id for f in findings]
