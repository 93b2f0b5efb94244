"""Every sample capture in ``pcaps/`` yields exactly the flows listed in ``pcaps/expected.json``.

The expected flows are counted by ``pcaps/generate.py`` from the packets it wrote (Zeek's
conn.log rules, plus the VNI in the key), never by running egress.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from egress.records import Flow
from egress.sources.pcap import CaptureReader, read_flows

REPO = Path(__file__).resolve().parent.parent
PCAPS = REPO / "pcaps"
MANIFEST: dict[str, Any] = json.loads((PCAPS / "expected.json").read_text())
CAPTURES: dict[str, dict[str, Any]] = {e["file"]: e for e in MANIFEST["captures"]}
KEY_FIELDS = ("orig_h", "orig_p", "resp_h", "resp_p", "proto", "vni")
COUNT_FIELDS = (*KEY_FIELDS, "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes",
                "vlan", "inner_vlan")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _row(flow: Flow, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(flow, name) for name in fields}


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


def _start_us(flow: Flow) -> int:
    return (flow.start - _EPOCH) // timedelta(microseconds=1)


@pytest.fixture(scope="module")
def flows_by_file() -> dict[str, list[Flow]]:
    """Read each capture once for all tests of this module."""
    return {name: read_flows([PCAPS / name]) for name in CAPTURES}


@pytest.mark.parametrize("name", list(CAPTURES))
def test_flows_match_manifest(name: str, flows_by_file: dict[str, list[Flow]]) -> None:
    expected = [{k: f[k] for k in COUNT_FIELDS} for f in CAPTURES[name]["flows"]]
    actual = [_row(f, COUNT_FIELDS) for f in flows_by_file[name]]
    assert _sorted(actual) == _sorted(expected)


@pytest.mark.parametrize("name", list(CAPTURES))
def test_flow_and_packet_totals(name: str, flows_by_file: dict[str, list[Flow]]) -> None:
    reader = CaptureReader(strict=True)
    flows = [f for f in reader.read([PCAPS / name]) if not f.interim]
    assert len(flows) == len(flows_by_file[name]) == CAPTURES[name]["flow_count"]
    assert reader.stats.packets == CAPTURES[name]["packets"]


@pytest.mark.parametrize("name", list(CAPTURES))
def test_flow_start_times(name: str, flows_by_file: dict[str, list[Flow]]) -> None:
    """First-packet times, which check each file's (and pcapng interface's) time resolution."""
    untimed = {tuple(f[k] for k in KEY_FIELDS) for f in CAPTURES[name]["flows"]
               if f["start_us"] is None}
    expected = sorted((*(f[k] for k in KEY_FIELDS), f["start_us"])
                      for f in CAPTURES[name]["flows"] if f["start_us"] is not None)
    actual = sorted((*(getattr(f, k) for k in KEY_FIELDS), _start_us(f))
                    for f in flows_by_file[name]
                    if tuple(getattr(f, k) for k in KEY_FIELDS) not in untimed)
    assert [tuple(map(str, r)) for r in actual] == [tuple(map(str, r)) for r in expected]


def test_captures_fit_the_size_budget() -> None:
    assert sum((PCAPS / name).stat().st_size for name in CAPTURES) < 5 * 1024 * 1024


def test_generator_reproduces_every_file(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(PCAPS / "generate.py"), str(tmp_path)], check=True,
                   cwd=REPO, capture_output=True, timeout=120)
    names = [*CAPTURES, "expected.json", "README.md"]
    differing = [n for n in names if (tmp_path / n).read_bytes() != (PCAPS / n).read_bytes()]
    assert differing == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
