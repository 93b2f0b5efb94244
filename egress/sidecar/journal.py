"""Kernel messages from ``journalctl -f -k -o json``, kept in a file the drive reader reads.

The command's JSON lines are appended, at each tick, to ``journal.jsonl`` in the input's
folder of the state directory (fsynced), and that file is read as a ``drives`` input (the
drive reader correlates a drive's lines, so the file is read again in whole when it
grows, as a kern.log). The checkpoint holds the file's mark (its size); the journal
cursor is the ``__CURSOR`` of the file's last line. At start the file is cut back to the
committed size (lines appended by a tick that did not commit are dropped) and the
command is run with ``--after-cursor=`` that line's cursor, so the journal gives again
exactly what was dropped: no line lost, none doubled. When the command ends it is started
again after ``restart_after_s``, from the cursor of the last line kept.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from egress.sidecar.command import Command
from egress.sidecar.config import JournalConfig
from egress.sidecar.state import sync_directory

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 16 * 1024 * 1024
FILE_NAME = "journal.jsonl"


def cursor_of(line: bytes) -> str | None:
    """The ``__CURSOR`` of a journal JSON line, ``None`` when it has none."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    cursor = entry.get("__CURSOR") if isinstance(entry, dict) else None
    return cursor if isinstance(cursor, str) and cursor else None


def journal_argv(command: tuple[str, ...], cursor: str | None) -> list[str]:
    """``command``, with ``--after-cursor=CURSOR`` when there is a cursor."""
    return [*command, f"--after-cursor={cursor}"] if cursor else list(command)


class JournalInput:
    """One ``journal`` input (module doc): the command, its lines and their file."""

    def __init__(self, spec: JournalConfig, folder: Path) -> None:
        self.spec = spec
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / FILE_NAME
        self._lock = threading.Lock()
        self._lines: list[bytes] = []
        self._partial = b""
        self.cursor: str | None = None
        self.oversized = 0
        self._start_now = True
        self.command = Command(spec.name, on_data=self._take, on_end=self._end)

    def reset(self, committed_bytes: int) -> None:
        """Stop the command, drop the lines not committed, and start again at the next
        :meth:`pump` from the cursor of the last line kept."""
        self.command.stop()
        with self._lock:
            self._lines, self._partial = [], b""
        self._recover(committed_bytes)
        self._start_now = True

    def _recover(self, committed_bytes: int) -> None:
        """Cut the file back to ``committed_bytes`` and take the cursor of its last line."""
        if not self.path.exists():
            self.path.touch()
            sync_directory(self.path.parent)
        with self.path.open("r+b") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < committed_bytes:  # never extend it with zeros; read it again as it is
                log.warning("%s: %s is shorter than committed (%d < %d bytes)",
                            self.spec.name, self.path, size, committed_bytes)
                committed_bytes = size
            if size != committed_bytes:
                log.info("%s: dropping the journal lines after byte %d (not committed)",
                         self.spec.name, committed_bytes)
                fh.truncate(committed_bytes)
                os.fsync(fh.fileno())
            self.cursor = None
            if committed_bytes:
                fh.seek(max(0, committed_bytes - MAX_LINE_BYTES))
                tail = fh.read(committed_bytes)
                for line in reversed(tail.splitlines()):
                    self.cursor = cursor_of(line)
                    if self.cursor is not None:
                        break

    def _take(self, data: bytes) -> None:
        with self._lock:
            data = self._partial + data
            end = data.rfind(b"\n") + 1
            self._lines += [line + b"\n" for line in data[:end].split(b"\n")[:-1]
                            if line.strip()]
            self._partial = data[end:]
            if len(self._partial) > MAX_LINE_BYTES:
                self.oversized += 1
                self._partial = b""

    def _end(self, status: int | None) -> None:
        with self._lock:
            if self._partial.strip():  # a last line without its newline: keep it
                self._lines.append(self._partial + b"\n")
            self._partial = b""

    def pump(self) -> int:
        """Append the lines received since the last call to the file (fsynced), start or
        restart the command when due; return the number of lines appended."""
        # Asked first: a command that ended has handed on every line before it is due.
        restart = not self.command.running and not self.command.retired and (
            self._start_now or self.command.due(self.spec.restart_after_s))
        with self._lock:
            lines, self._lines = self._lines, []
        if lines:
            with self.path.open("ab") as fh:
                fh.write(b"".join(lines))
                fh.flush()
                os.fsync(fh.fileno())
            for line in reversed(lines):
                cursor = cursor_of(line)
                if cursor is not None:
                    self.cursor = cursor
                    break
        if restart:
            self._start_now = False
            self.command.start(journal_argv(self.spec.command, self.cursor))
        return len(lines)

    def files(self) -> list[Path]:
        """The file to read (none while it is empty)."""
        try:
            return [self.path] if self.path.stat().st_size else []
        except FileNotFoundError:
            return []

    def close(self) -> None:
        """Stop the command."""
        self.command.stop()
