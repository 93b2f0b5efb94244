"""The sidecar over a replay raises exactly the alerts ``egress analyze`` raises."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from egress.geo import load_geo
from egress.inventory import load_inventory
from egress.pipeline import Analysis, analyze, expand_inputs
from egress.sidecar.config import load_config
from egress.sidecar.service import Sidecar
from egress.signatures.load import load_signatures, shipped_directory
from tests.sidecar.replay import GEO, SCENARIO, apply, config_text, plan


def batch_analysis(root: Path) -> Analysis:
    """``egress analyze`` over the replayed files."""
    files, _ = expand_inputs([root / "zeek", root / "storage"])
    return analyze(files, load_inventory(SCENARIO / "inventory.yaml"),
                   load_signatures(shipped_directory()), load_geo(list(GEO)))


def delivered_ids(root: Path) -> list[str]:
    """Event ids in the file sink, in order."""
    path = root / "alerts.log"
    if not path.exists():
        return []
    return [json.loads(line)["event"]["id"] for line in path.read_text().splitlines()]


def sorted_windows(table: pa.Table) -> list[dict[str, object]]:
    """Window rows in a fixed order."""
    return sorted(table.to_pylist(), key=lambda r: (r["tenant"], r["span"], r["window_start"]))


@pytest.fixture(scope="module")
def replayed(
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Sidecar, list[int]]]:
    """A sidecar ticked through a 4-step replay (one idle tick at the end)."""
    root = tmp_path_factory.mktemp("replay")
    (root / "sidecar.yaml").write_text(config_text(root))
    sidecar = Sidecar(load_config(root / "sidecar.yaml"), clock=lambda: 1.8e9)
    counts = []
    for step in plan(4):
        apply(step, root)
        sidecar.tick()
        counts.append(len(delivered_ids(root)))
    sidecar.tick()
    counts.append(len(delivered_ids(root)))
    yield root, sidecar, counts
    sidecar.close()


def test_alerts_equal_egress_analyze(replayed: tuple[Path, Sidecar, list[int]]) -> None:
    root, _sidecar, counts = replayed
    expected = sorted(f.id for f in batch_analysis(root).findings)
    got = delivered_ids(root)
    assert len(expected) == 27
    assert len(got) == len(set(got))
    assert sorted(got) == expected
    # Alerts go out as the replay goes on, not at its end; the idle tick adds none.
    assert counts[0] < counts[-1] and counts[-2] == counts[-1] == 27


def test_windows_equal_egress_analyze(replayed: tuple[Path, Sidecar, list[int]]) -> None:
    root, sidecar, _counts = replayed
    batch = batch_analysis(root).run.tables
    live = sidecar.windows()
    assert live.windows.num_rows == batch.windows.num_rows
    assert sorted_windows(live.windows) == sorted_windows(batch.windows)
    assert sorted_windows(live.countries) == sorted_windows(batch.countries)


def test_metrics_count_what_was_read(replayed: tuple[Path, Sidecar, list[int]]) -> None:
    _root, sidecar, _counts = replayed
    text = sidecar.metrics.render()
    # 2641 conn + 500 conn_long records; whole-file inputs count every (re-)read.
    assert 'egress_sidecar_records_total{input="zeek"} 3141\n' in text
    assert 'egress_sidecar_alerts_total{severity="critical"}' in text
    assert "egress_sidecar_ticks_total 5\n" in text
    assert "egress_sidecar_spool_depth 0\n" in text
    assert 'egress_sidecar_malformed_lines{input="zeek"} 0\n' in text
