"""The delivery loop: acknowledgement, backoff with full jitter, dead letters, give-up."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from egress.errors import (
    EventsRejected,
    SinkError,
    SinkMisconfigured,
    SinkRejected,
    SinkUnavailable,
)
from egress.sinks.alert import Alert
from egress.sinks.delivery import Backoff, Delivery
from egress.sinks.spool import Spool
from tests.sinks.conftest import make_alerts


class Receiver:
    """A receiver that answers each send with the next scripted error (None: accepted)."""

    def __init__(self, script: list[SinkError | None],
                 flush_script: list[SinkError | None] | None = None) -> None:
        self.script = script
        self.flush_script = flush_script or []
        self.accepted: list[str] = []
        self.flushes = 0

    def send(self, batch: Sequence[Alert]) -> None:
        outcome = self.script.pop(0) if self.script else None
        if isinstance(outcome, EventsRejected):
            self.accepted += [a.event_id for i, a in enumerate(batch)
                              if i not in outcome.rejected]
        if outcome is not None:
            raise outcome
        self.accepted += [a.event_id for a in batch]

    def flush(self) -> None:
        self.flushes += 1
        outcome = self.flush_script.pop(0) if self.flush_script else None
        if outcome is not None:
            raise outcome

    def close(self) -> None:
        pass


class Clock:
    """Injected time: ``sleep`` advances ``now``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _ids(n: int, start: int = 0) -> list[str]:
    return [f"finding-{i:06d}" for i in range(start, start + n)]


def test_backoff_is_full_jitter_and_capped() -> None:
    backoff = Backoff(base_s=0.5, cap_s=4.0)
    rng = random.Random(7)
    expected_rng = random.Random(7)
    delays = [backoff.delay_s(n, rng) for n in range(8)]
    bounds = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert delays == [expected_rng.uniform(0.0, b) for b in bounds]
    assert backoff.delay_s(10_000, random.Random(1)) <= 4.0


def test_unavailable_is_retried_and_nothing_acked_meanwhile(tmp_path: Path) -> None:
    clock = Clock()
    receiver = Receiver([SinkUnavailable("down"), SinkUnavailable("down"), None])
    with Spool(tmp_path / "s.db") as spool:
        spool.enqueue(make_alerts(5))
        delivery = Delivery(spool, "r", receiver, format="json", batch_size=5,
                            backoff=Backoff(base_s=1.0, cap_s=10.0), clock=clock,
                            sleep=clock.sleep, rng=random.Random(3))
        stats = delivery.drain()
        assert spool.stats().rows == 0
    rng = random.Random(3)
    assert clock.sleeps == [rng.uniform(0, 1.0), rng.uniform(0, 2.0)]
    assert (stats.delivered, stats.rejected, stats.retries, stats.batches) == (5, 0, 2, 1)
    assert receiver.accepted == _ids(5)
    assert receiver.flushes == 1


def test_gives_up_with_alerts_kept(tmp_path: Path) -> None:
    clock = Clock()
    receiver = Receiver([SinkUnavailable("connection refused")] * 100)
    with Spool(tmp_path / "s.db") as spool:
        spool.enqueue(make_alerts(3))
        delivery = Delivery(spool, "r", receiver, format="json",
                            backoff=Backoff(base_s=1.0, cap_s=2.0, give_up_s=5.0),
                            clock=clock, sleep=clock.sleep, rng=random.Random(0))
        with pytest.raises(SinkUnavailable, match=r"^r: gave up after \d+\.\d s and \d+ "
                           r"attempts to deliver 3 alerts: connection refused$"):
            delivery.drain()
        assert spool.stats().pending == {"r": 3}
    assert clock.now >= 5.0
    assert all(d <= 2.0 for d in clock.sleeps)


def test_refused_events_go_to_dead_letters(tmp_path: Path) -> None:
    receiver = Receiver([EventsRejected("1 refused", rejected={2: "HEC 400 code 6: bad"}),
                         SinkRejected("message too large")])
    with Spool(tmp_path / "s.db") as spool:
        spool.enqueue(make_alerts(8))
        stats = Delivery(spool, "r", receiver, format="json", batch_size=4).drain()
        assert spool.dead_letters() == [
            ("r", "finding-000002", "HEC 400 code 6: bad"),
            *(("r", i, "message too large") for i in _ids(4, start=4))]
        assert spool.stats().rows == 0
    assert (stats.delivered, stats.rejected) == (3, 5)
    assert receiver.accepted == ["finding-000000", "finding-000001", "finding-000003"]


def test_misconfigured_stops_with_everything_kept(tmp_path: Path) -> None:
    receiver = Receiver([None, SinkMisconfigured("HEC 403 code 4: Invalid token")])
    with Spool(tmp_path / "s.db") as spool:
        spool.enqueue(make_alerts(6))
        delivery = Delivery(spool, "r", receiver, format="json", batch_size=2)
        with pytest.raises(SinkMisconfigured, match="Invalid token"):
            delivery.drain()
        assert delivery.stats.delivered == 2
        assert spool.stats().pending == {"r": 4}
        assert spool.dead_letters() == []


def test_max_batches_and_batch_size_checked(tmp_path: Path) -> None:
    receiver = Receiver([])
    with Spool(tmp_path / "s.db") as spool:
        spool.enqueue(make_alerts(10))
        delivery = Delivery(spool, "r", receiver, format="json", batch_size=3)
        assert delivery.drain(max_batches=2).delivered == 6
        assert delivery.drain().delivered == 10  # counts of every drain
        with pytest.raises(ValueError, match="batch_size and confirm_every must be positive"):
            Delivery(spool, "q", receiver, format="json", batch_size=0)
    assert receiver.accepted == _ids(10)


def test_acknowledged_only_once_the_receiver_confirms(tmp_path: Path) -> None:
    clock = Clock()
    never = [SinkUnavailable("reset before the end of the stream")] * 1000
    receiver = Receiver([], flush_script=[None, *never])
    with Spool(tmp_path / "s.db") as spool:
        spool.enqueue(make_alerts(10))
        delivery = Delivery(spool, "r", receiver, format="json", batch_size=2, confirm_every=3,
                            backoff=Backoff(base_s=1.0, cap_s=1.0, give_up_s=3.0),
                            clock=clock, sleep=clock.sleep, rng=random.Random(0))
        with pytest.raises(SinkUnavailable, match="the unconfirmed end of the stream"):
            delivery.drain()
        # three batches confirmed by the first flush; the other four alerts were sent
        # but never confirmed: they stay in the spool (a crash now would lose nothing)
        assert (delivery.stats.delivered, delivery.stats.unconfirmed) == (6, 4)
        assert spool.stats().pending == {"r": 4}
    assert receiver.accepted == _ids(10)
