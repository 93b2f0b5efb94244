"""Write alerts to standard output (or any binary stream), one per line."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import BinaryIO

from egress.errors import SinkUnavailable
from egress.sinks.alert import Alert
from egress.sinks.file import alert_lines


class StdoutTransport:
    """Writes each batch to ``stream`` (default: standard output) and flushes it."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream

    def send(self, batch: Sequence[Alert]) -> None:
        """Write and flush the batch."""
        stream = self._stream if self._stream is not None else sys.stdout.buffer
        try:
            stream.write(alert_lines(batch))
            stream.flush()
        except OSError as exc:
            raise SinkUnavailable(f"standard output: {exc}") from exc

    def flush(self) -> None:
        """Nothing to wait for: :meth:`send` flushes the stream."""

    def close(self) -> None:
        """Nothing to release: the stream belongs to the caller."""
