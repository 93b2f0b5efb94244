"""A formatted alert on its way to a sink, and what a transport must do with a batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

#: Egress severities, least severe first (as :data:`egress.findings.SEVERITY_ORDER`).
SEVERITIES = ("informational", "low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One formatted alert: ``payload`` is the text a SIEM ingests, in format ``format``.

    ``event_id`` is the finding's stable id (SIEMs dedupe on it); ``time_s`` is when the
    alert was raised, in seconds since the Unix epoch.
    """

    event_id: str
    payload: bytes
    format: str
    severity: str = "medium"
    time_s: float


class Transport(Protocol):
    """Moves batches of alerts to one receiver.

    ``send`` returns once the receiver has the whole batch (as far as its protocol can
    tell) or raises :class:`~egress.errors.SinkUnavailable` (nothing may be assumed
    delivered: retry), :class:`~egress.errors.EventsRejected` (the listed positions
    were refused, the rest delivered), :class:`~egress.errors.SinkRejected` (the whole
    batch was refused) or :class:`~egress.errors.SinkMisconfigured`. ``flush`` waits
    for what ``send`` could only hand to a buffer (a syslog stream) to be confirmed.
    """

    def send(self, batch: Sequence[Alert]) -> None: ...

    def flush(self) -> None:
        """Return once everything sent is with the receiver, or raise SinkUnavailable."""

    def close(self) -> None: ...
