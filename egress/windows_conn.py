"""Zeek conn batches into the window reduction as numbers, without string columns.

:func:`~egress.transfers.conn_transfers` turns an attributed conn batch into transfer rows
with tenant ids, directions, remote addresses and countries as strings, which the
aggregator then codes again. For the network rows it reduces, the aggregator needs none of
those strings: :func:`conn_network` builds the same transfers as a :class:`ConnNetwork`, the
numeric columns of :class:`~egress.windows_network.NetworkColumns` with the attribution's own
codes, from a conn batch and its :class:`~egress.attribution_batch.ConnSolution`. The rows
and values are those of ``conn_transfers`` (a test compares the windows of both); only the
few rows chosen as evidence candidates become transfer rows
(:meth:`ConnNetwork.transfers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from egress.attribution import with_attribution
from egress.attribution_batch import INTERNAL_CODE, ConnSolution
from egress.quality import batch_marked
from egress.transfers import TIMESTAMP, conn_transfers
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
    country: Ints
    addr: npt.NDArray[np.uint64]
    asn: Ints

    @property
    def num_rows(self) -> int:
        return len(self.rows)

    def transfers(self, positions: Ints) -> pa.Table:
        """The :data:`~egress.transfers.TRANSFERS_SCHEMA` rows of the transfers at
        ``positions`` (as :func:`~egress.transfers.conn_transfers` makes them)."""
        rows = self.rows[positions]
        picked = self.batch.take(pa.array(rows))
        return conn_transfers(with_attribution(picked, self.solution.take(rows).arrays(picked)))


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
    has_asn = solution.has_asn[rows]
    return ConnNetwork(
        batch=batch, solution=solution, rows=rows,
        tenant=solution.tenant[rows], start=start, end=end, opened=begin,
        bytes_in=np.where(swap, d_resp, d_orig), bytes_out=np.where(swap, d_orig, d_resp),
        flags=network_flags(
            internal=solution.direction[rows] == INTERNAL_CODE, has_remote=has_remote,
            cross_border=has_remote & (solution.cross[rows] == 1),
            quality=batch_marked(batch)[rows], has_asn=has_asn),
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
