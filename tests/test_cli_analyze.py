"""``egress analyze`` end to end on the bundled sample scenario (samples/scenario)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from click.testing import CliRunner

from egress.cli import cli
from egress.errors import ConfigError

SCENARIO = Path(__file__).resolve().parent.parent / "samples" / "scenario"
GEO = ["--geo", str(SCENARIO / "geo" / "dbip-country-lite.csv"),
       "--geo", str(SCENARIO / "geo" / "ip2asn-combined.tsv")]


def run(tmp_path: Path, *extra: str) -> tuple[list[dict[str, Any]], str]:
    out = tmp_path / "findings.jsonl"
    result = CliRunner().invoke(cli, [
        "analyze", str(SCENARIO), "--inventory", str(SCENARIO / "inventory.yaml"), *GEO,
        "--out", str(out), "--format", "json", "--cases", str(tmp_path / "cases.json"),
        "--windows", str(tmp_path / "windows.parquet"), *extra])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in out.read_text().splitlines()], result.stderr


def test_scenario_catches_the_rental_and_nobody_else(tmp_path: Path) -> None:
    findings, report = run(tmp_path)
    expected = json.loads((SCENARIO / "expected.json").read_text())
    assert {f["tenant"] for f in findings} == {"t-0042", "unattributed"}
    [unlisted] = [f for f in findings if f["tenant"] == "unattributed"]
    assert unlisted["message"] == (
        "A Seagate Expansion HDD drive with serial NA1ZOGXR (20 TB) was attached at ingest "
        "station kul1-ingest-01 at 2026-05-20 06:22 UTC; no media-import manifest lists it.")
    assert unlisted["transfers"][0]["where"].endswith("storage/kern.log:533")
    fired = Counter(f["signature_id"] for f in findings)
    assert set(fired) >= {
        "bulk-inbound-24h", "bulk-inbound-7d", "drive-ingest-burst",
        "entity-substitution-arrival", "follow-on-outbound", "new-tenant-gpu-bulk-arrival",
        "object-store-put-volume", "sustained-high-rate-inbound", "long-lived-bulk-transfer"}
    cases = json.loads((tmp_path / "cases.json").read_text())
    assert [(c["tenant"], c["risk_score"], c["severity"]) for c in cases] == [
        ("t-0042", 100, "critical"), ("unattributed", 50, "medium")]
    assert "drives attached that no media-import manifest lists: 1 (NA1ZOGXR)" in report
    assert "records: copylog 2,710, drives 31, objectstore 4,551, zeek 3,141" in report
    windows = pq.read_table(tmp_path / "windows.parquet").to_pylist()
    # Every byte of the network arrival is in the tenant's days, exactly once.
    bulk = expected["tenants"]["t-0042"]
    days = [w for w in windows if w["tenant"] == "t-0042" and w["span"] == "24h"]
    assert sum(w["bytes_in"] for w in days) == bulk["conn"]["bytes_in"]
    assert sum(w["bytes_out"] for w in days) == bulk["conn"]["bytes_out"]
    assert sum(w["drives_attached"] for w in days) == bulk["drives"]["attached"]
    assert sum(w["drive_capacity_bytes"] for w in days) == bulk["drives"]["capacity_bytes"]
    assert sum(w["bytes_copied"] for w in days) == bulk["copies"]["bytes"]
    assert sum(w["object_put_bytes"] for w in days) == bulk["object_store"]["put_bytes"]
    assert sum(w["object_puts"] for w in days) == bulk["object_store"]["puts"]


def test_bad_inventory_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "inventory.yaml"
    bad.write_text("site: {name: x}\n")
    done = subprocess.run(
        [sys.executable, "-c", "from egress.cli import main; main()", "analyze",
         str(SCENARIO / "zeek" / "conn.log"), "--inventory", str(bad)],
        capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "egress: error: inventory.yaml:1: site.country: Field required" in done.stderr


def test_directory_of_notes_only(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("nothing to read\n")
    result = CliRunner().invoke(cli, ["analyze", str(tmp_path), "--inventory",
                                      str(SCENARIO / "inventory.yaml")])
    assert isinstance(result.exception, ConfigError)
    assert "no inputs to read" in str(result.exception)


def test_explain_an_alert(tmp_path: Path) -> None:
    findings, _ = run(tmp_path)
    alert = next(f for f in findings if f["signature_id"] == "new-tenant-gpu-bulk-arrival")
    result = CliRunner().invoke(cli, ["explain", alert["id"][:13], "--alerts",
                                      str(tmp_path / "findings.jsonl")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (f"Alert {alert['id']}: New tenant with a large GPU allocation receives "
                        "a bulk arrival (new-tenant-gpu-bulk-arrival v1)")
    held = [m for m in alert["metrics"] if m["held"]]
    assert any(f"{held[0]['metric']} = " in line and f">= {held[0]['threshold_text']}" in line
               for line in lines)
    assert "  [held] tenant.age < 90d: 14.0 days" in lines
    assert "  1. large allocation (allocation) 2026-05-10 00:00:00 UTC: 2048 H100 GPUs on " \
        "h100-pod-3" in lines
    assert any(line.startswith("  +15 crypto payment") for line in lines)
    missing = CliRunner().invoke(cli, ["explain", "nope", "--alerts",
                                       str(tmp_path / "findings.jsonl")])
    assert isinstance(missing.exception, ConfigError)
    assert "no alert with id 'nope'" in str(missing.exception)


def test_fail_on_severity_and_top_tenants(tmp_path: Path) -> None:
    args = ["analyze", str(SCENARIO), "--inventory", str(SCENARIO / "inventory.yaml"), *GEO,
            "--out", str(tmp_path / "f.jsonl")]
    failing = CliRunner().invoke(cli, [*args, "--fail-on", "critical"])
    assert failing.exit_code == 1
    assert "egress:   t-0042: in 417.1 TB, out 38.4 TB, copied from drives 546.6 TB, " \
        "object writes 22.7 TB" in failing.stderr
    quiet = CliRunner().invoke(cli, [*args, "--quiet"])
    assert (quiet.exit_code, quiet.stderr) == (0, "")


def test_scheduler_allocations_are_merged(tmp_path: Path) -> None:
    sacct = tmp_path / "sacct.txt"
    sacct.write_text("JobID|Account|Cluster|AllocTRES|State|Start|End\n"
                     "7|t-0051|a100-x|gres/gpu=512|RUNNING|2026-05-10T00:00:00|Unknown\n"
                     "8|t-0051|a100-x|gres/gpu=lots|RUNNING|2026-05-10T00:00:00|Unknown\n")
    result = CliRunner().invoke(cli, [
        "analyze", str(SCENARIO / "zeek" / "conn.log"), "--inventory",
        str(SCENARIO / "inventory.yaml"), "--slurm", str(sacct), "--out",
        str(tmp_path / "f.jsonl")])
    assert result.exit_code == 0, result.output
    assert (f"egress: inventory: malformed 1 in {sacct} (first at byte 113): line 3: GPU count "
            "in 'gres/gpu=lots' is not a whole number") in result.stderr
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("JobID|Account|Cluster|AllocTRES|State|Start|End\n"
                       "9|nobody|a100-x|gres/gpu=8|RUNNING|2026-05-10T00:00:00|Unknown\n")
    failed = CliRunner().invoke(cli, [
        "analyze", str(SCENARIO / "zeek" / "conn.log"), "--inventory",
        str(SCENARIO / "inventory.yaml"), "--slurm", str(unknown)])
    assert isinstance(failed.exception, ConfigError)
    assert "accounts that are not tenants: 'nobody'" in str(failed.exception)


def test_default_format_is_ecs_and_explain_reads_it(tmp_path: Path) -> None:
    out = tmp_path / "alerts.ecs.jsonl"
    result = CliRunner().invoke(cli, [
        "analyze", str(SCENARIO), "--inventory", str(SCENARIO / "inventory.yaml"), *GEO,
        "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    native, _ = run(tmp_path)
    assert [a["event"]["id"] for a in alerts] == [f["id"] for f in native]
    first = alerts[0]
    assert (first["event"]["kind"], first["rule"]["ruleset"], first["cloud"]["account"]["id"]
            ) == ("alert", "egress", "t-0042")
    explained = CliRunner().invoke(cli, ["explain", first["event"]["id"], "--alerts", str(out)])
    assert explained.exit_code == 0, explained.output
    from_native = CliRunner().invoke(cli, ["explain", first["event"]["id"], "--alerts",
                                           str(tmp_path / "findings.jsonl")])
    # The same explanation from either file, but for what ECS leaves out (risk reasons).
    assert explained.output.splitlines()[:5] == from_native.output.splitlines()[:5]
    for fmt, marker in (("cef", "CEF:0|egress|egress|"), ("notice", "#path\tnotice")):
        done = CliRunner().invoke(cli, [
            "analyze", str(SCENARIO), "--inventory", str(SCENARIO / "inventory.yaml"),
            "--format", fmt, "--quiet"])
        assert done.exit_code == 0 and marker in done.output


def test_alerts_delivered_to_sinks_through_the_spool(tmp_path: Path) -> None:
    sink = tmp_path / "siem" / "alerts.cef"
    sink.parent.mkdir()
    args = ["analyze", str(SCENARIO), "--inventory", str(SCENARIO / "inventory.yaml"), *GEO,
            "--out", str(tmp_path / "a.jsonl"), "--sink", f"file://{sink}?format=cef",
            "--sink", f"file://{tmp_path / 'siem' / 'alerts.ecs'}?format=ecs",
            "--spool", str(tmp_path / "spool.db")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    ids = [json.loads(line)["event"]["id"] for line in (tmp_path / "a.jsonl").read_text()
           .splitlines()]
    cef = sink.read_text().splitlines()
    assert len(cef) == len(ids) and all(line.startswith("CEF:0|egress|egress|") for line in cef)
    assert all(f"externalId={i}" in line for i, line in zip(ids, cef, strict=True))
    assert f"egress: spool {tmp_path / 'spool.db'}: 0 alerts (0 bytes) held" in result.stderr
    bad = CliRunner().invoke(cli, [*args[:-4], "--sink", f"file://{sink}?format=xml"])
    assert isinstance(bad.exception, ConfigError)
    assert "unknown format 'xml'" in str(bad.exception)


def test_read_takes_directories(tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    result = CliRunner().invoke(cli, ["read", str(SCENARIO / "storage"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    kinds = Counter(json.loads(line)["record"] for line in out.read_text().splitlines())
    assert kinds == {"CopyRecord": 2710, "DriveAttach": 31, "ObjectStoreRequest": 4551}
