"""Transfers: attributed records as the rows the window aggregation reads.

A transfer is one network flow, object-store write, drive attachment or copy of a tenant,
with its time span, direction, volume and remote end (:data:`TRANSFERS_SCHEMA`).
:func:`transfer_batches` makes them from :class:`~egress.records.Attributed` records,
:func:`conn_transfers` column-wise from attributed Zeek conn batches
(:mod:`egress.windows_conn` makes the same network transfers as numbers).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc

from egress.columns import batch_path
from egress.quality import batch_quality, flow_quality
from egress.records import Attributed, CopyRecord, DriveAttach, Flow, ObjectStoreRequest

TIMESTAMP = pa.timestamp("us", tz="UTC")

#: Transfer kinds.
NETWORK, OBJECT_PUT, DRIVE, COPY = "network", "object_put", "drive", "copy"

#: Columns of the transfers table the aggregation reads.
TRANSFERS_SCHEMA = pa.schema([
    pa.field("tenant", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("start", TIMESTAMP, nullable=False),
    pa.field("end", TIMESTAMP, nullable=False),
    pa.field("direction", pa.string(), nullable=False),
    pa.field("bytes_in", pa.uint64(), nullable=False),
    pa.field("bytes_out", pa.uint64(), nullable=False),
    pa.field("capacity_bytes", pa.uint64()),
    pa.field("remote_addr", pa.string()),
    pa.field("remote_asn", pa.int64()),
    pa.field("remote_country", pa.string()),
    pa.field("cross_border", pa.bool_()),
    pa.field("quality", pa.bool_(), nullable=False),
    pa.field("where", pa.string()),
    pa.field("ref", pa.string()),
    pa.field("opened", TIMESTAMP),  # when the connection opened, if before ``start``
    pa.field("community_id", pa.string()),
])

_BATCH_ROWS = 65_536


def transfer_batches(
    attributed: Iterable[Attributed], *, batch_rows: int = _BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Yield :data:`TRANSFERS_SCHEMA` batches of at most ``batch_rows`` rows, lazily.

    A :class:`~egress.records.Flow` spans ``[start, start + duration_s)`` (microsecond
    precision) and is marked when :func:`~egress.quality.flow_quality` finds anything; an
    object-store write (PUT, part, copy; not a failed one, nor a multipart completion whose
    parts were counted), a drive attachment and a copy are instantaneous at their time.
    Left out: unattributed records (counted by attribution), other object-store requests,
    interim flow records (the final record of the flow carries its totals) and records
    without a time. Raises ``ValueError`` if ``batch_rows`` is not positive.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be positive, got {batch_rows}")
    rows: list[dict[str, object]] = []
    for item in attributed:
        row = _row(item)
        if row is None:
            continue
        rows.append(row)
        if len(rows) == batch_rows:
            yield pa.RecordBatch.from_pylist(rows, schema=TRANSFERS_SCHEMA)
            rows = []
    if rows:
        yield pa.RecordBatch.from_pylist(rows, schema=TRANSFERS_SCHEMA)


def conn_transfers(batch: pa.RecordBatch) -> pa.Table:
    """Return the :data:`TRANSFERS_SCHEMA` rows of an attributed Zeek conn batch.

    ``batch`` is a :data:`~egress.columns.CONN_SCHEMA` batch with the columns
    :meth:`~egress.attribution.Attributor.attribute_batch` appends (the ``remote_*`` and
    ``cross_border`` columns may be absent: then unknown). Rows without a tenant or a
    ``ts`` are left out. Volumes are the attributed increments, so interim records add only
    what is new; each increment spans ``[delta_since, ts + duration)``, from the end of the
    connection's previous record (or from ``ts`` for its first). ``where`` is ``path:line``;
    ``ref`` is the ``uid``.
    """
    keep = pc.and_(pc.is_valid(batch.column("tenant")), pc.is_valid(batch.column("ts")))
    names = set(batch.schema.names)
    rows = batch.select([n for n in _CONN_USED if n in names]).filter(keep)
    n = rows.num_rows
    duration_us = pc.cast(pc.multiply(pc.fill_null(rows.column("duration_s"), 0.0), 1e6),
                          pa.int64(), safe=False)
    duration_us = pc.max_element_wise(duration_us, 0)
    begin = rows.column("ts").cast(TIMESTAMP)
    end = pc.add(begin, pc.cast(duration_us, pa.duration("us")))
    index = rows.schema.get_field_index("delta_since")
    start = begin if index < 0 else pc.min_element_wise(
        pc.coalesce(rows.column(index).cast(TIMESTAMP), begin).cast(pa.int64()),
        end.cast(pa.int64())).cast(TIMESTAMP)
    marked = pc.greater(pc.list_value_length(batch_quality(rows)), 0)
    path = batch_path(batch)
    where = (pa.nulls(n, pa.string()) if path is None else pc.binary_join_element_wise(
        pa.array([path] * n, pa.string()) if n else pa.array([], pa.string()),
        pc.cast(rows.column("line"), pa.string()), ":"))

    def optional(name: str, kind: pa.DataType) -> pa.Array:
        index = rows.schema.get_field_index(name)
        return pa.nulls(n, kind) if index < 0 else rows.column(index).cast(kind)

    columns = {
        "tenant": rows.column("tenant"),
        "kind": pa.array([NETWORK] * n, pa.string()),
        "start": start,
        "end": end,
        "direction": rows.column("direction"),
        "bytes_in": pc.fill_null(rows.column("bytes_in"), 0),
        "bytes_out": pc.fill_null(rows.column("bytes_out"), 0),
        "capacity_bytes": pa.nulls(n, pa.uint64()),
        "remote_addr": optional("remote_addr", pa.string()),
        "remote_asn": optional("remote_asn", pa.int64()),
        "remote_country": optional("remote_country", pa.string()),
        "cross_border": optional("cross_border", pa.bool_()),
        "quality": marked,
        "where": where,
        "ref": rows.column("uid"),
        "opened": begin,
        "community_id": rows.column("community_id"),
    }
    return pa.Table.from_pydict(columns).cast(TRANSFERS_SCHEMA)


#: The columns of an attributed conn batch that :func:`conn_transfers` reads.
_CONN_USED = (
    "tenant", "ts", "duration_s", "delta_since", "direction", "bytes_in", "bytes_out",
    "remote_addr", "remote_asn", "remote_country", "cross_border", "uid", "community_id",
    "line", "orig_bytes", "resp_bytes", "orig_ip_bytes", "resp_ip_bytes", "orig_pkts",
    "resp_pkts", "missed_bytes",
)


def transfers_table(attributed: Iterable[Attributed]) -> pa.Table:
    """Collect :func:`transfer_batches` into one :data:`TRANSFERS_SCHEMA` table."""
    return pa.Table.from_batches(list(transfer_batches(attributed)), schema=TRANSFERS_SCHEMA)


_WRITES = frozenset({"put_object", "put_part", "copy_object"})


def _row(item: Attributed) -> dict[str, object] | None:
    if item.tenant is None:
        return None
    record = item.record
    kind: str
    capacity: int | None = None
    quality = False
    if isinstance(record, Flow):
        if record.interim:
            return None
        kind, start = NETWORK, record.start
        end = start + timedelta(seconds=max(record.duration_s, 0.0))
        quality = bool(flow_quality(record))
    elif isinstance(record, ObjectStoreRequest):
        ok = record.status is None or 200 <= record.status < 300
        if record.operation not in _WRITES or not ok:
            return None
        kind, start = OBJECT_PUT, record.time
        end = start
    elif isinstance(record, DriveAttach):
        if record.attached is None:
            return None
        kind, start, capacity = DRIVE, record.attached, record.capacity_bytes
        end = start
    elif isinstance(record, CopyRecord):
        if record.time is None:
            return None
        kind, start = COPY, record.time
        end = start
    else:  # pragma: no cover - Record is a closed union
        return None
    return {
        "tenant": item.tenant, "kind": kind, "start": start, "end": end,
        "direction": item.direction, "bytes_in": item.bytes_in, "bytes_out": item.bytes_out,
        "capacity_bytes": capacity, "remote_addr": item.remote_addr,
        "remote_asn": item.remote_asn, "remote_country": item.remote_country,
        "cross_border": item.cross_border, "quality": quality,
        "where": None if isinstance(record, Flow) else str(record.provenance),
        "ref": _ref(record),
        "opened": None,
        "community_id": (record.community_id or None) if isinstance(record, Flow) else None,
    }


def _ref(record: Flow | ObjectStoreRequest | DriveAttach | CopyRecord) -> str | None:
    if isinstance(record, Flow):
        return record.uid
    if isinstance(record, ObjectStoreRequest):
        return record.request_id or (f"{record.bucket}/{record.key}" if record.bucket else None)
    if isinstance(record, DriveAttach):
        return record.serial or record.device
    return record.path
