"""File and standard-output transports."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from egress.errors import SinkUnavailable
from egress.sinks.alert import Alert
from egress.sinks.file import FileTransport
from egress.sinks.stdout import StdoutTransport
from tests.sinks.conftest import make_alerts


def _alert(i: int, size: int = 10) -> Alert:
    return Alert(event_id=str(i), payload=str(i).encode() * size, format="raw", time_s=0.0)


def test_appends_one_line_per_alert(tmp_path: Path) -> None:
    path = tmp_path / "alerts.log"
    path.write_bytes(b"before\n")
    transport = FileTransport(path)
    alerts = make_alerts(3)
    transport.send(alerts[:2])
    transport.send(alerts[2:])
    transport.close()
    assert path.read_bytes() == b"before\n" + b"".join(a.payload for a in alerts)


def test_rotates_by_size_keeping_n_files(tmp_path: Path) -> None:
    path = tmp_path / "alerts.log"
    transport = FileTransport(path, max_bytes=25, keep=2)
    for i in range(5):  # 11 bytes a line: two lines a file
        transport.send([_alert(i)])
    transport.close()
    assert path.read_bytes() == b"4444444444\n"
    assert (tmp_path / "alerts.log.1").read_bytes() == b"2222222222\n3333333333\n"
    assert (tmp_path / "alerts.log.2").read_bytes() == b"0000000000\n1111111111\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "alerts.log", "alerts.log.1", "alerts.log.2"]


def test_keep_zero_removes_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    transport = FileTransport(path, max_bytes=15, keep=0, fsync=False)
    transport.send([_alert(1)])
    transport.send([_alert(2)])
    transport.close()
    assert [p.name for p in tmp_path.iterdir()] == ["a.log"]
    assert path.read_bytes() == b"2222222222\n"


def test_unwritable_is_unavailable(tmp_path: Path) -> None:
    transport = FileTransport(tmp_path / "missing" / "a.log")
    with pytest.raises(SinkUnavailable, match=r"missing/a.log: No such file or directory"):
        transport.send([_alert(1)])


def test_stdout_writes_lines() -> None:
    stream = io.BytesIO()
    StdoutTransport(stream).send([_alert(1, 2), _alert(2, 3)])
    assert stream.getvalue() == b"11\n222\n"
