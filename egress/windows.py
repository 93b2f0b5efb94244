"""Tumbling windows per tenant: long transfers apportioned across the windows they span.

The input is a table of attributed *transfers* (:data:`TRANSFERS_SCHEMA`), one row per flow,
object-store request or copy, built from :class:`~egress.records.Attributed` records by
:func:`transfers_table` (or produced column-wise by a batch source). The aggregation itself is
SQL (:data:`WINDOWS_SQL`) run by an embedded DuckDB; the same statement is the definition a
Spark engine runs later (see the dialect notes on :data:`WINDOWS_SQL`).

Windows are tumbling, aligned on the Unix epoch (a 24 h window starts at 00:00 UTC), and
half-open ``[window_start, window_start + size)``.

Apportioning. A transfer with ``end > start`` covers ``[start, end)``; its bytes are split in
proportion to the overlap of that interval with each window it touches. An instantaneous
transfer (``end == start``) falls wholly in the window containing ``start``.

Rounding (integer output, totals preserved exactly). With ``d = end - start`` in microseconds
and ``c_k`` the microseconds of the transfer elapsed by the end of its ``k``-th window, window
``k`` gets ``floor(bytes * c_k / d) - floor(bytes * c_(k-1) / d)`` bytes (``c_0 = 0``), computed
in exact 128-bit integer arithmetic. This is *cumulative floor* rounding: the shares telescope,
so the sum over a transfer's windows is exactly its bytes; each share differs from the exact
proportional share by less than one byte; a transfer at a constant rate that divides evenly
(3 days of 259,200,000 bytes: 3,600,000 per hour) apportions exactly. Each window's sums must
fit ``uint64`` (18 EB); DuckDB raises a conversion error otherwise.

Per-window metrics count every transfer that overlaps the window (a transfer spanning three
windows counts in each of them): ``transfers`` and ``remote_addrs`` (distinct non-null remote
addresses). ``cross_border_bytes_in`` is the apportioned ``bytes_in`` of transfers with
``cross_border`` true (unknown, ``None``, counts as not cross-border).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

import duckdb
import pyarrow as pa

from egress.records import Attributed, CopyRecord, Flow, ObjectStoreRequest

#: Columns of the transfers table :func:`aggregate_windows` reads.
TRANSFERS_SCHEMA = pa.schema([
    pa.field("tenant", pa.string(), nullable=False),
    pa.field("start", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("end", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("direction", pa.string(), nullable=False),
    pa.field("bytes_in", pa.uint64(), nullable=False),
    pa.field("bytes_out", pa.uint64(), nullable=False),
    pa.field("remote_addr", pa.string()),
    pa.field("remote_country", pa.string()),
    pa.field("cross_border", pa.bool_()),
])

#: Columns of the per-(tenant, window) table :func:`aggregate_windows` returns.
WINDOWS_SCHEMA = pa.schema([
    pa.field("tenant", pa.string(), nullable=False),
    pa.field("window_start", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("bytes_in", pa.uint64(), nullable=False),
    pa.field("bytes_out", pa.uint64(), nullable=False),
    pa.field("cross_border_bytes_in", pa.uint64(), nullable=False),
    pa.field("remote_addrs", pa.int64(), nullable=False),
    pa.field("transfers", pa.int64(), nullable=False),
])

#: Name under which the transfers table is visible to :data:`WINDOWS_SQL`.
TRANSFERS_VIEW = "transfers"

#: Tumbling windows of ``$size_us`` microseconds per tenant, bytes apportioned (module doc).
#:
#: Dialect notes for Spark SQL: ``epoch_us(x)`` -> ``unix_micros(x)``; ``make_timestamp(us)``
#: -> ``timestamp_micros(us)``; ``unnest(range(a, b, s))`` -> ``explode(sequence(a, b - 1,
#: s))``; ``HUGEINT`` -> ``DECIMAL(38, 0)``; ``//`` -> ``div``; ``UBIGINT`` -> ``DECIMAL(20,
#: 0)``; ``$size_us`` -> ``:size_us``. Integer ``%`` truncates toward zero in both, hence the
#: ``((x % n) + n) % n`` floor-modulo for times before 1970.
WINDOWS_SQL = """
WITH spans AS (
    SELECT
        tenant,
        bytes_in,
        bytes_out,
        remote_addr,
        cross_border,
        epoch_us("start") AS s,
        greatest(epoch_us("end"), epoch_us("start")) AS e
    FROM transfers
),
grid AS (
    SELECT
        *,
        s - ((s % $size_us) + $size_us) % $size_us AS first_ws,
        greatest(e - 1, s) - ((greatest(e - 1, s) % $size_us) + $size_us) % $size_us AS last_ws
    FROM spans
),
pieces AS (
    SELECT
        tenant, bytes_in, bytes_out, remote_addr, cross_border, s, e,
        unnest(range(first_ws, last_ws + 1, $size_us)) AS ws
    FROM grid
),
shares AS (
    SELECT
        tenant,
        ws,
        remote_addr,
        cross_border,
        CASE WHEN e = s THEN CAST(bytes_in AS HUGEINT)
             ELSE CAST(bytes_in AS HUGEINT) * (least(e, ws + $size_us) - s) // (e - s)
                - CAST(bytes_in AS HUGEINT) * (greatest(s, ws) - s) // (e - s)
        END AS in_share,
        CASE WHEN e = s THEN CAST(bytes_out AS HUGEINT)
             ELSE CAST(bytes_out AS HUGEINT) * (least(e, ws + $size_us) - s) // (e - s)
                - CAST(bytes_out AS HUGEINT) * (greatest(s, ws) - s) // (e - s)
        END AS out_share
    FROM pieces
)
SELECT
    tenant,
    make_timestamp(ws) AS window_start,
    CAST(sum(in_share) AS UBIGINT) AS bytes_in,
    CAST(sum(out_share) AS UBIGINT) AS bytes_out,
    CAST(coalesce(sum(CASE WHEN cross_border THEN in_share END), 0) AS UBIGINT)
        AS cross_border_bytes_in,
    count(DISTINCT remote_addr) AS remote_addrs,
    count(*) AS transfers
