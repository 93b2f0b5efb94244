"""Volume you can trust: data-quality marks on connection records, and sensor de-duplication.

Volumes come from the IP-level counts (``orig_ip_bytes`` / ``resp_ip_bytes``: sums of the IP
total-length fields, right even on huge or odd connections). The payload counts
(``orig_bytes`` / ``resp_bytes``) are derived by Zeek from TCP sequence numbers and can go wrong
by gigabytes (a sequence-number jump, a wrap, a connection picked up mid-stream); they serve
only as a cross-check. A record whose two counts disagree grossly, or that saw capture loss,
carries *marks* (short strings, see :data:`MARKS`) that travel with it into the evidence.
Marks never change a volume and never drop a record.

The same connection seen by two sensors (two taps on one path, a span port and a cloud
mirror) is counted once: :class:`SensorDeduplicator` keeps the first sensor's records of a
connection and says which later records are another sensor's copy.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from egress._wincore import quality_marked
from egress.records import Flow

#: The IP-level counts are unset (Zeek without its size analyzer); volumes are unknown.
NO_IP_COUNTS = "no_ip_counts"
#: A direction's payload count exceeds its IP-level count, which is impossible: the payload
#: count (sequence-derived) has gone wrong.
PAYLOAD_EXCEEDS_IP = "payload_exceeds_ip"
#: A direction's payload count is far below what its IP-level count leaves after headers
#: (see :func:`quality_marks` for the rule).
PAYLOAD_FAR_BELOW_IP = "payload_far_below_ip"
#: The sensor missed bytes of the connection (Zeek's ``missed_bytes`` > 0).
CAPTURE_LOSS = "capture_loss"

MARKS: tuple[str, ...] = (NO_IP_COUNTS, PAYLOAD_EXCEEDS_IP, PAYLOAD_FAR_BELOW_IP, CAPTURE_LOSS)
"""Every mark, in the order in which a record's marks are listed."""

HEADER_ALLOWANCE_BYTES_PER_PKT = 80
"""Header bytes per packet allowed for before IP bytes are expected to be payload.

At least the 20 + 20 bytes of a bare IPv4 + TCP header; 80 covers IPv6 (40) + TCP (20) with
the 12-byte timestamp option and some SACK blocks, so the pure-ACK direction of a bulk
transfer (52-72 bytes a packet, no payload) is never marked. UDP and ICMP headers (28 bytes
over IPv4) fit too. Too large an allowance only makes the mark rarer, never wrong.
"""

FAR_BELOW_FRACTION = 0.5
"""A payload count below this fraction of the IP bytes left after headers is far below.

Retransmissions legitimately add IP bytes that sequence-derived payload does not count, but a
transfer that retransmits more than its whole payload is rarer than a broken count.
"""

FAR_BELOW_MIN_GAP_BYTES = 1 << 20
"""The unexplained gap (IP bytes after headers minus payload) must reach this, in bytes.

Small connections with unusual options or padding would otherwise be marked; a gap under
1 MiB does not change any volume finding.
"""


def quality_marks(
    *,
    orig_ip_bytes: int | None,
    resp_ip_bytes: int | None,
    orig_bytes: int | None,
    resp_bytes: int | None,
    orig_pkts: int | None,
    resp_pkts: int | None,
    missed_bytes: int | None,
) -> tuple[str, ...]:
    """Return the data-quality marks of one connection record, in :data:`MARKS` order.

    All counts are bytes or packets of the record (``None`` = unset). The rules:

    * ``no_ip_counts``: either IP-level count is ``None``;
    * ``payload_exceeds_ip``: in some direction ``*_bytes > *_ip_bytes`` (both set);
    * ``payload_far_below_ip``: in some direction, with ``gap = ip_bytes -
      HEADER_ALLOWANCE_BYTES_PER_PKT * pkts`` (all three counts set), ``payload <
      FAR_BELOW_FRACTION * gap`` and ``gap - payload >= FAR_BELOW_MIN_GAP_BYTES``;
      computed in float64 (exact below 2**53 bytes), the same arithmetic as
      :func:`batch_quality`;
    * ``capture_loss``: ``missed_bytes > 0``.

    A clean record gives ``()``. Each mark appears at most once.
    """
    exceeds = _exceeds(orig_bytes, orig_ip_bytes) or _exceeds(resp_bytes, resp_ip_bytes)
    far_below = (_far_below(orig_bytes, orig_ip_bytes, orig_pkts)
                 or _far_below(resp_bytes, resp_ip_bytes, resp_pkts))
    found = {
        NO_IP_COUNTS: orig_ip_bytes is None or resp_ip_bytes is None,
        PAYLOAD_EXCEEDS_IP: exceeds,
        PAYLOAD_FAR_BELOW_IP: far_below,
        CAPTURE_LOSS: missed_bytes is not None and missed_bytes > 0,
    }
    return tuple(mark for mark in MARKS if found[mark])


