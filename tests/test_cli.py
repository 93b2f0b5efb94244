"""The command line: output formats, the closing line, exit codes."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from egress.cli import Progress, cli, summary_line
from egress.errors import SourceError
from egress.records import Issue, ReadStats
from tests.conftest import REPO
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


class _Stream(io.StringIO):
    def __init__(self, *, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_progress_lines_name_the_file_share_and_rate() -> None:
    stream = _Stream(tty=False)
    progress = Progress(stream, interval_s=0.0)
    progress(Path("/data/big.pcap"), 500_000_000, 1_000_000_000)
    progress.finish()
    (line,) = stream.getvalue().splitlines()
    assert line.startswith("big.pcap: 500.0 MB (50%) read, ")
    assert line.endswith("/s")


def test_progress_on_a_terminal_rewrites_one_line() -> None:
    stream = _Stream(tty=True)
    progress = Progress(stream, interval_s=0.0)
    progress(Path("a.pcap"), 1000, None)
    progress(Path("a.pcap"), 2000, None)
    progress.finish()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "a.pcap: 2.0 KB read" in text


def test_progress_is_quiet_for_short_runs() -> None:
    stream = _Stream(tty=False)
    progress = Progress(stream, interval_s=3600.0)
    progress(Path("a.pcap"), 1000, 2000)
    progress.finish()
    assert stream.getvalue() == ""


def test_summary_line_reports_skips_with_their_first_offset() -> None:
    stats = ReadStats(
        packets=1234, ip_bytes=2_500_000_000, flows=7, interim_records=2,
        issues=(Issue(path="x.pcap", kind="truncated_packet", count=3, first_offset=4096),),
    )
    assert summary_line(stats, elapsed_s=1.25) == (
        "egress: 1,234 packets, 7 flows, 2.5 GB at the IP layer, 2 interim records in 1.2 s\n"
        "egress: skipped or not counted: truncated_packet 3 in x.pcap (first at byte 4096)"
    )


def test_inspect_reports_the_largest_flows_with_tshark(tmp_path: Path) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (apt install tshark)")
    result = CliRunner().invoke(cli, ["inspect", str(REPO / "pcaps" / "datacenter-upload.pcap.gz"),
                                      "--top", "1"])
    assert result.exit_code == 0, result.output
    assert "203.0.113.50:51514 -> 10.42.7.15:443" in result.stdout


def test_read_shows_records_of_every_kind_and_the_report(tmp_path: Path) -> None:
    inputs = [REPO / "pcaps" / "vxlan.pcap", REPO / "tests/data/drives/kern.log-station-1",
              REPO / "tests/data/copylogs/rsync-n-l.log",
              REPO / "tests/data/objectstore/s3_aws_docs_example.log"]
    result = CliRunner().invoke(cli, ["read", *map(str, inputs)])
    assert result.exit_code == 0, result.output
    kinds = [json.loads(line)["record"] for line in result.stdout.splitlines()]
    assert sorted(set(kinds)) == ["CopyRecord", "DriveAttach", "Flow", "ObjectStoreRequest"]
    assert f"egress: {inputs[1]}: drives (kern.log)" in result.stderr
    assert f"egress: capture: {kinds.count('Flow')} records" in result.stderr

    out = tmp_path / "read.parquet"
    result = CliRunner().invoke(cli, ["read", *map(str, inputs[:2]), "--format", "parquet",
                                      "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    flows = pq.read_table(tmp_path / "read.Flow.parquet").to_pylist()
    drives = pq.read_table(tmp_path / "read.DriveAttach.parquet").to_pylist()
    assert len(flows) == kinds.count("Flow")
    assert len(drives) == kinds.count("DriveAttach")


def test_read_rejects_an_unknown_file_with_its_name(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    result = CliRunner().invoke(cli, ["read", str(notes)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SourceError)
    assert str(result.exception).startswith(f"{notes}: not a recognized input")
