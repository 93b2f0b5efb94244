"""The spool: durable, bounded, one cursor per sink, and whole after kill -9."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from egress.errors import SpoolFull
from egress.sinks.alert import Alert
from egress.sinks.delivery import Delivery
from egress.sinks.file import FileTransport
from egress.sinks.spool import Spool
from tests.sinks.conftest import make_alerts

REPO = Path(__file__).resolve().parents[2]


def test_enqueue_batch_ack_and_purge(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db") as spool:
        assert spool.enqueue(make_alerts(5)) == 5
        spool.register("a", format="json")
        got = spool.batch("a", limit=3)
        assert [s.alert for s in got] == make_alerts(3)
        assert [s.seq for s in got] == [1, 2, 3]
        spool.ack("a", 3)
        assert [s.alert.event_id for s in spool.batch("a", limit=10)] == [
            "finding-000003", "finding-000004"]
        stats = spool.stats()
        size = sum(len(a.payload) for a in make_alerts(5)[3:])
        assert (stats.rows, stats.bytes, stats.pending) == (2, size, {"a": 2})


def test_sinks_drain_independently_by_format(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db") as spool:
        spool.register("fast", format="json")
        spool.register("slow", format="json")
        spool.register("cef", format="cef")
        spool.enqueue(make_alerts(4))
        spool.enqueue(make_alerts(2, format="cef"))
        spool.ack("fast", 4)
        assert spool.stats().rows == 6  # "slow" has not acknowledged: nothing deleted
        assert [s.alert.event_id for s in spool.batch("slow", limit=10)] == [
            f"finding-{i:06d}" for i in range(4)]
        assert [s.seq for s in spool.batch("cef", limit=10)] == [5, 6]
        spool.ack("slow", 2)
        assert spool.stats().rows == 4
        assert spool.stats().pending == {"fast": 0, "slow": 2, "cef": 2}
        with pytest.raises(ValueError, match="sink 'cef' is registered with format 'cef'"):
            spool.register("cef", format="ecs")
        with pytest.raises(KeyError, match="sink 'nobody' is not registered"):
            spool.batch("nobody", limit=1)


def test_full_spool_raises_an_alarm_and_keeps_what_it_has(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "s.db"
    with Spool(path, max_rows=10, max_bytes=1 << 20) as spool:
        spool.enqueue(make_alerts(8))
        with pytest.raises(SpoolFull, match=(
                rf"^{path}: spool full: 8 alerts of \d[\d,]* bytes held \(bound 10 alerts, "
                r"1,048,576 bytes\); 3 new alerts of \d[\d,]* bytes refused$")) as caught:
            spool.enqueue(make_alerts(3, start=8))
        assert (caught.value.rows, caught.value.path) == (8, path)
        assert spool.stats().full_alarms == 1
        assert spool.stats().rows == 8  # all or none: no part of the refused batch
        assert "spool full" in caplog.text
        assert caplog.records[-1].levelno == logging.ERROR
    with Spool(path, max_rows=100, max_bytes=500) as spool:
        with pytest.raises(SpoolFull, match="bound 100 alerts, 500 bytes"):
            spool.enqueue(make_alerts(1, start=20))
        assert spool.stats().full_alarms == 2  # the counter is kept in the file


def test_dead_letters_keep_the_reason(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db") as spool:
        spool.register("a", format="json")
        spool.enqueue(make_alerts(3))
        batch = spool.batch("a", limit=3)
        spool.ack("a", 3, dead=[(batch[1], "HEC 400 code 6: Invalid data format")])
        assert spool.dead_letters() == [
            ("a", "finding-000001", "HEC 400 code 6: Invalid data format")]
        assert spool.stats().dead_letters == 1


def test_limits_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        Spool(tmp_path / "s.db", max_rows=0)


_CHILD = r"""
import sys
from egress.sinks.spool import Spool
from tests.sinks.conftest import make_alerts

spool = Spool(sys.argv[1])
for n in range(10_000):
    spool.enqueue(make_alerts(50, start=n * 50))
    print(n * 50 + 49, flush=True)  # committed up to this alert
"""


def test_kill_9_loses_nothing_committed_and_drains_on_restart(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path) as spool:
        spool.register("file", format="json")
        spool.enqueue(make_alerts(100, start=1_000_000))
        # a sink acknowledged some before the crash: those must not come back
        spool.ack("file", 40)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    committed = -1
    for line in child.stdout:
        committed = int(line)
        if committed >= 2_000:  # mid-way, while it keeps writing
            break
    child.send_signal(signal.SIGKILL)
    rest = child.stdout.read()
    child.wait()
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    committed = max([committed, *(int(x) for x in rest.split())])
    # The file was never closed; SQLite recovers from its WAL on open.
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with Spool(path) as spool:
        ids = spool.event_ids()
        # the 60 not yet acknowledged, then every alert of every committed transaction
        expected = [f"finding-{i:06d}" for i in range(1_000_040, 1_000_100)]
        assert ids[:60] == expected
        enqueued = len(ids) - 60
        assert enqueued % 50 == 0  # transactions are whole
        assert enqueued >= committed + 1
        assert ids[60:] == [f"finding-{i:06d}" for i in range(enqueued)]
        out = tmp_path / "out.log"
        stats = Delivery(spool, "file", FileTransport(out), format="json",
                         batch_size=1000).drain()
        assert stats.delivered == len(ids)
        assert spool.stats().rows == 0
    lines = out.read_bytes().splitlines()
    assert len(lines) == len(ids)
    print(f"kill -9 after {committed + 1} alerts reported committed; {enqueued} found "
          f"after restart ({enqueued - committed - 1} committed but not yet reported), "
          f"plus 60 pending; {stats.delivered} drained")


def test_alert_payload_is_bytes_roundtrip(tmp_path: Path) -> None:
    alert = Alert(event_id="x", payload=b"\x00\xffbinary\n", format="raw", severity="high",
                  time_s=1.5)
    with Spool(tmp_path / "s.db") as spool:
        spool.register("r", format="raw")
        spool.enqueue([alert])
        assert spool.batch("r", limit=1)[0].alert == alert


_PRODUCER = r"""
import sys
from egress.sinks.spool import Spool
from tests.sinks.conftest import make_alerts

with Spool(sys.argv[1]) as spool:
    for n in range(40):
        spool.enqueue(make_alerts(50, start=n * 50))
"""


def test_one_process_enqueues_while_another_drains(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    out = tmp_path / "out.log"
    with Spool(path) as spool:
        delivery = Delivery(spool, "file", FileTransport(out, fsync=False), format="json",
                            batch_size=64)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        producer = subprocess.Popen([sys.executable, "-c", _PRODUCER, str(path)], cwd=REPO,
                                    env=env)
        while producer.poll() is None:
            delivery.drain()
        assert producer.returncode == 0
        delivery.drain()
        stats = spool.stats()
        assert (stats.rows, stats.bytes, stats.pending) == (0, 0, {"file": 0})
    assert out.read_bytes() == b"".join(a.payload for a in make_alerts(2000))
