"""The one exception tree of egress.

::

    EgressError
    ├── ConfigError          bad options or configuration (exit code 2)
    ├── SignatureError       a signature file is invalid (carries file and line)
    ├── SourceError          an input cannot be read at all (carries file and byte offset)
    └── SinkError            delivery failed
        ├── SinkUnavailable  transient: retry later
        ├── SinkRejected     permanent: the receiver refused the record
        │   └── EventsRejected  some events of a batch refused, the others delivered
        ├── SinkMisconfigured  the receiver refuses us (bad token, 403): nothing is dropped
        └── SpoolFull        the local spool is at its bound: an alarm, never a silent drop

Bad records inside a readable input are not exceptions: sources count them as
issues (see :class:`egress.records.Issue`) and carry on.
"""

from __future__ import annotations

from pathlib import Path


class EgressError(Exception):
    """Base of every error egress raises on purpose."""

    exit_code = 1


class ConfigError(EgressError):
    """Options or configuration are invalid."""

    exit_code = 2


class SignatureError(EgressError):
    """A signature file is invalid; ``path`` and ``line`` locate the fault."""

    exit_code = 2

    def __init__(self, message: str, *, path: Path | None = None, line: int | None = None):
        location = ""
        if path is not None:
            location = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(location + message)
        self.path = path
        self.line = line


class SourceError(EgressError):
    """An input cannot be read; ``path`` and ``offset`` (bytes) locate the fault."""

    exit_code = 1

    def __init__(self, message: str, *, path: Path | str, offset: int | None = None):
        where = f"{path}" if offset is None else f"{path} at byte {offset}"
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.offset = offset


class SinkError(EgressError):
    """Delivery to a sink failed."""


class SinkUnavailable(SinkError):
    """The sink cannot take records now; delivery should be retried."""


class SinkRejected(SinkError):
    """The sink refused a record permanently; it is counted and not retried."""


class EventsRejected(SinkRejected):
    """Some events of a batch were refused, every other one was delivered.

    ``rejected`` maps positions in the batch to the receiver's reason.
    """

    def __init__(self, message: str, *, rejected: dict[int, str]):
        super().__init__(message)
        self.rejected = dict(rejected)


class SinkMisconfigured(SinkError):
    """The sink refuses everything we send (bad token, forbidden index): fix the configuration.

    Nothing is dropped: the alerts stay in the spool and delivery to that sink stops.
    """

    exit_code = 2


class SpoolFull(SinkError):
    """The spool at ``path`` holds ``rows`` alerts of ``bytes_`` bytes and cannot take more."""

    def __init__(self, message: str, *, path: Path | str, rows: int, bytes_: int):
        super().__init__(f"{path}: {message}")
        self.path = Path(path)
        self.rows = rows
        self.bytes_ = bytes_
