"""The durable local spool: every alert is written here before any delivery is tried.

An SQLite database in WAL mode. ``alerts`` holds formatted alerts in arrival order (``seq``);
each sink has a cursor in ``cursors`` (the last ``seq`` it acknowledged) and reads only the
alerts of its own format, so several sinks drain independently. A row is deleted once every
sink of its format has acknowledged it. Refused alerts go to ``dead_letters`` with the
receiver's reason. ``meta`` keeps the running row and byte totals (several processes may
share one spool, so nothing is cached in memory) and the alarm counters.

Durability: enqueues commit with ``synchronous=FULL``, acknowledgements with ``NORMAL``.
In WAL mode both survive a process crash (``kill -9``); ``FULL`` also keeps a committed
enqueue through a power loss (the WAL is fsynced at each commit), which is what "at least
once" promises. An acknowledgement lost to a power cut only makes its alerts go out again
(duplicates carry the same id, which SIEMs dedupe), so it need not wait for the disk:
that halves the fsyncs of a drain (``benchmarks/bench_delivery.py``). Each commit with
``FULL`` also makes the ``NORMAL`` commits before it durable.

Bounded: :meth:`Spool.enqueue` refuses a batch that would pass ``max_rows`` or
``max_bytes`` with :class:`~egress.errors.SpoolFull` (naming the spool and its size),
counts the alarm in ``meta`` and logs it; it never drops an alert silently.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from egress.errors import SpoolFull
from egress.sinks.alert import Alert

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    format TEXT NOT NULL,
    severity TEXT NOT NULL,
    time_s REAL NOT NULL,
    size INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_format_seq ON alerts (format, seq);
CREATE TABLE IF NOT EXISTS cursors (
    sink TEXT PRIMARY KEY,
    format TEXT NOT NULL,
    acked_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    sink TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    format TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_s REAL NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('rows', 0), ('bytes', 0), ('full_alarms', 0);
"""

DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_MAX_BYTES = 1 << 30


@dataclass(frozen=True, slots=True, kw_only=True)
class Spooled:
    """An alert read back from the spool, with its position ``seq``."""

    seq: int
    alert: Alert


@dataclass(frozen=True, slots=True, kw_only=True)
class SpoolStats:
    """The spool's size now and its counters since it was created."""

    rows: int
    bytes: int
    full_alarms: int
    dead_letters: int
    pending: dict[str, int]  # sink -> alerts of its format past its cursor