def _exceeds(payload: int | None, ip_bytes: int | None) -> bool:
    return payload is not None and ip_bytes is not None and payload > ip_bytes


def _far_below(payload: int | None, ip_bytes: int | None, pkts: int | None) -> bool:
    if payload is None or ip_bytes is None or pkts is None:
        return False
    gap = float(ip_bytes) - float(HEADER_ALLOWANCE_BYTES_PER_PKT) * float(pkts)
    payload_f = float(payload)
    return payload_f < FAR_BELOW_FRACTION * gap and gap - payload_f >= FAR_BELOW_MIN_GAP_BYTES


def flow_quality(flow: Flow) -> tuple[str, ...]:
    """Return the marks of a :class:`~egress.records.Flow` (it carries no ``missed_bytes``)."""
    return quality_marks(
        orig_ip_bytes=flow.orig_ip_bytes, resp_ip_bytes=flow.resp_ip_bytes,
        orig_bytes=flow.orig_bytes, resp_bytes=flow.resp_bytes,
        orig_pkts=flow.orig_pkts, resp_pkts=flow.resp_pkts, missed_bytes=None,
    )


QUALITY_FIELD = pa.field("quality", pa.list_(pa.string()), nullable=False)
"""The column :func:`batch_quality` computes: each row's marks, an empty list when clean."""


def batch_quality(batch: pa.RecordBatch) -> pa.ListArray:
    """Return each row's marks for a :data:`~egress.columns.CONN_SCHEMA` batch.

    The rules are :func:`quality_marks`'s, applied to the running totals as logged (not the
    ``delta_*`` increments), column-wise with :mod:`pyarrow.compute`. The result is a
    ``list<string>`` array of ``batch.num_rows`` rows, never null (see :data:`QUALITY_FIELD`).
    Raises ``KeyError`` when a needed column is missing.
    """
    found = _batch_marks(batch)
    # Rows x marks; its True cells in row-major order are the list values, row by row.
    matrix = np.zeros((batch.num_rows, len(MARKS)), dtype=bool)
    for j, mark_rows in enumerate(found):
        matrix[:, j] = mark_rows.to_numpy(zero_copy_only=False)
    offsets = np.zeros(batch.num_rows + 1, dtype=np.int32)
    np.cumsum(matrix.sum(axis=1), out=offsets[1:])
    _, mark_index = np.nonzero(matrix)
    values = pa.DictionaryArray.from_arrays(
        pa.array(mark_index, pa.int8()), pa.array(MARKS, pa.string()),
    ).cast(pa.string())
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)


def batch_marked(batch: pa.RecordBatch) -> npt.NDArray[np.bool_]:
    """Which rows of a :data:`~egress.columns.CONN_SCHEMA` batch carry any mark (the rows
    whose :func:`batch_quality` list is not empty), in one compiled pass over the count
    columns (``quality_marked`` of :mod:`egress._wincore`, the float64 arithmetic of
    :func:`quality_marks`)."""
    counts = [_counts(batch.column(name)) for name in _MARK_COLUMNS]
    marked = np.empty(batch.num_rows, np.bool_)
    quality_marked(tuple(values for values, _ in counts), tuple(valid for _, valid in counts),
                   (float(HEADER_ALLOWANCE_BYTES_PER_PKT), FAR_BELOW_FRACTION,
                    float(FAR_BELOW_MIN_GAP_BYTES)), marked)
    return marked


#: The columns :func:`batch_marked` reads, in the order ``quality_marked`` takes them.
_MARK_COLUMNS = ("orig_ip_bytes", "resp_ip_bytes", "missed_bytes", "orig_bytes",
                 "resp_bytes", "orig_pkts", "resp_pkts")


