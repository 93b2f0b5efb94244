"""SIGKILL at three points of a replay: no alert lost, none duplicated, same windows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from egress.errors import ConfigError
from egress.sidecar.config import load_config
from egress.sidecar.service import Sidecar
from egress.sidecar.state import StateDirectory
from tests.sidecar.replay import apply, config_text, plan
from tests.sidecar.test_equivalence import batch_analysis, delivered_ids, sorted_windows

REPO = Path(__file__).resolve().parents[2]


def run_once(config: Path, failpoint: str | None = None) -> int:
    """One tick of ``egress sidecar --once`` in a new process; its return code."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("EGRESS_SIDECAR_FAILPOINT", None)
    if failpoint is not None:
        env["EGRESS_SIDECAR_FAILPOINT"] = failpoint
    done = subprocess.run(
        [sys.executable, "-c", "from egress.cli_sidecar import sidecar_command; "
         "sidecar_command()", "--config", str(config), "--once", "--log-level", "warning"],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(done.stderr)
    return done.returncode


def test_sigkill_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text(config_text(tmp_path))
    steps = plan(3)
    # Killed after writing its segments, before its checkpoint: the data is read again.
    apply(steps[0], tmp_path)
    assert run_once(config, "segments:1") == -signal.SIGKILL
    assert delivered_ids(tmp_path) == []
    # Killed after the checkpoint, before spooling: the next start evaluates again.
    apply(steps[1], tmp_path)
    assert run_once(config, "commit:1") == -signal.SIGKILL
    assert delivered_ids(tmp_path) == []
    # Killed after the enqueue, before the ledger says so: the spool settles it.
    apply(steps[2], tmp_path)
    assert run_once(config, "enqueue:1") == -signal.SIGKILL
    assert delivered_ids(tmp_path) == []
    assert run_once(config) == 0
    assert run_once(config) == 0  # idle: nothing new

    got = delivered_ids(tmp_path)
    expected = batch_analysis(tmp_path)
    assert len(got) == len(set(got)) == 27
    assert sorted(got) == sorted(f.id for f in expected.findings)
    # Segments written by the killed tick were removed; the rest are the checkpoint's.
    sidecar = Sidecar(load_config(config))
    try:
        segments = sidecar.state.segments.glob("*.arrow")
        assert {p.name for p in segments} == set(sidecar.checkpoint.segments)
        # Window totals equal an uninterrupted run (egress analyze: the equivalence test
        # shows an uninterrupted sidecar gives the same windows).
        live = sidecar.windows()
        with pytest.raises(ConfigError, match="another egress sidecar uses this state"):
            StateDirectory(tmp_path / "state")
    finally:
        sidecar.close()
    assert sorted_windows(live.windows) == sorted_windows(expected.run.tables.windows)
