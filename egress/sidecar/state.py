"""The sidecar's state directory: transfer segments, the checkpoint, the alerted ids.

::

    <state>/checkpoint.pickle   Checkpoint: file marks, segments, reader state, tick
    <state>/segments/*.arrow    attributed transfers (TRANSFERS_SCHEMA, Arrow IPC), never changed
    <state>/alerted.json        finding ids already spooled, and those being spooled
    <state>/scratch/            temporary files of one tick

Every file is written atomically (temporary file, fsync, rename, fsync of the directory).
A tick writes its new segments first, then the checkpoint that names them with the file
marks after the data they hold: until the checkpoint is renamed into place the old one
stands, its marks re-read the same data, and segments it does not name are removed on
the next start. So the transfers and the marks always agree (no record lost or counted
twice after ``kill -9``). The checkpoint is a pickle: state of this program for this
program (the Zeek reader's long-connection state travels in it), not an exchange format.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pickle
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import feather

from egress.errors import ConfigError
from egress.records import DriveAttach
from egress.sidecar.follow import FileMark
from egress.transfers import TRANSFERS_SCHEMA

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """One stored table of transfers; ``owner`` is ``input/identity/generation`` for a
    whole-file input's file (replaced when the file is read again), empty for appended
    chunks."""

    name: str
    owner: str
    rows: int
    newest_end_us: int | None


@dataclass(slots=True, kw_only=True)
class Checkpoint:
    """Everything a restart needs besides the segments' content (module doc)."""

    version: int = CHECKPOINT_VERSION
    tick: int = 0
    marks: dict[str, dict[str, FileMark]] = field(default_factory=dict)
    """Per input: identity -> mark."""
    segments: dict[str, Segment] = field(default_factory=dict)
    readers: dict[str, bytes] = field(default_factory=dict)
    """Per Zeek input: the pickled reader (its long-connection totals per uid)."""
    unlisted: dict[str, tuple[DriveAttach, ...]] = field(default_factory=dict)
    """Per whole-file owner: drives attached that no media-import manifest lists."""
    issues: dict[str, int] = field(default_factory=dict)
    """Per whole-file owner: lines the reader counted as issues."""
    dedup: bytes | None = None
    """The pickled sensor de-duplicator (with two or more Zeek inputs)."""
    horizon_us: int | None = None
    """Retention: the windows before this (a day boundary, log time) are forgotten."""


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new content."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    sync_directory(path.parent)


def sync_directory(path: Path) -> None:
    """fsync a directory, so that the names of files created in it survive a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StateDirectory:
    """The state directory (module doc); one process at a time (an exclusive ``flock`` on
    ``<state>/lock``, held until :meth:`close` or the end of the process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.segments = path / "segments"
        self.scratch = path / "scratch"
        try:
            self.segments.mkdir(parents=True, exist_ok=True)
            self._lock = (path / "lock").open("a+b")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot use as the state directory: "
                              f"{exc.strerror}") from exc
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock.close()
            raise ConfigError(f"{path}: another egress sidecar uses this state "
                              "directory") from exc
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir()

    def close(self) -> None:
        """Release the directory (the lock) for another process."""
        self._lock.close()

    @property
    def checkpoint_path(self) -> Path:
        """Where the checkpoint is."""
        return self.path / "checkpoint.pickle"

    def load(self) -> Checkpoint:
        """The last committed checkpoint (a new one when there is none); segments it does
        not name (written by a tick that did not commit) are removed."""
        try:
            data = self.checkpoint_path.read_bytes()
        except FileNotFoundError:
            checkpoint = Checkpoint()
        else:
            checkpoint = pickle.loads(data)
            if not isinstance(checkpoint, Checkpoint) or \
                    checkpoint.version != CHECKPOINT_VERSION:
                raise ConfigError(f"{self.checkpoint_path}: not a checkpoint of this version "
                                  "of egress (move the state directory away to start over)")
            if not hasattr(checkpoint, "horizon_us"):  # written before retention horizons
                checkpoint.horizon_us = None
        for orphan in (*self.segments.glob("*.arrow"), *self.segments.glob("*.parquet")):
            if orphan.name not in checkpoint.segments:
                log.info("removing %s: written by a tick that did not commit", orphan)
                orphan.unlink()
        return checkpoint

    def write_segment(self, table: pa.Table, *, owner: str, newest_end_us: int | None) -> Segment:
        """Store ``table`` (:data:`~egress.transfers.TRANSFERS_SCHEMA`) as a new segment."""
        name = f"{uuid.uuid4().hex}.arrow"
        tmp = self.segments / f".{name}.tmp"
        with tmp.open("wb") as fh:
            feather.write_feather(table.cast(TRANSFERS_SCHEMA), fh, compression="lz4")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.segments / name)
        return Segment(name=name, owner=owner, rows=table.num_rows,
                       newest_end_us=newest_end_us)

    def commit(self, checkpoint: Checkpoint, *, dropped: Iterable[str] = ()) -> None:
        """Make ``checkpoint`` the state; then remove the ``dropped`` segment files."""
        sync_directory(self.segments)  # the new segments are named before the checkpoint is
        write_atomically(self.checkpoint_path,
                         pickle.dumps(checkpoint, protocol=pickle.HIGHEST_PROTOCOL))
        for name in dropped:
            (self.segments / name).unlink(missing_ok=True)

    def transfers(self, checkpoint: Checkpoint) -> Iterator[pa.Table]:
        """The transfers of the checkpoint's segments, one table per segment."""
        for name in checkpoint.segments:
            yield self.segment(name)

    def segment(self, name: str) -> pa.Table:
        """The transfers of one segment (Arrow IPC; Parquet as earlier versions wrote)."""
        path = self.segments / name
        if name.endswith(".parquet"):
            return pq.read_table(path)
        return feather.read_table(path)


@dataclass(slots=True, kw_only=True)
class AlertLedger:
    """Finding ids spooled (``sent``) and being spooled (``pending``), in a JSON file.

    Spooling is ``pending`` written, enqueue, then ``sent``: after a crash, a pending id
    found in the spool was spooled, one not found was not (the sidecar drains only after
    ``sent`` is written, so nothing pending has left the spool yet).
    """

    path: Path
    sent: set[str] = field(default_factory=set)
    pending: set[str] = field(default_factory=set)

    @classmethod
    def open(cls, path: Path) -> AlertLedger:
        """Read the ledger at ``path`` (empty when there is none)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path=path)
        return cls(path=path, sent=set(data["sent"]), pending=set(data["pending"]))

    def save(self) -> None:
        """Write the ledger atomically."""
        data = {"sent": sorted(self.sent), "pending": sorted(self.pending)}
        write_atomically(self.path, json.dumps(data).encode())

    def recover(self, spooled: Iterable[str]) -> None:
        """Settle ``pending`` after a crash with the ids held in the spool."""
        if not self.pending:
            return
        held = set(spooled)
        self.sent |= self.pending & held
        self.pending.clear()
        self.save()
