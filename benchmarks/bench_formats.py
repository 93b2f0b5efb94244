"""Time each alert format on realistic findings, next to plain ``json.dumps``, in one run.

A finding here carries what a real bulk-arrival hit carries: two metrics, four context facts,
two sequence steps, three countries, five evidence transfers, three risk factors, two ATT&CK
techniques. Each format renders ``--alerts`` findings (distinct ids) to one line each; the
figures are alerts per second of CPU time (``time.process_time``) and of wall time, best of
``--repeat`` runs. Peers in the same run: ``json.dumps`` of a prebuilt dict of the same
size as the ECS document (serialization alone, the floor any stdlib-JSON format pays), the
native ``json`` format, and, when orjson is importable (an egress dependency; without it the
formats fall back to the stdlib), ``orjson.dumps`` of the prebuilt dict (encoding alone) and
of the plain ECS dict built per finding (``ecs_dict``: times as strings, every object built;
the ``ecs`` row leaves UTC times and the ATT&CK object to orjson). The target
(>= 50,000 alerts/s per format, issue 7) is printed as PASS/MISS, never asserted.

    python benchmarks/bench_formats.py               # 100,000 alerts per format
    python benchmarks/bench_formats.py --alerts 20000
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from egress.findings import Case, Finding, Transfer
from egress.formats.alerts import FORMATS
from egress.formats.ecs import ecs_dict, encode_json, stdlib_encode_json
from egress.signatures.match import (
    CountryShare,
    FactEvidence,
    MetricEvidence,
    RiskFactor,
    StepMatch,
)

TARGET = 50_000
TB = 10**12


def sample_finding(k: int) -> Finding:
    """A realistic finding (module doc); ``k`` varies its id, tenant and volumes."""
    start = datetime(2026, 3, 10, tzinfo=UTC) + timedelta(days=k % 30)
    end = start + timedelta(days=1)
    alloc = start - timedelta(days=5)
    return Finding(
        id=f"5f0c6f3e-2d4b-5a7e-9c1d-{k:012x}", signature_id="new-tenant-gpu-bulk-arrival",
        signature_version=3, title="New tenant with a large GPU allocation receives bulk data",
        severity="critical", signature_severity="high", risk_score=95,
        risk_factors=(RiskFactor(name="severity high", points=70, reason="base score"),
                      RiskFactor(name="crypto payment", points=15, reason="pays by crypto"),
                      RiskFactor(name="weak KYC", points=10, reason="KYC none")),
        attack=("T1105", "T1585"), tenant=f"t-{k % 997:04d}", tenant_name="New Rental Ltd",
        direction="inbound", span="24h", window_start=start, window_end=end,
        message=(f"Tenant t-{k % 997:04d} (New Rental Ltd) received {300 + k % 200} TB from 38 "
                 f"addresses in CN, MO between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} "
                 "UTC (1 day) (threshold bytes_in >= 100 TB), after 2400 H100 GPUs on h100-a "
                 f"from {alloc:%Y-%m-%d}."),
        metrics=(MetricEvidence(step="arrival", metric="bytes_in", op=">=",
                                value=(300 + k % 200) * TB, threshold=100 * TB,
                                threshold_text="100 TB", threshold_name="volume", kind="bytes",
                                held=True),
                 MetricEvidence(step="arrival", metric="remote_addrs", op=">=", value=38,
                                threshold=1, threshold_text="1", threshold_name=None,
                                kind="number", held=True)),
        facts=tuple(FactEvidence(step="risk", fact=fact, test=test, value=value, detail=None,
                                 at=start, held=True)
                    for fact, test, value in (("tenant.age", "< 30d", 777600.0),
                                              ("tenant.gpus", ">= 512", 2400),
                                              ("tenant.kyc", "<= basic", "none"),
                                              ("tenant.payment", "== crypto", "crypto"))),
        steps=(StepMatch(name="allocation", kind="allocation", start=alloc, end=alloc,
                         span=None, detail="2400 H100 GPUs on h100-a"),
               StepMatch(name="arrival", kind="window", start=start, end=end, span="24h",
                         detail=None)),
        countries=(CountryShare(country="CN", bytes_in=280 * TB, bytes_out=0, remote_addrs=30),
                   CountryShare(country="MO", bytes_in=15 * TB, bytes_out=0, remote_addrs=6),
                   CountryShare(country="SG", bytes_in=5 * TB, bytes_out=0, remote_addrs=2)),
        transfers=tuple(Transfer(
            # transfer times to the microsecond, distinct in every finding (as logs give them);
            # window bounds repeat from finding to finding (as windows do)
            kind="network", start=start + timedelta(hours=i, microseconds=7919 * k + i),
            end=start + timedelta(hours=i + 6, microseconds=104729 * k + i),
            bytes_in=(200 - 40 * i) * TB, bytes_out=10**6, remote_addr=f"198.18.{i}.{k % 250}",
            remote_country="CN", where=f"/data/zeek/conn.{k % 24:02d}.log:{1000 + i}",
            ref=f"C{k:08x}{i}", quality=False) for i in range(5)),
        dedup_key=f"new-tenant-gpu-bulk-arrival|t-{k % 997:04d}", suppressed=0,
    )


def measure(render: Callable[[Finding], object], findings: list[Finding], repeat: int
            ) -> tuple[float, float]:
    """Best (CPU, wall) alerts per second over ``repeat`` runs."""
    best_cpu = best_wall = 0.0
    for _ in range(repeat):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for finding in findings:
            render(finding)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        best_cpu = max(best_cpu, len(findings) / max(cpu, 1e-9))
        best_wall = max(best_wall, len(findings) / max(wall, 1e-9))
    return best_cpu, best_wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    findings = [sample_finding(k) for k in range(args.alerts)]
    case = Case(id="449ac1ad-c1b3-5234-97be-b40f31b8a125", tenant="t-0001", tenant_name=None,
                risk_score=95, severity="critical", findings=(), timeline=(), summary="")
    prebuilt = ecs_dict(findings[0], case)
    rows: list[tuple[str, Callable[[Finding], object]]] = [
        ("peer: json.dumps(prebuilt ECS dict)",
         lambda f: json.dumps(prebuilt, separators=(",", ":"), ensure_ascii=False)),
    ]
    try:  # a dependency of egress; the peers are skipped if it is absent
        orjson = importlib.import_module("orjson")
    except ImportError:
        print("(orjson not installed: its peer rows are skipped)")
    else:
        rows += [("peer: orjson.dumps(prebuilt ECS dict)", lambda f: orjson.dumps(prebuilt)),
                 ("peer: orjson.dumps(ecs_dict(finding))",
                  lambda f: orjson.dumps(ecs_dict(f, case)))]
    for name, fmt in FORMATS.items():
        rows.append((name, lambda f, fmt=fmt: fmt(f, case)))  # type: ignore[misc]
    sizes = {name: len(FORMATS[name](findings[0], case).encode()) for name in FORMATS}
    encoder = "stdlib json" if encode_json is stdlib_encode_json else "orjson"
    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"{args.alerts:,} alerts per format, best of {args.repeat}; JSON encoder: {encoder}")
    print(f"{'format':<38} {'alerts/s (CPU)':>15} {'alerts/s (wall)':>16} {'bytes':>7}  target")
    for name, render in rows:
        cpu, wall = measure(render, findings, args.repeat)
        verdict = "" if name.startswith("peer") else ("PASS" if cpu >= TARGET else "MISS")
        size = sizes.get(name, len(json.dumps(prebuilt, separators=(",", ":"))))
        print(f"{name:<38} {cpu:>15,.0f} {wall:>16,.0f} {size:>7}  {verdict}")


if __name__ == "__main__":
    main()
