"""The journal input: a command printing journal JSON, its file, cursor and restarts."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from egress.errors import ConfigError
from egress.records import DriveAttach, Provenance
from egress.sidecar.config import JOURNAL_COMMAND, load_config
from egress.sidecar.journal import cursor_of, journal_argv
from egress.sidecar.service import Sidecar, TickReport
from egress.sources.drives import DriveLogReader
from tests.sidecar.replay import SCENARIO

HERE = Path(__file__).resolve().parent
FIXTURE = HERE.parents[0] / "data" / "drives" / "journal-k-station-3.json"
FAKE = HERE / "fake_journalctl.py"
LINES = FIXTURE.read_bytes().splitlines(keepends=True)  # 18 entries: one drive (sdb)


def cursor_at(n: int) -> str:
    """The cursor of line ``n`` (1-based) of the fixture."""
    return str(json.loads(LINES[n - 1])["__CURSOR"])


def config_text(root: Path, *, follow: bool = True, restart: str = "10",
                entry: str | None = None) -> str:
    """A config with one input: the journal through the fake, or ``entry``."""
    command = [sys.executable, str(FAKE), *(["-f"] if follow else []), "-k", "-o", "json"]
    entry = entry or (f"{{name: kernel, kind: journal, command: {json.dumps(command)}, "
                      f"restart_after_s: {restart}}}")
    return "\n".join([
        f"inventory: {SCENARIO / 'inventory.yaml'}",
        "inputs:",
        f"  - {entry}",
        f"sinks: ['file://{root / 'alerts.log'}?format=ecs']",
        f"state_directory: {root / 'state'}",
        "listen: null",
    ]) + "\n"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The fake journal (first 8 entries) and the log of the fake's argument lists."""
    journal, argv = tmp_path / "journal.json", tmp_path / "argv.jsonl"
    journal.write_bytes(b"".join(LINES[:8]))
    argv.touch()
    monkeypatch.setenv("FAKE_JOURNAL", str(journal))
    monkeypatch.setenv("FAKE_JOURNAL_ARGV", str(argv))
    return journal, argv


def runs(argv: Path) -> list[list[str]]:
    return [json.loads(line) for line in argv.read_text().splitlines()]


def stored(root: Path) -> bytes:
    return (root / "state" / "inputs" / "kernel" / "journal.jsonl").read_bytes()


def tick_until(sidecar: Sidecar, done: Callable[[], bool], timeout_s: float = 20.0) -> TickReport:
    deadline = time.monotonic() + timeout_s
    report = sidecar.tick()
    while not done():
        assert time.monotonic() < deadline, "the command's lines did not arrive"
        time.sleep(0.05)
        report = sidecar.tick()
    return report


def test_argv_and_cursor() -> None:
    assert journal_argv(JOURNAL_COMMAND, None) == [
        "journalctl", "-f", "-k", "-o", "json", "--no-pager"]
    assert journal_argv(JOURNAL_COMMAND, "s=ab;i=1b") == [
        "journalctl", "-f", "-k", "-o", "json", "--no-pager", "--after-cursor=s=ab;i=1b"]
    assert cursor_of(LINES[0]) == (
        "s=5e1f2d3c4b5a69788796a5b4c3d2e1f0;i=1a2b01;b=8f4c1e2a9b7d4c3e8a1f2b3c4d5e6f70;"
        "m=12a077d50;t=6613b12690550;x=0")
    assert cursor_of(b'{"MESSAGE": "x"}\n') is None
    assert cursor_of(b"not json\n") is None


def test_lines_records_and_alert_equal_a_file(tmp_path: Path, fake: tuple[Path, Path]) -> None:
    journal, argv = fake
    (tmp_path / "sidecar.yaml").write_text(config_text(tmp_path))
    sidecar = Sidecar(load_config(tmp_path / "sidecar.yaml"), clock=lambda: 1.8e9)
    try:
        tick_until(sidecar, lambda: stored(tmp_path).count(b"\n") == 8)
        with journal.open("ab") as fh:  # the journal grows while journalctl -f runs
            fh.write(b"".join(LINES[8:]))
        report = tick_until(sidecar, lambda: stored(tmp_path).count(b"\n") == len(LINES))
    finally:
        sidecar.close()
    assert runs(argv) == [["-f", "-k", "-o", "json"]]  # one run, no cursor yet
    assert stored(tmp_path) == FIXTURE.read_bytes()  # every line once, unchanged
    path = tmp_path / "state" / "inputs" / "kernel" / "journal.jsonl"

    def plain(records: list[DriveAttach]) -> list[DriveAttach]:
        return [dataclasses.replace(r, provenance=Provenance(path="", line=r.provenance.line))
                for r in records]

    assert plain(list(DriveLogReader().read([path]))) == \
        plain(list(DriveLogReader().read([FIXTURE])))
    assert report.findings == 1
    alerts = [json.loads(line) for line in (tmp_path / "alerts.log").read_text().splitlines()]
    assert [a["rule"]["id"] for a in alerts] == ["unlisted-drive"]
    # The same alert (same id) as the journal file read as a drives input.
    other = tmp_path / "other"
    other.mkdir()
    (other / "sidecar.yaml").write_text(
        config_text(other, entry=f"{{name: kernel, kind: drives, path: {FIXTURE}}}"))
    batch = Sidecar(load_config(other / "sidecar.yaml"), clock=lambda: 1.8e9)
    try:
        batch.tick()
    finally:
        batch.close()
    other_alerts = [json.loads(line)
                    for line in (other / "alerts.log").read_text().splitlines()]
    assert [a["event"]["id"] for a in other_alerts] == [a["event"]["id"] for a in alerts]


