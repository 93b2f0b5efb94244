"""The running sidecar: /healthz and /metrics on 127.0.0.1, reloads, SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from egress.sidecar.config import load_config
from egress.sidecar.http import Metrics, MetricsServer
from egress.sidecar.service import Sidecar
from egress.signatures.load import shipped_directory
from tests.sidecar.replay import SCENARIO, apply, config_text, plan

REPO = Path(__file__).resolve().parents[2]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_server_on_loopback() -> None:
    now = [1000.0]
    metrics = Metrics(clock=lambda: now[0], started_at=1000.0)
    metrics.records["zeek"] = 12
    metrics.caught_up_at["zeek"] = 997.5
    metrics.alerts["high"] = 2
    server = MetricsServer(metrics, "127.0.0.1", 0, stale_after_s=60.0)
    server.start()
    try:
        host, port = server.address
        assert host == "127.0.0.1"
        status, body = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert 'egress_sidecar_records_total{input="zeek"} 12\n' in body
        assert 'egress_sidecar_input_lag_seconds{input="zeek"} 2.5\n' in body
        assert 'egress_sidecar_alerts_total{severity="high"} 2\n' in body
        assert "# TYPE egress_sidecar_ticks_total counter\n" in body
        status, body = get(f"http://127.0.0.1:{port}/healthz")
        assert (status, json.loads(body)["status"]) == (200, "ok")
        now[0] = 1061.0  # no tick for 61 s
        status, body = get(f"http://127.0.0.1:{port}/healthz")
        assert (status, json.loads(body)) == (503, {
            "ticks": 0, "tick_errors": 0, "seconds_since_last_tick": 61.0, "status": "stale"})
        assert get(f"http://127.0.0.1:{port}/other")[0] == 404
    finally:
        server.close()


def metrics_after_ticks(port: int, ticks: int, timeout_s: float = 30.0) -> str:
    """The /metrics text once ``ticks`` ticks have completed."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, body = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        done = re.search(r"^egress_sidecar_ticks_total (\d+)$", body, re.MULTILINE)
        if (done and int(done[1]) >= ticks) or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


class Lines:
    """The stderr lines of a process, read in a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert process.stderr is not None
        self._stream = stream = process.stderr

        def pump() -> None:
            for line in stream:
                self._queue.put(line)

        self._thread = threading.Thread(target=pump, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """After the process ended: wait for the reader, close the pipe."""
        self._thread.join(timeout=10)
        self._stream.close()

    def wait_for(self, pattern: str, timeout_s: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.seen)}")


def test_running_sidecar_serves_reloads_and_stops(tmp_path: Path) -> None:
    signatures = tmp_path / "signatures"
    shutil.copytree(shipped_directory(), signatures)
    inventory = tmp_path / "inventory.yaml"
    shutil.copy(SCENARIO / "inventory.yaml", inventory)
    config = tmp_path / "sidecar.yaml"
    config.write_text(config_text(tmp_path, listen="127.0.0.1:0", interval_s=0.2,
                                  signatures=signatures, inventory=inventory))
    apply(plan(1)[0], tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-c", "from egress.cli_sidecar import sidecar_command; "
         "sidecar_command()", "--config", str(config)],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE, text=True)
    lines = Lines(process)
    try:
        port = int(lines.wait_for(r"serving /healthz and /metrics on 127\.0\.0\.1:(\d+)")[1])
        lines.wait_for(r"27 new alert\(s\) spooled")
        body = metrics_after_ticks(port, 2)
        assert 'egress_sidecar_records_total{input="zeek"} 3141\n' in body
        assert "egress_sidecar_spool_depth 0\n" in body
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        # A bad signature set on SIGHUP: logged, the old set kept, still serving.
        (signatures / "broken.yaml").write_text("id: [\n")
        process.send_signal(signal.SIGHUP)
        lines.wait_for(r"signatures not reloaded, the old set is kept: .*broken\.yaml:")
        (signatures / "broken.yaml").unlink()
        process.send_signal(signal.SIGHUP)
        lines.wait_for(r"signatures reloaded: \d+")
        # The inventory: a broken file is refused, a good one taken.
        inventory.write_text("site: [\n")
        lines.wait_for(r"inventory not reloaded, the old one is kept: .*inventory\.yaml:")
        shutil.copy(SCENARIO / "inventory.yaml", inventory)
        lines.wait_for(r"inventory reloaded: 5 tenants")
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        lines.wait_for(r"signal 15: stopping after this tick")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        lines.close()
    alerts = (tmp_path / "alerts.log").read_text().splitlines()
    assert len(alerts) == 27  # no alert again after the reloads


def test_inputs_may_appear_later(tmp_path: Path) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text(config_text(tmp_path))
    sidecar = Sidecar(load_config(config), clock=lambda: 1.8e9)
    try:
        first = sidecar.tick()
        assert (first.records, first.transfers, first.findings) == ({}, 0, 0)
        zeek = tmp_path / "zeek"
        zeek.mkdir()
        shutil.copy(SCENARIO / "zeek" / "conn_long.log", zeek)
        second = sidecar.tick()
        assert second.records == {"zeek": 500}
        assert 'egress_sidecar_records_total{input="zeek"} 500\n' in sidecar.metrics.render()
    finally:
        sidecar.close()