def _counts(column: pa.Array) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_] | None]:
    """A count column's values (null: 0) and which are set (None: all, and the values are
    the column's own, not a copy)."""
    if column.null_count == 0:
        return np.ascontiguousarray(column.to_numpy(zero_copy_only=False), np.uint64), None
    values = np.ascontiguousarray(pc.fill_null(column, 0).to_numpy(zero_copy_only=False),
                                  np.uint64)
    return values, np.ascontiguousarray(column.is_valid().to_numpy(zero_copy_only=False),
                                        np.bool_)


def _batch_marks(batch: pa.RecordBatch) -> list[pa.Array]:
    """One boolean array per mark of :data:`MARKS`, in order (never null)."""
    col = batch.column
    return [
        pc.or_(pc.is_null(col("orig_ip_bytes")), pc.is_null(col("resp_ip_bytes"))),
        pc.or_(_batch_exceeds(col("orig_bytes"), col("orig_ip_bytes")),
               _batch_exceeds(col("resp_bytes"), col("resp_ip_bytes"))),
        pc.or_(_batch_far_below(col("orig_bytes"), col("orig_ip_bytes"), col("orig_pkts")),
               _batch_far_below(col("resp_bytes"), col("resp_ip_bytes"), col("resp_pkts"))),
        pc.fill_null(pc.greater(col("missed_bytes"), pa.scalar(0, col("missed_bytes").type)),
                     False),  # a scalar of the column's type: no int64 cast of 2**63 and up
    ]


def _batch_exceeds(payload: pa.Array, ip_bytes: pa.Array) -> pa.Array:
    return pc.fill_null(pc.greater(payload, ip_bytes), False)


def _batch_far_below(payload: pa.Array, ip_bytes: pa.Array, pkts: pa.Array) -> pa.Array:
    f64 = pa.float64()
    # safe=False: counts past 2**53 round, as float() does, instead of raising
    payload_f = pc.cast(payload, f64, safe=False)
    gap = pc.subtract(pc.cast(ip_bytes, f64, safe=False),
                      pc.multiply(pc.cast(pkts, f64, safe=False),
                                  float(HEADER_ALLOWANCE_BYTES_PER_PKT)))
    far = pc.and_(pc.less(payload_f, pc.multiply(gap, FAR_BELOW_FRACTION)),
                  pc.greater_equal(pc.subtract(gap, payload_f), float(FAR_BELOW_MIN_GAP_BYTES)))
    return pc.fill_null(far, False)


K = TypeVar("K")

# -- sensor de-duplication ------------------------------------------------------------------

