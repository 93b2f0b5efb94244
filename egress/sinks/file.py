"""Append alerts to a file, one per line, rotating by size and keeping ``keep`` old files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from egress.errors import SinkUnavailable
from egress.sinks.alert import Alert


def alert_lines(batch: Sequence[Alert]) -> bytes:
    """The batch's payloads, each ending with exactly one newline."""
    return b"".join(a.payload.rstrip(b"\n") + b"\n" for a in batch)


class FileTransport:
    """Appends to ``path``; before a write would pass ``max_bytes`` the file becomes
    ``path.1`` (``path.1`` becomes ``path.2`` ... up to ``path.<keep>``, the oldest is
    removed). ``fsync`` makes each batch durable before :meth:`send` returns.
    """

    def __init__(self, path: Path | str, *, max_bytes: int | None = None, keep: int = 5,
                 fsync: bool = True) -> None:
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        if keep < 0:
            raise ValueError("keep must not be negative")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self.fsync = fsync
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        return self._fd

    def _rotate(self) -> None:
        self.close()
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
            return
        for n in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    def send(self, batch: Sequence[Alert]) -> None:
        """Append the batch (rotating first when it would not fit)."""
        data = alert_lines(batch)
        try:
            fd = self._open()
            size = os.fstat(fd).st_size
            if self.max_bytes is not None and size > 0 and size + len(data) > self.max_bytes:
                self._rotate()
                fd = self._open()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if self.fsync:
                os.fsync(fd)
        except OSError as exc:
            self.close()
            raise SinkUnavailable(f"{self.path}: {exc.strerror or exc}") from exc

    def flush(self) -> None:
        """Nothing to wait for: :meth:`send` writes (and syncs) before it returns."""

    def close(self) -> None:
        """Close the file (reopened by the next :meth:`send`)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
