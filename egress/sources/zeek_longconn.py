"""Long-connection accounting: turn running totals into increments, per ``uid``.

Long-connection logs (Corelight's ``conn_long.log``, the ``open_conn.log`` of
zeek-open-connections) repeat conn.log's fields for connections still open,
periodically, with *running totals*; the final conn.log record carries the
totals at the end. Counting every record in full would count a week-long
upload 169 times. :class:`LongConnTracker` keeps, for each open ``uid``, the
totals of its last record, and gives each record the increment since then:
an interim record adds what is new since the previous one, the final record
adds only what is left, and the increments of a connection sum exactly to its
final totals.

Ordering assumption: records reach the tracker in log-time order per ``uid``
(each interim record before the next, all before the final one). Reading a
directory with :func:`egress.sources.zeek_files.log_files` guarantees it.

Bounded state: a ``uid``'s state is dropped when its final record is seen, and
states not updated for ``ttl_s`` of *log time* (the newest ``ts + duration`` of a
final conn.log record seen so far: interim records do not move it, so reading a
whole period's long-connection logs before its conn.log expires nothing early) are
expired and counted in :attr:`LongConnTracker.expired`. A final record arriving
after its state expired counts its totals in full.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from egress.columns import TOTAL_COLUMNS

Totals = list[int | None]
_SINCE = pa.timestamp("us", tz="UTC")


class LongConnTracker:
    """Running-total state of open long connections (see the module docstring)."""

    def __init__(self, *, ttl_s: float = 86400.0) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._ttl_us = int(ttl_s * 1_000_000)
        # uid -> (last totals, log time in us of the last update); oldest update first.
        self._state: OrderedDict[str, tuple[Totals, int]] = OrderedDict()
        self._keys: pa.Array | None = None
        self._watermark_us: int | None = None
        self.expired = 0
        self.decreased = 0

    @property
    def open_states(self) -> int:
        """Number of connections with interim records and no final record yet."""
        return len(self._state)

    def deltas(self, columns: dict[str, pa.Array], interim: pa.Array) -> list[pa.Array]:
        """Increments of :data:`~egress.columns.TOTAL_COLUMNS` for one chunk, in order.

        ``columns`` holds at least ``uid``, ``ts``, ``duration_s`` and the totals;
        ``interim`` flags the rows that are interim records.
        """
        return self.increments(columns, interim)[0]

    def increments(self, columns: dict[str, pa.Array],
                   interim: pa.Array) -> tuple[list[pa.Array], pa.Array]:
        """:meth:`deltas`, and for each row the end (``ts + duration``, a UTC timestamp) of
        the previous record of its ``uid``: the increments span from there (null: from
        ``ts``)."""
        totals = [columns[name] for name in TOTAL_COLUMNS]
        n = len(interim)
        any_interim = bool(pc.any(interim).as_py())
        if not self._state and not any_interim:
            return totals, pa.nulls(n, _SINCE)
        uid = columns["uid"]
        # Rows that need the per-uid state: interim records, and records of uids that
        # have state already or get it earlier in this chunk.
        value_set = uid.filter(interim)
        if self._state:
            if self._keys is None:
                self._keys = pa.array(list(self._state), pa.string())
            value_set = pa.concat_arrays([self._keys, value_set])
        member = pc.fill_null(pc.is_in(uid, value_set=value_set), False)
        selected = np.asarray(member.to_numpy(zero_copy_only=False), dtype=np.bool_)
        ends = _end_times(columns)
        # Log time so far, row by row, for expiring state before each row is applied. Only
        # final records move it: long-connection logs are read before the conn.log of the
        # same period, and their interim records must not expire each other's state.
        final_ends = pc.if_else(interim, pa.scalar(None, pa.int64()), ends)
        running = np.maximum.accumulate(np.asarray(
            pc.fill_null(final_ends, np.iinfo(np.int64).min).to_numpy(zero_copy_only=False),
            dtype=np.int64))
        idx = np.flatnonzero(selected)
        take = pa.array(idx)
        uids = uid.take(take).to_pylist()
        flags = interim.take(take).to_pylist()
        when = ends.take(take).to_pylist()
        values = [col.take(take).to_pylist() for col in totals]
        out = [_Patch(col) for col in totals]
        since = np.zeros(n, dtype=np.int64)
        has_since = np.zeros(n, dtype=np.bool_)
        for j, row in enumerate(idx.tolist()):
            self._advance(int(running[row]))
            before = self._apply(uids[j], bool(flags[j]), when[j], [v[j] for v in values],
                                 out, row)
            if before is not None:
                since[row], has_since[row] = before, True
        if len(running):
            self._advance(int(running[-1]))
        self._keys = None
        return ([patch.array() for patch in out],
                pa.array(since, pa.int64(), mask=~has_since).cast(_SINCE))

    def _advance(self, now_us: int) -> None:
        """Move log time forward to ``now_us`` and expire states older than the TTL."""
        if now_us == np.iinfo(np.int64).min:
            return
        if self._watermark_us is None or now_us > self._watermark_us:
            self._watermark_us = now_us
            self._expire()

    def _apply(self, uid: str | None, is_interim: bool, when: int | None, totals: Totals,
               out: list[_Patch], row: int) -> int | None:
        """Write the row's increments; return when the uid's previous record ended."""
        prev = self._state.pop(uid, None) if uid is not None else None
        kept: Totals = []
        for k, current in enumerate(totals):
            before = prev[0][k] if prev is not None else None
            if current is None:
                out[k].set(row, None)
                kept.append(before)
                continue
            base = before if before is not None else 0
            if current < base:  # totals went backwards: count nothing twice
                self.decreased += 1
                out[k].set(row, 0)
            else:
                out[k].set(row, current - base)
            kept.append(current)
        if is_interim and uid is not None:
            stamp = when if when is not None else (self._watermark_us or 0)
            self._state[uid] = (kept, stamp)
        return None if prev is None else prev[1]

    def _expire(self) -> None:
        if self._watermark_us is None:
            return
        cutoff = self._watermark_us - self._ttl_us
        while self._state:
            uid, (_, stamp) = next(iter(self._state.items()))
            if stamp >= cutoff:
                break
            del self._state[uid]
            self.expired += 1
            self._keys = None


def _end_times(columns: dict[str, pa.Array]) -> pa.Array:
    """Log time of each record in microseconds: ``ts + duration`` (``ts`` if no duration)."""
    start = columns["ts"].cast(pa.int64())
    duration = pc.fill_null(columns["duration_s"], 0.0)
    micros = pc.round(pc.multiply(duration, 1e6)).cast(pa.int64())
    return pc.add(start, micros)


class _Patch:
    """A uint64 column copied once, with some rows overwritten."""

    def __init__(self, column: pa.Array) -> None:
        self._values = np.array(pc.fill_null(column, 0).to_numpy(zero_copy_only=False),
                                dtype=np.uint64)
        self._valid = ~np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False),
                                  dtype=np.bool_)

    def set(self, row: int, value: int | None) -> None:
        if value is None:
            self._valid[row] = False
        else:
            self._values[row] = value
            self._valid[row] = True

    def array(self) -> pa.Array:
        return pa.array(self._values, pa.uint64(), mask=~self._valid)
