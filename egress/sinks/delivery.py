"""The delivery loop: spool -> transport, acknowledged only after the transport has it.

One :class:`Delivery` drains one sink's cursor. A batch is read, sent and acknowledged;
:class:`~egress.errors.SinkUnavailable` is retried with exponential backoff and full jitter
(:class:`Backoff`) without acknowledging anything, so an outage or a crash only delays
alerts (at least once: a batch sent but not acknowledged is sent again). Refused alerts
(:class:`~egress.errors.SinkRejected`, :class:`~egress.errors.EventsRejected`) are counted
and kept with the receiver's reason in the spool's dead-letter table.
:class:`~egress.errors.SinkMisconfigured` stops the sink with its alerts kept.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from egress.errors import EventsRejected, SinkRejected, SinkUnavailable
from egress.sinks.alert import Transport
from egress.sinks.spool import Spool, Spooled

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n)).

    ``give_up_s`` bounds the time spent retrying one batch (``None``: retry for ever).
    """

    base_s: float = 0.1
    cap_s: float = 30.0
    give_up_s: float | None = None

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """The wait before retry ``attempt`` (0 for the first retry), in seconds."""
        return rng.uniform(0.0, min(self.cap_s, self.base_s * 2.0 ** min(attempt, 60)))


@dataclass(slots=True, kw_only=True)
class DeliveryStats:
    """What one :meth:`Delivery.drain` did."""

    delivered: int = 0
    rejected: int = 0
    batches: int = 0
    retries: int = 0
    waited_s: float = 0.0
    last_error: str | None = None
    delays_s: list[float] = field(default_factory=list)


class Delivery:
    """Drains sink ``sink`` of ``spool`` through ``transport``.

    ``clock`` (monotonic seconds), ``sleep`` and ``rng`` are injectable for tests.
    """

    def __init__(
        self,
        spool: Spool,
        sink: str,
        transport: Transport,
        *,
        format: str,
        batch_size: int = 500,
        backoff: Backoff = Backoff(),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.spool = spool
        self.sink = sink
        self.transport = transport
        self.batch_size = batch_size
        self.backoff = backoff
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.stats = DeliveryStats()
        spool.register(sink, format=format)

    def drain(self, *, max_batches: int | None = None) -> DeliveryStats:
        """Deliver until the sink's cursor reaches the end of the spool.

        Stops early after ``max_batches`` acknowledged batches. Returns :attr:`stats`, the
        counts of every drain of this object (kept up to date when a drain raises). Raises
        :class:`~egress.errors.SinkUnavailable` when one batch has been retried for longer
        than ``backoff.give_up_s`` (nothing of it acknowledged) and
        :class:`~egress.errors.SinkMisconfigured` at once; the alerts stay in the spool.
        """
        stats = self.stats
        done = 0
        while max_batches is None or done < max_batches:
            batch = self.spool.batch(self.sink, limit=self.batch_size)
            if not batch:
                break
            self._deliver(batch, stats)
            stats.batches += 1
            done += 1
        self._retry(self.transport.flush, stats, what="the unconfirmed end of the stream")
        return stats

    def _retry(self, action: Callable[[], None], stats: DeliveryStats, *, what: str) -> None:
        """Run ``action`` until it does not raise SinkUnavailable, backing off between."""
        started = self._clock()
        attempt = 0
        while True:
            try:
                action()
                return
            except SinkUnavailable as exc:
                stats.last_error = str(exc)
                waited = self._clock() - started
                give_up = self.backoff.give_up_s
                if give_up is not None and waited >= give_up:
                    raise SinkUnavailable(
                        f"{self.sink}: gave up after {waited:.1f} s and {attempt + 1} "
                        f"attempts to deliver {what}: {exc}") from exc
                delay = self.backoff.delay_s(attempt, self._rng)
                log.warning("%s unavailable (%s); retry %d in %.2f s",
                            self.sink, exc, attempt + 1, delay)
                stats.retries += 1
                stats.waited_s += delay
                stats.delays_s.append(delay)
                self._sleep(delay)
                attempt += 1

    def _deliver(self, batch: list[Spooled], stats: DeliveryStats) -> None:
        alerts = [s.alert for s in batch]
        try:
            self._retry(lambda: self.transport.send(alerts), stats,
                        what=f"{len(batch)} alerts")
        except EventsRejected as exc:
            self._ack(batch, [(batch[i], reason) for i, reason in sorted(exc.rejected.items())],
                      stats)
        except SinkRejected as exc:
            self._ack(batch, [(s, str(exc)) for s in batch], stats)
        else:
            self._ack(batch, [], stats)

    def _ack(self, batch: list[Spooled], dead: list[tuple[Spooled, str]],
             stats: DeliveryStats) -> None:
        for spooled, reason in dead:
            log.error("%s refused alert %s: %s", self.sink, spooled.alert.event_id, reason)
        self.spool.ack(self.sink, batch[-1].seq, dead=dead)
        stats.rejected += len(dead)
        stats.delivered += len(batch) - len(dead)
