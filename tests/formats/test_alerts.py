"""The alert format registry, and the sample findings the format tests share."""

from __future__ import annotations

import dataclasses
import functools
import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from egress.findings import Case, Finding, build_cases, build_findings
from egress.formats.alerts import FORMATS, render
from egress.signatures.evaluate import evaluate
from egress.signatures.load import load_signatures, shipped_directory
from egress.windows import EVIDENCE_SCHEMA
from tests.signatures.builders import TB, inventory, utc, window, windows_table

GOLDEN = Path(__file__).parent / "golden"
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
SIGNATURES = load_signatures(shipped_directory())
_COUNTRIES = pa.schema([
    ("tenant", pa.string()), ("span", pa.string()),
    ("window_start", pa.timestamp("us", tz="UTC")), ("window_end", pa.timestamp("us", tz="UTC")),
    ("country", pa.string()), ("bytes_in", pa.uint64()), ("bytes_out", pa.uint64()),
    ("remote_addrs", pa.int64())])
NASTY = 'pipe | back\\slash eq=uals\nnew\rline\ttab "quote" - \x01 ünï'


@functools.cache
def sample() -> tuple[tuple[Finding, ...], tuple[Case, ...]]:
    """Three findings: inbound with a dominant transfer, outbound, and one with nasty text."""
    with tempfile.TemporaryDirectory() as tmp:
        inv = inventory(Path(tmp))
    day, later = utc(2026, 3, 10), utc(2026, 3, 25)
    rows = [window("t-new", "24h", day, bytes_in=412 * TB, remote_addrs=38),
            window("t-new", "24h", later, bytes_out=2 * TB)]
    countries = pa.Table.from_pylist([
        {"tenant": "t-new", "span": "24h", "window_start": day,
         "window_end": day + timedelta(days=1), "country": c, "bytes_in": b, "bytes_out": 0,
         "remote_addrs": n} for c, b, n in (("CN", 400 * TB, 30), ("MO", 12 * TB, 8))],
        schema=_COUNTRIES)
    base = {"kind": "network", "bytes_out": 0, "bytes_in": 0, "remote_country": "CN",
            "quality": False, "tenant": "t-new"}
    evidence = pa.Table.from_pylist([{**base, **r} for r in (
        {"start": day + timedelta(hours=1), "end": day + timedelta(hours=9),
         "bytes_in": 300 * TB, "remote_addr": "198.18.0.7", "where": "conn.log:12",
         "ref": "CHhAvVGS1DHFjwGM9"},
        {"start": day + timedelta(hours=3), "end": day + timedelta(hours=4),
         "bytes_in": 90 * TB, "remote_addr": "198.18.0.8", "where": "conn.log:13", "ref": "C2"},
        {"start": later + timedelta(hours=2), "end": later + timedelta(hours=5),
         "bytes_out": 2 * TB - 5, "remote_addr": "2001:db8::5", "remote_country": "SG",
         "where": "conn.log:40", "ref": "C3"},
    )], schema=EVIDENCE_SCHEMA)
    windows = windows_table(rows)
    matches = [m for m in evaluate(SIGNATURES, windows, inv, countries=countries)
               if m.signature_id in ("bulk-inbound-24h", "follow-on-outbound")]
    findings = list(build_findings(matches, SIGNATURES, inv, evidence))
    nasty = dataclasses.replace(findings[0], title=NASTY, message=NASTY, tenant_name=NASTY,
                                id="00000000-0000-5000-8000-000000000000", transfers=())
    findings.append(nasty)
    return tuple(findings), tuple(build_cases(findings[:2], inv))


def test_sample_findings() -> None:
    findings, cases = sample()
    assert [(f.signature_id, f.direction, f.severity, f.risk_score) for f in findings] == [
        ("bulk-inbound-24h", "inbound", "high", 75),
        ("follow-on-outbound", "outbound", "critical", 100),
        ("bulk-inbound-24h", "inbound", "high", 75)]
    assert [len(f.transfers) for f in findings] == [2, 1, 0]
    assert len(cases) == 1


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_each_format_renders_one_line(name: str) -> None:
    findings, cases = sample()
    for finding in findings:
        text = render(name, finding, cases[0])
        assert text.endswith("\n")
        assert "\n" not in text[:-1]
        assert "\r" not in text


def test_registry_keys() -> None:
    assert sorted(FORMATS) == ["cef", "ecs", "hec", "json", "notice", "ocsf"]
    opened = datetime(2026, 3, 26, tzinfo=UTC)
    assert FORMATS["notice"].header(opened=opened).startswith("#separator \\x09\n")
    assert FORMATS["notice"].footer(closed=opened) == "#close\t2026-03-26-00-00-00\n"
    assert FORMATS["ecs"].header(opened=opened) == ""
    findings, _ = sample()
    assert json.loads(render("json", findings[0]))["id"] == findings[0].id


def test_unknown_format() -> None:
    with pytest.raises(KeyError, match="unknown alert format 'xml'"):
        render("xml", sample()[0][0])


def golden(name: str, text: str) -> str:
    """The golden file's text; ``EGRESS_UPDATE_GOLDEN=1`` rewrites it from ``text`` first."""
    import os

    path = GOLDEN / name
    if os.environ.get("EGRESS_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8", newline="")
    return path.read_bytes().decode("utf-8")


def all_lines(name: str) -> str:
    """Every sample finding in format ``name`` (with the case), as one file."""
    findings, cases = sample()
    fmt = FORMATS[name]
    opened = datetime(2026, 3, 26, tzinfo=UTC)
    return (fmt.header(opened=opened) + "".join(fmt(f, cases[0]) for f in findings)
            + fmt.footer(closed=opened + timedelta(hours=1)))


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_golden(name: str) -> None:
    suffix = {"notice": "log", "cef": "cef"}.get(name, "jsonl")
    assert all_lines(name) == golden(f"{name}.{suffix}", all_lines(name))
