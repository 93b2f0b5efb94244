"""Windows per tenant: transfers apportioned over time and aggregated per span.

The input is a table of attributed *transfers*
(:data:`~egress.transfers.TRANSFERS_SCHEMA`), one row per network flow, object-store
write, drive attachment or copy, built by :mod:`egress.transfers` (or, for Zeek conn
batches, handed over as numbers: :meth:`WindowAggregator.add_conn`). The aggregation
itself is SQL (:mod:`egress.windows_sql`) run by an embedded DuckDB; the same
statements are the definitions a Spark engine runs. Network transfers, nearly all the
rows, are first pre-reduced in compiled code (:mod:`egress.windows_network`) into
exactly what the per-batch statements would append, and their remote ends into
distinct-count sketches; tenants are small integer codes inside the accumulators and ids
again in the results. :meth:`WindowAggregator.forget_before`
drops the windows before a horizon (the sidecar's retention).

Spans (``span`` column of :data:`WINDOWS_SCHEMA`):

* ``1h`` and ``24h``: tumbling, aligned on the Unix epoch (a day starts at 00:00 UTC),
  half-open ``[window_start, window_end)``;
* ``7d``: sliding, one window ending at each 00:00 UTC boundary within the 7 days after
  a day with activity (``window_start = window_end - 7 d``);
* ``cumulative``: since the tenant's registration (from ``WindowParams.registrations``;
  else its first active day), one row per day with activity, ending with that day.

Apportioning. A transfer with ``end > start`` covers ``[start, end)``; its bytes are split
in proportion to the overlap of that interval with each window it touches (a 3-day upload
adds to every hour it covers). An instantaneous transfer (``end == start``) falls wholly in
the window containing ``start``. With ``d = end - start`` in microseconds and ``c_k`` the
microseconds elapsed by the end of the ``k``-th piece, piece ``k`` gets ``floor(bytes *
c_k / d) - floor(bytes * c_(k-1) / d)`` bytes (*cumulative floor*, exact 128-bit integer
arithmetic): the shares telescope, so a transfer's shares sum exactly to its bytes and each
differs from the exact proportional share by less than one byte.

Metrics (see :data:`WINDOWS_SCHEMA`): bytes are additive, and network bytes count only when
they cross the tenant's boundary (east-west traffic inside one tenant, ``internal`` with no
remote end, is left out of ``bytes_in``/``bytes_out`` though its flows count); ``flows``,
``object_puts``, ``drives_attached`` and ``quality_marked`` count the transfers that *start*
in the window, so no transfer is counted twice across windows; ``remote_addrs`` and
``remote_asns`` are distinct over the network transfers that *overlap* the window (counted
by sketches: exact up to 768 per window, estimates within about 1.6 % beyond; or exactly,
with ``WindowParams.exact_distinct``);
``peak_rate_*_bps`` is the highest mean rate over an epoch-aligned 5-minute cell inside the
window; ``hours_above_rate`` counts the epoch-aligned hours whose inbound bytes reach
``sustained_rate_bps`` x 1 h; ``max_transfer_duration_s`` is the longest network transfer
overlapping the window, measured from when its connection ``opened`` (an increment of a long
connection counts the connection's age at the increment's end). Cross-border volume counts a
transfer whose ``cross_border`` is true (unknown counts as not); *concern* volume one whose
remote country is in ``concern_countries``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from egress.transfers import NETWORK, TIMESTAMP, TRANSFERS_SCHEMA
from egress.windows_network import (
    TOTAL_SUMS,
    DistinctCounts,
    EvidenceHold,
    HeldCells,
    NetworkColumns,
    NetworkReduction,
    Retired,
    TenantCodes,
)
from egress.windows_sql import (
    CELL_US,
    CELLS_ALL,
    CELLS_SQL,
    COMPACT_SQL,
    COUNTRIES_SQL,
    CREATE_ACCUMULATORS,
    DAY_US,
    DISTINCT_ROWS_SQL,
    DISTINCT_SUMS_SQL,
    EVIDENCE_COLUMNS,
    EVIDENCE_FLOOR_SQL,
    EVIDENCE_OUT_SQL,
    EVIDENCE_SQL,
    EXACT_DISTINCT_SQL,
    FORGET_DAYS_SQL,
    FORGET_SQL,
    HOUR_US,
    HOURS_SQL,
    PRESENCE_SQL,
    TENANT_START_SQL,
    WINDOWS_SQL,
    bases_sql,
    hours_coded,
    keep_days_sql,
    kind_code,
    peaks_sql,
)
from egress.windows_tables import (
    COUNTRIES_SCHEMA,
    EVIDENCE_SCHEMA,
    SPANS,
    WINDOWS_SCHEMA,
    WindowParams,
    WindowTables,
)

if TYPE_CHECKING:
    from egress.windows_conn import ConnNetwork

__all__ = [
    "COUNTRIES_SCHEMA", "EVIDENCE_SCHEMA", "SPANS", "WINDOWS_SCHEMA", "WindowAggregator",
    "WindowParams", "WindowTables", "compute_windows",
]

#: Rows gathered from incoming batches before the per-batch statements run.
_FLUSH_ROWS = 1 << 20
#: An accumulator is compacted once the rows appended since its last compaction reach
#: both this and its compacted size (so compaction costs O(1) per appended row), times
#: a slack that grows while compacting removes less than half the rows (keys that seldom
#: repeat, e.g. time-ordered input: compacting would gain little).
_COMPACT_ROWS = 4 << 20
#: Network evidence candidates held back before the few that can still rank are appended.
_EVIDENCE_HELD_ROWS = 1 << 20
#: Bytes of cells held beside their hourly peaks (24 a cell) before they go to the cell
#: accumulators after all: holding spares DuckDB the cell rows (7 days of 10,000 busy
#: tenants: about 20 M cells, 460 MB) but grows with the days covered, so it is capped.
_HELD_CELLS_BYTES = 512 << 20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: ``since`` of a snapshot without new transfers: a day after any time held.
_NO_HOURS_US = (1 << 62) // DAY_US * DAY_US
#: Spans made from the daily bases over several days.
_DAILY_SPANS = pa.array(["7d", "cumulative"], pa.string())
_SPAN_NAMES = pa.array(SPANS, pa.string())
#: Accumulators a ``changed_only`` snapshot reads through copies limited to the tenants in
#: scope (``<name>_scope``); the final statements read only these and their own tables.
_SCOPED = {"hours_acc": "t", "net_hours_acc": "t", "net_totals_acc": "t",
           "wide_totals_acc": "t", "cells_acc": "cell", "net_cells_acc": "cell",
           "net_peaks_acc": "t", "presence_acc": "",
           "evidence_acc": 'epoch_us("start")'}
_SCOPED_NAMES = re.compile(r"\b(?:" + "|".join(_SCOPED) + r")\b")


class WindowAggregator:
    """Streaming aggregation: :meth:`add` transfer batches, then :meth:`result`.

    Batches are gathered up to about a million rows, then reduced at once: additive
    metrics per tenant, hour and remote country, boundary-crossing bytes per tenant and
    5-minute cell (peak rates), remote ends per tenant and hour, evidence candidates.
    The accumulators are compacted to one row per key as they grow, so memory follows
    tenants x time cells (and the distinct remote ends per hour), not transfers; beyond
    ``memory_limit`` DuckDB spills to ``temp_directory``. A ``connection`` passed in is
    used and left open; otherwise an in-memory one is made and closed by :meth:`close`
    (or by :meth:`result`). ``flush_rows`` (rows gathered before reducing),
    ``compact_rows`` (least rows appended to an accumulator before compacting it) and
    ``held_cells_bytes`` (most bytes of 5-minute cells held beside their hourly peaks
    rather than appended) tune speed and memory, never the result. With ``background``
    (the default for an own connection) the gathered rows are reduced in a worker thread
    while the caller produces the next batches (DuckDB and Arrow release the GIL); at most
    one reduction runs and one gathers, and an error in it is raised by the next :meth:`add`,
    :meth:`flush` or :meth:`result`. A connection passed in with ``background=True`` must
    not be used by others until :meth:`result` or :meth:`close`.
    """

    def __init__(self, params: WindowParams | None = None, *,
                 connection: duckdb.DuckDBPyConnection | None = None,
                 flush_rows: int = _FLUSH_ROWS, compact_rows: int = _COMPACT_ROWS,
                 held_cells_bytes: int = _HELD_CELLS_BYTES,
                 background: bool | None = None) -> None:
        if flush_rows < 1 or compact_rows < 1:
            raise ValueError(f"flush_rows and compact_rows must be positive, got "
                             f"{flush_rows} and {compact_rows}")
        if held_cells_bytes < 0:
            raise ValueError(f"held_cells_bytes must not be negative, got {held_cells_bytes}")
        self._flush_rows, self._compact_rows = flush_rows, compact_rows
        self._held_cells_bytes = held_cells_bytes
        self._params = params or WindowParams()
        self._own = connection is None
        self._con = duckdb.connect(":memory:") if connection is None else connection
        if self._params.memory_limit is not None:
            self._con.execute(f"SET memory_limit = '{_plain(self._params.memory_limit)}'")
        if self._params.temp_directory is not None:
            self._con.execute(
                f"SET temp_directory = '{_plain(self._params.temp_directory)}'")
        self._con.execute(CREATE_ACCUMULATORS)
        self._network = NetworkReduction(self._params.evidence_per_day,
                                         sketches=not self._params.exact_distinct,
                                         late_hours=self._params.distinct_late_hours)
        self._tenants = TenantCodes()
        self._held = EvidenceHold(self._params.evidence_per_day, rows=_EVIDENCE_HELD_ROWS)
        #: Of each tenant code, whether a batch since the last snapshot had it.
        self._touched = np.zeros(0, np.bool_)
        self._pending: list[pa.Table] = []
        self._pending_conn: list[tuple[ConnNetwork, npt.NDArray[np.int32]]] = []
        self._pending_rows = 0
        self._tenant_names: pa.Array | None = None  # of the conn parts' tenant positions
        self._tenant_lookup = np.zeros(0, np.int32)  # their codes (-1: none yet)
        self._appended = dict.fromkeys(COMPACT_SQL, 0)
        self._compacted = dict.fromkeys(COMPACT_SQL, 0)
        self._slack = dict.fromkeys(COMPACT_SQL, 1)
        self._worker = (ThreadPoolExecutor(1, thread_name_prefix="windows")
                        if (self._own if background is None else background) else None)
        self._running: Future[None] | None = None
        self._horizon_us: int | None = None
        self._since_us: int | None = None  # earliest start added since the last snapshot
        self._kept: WindowTables | None = None
        #: Horizon moved since the last snapshot (kept tables trimmed to it): the next
        #: snapshot makes every tenant's 7-day and cumulative windows ending after it again.
        self._reach_us: int | None = None
        #: ``cells_acc`` and ``net_cells_acc`` hold one row per (tenant, cell) between
        #: them: only the compiled reduction appended to them, and no batch reached back
        #: to a cell it had handed back (before ``_cells_done_us``, the end of the latest
        #: such cell).
        self._cells_unique = True
        self._cells_done_us = -(1 << 63)
        #: The compiled reduction's cells go to ``net_peaks_acc`` as hourly maxima (and are
        #: held as they are) until one of them comes again; from then on to the cell
        #: accumulators (the held ones first).
        self._cells_as_peaks = True
        self._held_cells = HeldCells()
        #: ``hours_acc`` is empty and the boundary-crossing rows of ``net_hours_acc`` hold
        #: one row per (tenant, hour, country): ``country_hour`` needs no aggregation.
        self._hours_unique = True
        #: ``wide_totals_acc`` is empty and ``net_totals_acc`` holds one row per (tenant,
        #: hour): with ``hours_acc`` empty, ``hour_base`` needs no aggregation.
        self._totals_unique = True
        self.rows = 0
        #: Tenant hours the last snapshot rolled up (its hourly bases' rows).
        self.hours_rolled_up = 0
        #: Aggregations the last snapshot skipped because their input had one row per key
        #: already: ``"peaks"`` (5-minute cells), ``"distinct"`` (distinct counts),
        #: ``"country_hours"`` (bytes per tenant, hour and country), ``"hours"`` (the
        #: sums per tenant and hour).
        self.skipped: frozenset[str] = frozenset()
        #: Bytes :meth:`result` added to DuckDB's ``memory_limit`` as the held cells and
        #: sketches were freed (none without a limit set).
        self.memory_handed_over = 0

    def add(self, transfers: pa.RecordBatch | pa.Table) -> None:
        """Take one batch (at least the :data:`TRANSFERS_SCHEMA` columns, castable)."""
        table = _conform(transfers)
        if table.num_rows == 0:
            return
        codes = self._tenants.encode(table.column(0))
        table = table.set_column(0, "tenant", codes)
        self._touch(pc.drop_null(codes).to_numpy())
        first = pc.min(table.column("start")).cast(pa.int64()).as_py()
        if first is not None and (self._since_us is None or first < self._since_us):
            self._since_us = first
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        if self._pending_rows >= self._flush_rows:
            self._submit()

    def add_conn(self, part: ConnNetwork) -> None:
        """Take the network transfers of one Zeek conn batch as numbers
        (:func:`egress.windows_conn.conn_network`): the same as :meth:`add` of
        :func:`~egress.transfers.conn_transfers` of the batch, without its string columns."""
        if part.num_rows == 0:
            return
        codes, touched = self._tenant_codes(part.solution.tenants, part.tenant)
        self._touch(touched)
        first = int(part.start.min())
        if self._since_us is None or first < self._since_us:
            self._since_us = first
        self._pending_conn.append((part, codes))
        self._pending_rows += part.num_rows
        self.rows += part.num_rows
        if self._pending_rows >= self._flush_rows:
            self._submit()

    def _touch(self, codes: npt.NDArray[np.int32]) -> None:
        """Note the tenants of ``codes`` as touched since the last snapshot."""
        if len(codes) == 0:
            return
        size = int(codes.max()) + 1
        if size > len(self._touched):
            self._touched = np.concatenate([self._touched,
                                            np.zeros(size - len(self._touched), np.bool_)])
        self._touched[codes] = True

    def _tenant_codes(self, names: pa.Array, positions: npt.NDArray[np.int64]
                      ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
        """The tenant codes of ``positions`` in ``names`` and the distinct codes among them,
        handing out new codes in the order the tenants first appear (as :meth:`add` does)."""
        if self._tenant_names is not names:
            self._tenant_names = names
            self._tenant_lookup = np.full(len(names), -1, np.int32)
        lookup = self._tenant_lookup
        seen = np.zeros(len(names), np.bool_)
        seen[positions] = True
        new = np.flatnonzero(seen & (lookup < 0))
        if len(new):
            first = np.full(len(names), len(positions), np.int64)
            np.minimum.at(first, positions, np.arange(len(positions)))
            for position in new[np.argsort(first[new], kind="stable")].tolist():
                lookup[position] = self._tenants.code_of(names[position].as_py())
        return lookup[positions], lookup[seen]

    def flush(self) -> None:
        """Reduce the batches gathered so far now, and wait for it (:meth:`add` starts a
        reduction once about a million rows are gathered, :meth:`result` at the end)."""
        self._submit()
        self._wait()

    def _submit(self) -> None:
        self._wait()
        if not self._pending and not self._pending_conn:
            return
        table = pa.concat_tables(self._pending) if self._pending else None
        conn = self._pending_conn
        self._pending, self._pending_conn, self._pending_rows = [], [], 0
        if self._worker is None:
            self._reduce(table, conn)
        else:
            self._running = self._worker.submit(self._reduce, table, conn)

    def _wait(self) -> None:
        running, self._running = self._running, None
        if running is not None:
            running.result()

    def _reduce(self, table: pa.Table | None,
                conn: list[tuple[ConnNetwork, npt.NDArray[np.int32]]]) -> None:
        if conn:
            self._reduce_conn(conn)
        if table is not None:
            network = pc.equal(table.column("kind"), NETWORK)
            if pc.any(network).as_py():
                self._reduce_network(table.filter(network))
                table = table.filter(pc.invert(network))
            if table.num_rows:
                self._reduce_sql(table)
        if self._held.full:
            self._release_evidence()
        for name, count in self._appended.items():
            if count >= max(self._compact_rows, self._compacted[name] * self._slack[name]):
                self._compact(name)

    def _reduce_network(self, table: pa.Table | None, *, everything: bool = False) -> None:
        """Network rows through the compiled reduction; what it retires into the
        accumulators, its evidence candidates into ``evidence_acc``."""
        if table is not None and table.num_rows:
            self._reaches_back(int(pc.min(table.column("start")).cast(pa.int64()).as_py()))
            candidates = self._network.add(table)
            if candidates.num_rows and self._params.evidence_per_day > 0:
                self._held.add(candidates)
        self._append_retired(self._retired(everything=everything))

    def _reduce_conn(self, parts: list[tuple[ConnNetwork, npt.NDArray[np.int32]]]) -> None:
        """Conn parts through the compiled reduction (as :meth:`_reduce_network`); only
        the evidence candidates become transfer rows."""
        columns = []
        for part, tenant in parts:
            known = np.append(self._network.country_codes(part.solution.countries), -1)
            columns.append(NetworkColumns(
                tenant=tenant, start=part.start, end=part.end, opened=part.opened,
                bytes_in=part.bytes_in, bytes_out=part.bytes_out, flags=part.flags,
                country=known[part.country].astype(np.int16), addr=part.addr, asn=part.asn))
        network = NetworkColumns.concat(columns)
        self._reaches_back(int(network.start.min()))
        chosen = self._network.reduce(network)
        if len(chosen) and self._params.evidence_per_day > 0:
            bounds = np.cumsum([part.num_rows for part, _ in parts])
            owner = np.searchsorted(bounds, chosen, side="right")
            tables, picked = [], []
            for index in np.unique(owner).tolist():
                part, tenant = parts[index]
                which = np.flatnonzero(owner == index)
                at = chosen[which] - (bounds[index] - part.num_rows)
                tables.append(part.evidence(at, tenant[at]))
                picked.append(which)
            self._held.add(pa.concat_tables(tables).take(
                pa.array(np.argsort(np.concatenate(picked), kind="stable"))))
        self._append_retired(self._retired())

    def _retired(self, *, everything: bool = False) -> Retired:
        return self._network.retired(everything=everything, coded=True,
                                     concern=list(self._params.concern_countries))

    def _release_evidence(self) -> None:
        """Append the held network evidence candidates that can still rank."""
        for candidates in self._held.release():
            self._append("evidence_acc", f"SELECT {EVIDENCE_COLUMNS} FROM rows", candidates)

    def _reaches_back(self, first_us: int) -> None:
        """Note network rows starting at ``first_us`` (the earliest) going to the compiled
        reduction: before the end of a cell it handed back, they may add a second row of
        that cell's key to the cell accumulators."""
        if first_us < self._cells_done_us:
            self._cells_unique = False

    def _append_retired(self, retired: Retired) -> None:
        self._cells_done_us = max(self._cells_done_us, retired.cells_done)
        if self._cells_as_peaks and (retired.cells_needed or
                                     self._held_cells.nbytes > self._held_cells_bytes):
            self._cells_as_peaks = False
            self._cells_unique = False
            self._append_cells(self._held_cells.take())
        hours, wide_hours = _by_width(retired.hours)
        if retired.hours_split or wide_hours.num_rows:
            self._hours_unique = False
        assert retired.hour_totals is not None  # (asked for)
        totals, wide_totals = _by_width(retired.hour_totals)
        if retired.totals_repeat or wide_totals.num_rows:
            self._totals_unique = False
        for name, rows, statement in (
            ("net_totals_acc", totals, f"""
                SELECT tenant, t, {", ".join(f"{part}_lo" for part in TOTAL_SUMS)}, flows,
                       quality_marked, max_duration_us FROM rows"""),
            ("wide_totals_acc", wide_totals, f"""
                SELECT tenant, t, {", ".join(_wide(part) for part in TOTAL_SUMS)}, flows,
                       quality_marked, max_duration_us FROM rows"""),
            ("net_hours_acc", hours, """
                SELECT tenant, t, country, crossing, in_lo, out_lo FROM rows"""),
            ("hours_acc", wide_hours, f"""
                SELECT tenant, t, country, cross_border, {kind_code(NETWORK)}, crossing,
                       {_wide("in")}, {_wide("out")}, starts, quality_marked, NULL,
                       max_duration_us FROM rows"""),
            ("presence_acc", retired.presence, "SELECT tenant, t, addr, asn, country FROM rows"),
        ):
            if rows.num_rows:
                self._append(name, statement, rows)
        if not retired.cell_records:
            return
        if not self._cells_as_peaks:
            self._append_cells(retired.cells)
            return
        self._append("net_peaks_acc", "SELECT tenant, t, in_lo, out_lo FROM rows", retired.peaks)
        self._held_cells.add(retired)

    def _append_cells(self, rows: pa.Table) -> None:
        cells, wide_cells = _by_width(rows)
        for name, part, statement in (
            ("net_cells_acc", cells, "SELECT tenant, cell, in_lo, out_lo FROM rows"),
            ("cells_acc", wide_cells, f"SELECT tenant, cell, {_wide('in')}, {_wide('out')} "
                                      "FROM rows"),
        ):
            if part.num_rows:
                self._append(name, statement, part)

    def _append(self, name: str, query: str, rows: pa.Table) -> None:
        """Append rows the compiled reduction handed back. They are compact already (one
        per key while the key was recent), so only evidence candidates count towards
        compacting."""
        self._con.register("rows", rows)
        try:
            [(count,)] = self._con.execute(f"INSERT INTO {name} {query}").fetchall()
        finally:
            self._con.unregister("rows")
        if name == "evidence_acc":
            self._appended[name] += int(count)

    def _reduce_sql(self, table: pa.Table) -> None:
        # The statements for transfers over several windows see only those (the ones
        # they select anyway), so they do not scan the whole batch.
        start = _micros_of(table.column("start"))
        last = np.maximum(_micros_of(table.column("end")) - 1, start)
        narrow = table.drop_columns(["where", "ref"])
        at = narrow.schema.get_field_index("remote_country")  # the accumulators hold codes
        narrow = narrow.set_column(at, "remote_country",
                                   self._network.code_countries(narrow.column(at)))
        split = {unit: narrow.filter(start // unit != last // unit)
                 for unit in (CELL_US, HOUR_US)}
        hours = (hours_coded(HOURS_SQL[0]), hours_coded(HOURS_SQL[1]))
        for name, (one, several), unit in (("hours_acc", hours, HOUR_US),
                                            ("cells_acc", CELLS_SQL, CELL_US),
                                            ("presence_acc", PRESENCE_SQL, HOUR_US)):
            appended = self._insert(name, one, narrow)
            if split[unit].num_rows:
                appended += self._insert(name, several, split[unit])
            self._appended[name] += appended
            if name == "hours_acc" and appended:
                self._hours_unique = False
            if name == "cells_acc" and appended:  # not expected: only network rows have
                self._cells_unique = False  # cells, and they go to the compiled reduction
        if self._params.evidence_per_day > 0:
            self._evidence(table)

    def _insert(self, name: str, statement: str, transfers: pa.Table) -> int:
        self._con.register("transfers", transfers)
        try:
            [(count,)] = self._con.execute(f"INSERT INTO {name} {statement}").fetchall()
        finally:
            self._con.unregister("transfers")
        return int(count)

    def _evidence(self, table: pa.Table) -> None:
        top = {"top": self._params.evidence_per_day}
        self._con.register("transfers", table)
        try:
            self._con.execute(
                f"CREATE OR REPLACE TEMP TABLE evidence_batch AS {EVIDENCE_SQL}", top)
        finally:
            self._con.unregister("transfers")
        self._replace("evidence_floor", EVIDENCE_FLOOR_SQL, top)
        [(count,)] = self._con.execute(
            f"INSERT INTO evidence_acc SELECT {EVIDENCE_COLUMNS} FROM evidence_batch"
        ).fetchall()
        self._con.execute("DROP TABLE evidence_batch")
        self._appended["evidence_acc"] += int(count)

    def _replace(self, name: str, query: str, params: Mapping[str, object] | None) -> None:
        self._con.execute(f"CREATE OR REPLACE TEMP TABLE {name}_new AS {query}", params)
        self._con.execute(f"DROP TABLE {name}; ALTER TABLE {name}_new RENAME TO {name}")

    def _compact(self, name: str) -> None:
        params = {"top": self._params.evidence_per_day} if name == "evidence_acc" else None
        self._replace(name, COMPACT_SQL[name], params)
        [(count,)] = self._con.execute(f"SELECT count(*) FROM {name}").fetchall()
        if count > (self._compacted[name] + self._appended[name]) // 2:
            self._slack[name] *= 4  # little to gain (keys seldom repeat): compact less
        self._compacted[name], self._appended[name] = int(count), 0

    @property
    def kept(self) -> WindowTables | None:
        """Every tenant's windows and evidence as the snapshots so far left them (what a
        full snapshot now shows, but for transfers added since the last snapshot and a
        horizon moved since then); ``None`` before a first full snapshot."""
        return self._kept

    def forget_before(self, horizon: datetime) -> bool:
        """Forget the windows before ``horizon``, rounded up to a day boundary (UTC): the
        accumulated hours, cells, remote ends and evidence before it are dropped, now and
        from every later snapshot (rows added later for that time included), so memory
        follows the time kept. The windows left equal those of an aggregation of the same
        transfers forgotten up to the same horizon, except that distinct counts from the
        sketches remember the forgotten days: a 7-day window reaching back before the
        horizon counts their addresses, and cumulative counts add only addresses not seen
        before it. The tables kept for incremental snapshots are trimmed, not dropped: the
        next snapshot recomputes, besides what new transfers change, only the 7-day and
        cumulative windows (from the daily bases, every tenant). Returns whether the
        horizon moved (it never moves back)."""
        horizon_us = -(-_micros(horizon) // DAY_US) * DAY_US
        if self._horizon_us is not None and horizon_us <= self._horizon_us:
            return False
        self._horizon_us = horizon_us
        self.flush()
        self._release_evidence()
        self._forget()
        if self._kept is not None:
            # Windows ending by the horizon and evidence before it go; 1-hour and 24-hour
            # windows after it stay as they are; the 7-day windows reaching back before it
            # and every cumulative window are made again by the next snapshot, from the
            # daily bases (days from the horizon on).
            cut = pa.scalar(horizon_us, pa.int64()).cast(TIMESTAMP)
            windows, countries, evidence = (
                self._kept.windows, self._kept.countries, self._kept.evidence)
            self._kept = WindowTables(
                windows.filter(pc.greater(windows.column("window_end"), cut)),
                countries.filter(pc.greater(countries.column("window_end"), cut)),
                evidence.filter(pc.greater_equal(evidence.column("start"), cut)))
            self._reach_us = horizon_us
        return True

    def _forget(self) -> None:
        """Drop what was added before the horizon (rows that arrived after it moved too)."""
        if self._horizon_us is not None:
            kept = self._con.sql("SELECT count(*) FROM duckdb_tables() "
                                 "WHERE table_name = 'day_base_all'").fetchall()[0][0]
            for statement in (*FORGET_SQL, *(FORGET_DAYS_SQL if kept else ())):
                self._con.execute(statement, {"horizon": self._horizon_us})
            self._network.forget_before(self._horizon_us)
            self._held.forget_before(self._horizon_us)
            self._held_cells.forget_before(self._horizon_us)

    def result(self) -> WindowTables:
        """Roll the accumulators up into every span; the aggregator is closed afterwards."""
        try:
            return self._snapshot(changed_only=False, last=True)
        finally:
            self.close()

    def snapshot(self, *, changed_only: bool = False) -> WindowTables:
        """Roll the accumulators up into every span and keep them: more batches may be
        added afterwards, and a later snapshot covers everything added (incremental use,
        e.g. the sidecar). The cost follows the accumulators (tenants x time cells), not
        the transfers added so far. ``changed_only``: only the tenants with transfers
        added since the previous snapshot (all their windows; the others' are unchanged).
        """
        return self._snapshot(changed_only=changed_only, last=False)

    def _snapshot(self, *, changed_only: bool, last: bool) -> WindowTables:
        """:meth:`snapshot`; ``last``: no more batches follow (the sketches are freed as
        soon as their counts are taken).

        A changed-only snapshot (with sketches, after a first snapshot) recomputes only
        what the new transfers can change: from the day ``since`` their earliest start
        falls in, the hours, days and their windows, and the 7-day and cumulative windows
        from the daily bases kept across snapshots; the windows and evidence before
        ``since`` come from the tables kept from the previous snapshots. The snapshot after
        the horizon moved (any snapshot, with sketches or exact counts) does the same for
        every tenant, and makes every 7-day and cumulative window ending after the horizon
        (``reach``) again from the daily bases, which cost days, not hours."""
        self.flush()
        self._reduce_network(None, everything=True)
        self._release_evidence()
        self._forget()
        if last and self._cells_as_peaks:  # no cell can come again: the peaks hold them
            freed = self._held_cells.nbytes
            self._held_cells.clear()
            self._hand_over(freed)
        reach, self._reach_us = self._reach_us, None
        scope = (np.flatnonzero(self._touched).tolist() if changed_only and reach is None
                 else None)
        if scope is not None and len(scope) == self._tenants.count:
            scope = None  # every tenant: no copies to make
        since = None
        if self._kept is not None and (reach is not None or (
                changed_only and self._since_us is not None
                and not self._params.exact_distinct)):
            since = (_NO_HOURS_US if self._since_us is None
                     else self._since_us // DAY_US * DAY_US)
        reach = None if since is None or reach is None else min(reach, since)
        self._touched, self._since_us = np.zeros(0, np.bool_), None
        scoped = scope is not None or since is not None
        if scoped:
            self._copy_scoped(scope, since)
        registrations = pa.table({
            "tenant": pa.array([self._tenants.code_of(t) for t in self._params.registrations],
                               pa.int32()),
            "registered_us": pa.array(
                [_micros(t) for t in self._params.registrations.values()], pa.int64()),
        })
        self._con.register("registrations", registrations)
        self._con.register("tenant_names", self._tenants.names())
        self._con.register("country_names", self._network.country_names())
        counting = self._start_counts(scope, since if reach is None else reach)
        try:
            rate = self._params.sustained_rate_bps * 3600 / 8
            skipped = {"peaks"} if self._cells_unique else set()
            self._con.execute(_scoped(peaks_sql(unique=self._cells_unique, source=CELLS_ALL,
                                                peaks="net_peaks_acc"), scoped))
            if self._hours_unique:
                skipped.add("country_hours")
            [(other_hours,)] = self._con.execute("SELECT count(*) FROM hours_acc").fetchall()
            unique_hours = self._totals_unique and other_hours == 0
            if unique_hours:
                skipped.add("hours")
            for statement in bases_sql(unique_country_hours=self._hours_unique,
                                       unique_hours=unique_hours):
                params: dict[str, object] = {}
                if "$rate" in statement:
                    params["rate_bytes_per_hour"] = rate
                if "$concern" in statement:
                    params["concern"] = self._network.code_countries(
                        pa.array(self._params.concern_countries, pa.string())).to_pylist()
                self._con.execute(_scoped(statement, scoped), params or None)
            [(hours,)] = self._con.execute("SELECT count(*) FROM hour_base").fetchall()
            self.hours_rolled_up = int(hours)
            if last:  # done with: room in memory for what follows
                self._con.execute(_scoped(
                    "DROP TABLE hours_acc; DROP TABLE net_hours_acc; DROP TABLE net_totals_acc; "
                    "DROP TABLE wide_totals_acc; DROP TABLE cells_acc; DROP TABLE net_cells_acc; "
                    "DROP TABLE net_peaks_acc; DROP TABLE peaks",
                    scoped))
                self._held_cells.clear()
            for statement in keep_days_sql(replace=not scoped, since=since is not None,
                                           scoped=scope is not None):
                self._con.execute(statement, {"since": since} if "$since" in statement else None)
            self._con.execute(TENANT_START_SQL)
            # the evidence needs no distinct counts: it is ranked while they are made
            if not last and self._appended["evidence_acc"] >= self._compacted["evidence_acc"]:
                self._compact("evidence_acc")  # held within twice the ranked evidence
            evidence = self._con.sql(
                _scoped(EVIDENCE_OUT_SQL, scoped),
                params={"top": self._params.evidence_per_day}).to_arrow_table()
            if self._distinct_counts(counting, since, reach, scoped):
                skipped.add("distinct")
            self.skipped = frozenset(skipped)
            if last:
                _, freed = self._network.sketch_sizes()
                self._network.drop_sketches()
                self._hand_over(freed)
            first = since if reach is None else reach  # windows ending after it are made
            cut = {"since": -(1 << 63) if first is None else first}
            windows = self._con.sql(WINDOWS_SQL, params=cut).to_arrow_table()
            countries = self._con.sql(COUNTRIES_SQL, params=cut).to_arrow_table()
        finally:
            if counting is not None:
                counting.exception()  # wait (the reduction stays this thread's); raised above
            self._con.unregister("registrations")
            self._con.unregister("tenant_names")
            self._con.unregister("country_names")
        tenants = self._tenants.ranked()
        fresh = WindowTables(
            windows=_named(windows, tenants, None).cast(WINDOWS_SCHEMA),
            countries=_named(countries, tenants, self._network.ranked_countries()
                             ).cast(COUNTRIES_SCHEMA),
            evidence=_named(evidence, tenants, None).cast(EVIDENCE_SCHEMA))
        return self._keep(fresh, scope, since, reach)

    def _hand_over(self, freed: int) -> None:
        """Add ``freed`` bytes (compiled memory let go for good) to DuckDB's limit when
        one was set: the roll-up at the end of a run then spills less, within the memory
        the run held while streaming."""
        if self._params.memory_limit is None or freed <= 0:
            return
        [(value,)] = self._con.execute(
            "SELECT current_setting('memory_limit')").fetchall()
        limit = _memory_bytes(str(value))
        if limit is None:
            return
        self._con.execute(f"SET memory_limit = '{limit + freed}B'")
        self.memory_handed_over += freed

    def _copy_scoped(self, scope: list[int] | None, since: int | None) -> None:
        """``<accumulator>_scope``: the rows of the tenants in scope, from ``since`` on."""
        self._con.execute("CREATE OR REPLACE TEMP TABLE scope_tenants (tenant INTEGER)")
        if scope is not None:
            self._con.register("scope", pa.table({"tenant": pa.array(scope, pa.int32())}))
            try:
                self._con.execute("INSERT INTO scope_tenants SELECT tenant FROM scope")
            finally:
                self._con.unregister("scope")
        for name, time in _SCOPED.items():
            where = [condition for condition, on in (
                ("tenant IN (SELECT tenant FROM scope_tenants)", scope is not None),
                (f"{time} >= {since}", since is not None and bool(time))) if on]
            self._con.execute(f"CREATE OR REPLACE TEMP TABLE {name}_scope AS "
                              f"SELECT * FROM {name} WHERE {' AND '.join(where) or 'TRUE'}")

    def _keep(self, fresh: WindowTables, scope: list[int] | None, since: int | None,
              reach: int | None) -> WindowTables:
        """Merge a snapshot into the tables kept from the previous ones and return what a
        snapshot of ``scope`` shows: every window and evidence row of the tenants in it
        (``None``: all). ``fresh`` holds their rows from day ``since`` on (windows ending
        after it, evidence starting at or after it; with ``reach``, the 7-day and
        cumulative windows ending after that), or (``since`` ``None``) all of them."""
        if scope is None and since is None:
            self._kept = fresh
            return fresh
        if self._kept is None:  # nothing complete to merge into until a full snapshot
            return fresh
        tenants = (pa.array(self._tenants.names_of(scope), pa.string())
                   if scope is not None else None)
        cut = None if since is None else pa.scalar(since, pa.int64()).cast(TIMESTAMP)
        merged = []
        for name, column, groups in (("windows", "window_end", ["tenant", "span"]),
                                     ("countries", "window_end", ["tenant", "span"]),
                                     ("evidence", "start", ["tenant"])):
            old: pa.Table = getattr(self._kept, name)
            replaced = pa.array(np.ones(old.num_rows, np.bool_))
            if tenants is not None:
                replaced = pc.is_in(old.column("tenant"), value_set=tenants)
            if cut is not None:
                newer = (pc.greater(old.column(column), cut) if column == "window_end"
                         else pc.greater_equal(old.column(column), cut))
                if reach is not None and column == "window_end":
                    newer = pc.or_(newer, pc.and_(
                        pc.is_in(old.column("span"), value_set=_DAILY_SPANS),
                        pc.greater(old.column(column),
                                   pa.scalar(reach, pa.int64()).cast(TIMESTAMP))))
                replaced = pc.and_(replaced, newer)
            # what stays of a group (tenant, span) comes before its fresh rows
            merged.append(_interleave(old.filter(pc.invert(replaced)), getattr(fresh, name),
                                      groups))
        self._kept = WindowTables(*merged)
        if tenants is None:
            return self._kept
        return WindowTables(*(t.filter(pc.is_in(t.column("tenant"), value_set=tenants))
                              for t in merged))

    def _start_counts(self, scope: list[int] | None,
                      since_us: int | None) -> Future[DistinctCounts] | None:
        """The sketches' distinct counts of the tenants in scope from ``since_us`` on
        (``None`` with exact counts): made in the worker thread when there is one, beside
        the statements that run meanwhile (compiled code and DuckDB both release the GIL,
        and each uses both cores only part of the time)."""
        if self._params.exact_distinct:
            return None
        if self._worker is not None:
            return self._worker.submit(self._network.distinct_counts, scope, since_us)
        made: Future[DistinctCounts] = Future()
        made.set_result(self._network.distinct_counts(scope, since_us))
        return made

    def _distinct_counts(self, counting: Future[DistinctCounts] | None, since: int | None,
                         reach: int | None, scoped: bool) -> bool:
        """``distinct_sums``: the distinct counts of the tenants in scope (from ``since``
        on, 7-day windows ending after ``reach`` if given; cumulative rows of every day),
        from the sketches (``counting``, see :meth:`_start_counts`) or
        (``exact_distinct``) from the remote ends per hour. Returns whether the counts came
        one row per key (no sums to make)."""
        if counting is None:
            for statement in EXACT_DISTINCT_SQL:
                self._con.execute(_scoped(statement, scoped))
            self._con.execute(DISTINCT_SUMS_SQL)
            return False
        made = counting.result()
        counts = made.rows
        at = counts.schema.get_field_index("country")  # the codes, as the accumulators'
        counts = counts.set_column(at, "country", pa.chunked_array(
            [chunk.indices for chunk in counts.column(at).chunks], pa.int16()))
        if reach is not None and since is not None and reach < since:
            # hours and days between reach and since: not recomputed, not needed
            counts = counts.filter(pc.or_(
                pc.greater_equal(counts.column("t"), since),
                pc.is_in(counts.column("span"), value_set=_DAILY_SPANS)))
        self._con.register("distinct_counts", counts)
        try:
            self._con.execute(DISTINCT_ROWS_SQL if made.unique else DISTINCT_SUMS_SQL)
        finally:
            self._con.unregister("distinct_counts")
        return made.unique

    def close(self) -> None:
        """Drop the accumulators (and close an own connection)."""
        self._pending, self._pending_conn, self._pending_rows = [], [], 0
        self._held.clear()
        self._held_cells.clear()
        running, self._running = self._running, None
        if running is not None:
            running.exception()  # wait; the error, if any, was the caller's to see
        if self._worker is not None:
            self._worker.shutdown()
        if self._own:
            self._con.close()
        else:
            if self.memory_handed_over and self._params.memory_limit is not None:
                self._con.execute(  # as set in __init__
                    f"SET memory_limit = '{_plain(self._params.memory_limit)}'")
            self._con.execute("; ".join(
                f"DROP TABLE IF EXISTS {name}; DROP TABLE IF EXISTS {name}_new"
                for name in (*COMPACT_SQL, "net_hours_acc", "net_totals_acc", "wide_totals_acc",
                             "net_cells_acc", "net_peaks_acc", *(f"{n}_scope" for n in _SCOPED),
                             "evidence_floor",
                             "evidence_batch", "day_presence", "distinct_counts",
                             "distinct_sums", "scope_tenants", "day_base_all",
                             "country_day_all")) + "; DROP VIEW IF EXISTS day_base_win; "
                "DROP VIEW IF EXISTS country_day_win")


def compute_windows(
    transfers: pa.Table | Iterable[pa.RecordBatch],
    params: WindowParams | None = None,
    *,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> WindowTables:
    """Aggregate ``transfers`` (a table or batches, streamed) into every span (module doc).

    Raises pyarrow's ``ArrowInvalid`` (or ``KeyError`` for a missing column) for input that
    does not fit :data:`TRANSFERS_SCHEMA`.
    """
    aggregator = WindowAggregator(params, connection=connection)
    try:
        batches = (transfers.to_batches(max_chunksize=1 << 20)
                   if isinstance(transfers, pa.Table) else transfers)
        for batch in batches:
            aggregator.add(batch)
    except BaseException:
        aggregator.close()
        raise
    return aggregator.result()


def _named(table: pa.Table, tenants: pa.Array, countries: pa.Array | None) -> pa.Table:
    """A result of the final statements with names for numbers: ``tenant`` (and
    ``country``) ranks -> their names in ``tenants`` (``countries``), ``span`` codes ->
    :data:`SPANS`, window starts and ends in microseconds -> timestamps."""
    columns = {"tenant": tenants}
    if countries is not None:
        columns["country"] = countries
    for name, names in columns.items():
        table = table.set_column(table.schema.get_field_index(name), name,
                                 names.take(table.column(name)))
    if "span" in table.schema.names:
        table = table.set_column(table.schema.get_field_index("span"), "span",
                                 _SPAN_NAMES.take(table.column("span")))
        for name in ("window_start", "window_end"):
            table = table.set_column(table.schema.get_field_index(name), name,
                                     table.column(name).cast(TIMESTAMP))
    return table


def _interleave(old: pa.Table, new: pa.Table, keys: list[str]) -> pa.Table:
    """``old`` and ``new``, each in order, as one table in order, given that in each group
    of equal ``keys`` (the leading sort keys) the rows of ``old`` come before those of
    ``new``: the groups are merged by their keys, their rows taken as they are (cheaper
    than sorting every row again)."""
    if old.num_rows == 0 or new.num_rows == 0:
        return new if old.num_rows == 0 else old
    pieces = sorted([(*key, start, end) for key, start, end in _runs(old, keys, 0)]
                    + [(*key, start, end) for key, start, end in _runs(new, keys, old.num_rows)])
    starts = np.array([piece[-2] for piece in pieces], np.int64)
    lengths = np.array([piece[-1] for piece in pieces], np.int64) - starts
    placed = np.cumsum(lengths) - lengths
    rows = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - placed, lengths)
    return pa.concat_tables([old, new]).take(pa.array(rows))


def _runs(table: pa.Table, keys: list[str],
          offset: int) -> list[tuple[tuple[object, ...], int, int]]:
    """The runs of equal ``keys`` in ``table``: (keys, first row, end row), rows counted
    from ``offset``."""
    n = table.num_rows
    change = np.zeros(n, np.bool_)
    change[0] = True
    for key in keys:
        column = table.column(key)
        change[1:] |= np.asarray(pc.not_equal(column.slice(1), column.slice(0, n - 1))
                                 .to_numpy(zero_copy_only=False), np.bool_)
    starts = np.flatnonzero(change)
    values = table.select(keys).take(pa.array(starts)).to_pylist()
    ends = [*starts[1:].tolist(), n]
    return [(tuple(v[k] for k in keys), offset + int(start), offset + end)
            for v, start, end in zip(values, starts.tolist(), ends, strict=True)]


def _by_width(rows: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Retired ``rows`` whose 128-bit sums fit 64 bits (no ``*_hi`` half set), and the
    others."""
    wide = pc.or_(pc.not_equal(rows.column("in_hi"), 0), pc.not_equal(rows.column("out_hi"), 0))
    if not pc.any(wide).as_py():
        return rows, rows.slice(0, 0)
    return rows.filter(pc.invert(wide)), rows.filter(wide)


def _wide(prefix: str) -> str:
    """SQL for the 128-bit sum whose halves are ``<prefix>_lo`` and ``<prefix>_hi``."""
    return f"{prefix}_lo::HUGEINT + {prefix}_hi::HUGEINT * {1 << 64}"


def _scoped(statement: str, scoped: bool) -> str:
    """``statement`` reading the ``<accumulator>_scope`` copies when ``scoped``."""
    return _SCOPED_NAMES.sub(lambda m: f"{m[0]}_scope", statement) if scoped else statement


def _conform(transfers: pa.RecordBatch | pa.Table) -> pa.Table:
    table = (pa.Table.from_batches([transfers]) if isinstance(transfers, pa.RecordBatch)
             else transfers)
    return table.select(TRANSFERS_SCHEMA.names).cast(TRANSFERS_SCHEMA)


def _micros_of(times: pa.ChunkedArray) -> np.ndarray:
    """Microseconds since the epoch of a ``timestamp[us]`` column (no copy per chunk)."""
    if times.num_chunks == 0:
        return np.empty(0, np.int64)
    return np.concatenate([chunk.view(pa.int64()).to_numpy(zero_copy_only=False)
                           for chunk in times.chunks])


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"registration time must be timezone-aware, got {moment}")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


#: DuckDB's rendering of a memory limit: ``953.6 MiB``, ``1.5 GiB``, ``512 bytes``.
_MEMORY = re.compile(r"([0-9]+(?:\.[0-9]+)?) ?(bytes|KiB|MiB|GiB|TiB|PiB)")
_UNITS = {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
          "PiB": 1 << 50}


def _memory_bytes(rendered: str) -> int | None:
    """Bytes of a limit as DuckDB renders it (to a tenth of its unit), else ``None``."""
    match = _MEMORY.fullmatch(rendered.strip())
    if match is None:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def _plain(value: str) -> str:
    if "'" in value:
        raise ValueError(f"quote in setting value: {value!r}")
    return value