def test_restart_from_cursor(tmp_path: Path, fake: tuple[Path, Path]) -> None:
    journal, argv = fake
    (tmp_path / "sidecar.yaml").write_text(config_text(tmp_path))
    config = load_config(tmp_path / "sidecar.yaml")
    sidecar = Sidecar(config, clock=lambda: 1.8e9)
    try:
        tick_until(sidecar, lambda: stored(tmp_path).count(b"\n") == 8)
    finally:
        sidecar.close()  # stops the command
    with journal.open("ab") as fh:  # written while the sidecar was down
        fh.write(b"".join(LINES[8:13]))
    again = Sidecar(config, clock=lambda: 1.8e9)
    try:
        tick_until(again, lambda: stored(tmp_path).count(b"\n") == 13)
    finally:
        again.close()
    assert runs(argv) == [["-f", "-k", "-o", "json"],
                          ["-f", "-k", "-o", "json", f"--after-cursor={cursor_at(8)}"]]
    assert stored(tmp_path) == b"".join(LINES[:13])


def test_lines_of_a_tick_that_did_not_commit_are_fetched_again(
        tmp_path: Path, fake: tuple[Path, Path]) -> None:
    journal, argv = fake
    (tmp_path / "sidecar.yaml").write_text(config_text(tmp_path))
    config = load_config(tmp_path / "sidecar.yaml")
    sidecar = Sidecar(config, clock=lambda: 1.8e9)
    try:
        tick_until(sidecar, lambda: stored(tmp_path).count(b"\n") == 8)
    finally:
        sidecar.close()
    # As if a tick appended lines 9-11 and the process died before its checkpoint.
    path = tmp_path / "state" / "inputs" / "kernel" / "journal.jsonl"
    with path.open("ab") as fh:
        fh.write(b"".join(LINES[8:11]) + LINES[11][:40])
    with journal.open("ab") as fh:
        fh.write(b"".join(LINES[8:]))
    again = Sidecar(config, clock=lambda: 1.8e9)
    try:
        report = tick_until(again, lambda: stored(tmp_path).count(b"\n") == len(LINES))
    finally:
        again.close()
    assert runs(argv)[1] == ["-f", "-k", "-o", "json", f"--after-cursor={cursor_at(8)}"]
    assert stored(tmp_path) == FIXTURE.read_bytes()
    assert report.findings == 1


def test_a_command_that_ends_is_run_again_from_its_cursor(
        tmp_path: Path, fake: tuple[Path, Path]) -> None:
    journal, argv = fake
    (tmp_path / "sidecar.yaml").write_text(config_text(tmp_path, follow=False, restart="0.05"))
    sidecar = Sidecar(load_config(tmp_path / "sidecar.yaml"), clock=lambda: 1.8e9)
    try:
        tick_until(sidecar, lambda: stored(tmp_path).count(b"\n") == 8)
        with journal.open("ab") as fh:
            fh.write(b"".join(LINES[8:]))
        tick_until(sidecar, lambda: stored(tmp_path).count(b"\n") == len(LINES))
    finally:
        sidecar.close()
    first, second = runs(argv)[:2]
    assert first == ["-k", "-o", "json"]
    assert second == ["-k", "-o", "json", f"--after-cursor={cursor_at(8)}"]
    assert stored(tmp_path) == FIXTURE.read_bytes()


def test_a_command_that_cannot_run_is_logged(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "sidecar.yaml").write_text(config_text(tmp_path).replace(
        json.dumps(sys.executable), json.dumps(str(tmp_path / "no-such-journalctl"))))
    sidecar = Sidecar(load_config(tmp_path / "sidecar.yaml"), clock=lambda: 1.8e9)
    try:
        assert sidecar.tick().records == {}
    finally:
        sidecar.close()
    assert "kernel: cannot run " in caplog.text


@pytest.mark.parametrize(("entry", "message"), [
    ("{name: k, kind: journal, command: []}",
     r"inputs\[0\]\.command: Tuple should have at least 1 item"),
    ("{name: k, kind: journal, path: /var/log/kern.log}", r"inputs\[0\]\.path: unknown key"),
    ("{name: k, kind: journal, command: journalctl -f}",
     r"inputs\[0\]\.command: expected a list of arguments .*without a shell\)$"),
    ("{name: k, kind: journal, restart_after_s: 0}",
     r"inputs\[0\]\.restart_after_s: Input should be greater than 0"),
])
def test_config_errors(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "sidecar.yaml"
    path.write_text(f"inventory: i.yaml\ninputs:\n  - {entry}\nstate_directory: s\n")
    with pytest.raises(ConfigError, match=r"sidecar\.yaml:3: " + message):
        load_config(path)
