"""Retention: segments dropped behind the horizon are forgotten, not rebuilt from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from egress.sidecar.config import load_config
from egress.sidecar.service import Sidecar
from tests.sidecar.replay import apply, config_text, plan

DAY_US = 86_400_000_000
#: Distinct counts that remember days before the horizon in a sidecar that ran through
#: it (the sketches' unions), but not after a restart (built from the kept segments).
REMEMBERING = {"7d": ("remote_addrs", "remote_asns"),
               "cumulative": ("remote_addrs", "remote_asns")}


def zeek_only(root: Path, retention_days: float) -> Path:
    text = "".join(line for line in config_text(root).splitlines(keepends=True)
                   if "kind: zeek" in line or "name:" not in line)
    path = root / "sidecar.yaml"
    path.write_text(text + f"retention_days: {retention_days}\n")
    return path


def comparable(table: pa.Table) -> list[dict[str, Any]]:
    rows = []
    for row in table.to_pylist():
        for name in REMEMBERING.get(row["span"], ()):
            row[name] = None
        rows.append(row)
    return sorted(rows, key=lambda r: (r["tenant"], r["span"], r["window_start"]))


def test_retention_forgets_old_windows_without_rebuilding(tmp_path: Path) -> None:
    config = zeek_only(tmp_path, 5)
    assert "kind: objectstore" not in config.read_text()
    sidecar = Sidecar(load_config(config), clock=lambda: 1.8e9)
    aggregators, horizons, kept, rolled = [], [], [], []
    try:
        for step in plan(24):  # the replay spans 24 days: one a step
            apply(step, tmp_path)
            sidecar.tick()
            aggregator = sidecar._aggregator
            assert aggregator is not None and aggregator.kept is not None
            aggregators.append(id(aggregator))
            horizons.append(sidecar.checkpoint.horizon_us)
            kept.append(len(sidecar.checkpoint.segments))
            hours = pc.sum(pc.equal(aggregator.kept.windows.column("span"), "1h")).as_py()
            rolled.append((aggregator.hours_rolled_up, hours))
        live = sidecar.windows()
    finally:
        sidecar.close()
    # segments were dropped on the way, the horizon moved day by day, one aggregator
    horizon = horizons[-1]
    assert horizon is not None and horizon % DAY_US == 0
    assert max(kept) > kept[-1]
    assert len({h for h in horizons if h is not None}) >= 10
    assert len(set(aggregators[1:])) == 1
    # each tick after the first rolled up only the hours from the day its new transfers
    # start in (a day or two of the five kept), also when the horizon moved
    assert rolled[0][0] == rolled[0][1] > 0
    assert all(0 < done < hours for done, hours in rolled[1:])
    assert sum(done for done, _ in rolled[1:]) * 2 < sum(hours for _, hours in rolled[1:])
    starts = [r["window_start"].timestamp() * 1e6 for r in live.windows.to_pylist()
              if r["span"] in ("1h", "24h")]
    assert starts and min(starts) >= horizon
    # a restart builds the windows again from the kept segments, up to the same horizon
    restarted = Sidecar(load_config(config), clock=lambda: 1.8e9)
    try:
        again = restarted.windows()
    finally:
        restarted.close()
    assert comparable(again.windows) == comparable(live.windows)
    assert sorted(again.evidence.column("ref").to_pylist()) == sorted(
        live.evidence.column("ref").to_pylist())