class Spool:
    """A spool file; open it once per process (``with Spool(path) as spool``)."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout_s: float = 30.0,
    ) -> None:
        if max_rows < 1 or max_bytes < 1:
            raise ValueError("max_rows and max_bytes must be positive")
        self.path = Path(path)
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so two processes never
        # interleave a read-modify-write of the totals.
        self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Every statement is idempotent, so two processes opening a new spool at once agree.
        self._db.executescript(_SCHEMA)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database (committed work is already on disk)."""
        self._db.close()

    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0])

    def enqueue(self, alerts: Iterable[Alert]) -> int:
        """Store ``alerts`` in one transaction and return how many; all or none.

        Raises :class:`~egress.errors.SpoolFull` (storing none of them) when the batch
        would pass ``max_rows`` or ``max_bytes``.
        """
        rows = [(a.event_id, a.format, a.severity, a.time_s, len(a.payload), a.payload)
                for a in alerts]
        size = sum(r[4] for r in rows)
        full: SpoolFull | None = None
        with self._write() as db:
            have_rows, have_bytes = self._meta("rows"), self._meta("bytes")
            if have_rows + len(rows) > self.max_rows or have_bytes + size > self.max_bytes:
                db.execute("UPDATE meta SET value = value + 1 WHERE key = 'full_alarms'")
                full = SpoolFull(
                    f"spool full: {have_rows:,} alerts of {have_bytes:,} bytes held "
                    f"(bound {self.max_rows:,} alerts, {self.max_bytes:,} bytes); "
                    f"{len(rows):,} new alerts of {size:,} bytes refused",
                    path=self.path, rows=have_rows, bytes_=have_bytes)
            else:
                db.executemany("INSERT INTO alerts (event_id, format, severity, time_s, size,"
                               " payload) VALUES (?, ?, ?, ?, ?, ?)", rows)
                db.execute("UPDATE meta SET value = value + ? WHERE key = 'rows'", (len(rows),))
                db.execute("UPDATE meta SET value = value + ? WHERE key = 'bytes'", (size,))
        if full is not None:
            log.error("%s", full)
            raise full
        return len(rows)

    def register(self, sink: str, *, format: str) -> None:
        """Give ``sink`` a cursor (if new) before the oldest alert held: it gets them all.

        Alerts already acknowledged by every sink registered before are gone, so register
        every sink before delivering to any.

        Raises ``ValueError`` when ``sink`` is already registered with another format.
        """
        with self._write() as db:
            row = db.execute("SELECT format FROM cursors WHERE sink = ?", (sink,)).fetchone()
            if row is None:
                db.execute("INSERT INTO cursors VALUES (?, ?, 0)", (sink, format))
            elif row[0] != format:
                raise ValueError(f"sink {sink!r} is registered with format {row[0]!r}, "
                                 f"not {format!r}")

    def batch(self, sink: str, *, limit: int, after: int = 0) -> list[Spooled]:
        """Up to ``limit`` alerts of ``sink``'s format past its cursor and past ``after``
        (a position already sent but not yet acknowledged), oldest first."""
        fmt, acked = self._cursor(sink)
        rows = self._db.execute(
            "SELECT seq, event_id, severity, time_s, payload FROM alerts"
            " WHERE format = ? AND seq > ? ORDER BY seq LIMIT ?",
            (fmt, max(acked, after), limit)).fetchall()
        return [Spooled(seq=seq, alert=Alert(event_id=eid, payload=bytes(payload), format=fmt,
                                             severity=sev, time_s=t))
                for seq, eid, sev, t, payload in rows]

    def _cursor(self, sink: str) -> tuple[str, int]:
        row = self._db.execute("SELECT format, acked_seq FROM cursors WHERE sink = ?",
                               (sink,)).fetchone()
        if row is None:
            raise KeyError(f"sink {sink!r} is not registered in {self.path}")
        return str(row[0]), int(row[1])

    def ack(self, sink: str, seq: int, *,
            dead: Sequence[tuple[Spooled, str]] = ()) -> None:
        """Move ``sink``'s cursor to ``seq`` and keep the refused ``dead`` alerts with reasons.

        Alerts that every sink of the format has acknowledged are deleted, in the same
        transaction.
        """
        now = time.time()
        # A lost acknowledgement only means a resend; dead letters are kept durably.
        with self._write(durable=bool(dead)) as db:
            fmt, acked = self._cursor(sink)
            db.executemany(
                "INSERT INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(sink, s.seq, s.alert.event_id, fmt, reason, now, s.alert.payload)
                 for s, reason in dead])
            if seq <= acked:
                return
            db.execute("UPDATE cursors SET acked_seq = ? WHERE sink = ?", (seq, sink))
            (low,) = db.execute("SELECT min(acked_seq) FROM cursors WHERE format = ?",
                                (fmt,)).fetchone()
            count, size = db.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM alerts"
                " WHERE format = ? AND seq <= ?", (fmt, low)).fetchone()
            if count:
                db.execute("DELETE FROM alerts WHERE format = ? AND seq <= ?", (fmt, low))
                db.execute("UPDATE meta SET value = value - ? WHERE key = 'rows'", (count,))
                db.execute("UPDATE meta SET value = value - ? WHERE key = 'bytes'", (size,))

    def dead_letters(self, sink: str | None = None) -> list[tuple[str, str, str]]:
        """The refused alerts as ``(sink, event_id, reason)``, oldest first."""
        query = "SELECT sink, event_id, reason FROM dead_letters"
        args: tuple[str, ...] = ()
        if sink is not None:
            query += " WHERE sink = ?"
            args = (sink,)
        return [(str(a), str(b), str(c))
                for a, b, c in self._db.execute(query + " ORDER BY rowid", args)]

    def stats(self) -> SpoolStats:
        """Sizes and counters, read in one snapshot."""
        self._db.execute("BEGIN")
        try:
            pending = {
                str(sink): int(n) for sink, n in self._db.execute(
                    "SELECT c.sink, (SELECT count(*) FROM alerts a"
                    " WHERE a.format = c.format AND a.seq > c.acked_seq) FROM cursors c")}
            (dead,) = self._db.execute("SELECT count(*) FROM dead_letters").fetchone()
            return SpoolStats(rows=self._meta("rows"), bytes=self._meta("bytes"),
                              full_alarms=self._meta("full_alarms"), dead_letters=int(dead),
                              pending=pending)
        finally:
            self._db.execute("COMMIT")

    def event_ids(self) -> list[str]:
        """The ids of every alert held, in order (for checks and tests)."""
        return [str(r[0]) for r in self._db.execute("SELECT event_id FROM alerts ORDER BY seq")]
