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

from egress.attribution_batch import INTERNAL_CODE, ConnSolution
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
        return pa.table({
            "tenant": pa.array(tenant, pa.int32()),
            "kind": pa.array([NETWORK] * len(rows), pa.string()),
            "start": pa.array(self.start[positions], TIMESTAMP),
            "end": pa.array(self.end[positions], TIMESTAMP),
            "bytes_in": pa.array(self.bytes_in[positions], pa.uint64()),
            "bytes_out": pa.array(self.bytes_out[positions], pa.uint64()),
            "remote_addr": pc.if_else(pa.array(remote == 1, mask=remote < 0),
                                      self.batch.column("orig_h").take(taken),
                                      self.batch.column("resp_h").take(taken)),
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
    keep = (solution.tenant >= 0) & present(ts)
    rows = np.flatnonzero(keep)
    begin = _at(ts, rows)
    duration = pc.cast(pc.multiply(pc.fill_null(batch.column("duration_s"), 0.0), 1e6),
                       pa.int64(), safe=False)
    end = begin + np.maximum(_at(duration, rows), 0)
    start = begin
    if "delta_since" in batch.schema.names:
        since = batch.column("delta_since").cast(TIMESTAMP)
        start = np.minimum(np.where(present(since)[rows], _at(since, rows), begin), end)
    remote = solution.remote[rows]
    has_remote = remote >= 0
    swap = remote == 0
    d_orig = _at(batch.column("delta_orig_ip_bytes"), rows, np.uint64)
    d_resp = _at(batch.column("delta_resp_ip_bytes"), rows, np.uint64)
    quality = batch_marked(batch)[rows]
    has_asn = solution.has_asn[rows]
    return ConnNetwork(
        batch=batch, solution=solution, rows=rows,
        tenant=solution.tenant[rows], start=start, end=end, opened=begin,
        bytes_in=np.where(swap, d_resp, d_orig), bytes_out=np.where(swap, d_orig, d_resp),
        flags=network_flags(
            internal=solution.direction[rows] == INTERNAL_CODE, has_remote=has_remote,
            cross_border=has_remote & (solution.cross[rows] == 1),
            quality=quality, has_asn=has_asn),
        quality=quality,
        country=np.where(has_remote, solution.country[rows], -1),
        addr=np.where(has_remote, solution.addr[rows], np.uint64(0)),
        asn=np.where(has_asn, solution.asn[rows], 0),
    )


def _at(column: pa.Array, rows: Ints, kind: type[np.generic] = np.int64) -> npt.NDArray[Any]:
    """Values of ``column`` at ``rows`` as ``kind`` (timestamps as microseconds; null: 0)."""
    if pa.types.is_timestamp(column.type):
        column = column.view(pa.int64()) if column.null_count == 0 else column.cast(pa.int64())
    values = pc.fill_null(column, 0).to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(values[rows], kind)
