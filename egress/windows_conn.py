"""Zeek conn batches into the window reduction as numbers, without string columns.

:func:`~egress.transfers.conn_transfers` turns an attributed conn batch into transfer rows
with tenant ids, directions, remote addresses and countries as strings, which the
aggregator then codes again. For the network rows it reduces, the aggregator needs none of
those strings: :func:`conn_network` builds the same transfers as a :class:`ConnNetwork`, the
numeric columns of :class:`~egress.windows_network.NetworkColumns` with the attribution's own
codes, from a conn batch and its :class:`~egress.attribution_batch.ConnSolution`. The rows
and values are those of ``conn_transfers`` (a test compares the windows of both); only the
few rows chosen as evidence candidates become transfer rows
(:meth:`ConnNetwork.evidence`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from egress._wincore import network_rows
from egress.attribution_batch import ConnSolution
from egress.columns import batch_path
from egress.quality import batch_marked
from egress.transfers import NETWORK, TIMESTAMP
from egress.windows_network import network_flags, present

Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnNetwork:
    """The network transfers of one conn batch, as numbers.

    ``rows``: the batch rows that are transfers (with a tenant and a ``ts``); per transfer,
    ``tenant`` (position in ``solution.tenants``), ``country`` (position in
    ``solution.countries``, -1 none) and the other columns of
    :class:`~egress.windows_network.NetworkColumns`.
    """

    batch: pa.RecordBatch
    solution: ConnSolution
    rows: Ints
    tenant: Ints
    start: Ints
    end: Ints
    opened: Ints
    bytes_in: npt.NDArray[np.uint64]
    bytes_out: npt.NDArray[np.uint64]
    flags: npt.NDArray[np.uint8]
    quality: npt.NDArray[np.bool_]
    country: Ints
    addr: npt.NDArray[np.uint64]
    asn: Ints

    @property
    def num_rows(self) -> int:
        return len(self.rows)

    def evidence(self, positions: Ints, tenant: npt.NDArray[np.int32]) -> pa.Table:
        """The :data:`~egress.windows_sql.EVIDENCE_COLUMNS` of the transfers at
        ``positions``, as :func:`~egress.transfers.conn_transfers` makes them, with
        ``tenant`` (the caller's codes) for the tenant."""
        rows = self.rows[positions]
        taken = pa.array(rows)
        remote = self.solution.remote[rows]
        names = self.solution.countries
        country = self.country[positions]
        path = batch_path(self.batch)
        lines = self.batch.column("line").take(taken)
        # the remote end's address: one take from both address columns (the responder's
        # after the originator's), not two takes and a choice
        ends = pa.chunked_array([self.batch.column("orig_h"), self.batch.column("resp_h")])
        at = np.where(remote == 1, rows, rows + self.batch.num_rows)
        return pa.table({
            "tenant": pa.array(tenant, pa.int32()),
            "kind": pa.repeat(pa.scalar(NETWORK, pa.string()), len(rows)),
            "start": pa.array(self.start[positions], TIMESTAMP),
            "end": pa.array(self.end[positions], TIMESTAMP),
            "bytes_in": pa.array(self.bytes_in[positions], pa.uint64()),
            "bytes_out": pa.array(self.bytes_out[positions], pa.uint64()),
            "remote_addr": ends.take(pa.array(at, mask=remote < 0)).combine_chunks(),
            "remote_country": names.take(pa.array(country, mask=country < 0)) if len(names)
            else pa.nulls(len(rows), pa.string()),
            "where": pa.nulls(len(rows), pa.string()) if path is None else
            pc.binary_join_element_wise(path, pc.cast(lines, pa.string()), ":"),
            "ref": self.batch.column("uid").take(taken),
            "quality": pa.array(self.quality[positions]),
            "community_id": self.batch.column("community_id").take(taken),
        })


def conn_network(batch: pa.RecordBatch, solution: ConnSolution) -> ConnNetwork:
    """The transfers :func:`~egress.transfers.conn_transfers` makes of ``batch`` attributed
    as ``solution`` (:meth:`~egress.attribution.Attributor.solve_batch`), as numbers."""
    ts = batch.column("ts")
    if ts.type != TIMESTAMP:
        ts = ts.cast(TIMESTAMP)
    keep = solution.tenant >= 0
    if ts.null_count:
        keep &= present(ts)
    rows = np.flatnonzero(keep)
    begin = _at(ts, rows)
    duration = batch.column("duration_s")
    if duration.null_count == 0 and duration.type == pa.float64():
        # the same truncating cast as below, on the kept rows only
        took = (duration.to_numpy()[rows] * 1e6).astype(np.int64)
    else:
        took = _at(pc.cast(pc.multiply(pc.fill_null(duration, 0.0), 1e6), pa.int64(),
                           safe=False), rows)
    end = begin + np.maximum(took, 0)
    start = begin
    if "delta_since" in batch.schema.names:
        since = batch.column("delta_since")
        if since.null_count == len(since):
            start = np.minimum(begin, end)
        else:
            since = since.cast(TIMESTAMP)
            start = np.minimum(np.where(present(since)[rows], _at(since, rows), begin), end)
    m = len(rows)
    tenant, bytes_in, bytes_out = np.empty(m, np.int64), np.empty(m, np.uint64), np.empty(
        m, np.uint64)
    flags, quality = np.empty(m, np.uint8), np.empty(m, np.bool_)
    country, addr, asn = np.empty(m, np.int64), np.empty(m, np.uint64), np.empty(m, np.int64)
    network_rows(np.ascontiguousarray(rows, np.int64), _FLAGS, tuple(
        np.ascontiguousarray(column) for column in (
            solution.tenant, solution.remote, solution.direction, solution.cross,
            solution.country, solution.addr, solution.asn, solution.has_asn,
            _counts(batch.column("delta_orig_ip_bytes")),
            _counts(batch.column("delta_resp_ip_bytes")), batch_marked(batch),
            tenant, bytes_in, bytes_out, flags, quality, country, addr, asn)))
    return ConnNetwork(
        batch=batch, solution=solution, rows=rows, tenant=tenant, start=start, end=end,
        opened=begin, bytes_in=bytes_in, bytes_out=bytes_out, flags=flags, quality=quality,
        country=country, addr=addr, asn=asn)


def _flag_table() -> npt.NDArray[np.uint8]:
    """:func:`~egress.windows_network.network_flags` of every combination of its inputs,
    by ``internal | has_remote << 1 | cross_border << 2 | quality << 3 | has_asn << 4``
    (how the compiled ``network_rows`` reads them)."""
    bits = np.arange(32)
    internal, has_remote, cross_border, quality, has_asn = (
        (bits >> bit & 1).astype(np.bool_) for bit in range(5))
    return np.ascontiguousarray(network_flags(
        internal=internal, has_remote=has_remote, cross_border=cross_border,
        quality=quality, has_asn=has_asn), np.uint8)


_FLAGS = _flag_table()


def _counts(column: pa.Array) -> npt.NDArray[np.uint64]:
    """A byte count column as uint64 (null: 0)."""
    if column.null_count:
        column = pc.fill_null(column, 0)
    return np.asarray(column.to_numpy(zero_copy_only=False), np.uint64)


def _at(column: pa.Array, rows: Ints, kind: type[np.generic] = np.int64) -> npt.NDArray[Any]:
    """Values of ``column`` at ``rows`` as ``kind`` (timestamps as microseconds; null: 0)."""
    if pa.types.is_timestamp(column.type):
        column = column.view(pa.int64()) if column.null_count == 0 else column.cast(pa.int64())
    if column.null_count:
        column = pc.fill_null(column, 0)
    values = column.to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(values[rows], kind)
