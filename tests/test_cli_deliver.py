"""``egress deliver`` drains a spool on demand."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from egress.cli_deliver import deliver_command
from egress.sinks.spool import Spool
from tests.sinks.conftest import free_port, make_alerts


def test_drains_to_two_sinks_and_reports(tmp_path: Path) -> None:
    spool_path = tmp_path / "spool.db"
    with Spool(spool_path) as spool:
        spool.enqueue(make_alerts(25))
    out_a, out_b = tmp_path / "a.log", tmp_path / "b.log"
    result = CliRunner().invoke(deliver_command, [
        "--spool", str(spool_path), "--sink", f"file://{out_a}?format=json",
        "--sink", f"file://{out_b}?format=json&fsync=0", "--batch-size", "10"])
    assert result.exit_code == 0, result.output
    expected = b"".join(a.payload for a in make_alerts(25))
    assert out_a.read_bytes() == expected
    assert out_b.read_bytes() == expected
    assert result.stderr.splitlines() == [
        f"egress: file://{out_a}?format=json: 25 delivered, 0 refused (dead letters), "
        "0 retries, 0 left in the spool",
        f"egress: file://{out_b}?format=json&fsync=0: 25 delivered, 0 refused (dead letters), "
        "0 retries, 0 left in the spool",
        f"egress: spool {spool_path}: 0 alerts (0 bytes) held, 0 dead letters, "
        "0 spool-full alarms"]
    again = CliRunner().invoke(deliver_command, [
        "--spool", str(spool_path), "--sink", f"file://{out_a}?format=json"])
    assert again.exit_code == 0
    assert out_a.read_bytes() == expected  # nothing twice


def test_unreachable_sink_keeps_the_alerts(tmp_path: Path) -> None:
    spool_path = tmp_path / "spool.db"
    with Spool(spool_path) as spool:
        spool.enqueue(make_alerts(3, format="cef"))
    url = f"syslog+tcp://127.0.0.1:{free_port()}?format=cef"
    result = CliRunner().invoke(deliver_command, [
        "--spool", str(spool_path), "--sink", url, "--give-up-after", "0.2",
        "--max-delay", "0.05"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"egress: {url}: 0 delivered, 0 refused (dead letters), ")
    assert lines[0].endswith(" retries, 3 left in the spool")
    assert lines[1].startswith(f"egress: error: {url}: gave up after ")
    assert lines[2].startswith(f"egress: spool {spool_path}: 3 alerts (")


def test_secret_in_url_is_a_usage_error(tmp_path: Path) -> None:
    spool_path = tmp_path / "spool.db"
    Spool(spool_path).close()
    result = CliRunner().invoke(deliver_command, [
        "--spool", str(spool_path), "--sink", "hec+https://h:8088/services/collector?token=x"])
    assert result.exit_code == 1  # a ConfigError, mapped to 2 by egress.cli.main
    assert "must not be given in a URL" in str(result.exception)


def test_missing_spool_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(deliver_command, [
        "--spool", str(tmp_path / "none.db"), "--sink", "stdout://"])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