FROM shares
GROUP BY tenant, ws
ORDER BY tenant, ws
"""

_BATCH_ROWS = 65_536


def transfer_batches(
    attributed: Iterable[Attributed], *, batch_rows: int = _BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Yield :data:`TRANSFERS_SCHEMA` batches of at most ``batch_rows`` rows, lazily.

    A :class:`~egress.records.Flow` spans ``[start, start + duration_s)`` (microsecond
    precision); an :class:`~egress.records.ObjectStoreRequest` or
    :class:`~egress.records.CopyRecord` is instantaneous at its ``time``. Not transfers, so
    left out: unattributed records (``tenant`` ``None``, counted by attribution), drive
    attachments, interim flow records (the final record of the flow carries its totals) and
    copies without a time. Raises ``ValueError`` if ``batch_rows`` is not positive.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be positive, got {batch_rows}")
    rows: list[tuple[Attributed, datetime, datetime]] = []
    for item in attributed:
        span = _span(item)
        if item.tenant is None or span is None:
            continue
        rows.append((item, *span))
        if len(rows) == batch_rows:
            yield _batch(rows)
            rows = []
    if rows:
        yield _batch(rows)


def transfers_table(attributed: Iterable[Attributed]) -> pa.Table:
    """Collect :func:`transfer_batches` into one :data:`TRANSFERS_SCHEMA` table."""
    return pa.Table.from_batches(list(transfer_batches(attributed)), schema=TRANSFERS_SCHEMA)


def aggregate_windows(
    transfers: pa.Table | Iterable[pa.RecordBatch],
    *,
    size: timedelta,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Aggregate ``transfers`` into tumbling windows of ``size`` per tenant (module doc).

    ``transfers`` is a table or an iterable of batches (streamed through DuckDB) with at
    least the :data:`TRANSFERS_SCHEMA` columns, castable to those types. Returns a
    :data:`WINDOWS_SCHEMA` table sorted by tenant and window start; windows no transfer
    touches are absent. A ``connection`` passed in is used and left open (the view
    :data:`TRANSFERS_VIEW` is registered on it for the call); otherwise an in-memory one is
    created and closed. Raises ``ValueError`` if ``size`` is not a positive whole number of
    microseconds, and pyarrow's ``ArrowInvalid`` (or ``KeyError`` for a missing column) for
    input that does not fit the schema.
    """
    size_us = _whole_microseconds(size)
    source = _conform(transfers)
    own = connection is None
    con = duckdb.connect(":memory:") if connection is None else connection
    try:
        con.register(TRANSFERS_VIEW, source)
        try:
            result = con.sql(WINDOWS_SQL, params={"size_us": size_us}).to_arrow_table()
        finally:
            con.unregister(TRANSFERS_VIEW)
    finally:
        if own:
            con.close()
    return result.cast(WINDOWS_SCHEMA)


def _whole_microseconds(size: timedelta) -> int:
    us = (size.days * 86_400 + size.seconds) * 1_000_000 + size.microseconds
    if us <= 0:
        raise ValueError(f"window size must be positive, got {size}")
    return us


def _conform(transfers: pa.Table | Iterable[pa.RecordBatch]) -> pa.Table | pa.RecordBatchReader:
    names = TRANSFERS_SCHEMA.names
    if isinstance(transfers, pa.Table):
        return transfers.select(names).cast(TRANSFERS_SCHEMA)
    batches = (
        pa.RecordBatch.from_arrays(
            [batch.column(name) for name in names], names=names
        ).cast(TRANSFERS_SCHEMA)
        for batch in transfers
    )
    return pa.RecordBatchReader.from_batches(TRANSFERS_SCHEMA, batches)


def _span(item: Attributed) -> tuple[datetime, datetime] | None:
    record = item.record
    if isinstance(record, Flow):
        if record.interim:
            return None
        return record.start, record.start + timedelta(seconds=max(record.duration_s, 0.0))
    if isinstance(record, ObjectStoreRequest):
        return record.time, record.time
    if isinstance(record, CopyRecord) and record.time is not None:
        return record.time, record.time
    return None


def _batch(rows: list[tuple[Attributed, datetime, datetime]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [
            pa.array([a.tenant for a, _, _ in rows], pa.string()),
            pa.array([s for _, s, _ in rows], pa.timestamp("us", tz="UTC")),
            pa.array([e for _, _, e in rows], pa.timestamp("us", tz="UTC")),
            pa.array([a.direction for a, _, _ in rows], pa.string()),
            pa.array([a.bytes_in for a, _, _ in rows], pa.uint64()),
            pa.array([a.bytes_out for a, _, _ in rows], pa.uint64()),
            pa.array([a.remote_addr for a, _, _ in rows], pa.string()),
            pa.array([a.remote_country for a, _, _ in rows], pa.string()),
            pa.array([a.cross_border for a, _, _ in rows], pa.bool_()),
        ],
        schema=TRANSFERS_SCHEMA,
    )
