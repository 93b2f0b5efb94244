"""Two Zeek sensors seeing the same traffic: every connection is counted once."""

from __future__ import annotations

from pathlib import Path

from egress.sidecar.config import load_config
from egress.sidecar.service import Sidecar
from tests.sidecar.replay import apply, config_text, plan
from tests.sidecar.test_equivalence import batch_analysis, delivered_ids, sorted_windows


def _second_sensor(step: dict[str, bytes]) -> dict[str, bytes]:
    """The Zeek part of a replay step, as a second sensor's directory writes it."""
    return {rel.replace("zeek/", "zeek-b/", 1): data for rel, data in step.items()
            if rel.startswith("zeek/")}


def test_two_sensors_count_each_connection_once_across_a_restart(tmp_path: Path) -> None:
    text = config_text(tmp_path).replace(
        f"  - {{name: zeek, kind: zeek, path: {tmp_path / 'zeek'}}}\n",
        f"  - {{name: zeek, kind: zeek, path: {tmp_path / 'zeek'}}}\n"
        f"  - {{name: zeek-b, kind: zeek, path: {tmp_path / 'zeek-b'}}}\n")
    assert "zeek-b" in text
    (tmp_path / "sidecar.yaml").write_text(text)
    # Live sensors write the same hours at the same time: steps of half a day of log time
    # (the replay spans 24 days; the de-duplicator remembers a day).
    steps = plan(48)
    sidecar = None
    try:
        for n, step in enumerate(steps):
            apply(step, tmp_path)
            apply(_second_sensor(step), tmp_path)
            if n in (0, 20, 40):  # a new process: the de-duplicator comes from the state
                if sidecar is not None:
                    sidecar.close()
                sidecar = Sidecar(load_config(tmp_path / "sidecar.yaml"), clock=lambda: 1.8e9)
            assert sidecar is not None
            sidecar.tick()
        assert sidecar is not None
        live = sidecar.windows()
        metrics = sidecar.metrics.render()
    finally:
        if sidecar is not None:
            sidecar.close()
    batch = batch_analysis(tmp_path)  # one sensor: zeek/ and storage/
    assert sorted_windows(live.windows) == sorted_windows(batch.run.tables.windows)
    assert sorted(delivered_ids(tmp_path)) == sorted(f.id for f in batch.findings)
    # both sensors' lines were read (records count per input, over the last process)
    assert 'egress_sidecar_records_total{input="zeek-b"}' in metrics