FiveTuple = tuple[str, int, str, int, str]
"""``(orig_h, orig_p, resp_h, resp_p, proto)`` of a connection."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DedupStats:
    """Counters of a :class:`SensorDeduplicator`.

    ``duplicates`` counts the records dropped as another sensor's copy; ``pairs`` splits them
    by ``(kept_sensor, dropped_sensor)``. ``expired`` counts connections forgotten after the
    horizon; ``tracked`` is how many are held now.
    """

    records: int = 0
    duplicates: int = 0
    pairs: dict[tuple[str, str], int] = field(default_factory=dict)
    expired: int = 0
    tracked: int = 0


@dataclass(slots=True, eq=False)
class _Entry:
    sensor: str
    start_s: float
    community_id: str | None
    vni: int | None
    key: tuple[object, ...]
    seen_s: float = float("-inf")
    """The latest start seen when a record last matched (keeps long connections alive)."""


class SensorDeduplicator:
    """Say whether a connection record is another sensor's copy of one already seen.

    Two records are the same connection when their Community IDs are equal (both set), or when
    their 5-tuples are equal and their starts lie within ``window_s`` seconds. The 5-tuple is
    compared without regard to direction (two sensors may disagree on the originator when
    one missed the handshake), and within the same ``vni`` (overlays reuse private
    addresses; a Community ID match needs the same ``vni`` too).

    The first sensor to report a connection owns it: its later records (interim and final
    records of one ``uid``) are never duplicates; every record of another sensor that matches
    is. Memory is bounded by log time: connections that started more than ``horizon_s``
    seconds before the latest start seen are forgotten (a min-heap by start time). A record
    arriving after its connection was forgotten registers the connection afresh, with its
    sensor as the owner. A connection whose records keep arriving (a long connection
    re-logged by ``conn_long.log``) is kept while they do: the horizon counts from the last
    record that matched it, so keep ``horizon_s`` above the interval at which long
    connections are re-logged. Raises ``ValueError`` for a naive ``start`` or a bad window.
    """

    def __init__(self, window_s: float = 1.0, *, horizon_s: float = 3600.0) -> None:
        if not window_s >= 0 or not horizon_s >= window_s:
            raise ValueError(f"need 0 <= window_s <= horizon_s, got {window_s}, {horizon_s}")
        self._window_s = window_s
        self._horizon_s = horizon_s
        self._by_cid: dict[tuple[str, int | None], list[_Entry]] = {}
        self._by_key: dict[tuple[object, ...], list[_Entry]] = {}
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count()
        self._latest_s = float("-inf")
        self._records = 0
        self._pairs: Counter[tuple[str, str]] = Counter()
        self._expired = 0

    def stats(self) -> DedupStats:
        """Return a snapshot of the counters."""
        return DedupStats(
            records=self._records, duplicates=sum(self._pairs.values()),
            pairs=dict(self._pairs), expired=self._expired, tracked=len(self._heap),
        )

    def seen(self, community_id: str | None, five_tuple: FiveTuple, start: datetime,
             sensor: str, *, vni: int | None = None) -> bool:
        """Return True when another sensor already reported this connection (drop the record).

        ``community_id`` may be ``None`` (or empty) when the sensor does not compute it;
        ``start`` is the connection's start (Zeek's ``ts``), timezone-aware.
        """
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._records += 1
        start_s = start.timestamp()
        self._latest_s = max(self._latest_s, start_s)
        self._expire()
        orig_h, orig_p, resp_h, resp_p, proto = five_tuple
        a, b = (orig_h, orig_p), (resp_h, resp_p)
        key: tuple[object, ...] = (*min(a, b), *max(a, b), proto.lower(), vni)
        cid = community_id or None
        owned = False
        for entry in self._matches(cid, vni, key, start_s):
            entry.seen_s = self._latest_s
            if entry.sensor != sensor:
                self._pairs[entry.sensor, sensor] += 1
                return True
            owned = True
        if not owned:
            entry = _Entry(sensor=sensor, start_s=start_s, community_id=cid, vni=vni,
                           key=key)
            if cid is not None:
                self._by_cid.setdefault((cid, vni), []).append(entry)
            self._by_key.setdefault(key, []).append(entry)
            heapq.heappush(self._heap, (start_s, next(self._seq), entry))
        return False

    def _matches(self, cid: str | None, vni: int | None, key: tuple[object, ...],
                 start_s: float) -> Iterator[_Entry]:
        if cid is not None:
            yield from self._by_cid.get((cid, vni), ())
        for entry in self._by_key.get(key, ()):
            if abs(entry.start_s - start_s) <= self._window_s:
                yield entry

    def _expire(self) -> None:
        limit = self._latest_s - self._horizon_s
        while self._heap and self._heap[0][0] < limit:
            _, _, entry = heapq.heappop(self._heap)
            if entry.seen_s >= limit:  # matched since it was filed: file it again
                heapq.heappush(self._heap, (entry.seen_s, next(self._seq), entry))
                continue
            self._expired += 1
            if entry.community_id is not None:
                _remove(self._by_cid, (entry.community_id, entry.vni), entry)
            _remove(self._by_key, entry.key, entry)


def _remove(index: dict[K, list[_Entry]], key: K, entry: _Entry) -> None:
    entries = index[key]
    entries.remove(entry)
    if not entries:
        del index[key]


def dedupe_flows(flows_by_sensor: Iterable[tuple[str, Flow]], *,
                 dedup: SensorDeduplicator | None = None) -> Iterator[tuple[str, Flow]]:
    """Yield the ``(sensor, flow)`` pairs that are not another sensor's copy, lazily.

    Pass ``dedup`` to choose the window and horizon and to read its :meth:`stats` afterwards;
    by default a fresh :class:`SensorDeduplicator` with a 1-second window. An empty
    ``community_id`` counts as unset.
    """
    dedup = dedup if dedup is not None else SensorDeduplicator()
    for sensor, flow in flows_by_sensor:
        five = (flow.orig_h, flow.orig_p, flow.resp_h, flow.resp_p, flow.proto)
        if not dedup.seen(flow.community_id or None, five, flow.start, sensor, vni=flow.vni):
            yield sensor, flow
