"""The delivery loop: spool -> transport, acknowledged only after the receiver has it.

One :class:`Delivery` drains one sink's cursor. Batches are read and sent; every
``confirm_every`` batches and at the end of a drain the transport is flushed (a syslog
stream confirms that the receiver read everything) and only then are the batches
acknowledged in the spool, so a crash of egress at any moment, even while the receiver
restarts, leaves every unconfirmed alert in the spool.
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

from egress.errors import EventsRejected, SinkError, SinkRejected, SinkUnavailable
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

    delivered: int = 0  # acknowledged: confirmed by the receiver
    rejected: int = 0
    batches: int = 0
    unconfirmed: int = 0  # sent when the last drain stopped, not acknowledged
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
        confirm_every: int = 20,
        backoff: Backoff = Backoff(),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if batch_size < 1 or confirm_every < 1:
            raise ValueError("batch_size and confirm_every must be positive")
        self.spool = spool
        self.sink = sink
        self.transport = transport
        self.batch_size = batch_size
        self.confirm_every = confirm_every
        self.backoff = backoff
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.stats = DeliveryStats()
        spool.register(sink, format=format)

    def drain(self, *, max_batches: int | None = None) -> DeliveryStats:
        """Deliver until the sink's cursor reaches the end of the spool.

        Stops early after ``max_batches`` batches (all acknowledged). Returns :attr:`stats`, the
        counts of every drain of this object (kept up to date when a drain raises). Raises
        :class:`~egress.errors.SinkUnavailable` when one batch has been retried for longer
        than ``backoff.give_up_s`` (nothing of it acknowledged) and
        :class:`~egress.errors.SinkMisconfigured` at once; every alert not acknowledged
        (including those sent since the last confirmation) stays in the spool.
        """
        stats = self.stats
        done = 0
        sent: list[tuple[list[Spooled], list[tuple[Spooled, str]]]] = []
        try:
            while max_batches is None or done < max_batches:
                after = sent[-1][0][-1].seq if sent else 0
                batch = self.spool.batch(self.sink, limit=self.batch_size, after=after)
                if not batch:
                    break
                sent.append((batch, self._deliver(batch, stats)))
                done += 1
                if len(sent) >= self.confirm_every:
                    self._confirm(sent, stats)
            self._confirm(sent, stats)
        except SinkError:
            # Keep what the receiver can still confirm at once; the rest stays spooled.
            try:
                self._confirm(sent, stats, retry=False)
            except SinkError as exc:
                log.warning("%s: %d sent alerts unconfirmed, kept in the spool: %s",
                            self.sink, sum(len(b) for b, _ in sent), exc)
            raise
        finally:
            stats.unconfirmed = sum(len(b) for b, _ in sent)
        return stats

    def _confirm(self, sent: list[tuple[list[Spooled], list[tuple[Spooled, str]]]],
                 stats: DeliveryStats, *, retry: bool = True) -> None:
        """Flush the transport, then acknowledge the ``sent`` batches (emptying the list)."""
        if not sent:
            return
        if retry:
            self._retry(self.transport.flush, stats, what="the unconfirmed end of the stream")
        else:
            self.transport.flush()
        dead = [d for _, ds in sent for d in ds]
        for spooled, reason in dead:
            log.error("%s refused alert %s: %s", self.sink, spooled.alert.event_id, reason)
        self.spool.ack(self.sink, sent[-1][0][-1].seq, dead=dead)
        sent_alerts = sum(len(b) for b, _ in sent)
        stats.rejected += len(dead)
        stats.delivered += sent_alerts - len(dead)
        stats.batches += len(sent)
        sent.clear()

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

    def _deliver(self, batch: list[Spooled], stats: DeliveryStats) -> list[tuple[Spooled, str]]:
        """Send ``batch`` (retrying); the refused alerts with the receiver's reasons."""
        alerts = [s.alert for s in batch]
        try:
            self._retry(lambda: self.transport.send(alerts), stats,
                        what=f"{len(batch)} alerts")
        except EventsRejected as exc:
            return [(batch[i], reason) for i, reason in sorted(exc.rejected.items())]
        except SinkRejected as exc:
            return [(s, str(exc)) for s in batch]
        return []
