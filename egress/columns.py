"""Arrow schemas of the columnar record batches that sources produce.

Hot paths (a month of conn.log) cannot afford a Python object per record, so
log sources yield :class:`pyarrow.RecordBatch` es with the fixed schemas below
instead of :mod:`egress.records` dataclasses. The conventions are the records':

* times are ``timestamp[us, tz=UTC]``; durations are seconds (``duration_s``);
  volumes are bytes and packets, with the unit in the column name;
* unset is null, never a made-up zero or epoch;
* every row keeps its provenance: the ``line`` column is its 1-based line in
  the source file, and the batch's schema metadata names the file
  (:data:`META_PATH`), the Zeek log it came from (:data:`META_LOG`, e.g.
  ``conn`` or ``conn_long``) and its format (:data:`META_FORMAT`, ``tsv`` or
  ``json``). A batch never mixes rows of two files.

:data:`CONN_SCHEMA` is conn.log plus the long-connection accounting: the
running totals as logged (``orig_bytes`` ... ``resp_ip_bytes``), the increment
each record adds (``delta_*``; summing the deltas of a connection's records
gives its final totals) and ``interim`` (true for records of a connection still
open when written, as in Corelight's ``conn_long.log``).
"""

from __future__ import annotations

import pyarrow as pa

META_PATH = b"egress.path"
META_LOG = b"egress.log"
META_FORMAT = b"egress.format"

TIMESTAMP = pa.timestamp("us", tz="UTC")
STRING_LIST = pa.list_(pa.string())

TOTAL_COLUMNS: tuple[str, ...] = (
    "orig_bytes", "resp_bytes", "orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes",
)
"""Running totals of a connection, as Zeek logs them."""

DELTA_COLUMNS: tuple[str, ...] = tuple(f"delta_{name}" for name in TOTAL_COLUMNS)
"""Increment of each total since the previous record of the same ``uid``.

``delta_since`` is when that previous record ended (its ``ts + duration``): the increments
were transferred over ``[delta_since, ts + duration)``; null when there was no previous
record, so the increments cover the whole connection from ``ts``.
"""

CONN_SCHEMA = pa.schema([
    pa.field("ts", TIMESTAMP),  # start of the connection (Zeek's ts)
    pa.field("uid", pa.string()),
    pa.field("orig_h", pa.string()),
    pa.field("orig_p", pa.uint16()),
    pa.field("resp_h", pa.string()),
    pa.field("resp_p", pa.uint16()),
    pa.field("proto", pa.string()),
    pa.field("service", pa.string()),
    pa.field("duration_s", pa.float64()),
    pa.field("orig_bytes", pa.uint64()),
    pa.field("resp_bytes", pa.uint64()),
    pa.field("conn_state", pa.string()),
    pa.field("local_orig", pa.bool_()),
    pa.field("local_resp", pa.bool_()),
    pa.field("missed_bytes", pa.uint64()),
    pa.field("history", pa.string()),
    pa.field("orig_pkts", pa.uint64()),
    pa.field("orig_ip_bytes", pa.uint64()),
    pa.field("resp_pkts", pa.uint64()),
    pa.field("resp_ip_bytes", pa.uint64()),
    pa.field("tunnel_parents", STRING_LIST),
    pa.field("ip_proto", pa.uint8()),
    pa.field("community_id", pa.string()),
    pa.field("vlan", pa.int32()),
    pa.field("inner_vlan", pa.int32()),
    pa.field("vni", pa.uint32()),
    pa.field("interim", pa.bool_(), nullable=False),
    *(pa.field(name, pa.uint64()) for name in DELTA_COLUMNS),
    pa.field("delta_since", TIMESTAMP),  # start of the increments' span (else ``ts``)
    pa.field("line", pa.int64(), nullable=False),
])
"""conn.log, conn_long.log and open_conn.log records (see the module docstring)."""

ENRICHMENT_FIELDS: tuple[pa.Field, ...] = (
    pa.field("server_name", pa.string()),
    pa.field("http_methods", STRING_LIST),
    pa.field("http_hosts", STRING_LIST),
    pa.field("http_request_body_len", pa.uint64()),
)
"""Columns that :func:`egress.sources.zeek.attach_enrichment` appends to conn batches.

``server_name`` is the first TLS SNI seen on the connection; ``http_methods``
and ``http_hosts`` list the connection's HTTP requests in order (null when it
had none); ``http_request_body_len`` sums their request bodies in bytes.
"""

ENRICHED_CONN_SCHEMA = pa.schema([*CONN_SCHEMA, *ENRICHMENT_FIELDS])

SSL_SCHEMA = pa.schema([
    pa.field("ts", TIMESTAMP),
    pa.field("uid", pa.string()),
    pa.field("server_name", pa.string()),
    pa.field("line", pa.int64(), nullable=False),
])
"""The ssl.log columns egress uses (open_ssl.log has the same layout)."""

HTTP_SCHEMA = pa.schema([
    pa.field("ts", TIMESTAMP),
    pa.field("uid", pa.string()),
    pa.field("trans_depth", pa.uint64()),
    pa.field("method", pa.string()),
    pa.field("host", pa.string()),
    pa.field("uri", pa.string()),
    pa.field("request_body_len", pa.uint64()),
    pa.field("line", pa.int64(), nullable=False),
])
"""The http.log columns egress uses (open_http.log has the same layout)."""


def batch_path(batch: pa.RecordBatch) -> str | None:
    """Return the source file a batch was read from, or ``None`` if it does not say."""
    meta = batch.schema.metadata or {}
    value = meta.get(META_PATH)
    return value.decode() if value is not None else None


def batch_log(batch: pa.RecordBatch) -> str | None:
    """Return the Zeek log (``conn``, ``conn_long``, ...) a batch was read from, if known."""
    meta = batch.schema.metadata or {}
    value = meta.get(META_LOG)
    return value.decode() if value is not None else None
