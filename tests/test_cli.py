"""The command line: output formats, the closing line, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from egress.cli import cli
from tests.sources.test_pcap import handshake_transfer_close, write


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    return write(tmp_path, "upload.pcap", handshake_transfer_close(0, 40000, 5000))


def test_flows_writes_a_zeek_conn_log_to_stdout(capture: Path) -> None:
    result = CliRunner().invoke(cli, ["flows", str(capture)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "#separator \\x09"
    rows = [line.split("\t") for line in lines if not line.startswith("#")]
    assert len(rows) == 1
    assert rows[0][2:7] == ["10.42.7.15", "40000", "203.0.113.50", "443", "tcp"]
    assert rows[0][16:20] == ["9", "5360", "2", "80"]
    assert lines[-1].startswith("#close\t")
    assert "egress: 11 packets, 1 flows, 5.4 KB at the IP layer" in result.stderr


def test_json_and_parquet_outputs(capture: Path, tmp_path: Path) -> None:
    out = tmp_path / "flows.json"
    result = CliRunner().invoke(cli, ["flows", str(capture), "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (record["orig_ip_bytes"], record["resp_ip_bytes"]) == (5360, 80)

    parquet = tmp_path / "flows.parquet"
    result = CliRunner().invoke(cli, ["flows", str(capture), "--format", "parquet", "--out",
                                      str(parquet), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    rows = pq.read_table(parquet).to_pylist()
    assert [(r["id_orig_p"], r["orig_ip_bytes"], r["conn_state"]) for r in rows] == [
        (40000, 5360, "SF")]


def test_parquet_needs_an_output_file(capture: Path) -> None:
    result = CliRunner().invoke(cli, ["flows", str(capture), "--format", "parquet"])
    assert result.exit_code == 2
    assert "--format parquet needs --out FILE" in result.output


def test_unreadable_capture_exits_1_and_keeps_other_files(capture: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    result = CliRunner().invoke(cli, ["flows", str(bad), str(capture)])
    assert result.exit_code == 1
    assert f"egress: error: {bad} at byte 0: not a pcap or pcapng file (bad magic number)" in (
        result.stderr)
    assert sum(1 for line in result.stdout.splitlines() if not line.startswith("#")) == 1


def test_console_script_has_help_and_no_traceback(tmp_path: Path) -> None:
    egress = Path(sys.executable).parent / "egress"
    if not egress.exists():
        pytest.skip("console script not installed in this environment")
    done = subprocess.run([str(egress), "flows", "--help"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0
    assert "Turn CAPTURES (pcap, pcapng, gzip) into Zeek-compatible flows." in done.stdout
    empty = tmp_path / "empty.pcap"
    empty.touch()
    done = subprocess.run([str(egress), "flows", str(empty)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"egress: error: {empty} at byte 0: empty file" in done.stderr
    done = subprocess.run([str(egress), "flows", str(tmp_path / "missing.pcap")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "does not exist" in done.stderr
