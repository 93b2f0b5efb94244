"""Network transfers reduced in compiled code before the window SQL.

Network flows are nearly all the rows a window run sees. :class:`NetworkReduction` hands
them, as flat integer columns, to :class:`egress._wincore.NetworkReducer`, which computes
exactly what the per-batch statements of :mod:`egress.windows_sql` compute for them
(:data:`~egress.windows_sql.HOURS_SQL`, :data:`~egress.windows_sql.CELLS_SQL`,
:data:`~egress.windows_sql.PRESENCE_SQL`: same keys, same cumulative-floor apportioning) and
keeps the accumulators in memory while their time is recent. Entries older than a horizon
(2 h behind the latest hour seen) are handed back as Arrow tables in the accumulators'
layout, to be appended to them; a key seen again later starts a new entry, which the SQL
sums or de-duplicates like any other appended row. Evidence candidates are chosen in the
same pass (a row whose size reaches the ``top``-th largest of its tenant and day so far,
less those that ``top`` larger ones outrank by the batch's end), so only those rows reach
the evidence ranking.

With ``sketches`` the remote ends go on into distinct-count sketches kept in compiled
code (``csrc/wincore/distinct.h``): per tenant, and per tenant and remote country, one
sketch of addresses (overall also one of ASNs) per hour and per day. A sketch is the set
of the values' 32-bit fingerprints up to :data:`EXACT_UP_TO` of them (exact but for two
fingerprints colliding: probability about n^2 / 2^33, 7e-5 for 768 values) and a
HyperLogLog of 4,096 one-byte registers beyond (standard error about 1.6 %, Ertl's
improved estimator), so memory (at most 4 KB a sketch) follows
tenants x countries x retained hours and days however many addresses appear, and a
snapshot reads counts instead of de-duplicating every remote end again. Hours are kept
``late_hours`` behind the latest hour a transfer started in, days 8 more days before the
day that reaches (7-day windows reach back 7); older ones become final counts. A remote
end arriving later than that for its time is counted in a fresh sketch whose counts are
added, so it may count an address twice; transfers that end in time order, no longer
than ``late_hours`` apart, are counted as if nothing were let go.
:meth:`NetworkReduction.distinct_counts` hands the counts out in the layout of
:data:`~egress.windows_sql.EXACT_DISTINCT_SQL`'s table.

The remote address is kept as a 64-bit hash (:func:`egress._wincore.hash_strings`), as the
SQL keeps DuckDB's ``hash``: distinct counts are per tenant, and two of a tenant's ``n``
addresses collide with probability about ``n^2 / 2^65``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from egress._wincore import NetworkReducer, hash_strings
from egress.windows_sql import CELL_US, DAY_US

#: Distinct values a sketch counts exactly (a set); beyond, a HyperLogLog estimate.
EXACT_UP_TO = 768
_SPANS = ("1h", "24h", "7d", "cumulative")

#: Flag bits of a row, as ``wincore.c`` reads them.
_CROSSING, _CROSS_BORDER, _QUALITY, _REMOTE, _ASN = 1, 2, 4, 8, 16
#: The transfer columns the reduction reads.
_USED = ("tenant", "start", "end", "opened", "bytes_in", "bytes_out", "direction",
         "remote_addr", "remote_asn", "remote_country", "cross_border", "quality")

_HOURS = np.dtype([
    ("tenant", "<i4"), ("country", "<i2"), ("cross_border", "u1"), ("crossing", "u1"),
    ("t", "<i8"), ("pad", "<i8"), ("in_lo", "<u8"), ("in_hi", "<u8"), ("out_lo", "<u8"),
    ("out_hi", "<u8"), ("starts", "<i8"), ("quality_marked", "<i8"), ("max_duration_us", "<i8"),
])
#: The fields of ``_HOURS`` as ``take(..., columns=True)`` hands them out, one by one.
_HOURS_COLUMNS = ("tenant", "country", "cross_border", "crossing", "t", "in_lo", "in_hi",
                  "out_lo", "out_hi", "starts", "quality_marked", "max_duration_us")
#: The boundary-crossing byte sums of the hours per tenant and hour (``_lo``/``_hi``
#: halves of each): all, cross-border, to a country of concern.
TOTAL_SUMS = ("in", "out", "cross_border_in", "cross_border_out", "concern_in", "concern_out")
#: Those sums' columns as ``take(..., concern=...)`` hands them out, one by one.
_TOTALS = (("tenant", np.int32), ("t", np.int64),
           *((f"{name}_{half}", np.uint64) for name in TOTAL_SUMS for half in ("lo", "hi")),
           ("flows", np.int64), ("quality_marked", np.int64), ("max_duration_us", np.int64))
_CELLS = np.dtype([
    ("tenant", "<i4"), ("pad", "<i4"), ("cell", "<i8"), ("in_lo", "<u8"), ("in_hi", "<u8"),
    ("out_lo", "<u8"), ("out_hi", "<u8"),
])
_DISTINCT = np.dtype([
    ("tenant", "<i4"), ("country", "<i2"), ("span", "u1"), ("flags", "u1"), ("t", "<i8"),
    ("addrs", "<i8"), ("asns", "<i8"),
])
#: The fields of ``_DISTINCT`` as ``distinct(..., columns=True)`` hands them out (and the
#: flags, the same on every row, once).
_DISTINCT_COLUMNS = ("tenant", "country", "span", "t", "addrs", "asns")
#: ``flags`` bit of a distinct-count row: rows of one key may repeat (``distinct.h``).
_REPEATS = 1
_PRESENCE = np.dtype([
    ("tenant", "<i4"), ("country", "<i2"), ("has_asn", "u1"), ("pad", "u1"), ("t", "<i8"),
    ("addr", "<u8"), ("asn", "<i8"),
])


@dataclass(frozen=True, slots=True)
class Retired:
    """Accumulator rows handed back: ``hours`` and :attr:`cells` with 128-bit byte sums as
    ``*_lo``/``*_hi`` halves, ``presence`` as in ``presence_acc``. ``cell_records``: the
    cells as records (``_CELLS``), ``packed_cells`` as :class:`HeldCells` packs them (None:
    some do not fit); ``peaks``: of each tenant and hour of those, the most bytes in and
    out of one cell (``tenant``, ``t``, ``in_*``, ``out_*``), which stand for the cells
    unless ``cells_needed``: a cell handed back before may come again (its sums then add
    up, so maxima do not), or a peak does not fit 64 bits; ``cells_done``: the end of the
    latest cell handed back so far; ``hours_split``: two boundary-crossing ``hours`` rows
    handed back so far may share tenant, hour and country; ``hour_totals``: the ``hours``
    summed per tenant and hour as ``hour_base`` sums them (:data:`TOTAL_SUMS` as 128-bit
    halves), when asked for with the countries of concern (else None); ``totals_repeat``:
    a tenant and hour of those may have been handed back before."""

    hours: pa.Table
    cell_records: bytes
    packed_cells: bytes | None
    presence: pa.Table
    peaks: pa.Table
    cells_needed: bool
    cells_done: int
    hours_split: bool = True
    hour_totals: pa.Table | None = None
    totals_repeat: bool = True

    @property
    def cells(self) -> pa.Table:
        """The cells: ``tenant``, ``cell``, ``in_lo``, ``in_hi``, ``out_lo``, ``out_hi``."""
        return cell_table(self.cell_records)


def cell_table(records: bytes, time: str = "cell") -> pa.Table:
    """Packed cells records (``_CELLS``) as a table, the time column named ``time``."""
    c = np.frombuffer(records, _CELLS)
    return pa.table({"tenant": c["tenant"], time: c["cell"],
                     **{name: c[name] for name in ("in_lo", "in_hi", "out_lo", "out_hi")}})


@dataclass(frozen=True, slots=True)
class DistinctCounts:
    """Rows of distinct counts (:meth:`NetworkReduction.distinct_counts`); ``unique``: one
    row per ``(tenant, country, span, t)`` (else rows of one key add up)."""

    rows: pa.Table
    unique: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkColumns:
    """Network transfers as the reduction reads them, one entry per transfer: ``tenant``
    codes, times in microseconds, volumes, :func:`network_flags`, remote ``country``
    codes (-1 none), 64-bit hashes of the remote address (``addr``) and AS numbers."""

    tenant: npt.NDArray[np.int32]
    start: npt.NDArray[np.int64]
    end: npt.NDArray[np.int64]
    opened: npt.NDArray[np.int64]
    bytes_in: npt.NDArray[np.uint64]
    bytes_out: npt.NDArray[np.uint64]
    flags: npt.NDArray[np.uint8]
    country: npt.NDArray[np.int16]
    addr: npt.NDArray[np.uint64]
    asn: npt.NDArray[np.int64]

    def arrays(self) -> tuple[npt.NDArray[Any], ...]:
        """The columns in the order :meth:`egress._wincore.NetworkReducer.add` takes."""
        return (self.tenant, self.start, self.end, self.opened, self.bytes_in,
                self.bytes_out, self.flags, self.country, self.addr, self.asn)

    @staticmethod
    def concat(parts: list[NetworkColumns]) -> NetworkColumns:
        """``parts`` one after the other."""
        if len(parts) == 1:
            return parts[0]
        names = ("tenant", "start", "end", "opened", "bytes_in", "bytes_out", "flags",
                 "country", "addr", "asn")
        return NetworkColumns(**{name: np.concatenate([getattr(p, name) for p in parts])
                                 for name in names})


class EvidenceHold:
    """Network evidence candidates held back, then let through only if they can still rank.

    The reduction chooses a candidate when it reaches the ``top``-th largest size
    (``greatest(bytes_in, bytes_out)``, null as 0) of its tenant and day *so far*; most are
    outranked soon after. Held back until ``rows`` gather, a candidate is let through
    (:meth:`release`) only if no ``top`` candidates of its tenant and day, held or let
    through before, are strictly larger: one that is has at least ``top`` rows ranked
    before it under any order of ties, so the evidence ranking
    (:data:`~egress.windows_sql.EVIDENCE_RESULT_SQL`) never keeps it. Fewer, later rows
    reach ``evidence_acc``; the evidence is the same. Not thread-safe.
    """

    def __init__(self, top: int, *, rows: int) -> None:
        self._top, self._rows = top, rows
        self._held: list[pa.Table] = []
        self._keys: list[tuple[npt.NDArray[np.int32], npt.NDArray[np.int64],
                               npt.NDArray[np.uint64]]] = []
        self._count = 0
        #: Of each tenant and day, the ``top`` largest sizes let through so far.
        self._best = (np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.uint64))

    def add(self, candidates: pa.Table) -> None:
        """Hold ``candidates`` (network rows with ``tenant`` codes, ``start``, ``bytes_in``
        and ``bytes_out``)."""
        if candidates.num_rows == 0:
            return
        start = pc.fill_null(candidates.column("start").cast(pa.int64()), 0).to_numpy()
        size = np.maximum(*(pc.fill_null(candidates.column(name), 0).to_numpy().astype(
            np.uint64, copy=False) for name in ("bytes_in", "bytes_out")))
        self._held.append(candidates)
        self._keys.append((candidates.column("tenant").to_numpy().astype(np.int32, copy=False),
                           start // DAY_US, size))
        self._count += candidates.num_rows

    @property
    def full(self) -> bool:
        """Whether ``rows`` candidates are held."""
        return self._count >= self._rows

    def release(self) -> list[pa.Table]:
        """The held candidates that can still rank (in the order held), as few tables as
        their schemas allow (each an append: one of many small tables costs a statement
        each); none are held afterwards."""
        if not self._held:
            return []
        parts = [self._best, *self._keys]
        tenant, day, size = (np.concatenate([part[i] for part in parts]) for i in range(3))
        order = _by_group_largest_first(tenant, day, size)
        t, d, z = tenant[order], day[order], size[order]
        first = np.ones(len(order), np.bool_)
        first[1:] = (t[1:] != t[:-1]) | (d[1:] != d[:-1])
        starts = np.flatnonzero(first)
        group = np.cumsum(first) - 1
        rank = np.arange(len(order)) - starts[group]
        ends = np.append(starts[1:], len(order))
        floor = np.where(ends - starts >= self._top,
                         z[np.minimum(starts + self._top - 1, len(order) - 1)], np.uint64(0))
        keep = np.empty(len(order), np.bool_)
        keep[order] = z >= floor[group]
        best = order[rank < self._top]
        self._best = (tenant[best], day[best], size[best])
        runs: list[list[pa.Table]] = []  # of tables of one schema, one after the other
        at = len(parts[0][0])
        for table in self._held:
            mask = keep[at:at + table.num_rows]
            at += table.num_rows
            kept = table if mask.all() else table.filter(pa.array(mask))
            if not kept.num_rows:
                continue
            if runs and runs[-1][0].schema.equals(kept.schema):
                runs[-1].append(kept)
            else:
                runs.append([kept])
        self._held, self._keys, self._count = [], [], 0
        return [pa.concat_tables(run) for run in runs]

    def forget_before(self, horizon_us: int) -> None:
        """Forget the sizes let through of days before ``horizon_us`` (a day boundary): a
        candidate of those days is let through again (the memory follows the days kept)."""
        tenant, day, size = self._best
        keep = day >= horizon_us // DAY_US
        self._best = (tenant[keep], day[keep], size[keep])

    def clear(self) -> None:
        """Drop the held candidates."""
        self._held, self._keys, self._count = [], [], 0


def _by_group_largest_first(tenant: npt.NDArray[np.int32], day: npt.NDArray[np.int64],
                            size: npt.NDArray[np.uint64]) -> npt.NDArray[np.intp]:
    """An order of the rows by tenant, then day, then size from the largest (ties in any
    order): one sort of a packed key (tenant, day, the size's rank) when it fits 63 bits,
    as it does but for extreme codes or days; three otherwise."""
    n = len(size)
    if n == 0:
        return np.zeros(0, np.intp)
    t = tenant.astype(np.int64) - int(tenant.min())
    d = day - int(day.min())
    t_bits, d_bits, r_bits = (int(t.max()).bit_length(), int(d.max()).bit_length(),
                              n.bit_length())
    if t_bits + d_bits + r_bits > 63:
        return np.lexsort((~size, day, tenant))
    rank = np.empty(n, np.int64)
    rank[np.argsort(~size)] = np.arange(n)
    return np.argsort((t << (d_bits + r_bits)) | (d << r_bits) | rank)


class HeldCells:
    """Cells handed back (:class:`Retired`), held in case their peaks stop standing for
    them: packed to 24 bytes a cell (``tenant``, cell number, bytes in, bytes out) when
    their sums fit 64 bits and the cell numbers 32 (as the reduction packs them), else as
    records. Not thread-safe."""

    PACKED = np.dtype([("tenant", "<i4"), ("cell", "<i4"), ("in", "<u8"), ("out", "<u8")])

    def __init__(self) -> None:
        self._packed: list[npt.NDArray[np.void]] = []
        self._records: list[npt.NDArray[np.void]] = []

    def add(self, retired: Retired) -> None:
        if retired.packed_cells is not None:
            self._packed.append(np.frombuffer(retired.packed_cells, self.PACKED))
        else:
            self._records.append(np.frombuffer(retired.cell_records, _CELLS))

    @property
    def nbytes(self) -> int:
        """Bytes of the cells held."""
        return sum(part.nbytes for part in (*self._packed, *self._records))

    def take(self) -> pa.Table:
        """The cells held (as :func:`cell_table`); none are held afterwards."""
        p = np.concatenate([np.zeros(0, self.PACKED), *self._packed])
        zero = np.zeros(len(p), np.uint64)
        packed = pa.table({"tenant": p["tenant"], "cell": p["cell"].astype(np.int64) * CELL_US,
                           "in_lo": p["in"], "in_hi": zero, "out_lo": p["out"],
                           "out_hi": zero})
        records = cell_table(np.concatenate([np.zeros(0, _CELLS), *self._records]).tobytes())
        self.clear()
        return pa.concat_tables([packed, records])

    def forget_before(self, horizon_us: int) -> None:
        """Drop the cells before ``horizon_us``."""
        self._packed = [p[p["cell"].astype(np.int64) * CELL_US >= horizon_us]
                        for p in self._packed]
        self._records = [r[r["cell"] >= horizon_us] for r in self._records]

    def clear(self) -> None:
        self._packed, self._records = [], []


def network_flags(*, internal: npt.NDArray[np.bool_], has_remote: npt.NDArray[np.bool_],
                  cross_border: npt.NDArray[np.bool_], quality: npt.NDArray[np.bool_],
                  has_asn: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint8]:
    """The flag bits of each transfer as ``wincore.c`` reads them. ``crossing``: the bytes
    cross the tenant's boundary (all but east-west traffic without a remote end)."""
    return (
        (~(internal & ~has_remote)) * _CROSSING
        | cross_border * _CROSS_BORDER
        | quality * _QUALITY
        | has_remote * _REMOTE
        | has_asn * _ASN
    ).astype(np.uint8)


class TenantCodes:
    """Small integer codes for tenant ids, handed out as tenants appear (the window
    accumulators key on these; the results are mapped back to the ids)."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}

    def encode(self, tenants: pa.ChunkedArray | pa.Array) -> pa.Array:
        """The code of each tenant id (``int32``; null stays null)."""
        codes = _codes(tenants, self._codes, np.int32)
        return pa.array(codes, mask=codes < 0)

    @property
    def count(self) -> int:
        """How many tenants have a code."""
        return len(self._codes)

    def code_of(self, tenant: str) -> int:
        return self._codes.setdefault(tenant, len(self._codes))

    def names_of(self, codes: list[int]) -> list[str]:
        """The tenant ids of ``codes``."""
        names = list(self._codes)
        return [names[code] for code in codes]

    def names(self) -> pa.Table:
        """``tenant`` (each code), ``name`` (its id) and ``name_rank`` (the id's place
        among the ids in order): the ``tenant_names`` the result statements read."""
        names = list(self._codes)
        return pa.table({"tenant": pa.array(np.arange(len(names), dtype=np.int32)),
                         "name": pa.array(names, pa.string()),
                         "name_rank": pa.array(name_ranks(names))})

    def ranked(self) -> pa.Array:
        """The tenant ids in order (the id of each ``name_rank``)."""
        return pa.array(sorted(self._codes), pa.string())


def name_ranks(names: list[str]) -> npt.NDArray[np.int32]:
    """The place of each of ``names`` (distinct) among them in order."""
    rank = np.empty(len(names), np.int32)
    rank[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
    return rank


class NetworkReduction:
    """Compiled pre-reduction of network transfers (module doc); not thread-safe.

    Rows come with their ``tenant`` as :class:`TenantCodes` codes (``int32``), and
    the accumulator rows handed back carry the same codes."""

    def __init__(self, evidence_top: int, *, horizon_s: int = 7200,
                 sketches: bool = False, late_hours: int = 6) -> None:
        if late_hours < 0:
            raise ValueError(f"late_hours must not be negative, got {late_hours}")
        self._reducer = NetworkReducer(evidence_top, horizon_s,
                                       sketch_keep_hours=late_hours if sketches else -1)
        self.sketches = sketches
        self._countries: dict[str, int] = {}

    def add(self, network: pa.Table) -> pa.Table:
        """Reduce ``network`` (network rows of the transfers schema); return its evidence
        candidates (rows of ``network``)."""
        if network.num_rows == 0:
            return network
        chosen = self.reduce(self.columns(network))
        return network.take(pa.array(chosen))

    def columns(self, network: pa.Table) -> NetworkColumns:
        """The columns the reduction reads of ``network`` (network rows of the transfers
        schema, ``tenant`` as codes)."""
        n = network.num_rows
        table = network.select(_USED).combine_chunks()
        start = _micros(table.column("start"))
        end = _micros(table.column("end"))
        opened_col = table.column("opened")
        opened = np.where(present(opened_col), _micros(opened_col, fill=0), start)
        remote = table.column("remote_addr").chunk(0) if n else pa.array([], pa.string())
        has_remote = present(remote)
        internal = _true(pc.equal(table.column("direction"), "internal"))
        asn_col = table.column("remote_asn")
        return NetworkColumns(
            tenant=np.ascontiguousarray(table.column("tenant").to_numpy(), np.int32),
            start=start, end=end, opened=opened,
            bytes_in=_uint64(table.column("bytes_in")),
            bytes_out=_uint64(table.column("bytes_out")),
            flags=network_flags(internal=internal, has_remote=has_remote,
                                cross_border=_true(table.column("cross_border")),
                                quality=_true(table.column("quality")),
                                has_asn=present(asn_col)),
            country=_codes(table.column("remote_country"), self._countries,
                           np.int16).astype(np.int16, copy=False),
            addr=string_hashes(remote),
            asn=pc.fill_null(asn_col, 0).to_numpy().astype(np.int64, copy=False),
        )

    def code_countries(self, column: pa.ChunkedArray | pa.Array) -> pa.Array:
        """The reduction's code of each country of a string column (``int16``, null stays
        null; new countries get codes)."""
        if isinstance(column, pa.Array):
            column = pa.chunked_array([column], column.type)
        codes = _codes(column, self._countries, np.int16)
        return pa.array(codes, mask=codes < 0)

    def country_names(self) -> pa.Table:
        """``code`` (each country code) and ``name_rank`` (the country's place among the
        names in order): the ``country_names`` the result statements read."""
        names = list(self._countries)
        return pa.table({"code": pa.array(np.arange(len(names), dtype=np.int16)),
                         "name_rank": pa.array(name_ranks(names).astype(np.int16))})

    def ranked_countries(self) -> pa.Array:
        """The country names in order (the name of each ``name_rank``)."""
        return pa.array(sorted(self._countries), pa.string())

    def country_codes(self, names: pa.Array) -> npt.NDArray[np.int16]:
        """The reduction's code of each country name (given codes stay, new ones are
        added): index it with a position in ``names`` to code a country column."""
        known = self._countries
        return np.array([known.setdefault(name, len(known)) for name in names.to_pylist()],
                        np.int16)

    def reduce(self, columns: NetworkColumns) -> npt.NDArray[np.int64]:
        """Reduce ``columns``; return the positions of its evidence candidates (less those
        already outranked for good by the batch's end: ``top`` strictly larger ones)."""
        # the reducer takes the rows by hour, then tenant (a stable radix sort)
        return np.frombuffer(self._reducer.add(*columns.arrays(), True), np.int64)

    def retired(self, *, everything: bool = False, coded: bool = False,
                concern: list[str] | None = None) -> Retired:
        """The accumulator rows retired so far (``everything``: retire all first), with
        remote countries by name (``coded``: by the reduction's code, ``int16``);
        ``concern``: the countries of concern, for the hours' totals."""
        totals, repeats = None, True
        if concern is None:
            hours, cells, presence, peaks, late, done, packed, split = self._reducer.take(
                everything, True, True)
        else:
            hours, cells, presence, peaks, late, done, packed, split, totals, repeats = (
                self._reducer.take(everything, True, True, self._concern_flags(concern)))
        countries = pa.array(list(self._countries), pa.string())
        k = np.frombuffer(peaks, _CELLS)
        # the hours come as columns (arrays over their bytes, not copies); the others few
        h = {name: np.frombuffer(column, _HOURS[name])
             for name, column in zip(_HOURS_COLUMNS, hours, strict=True)}
        p = np.frombuffer(presence, _PRESENCE)
        return Retired(
            hours=pa.table({
                "tenant": h["tenant"],
                "t": h["t"],
                "country": _country(countries, h["country"], coded),
                "cross_border": h["cross_border"].view(np.bool_),
                "crossing": h["crossing"].view(np.bool_),
                **{name: h[name] for name in (
                    "in_lo", "in_hi", "out_lo", "out_hi", "starts", "quality_marked",
                    "max_duration_us")},
            }),
            cell_records=cells, packed_cells=packed,
            presence=pa.table({
                "tenant": p["tenant"], "t": p["t"], "addr": p["addr"],
                "asn": pa.array(p["asn"], mask=p["has_asn"] == 0),
                "country": _country(countries, p["country"], coded),
            }),
            peaks=cell_table(peaks, "t"), cells_done=int(done), hours_split=bool(split),
            cells_needed=bool(late) or bool((k["in_hi"] | k["out_hi"]).any()),
            hour_totals=None if totals is None else pa.table({
                name: np.frombuffer(column, dtype)
                for (name, dtype), column in zip(_TOTALS, totals, strict=True)}),
            totals_repeat=bool(repeats),
        )

    def _concern_flags(self, concern: list[str]) -> bytes:
        """One byte per country code: 1 for the countries in ``concern`` (given codes)."""
        codes = self.country_codes(pa.array(concern, pa.string()))
        flags = np.zeros(len(self._countries), np.uint8)
        flags[codes] = 1
        return flags.tobytes()

    def distinct_counts(self, scope: list[int] | None = None,
                        since_us: int | None = None) -> DistinctCounts:
        """The distinct counts from the sketches (``sketches`` only), of the tenants in
        ``scope`` (codes; ``None``: all): ``tenant``, ``country`` (null: overall),
        ``span``, ``t``, ``addrs``, ``asns``; several rows of one key add up (``unique``:
        none repeats, which holds until a remote end comes for a time whose sketches were
        let go). Call :meth:`retired` with ``everything`` first for counts up to the
        latest row. ``since_us``: only hours and days from then on and 7-day windows
        ending after it (cumulative rows of every day)."""
        chosen = None if scope is None else np.asarray(scope, np.int32).tobytes()
        columns, flags = self._reducer.distinct(
            chosen, -(1 << 63) if since_us is None else since_us, True)
        rows = {name: np.frombuffer(column, _DISTINCT[name])
                for name, column in zip(_DISTINCT_COLUMNS, columns, strict=True)}
        country = rows["country"]
        table = pa.table({  # country and span dictionary-encoded: millions of rows at scale
            "tenant": rows["tenant"],
            "country": pa.DictionaryArray.from_arrays(
                pa.array(country, mask=country < 0),
                pa.array(list(self._countries), pa.string())),
            "span": pa.DictionaryArray.from_arrays(
                rows["span"].view(np.int8), pa.array(_SPANS, pa.string())),
            "t": rows["t"], "addrs": rows["addrs"], "asns": rows["asns"],
        })
        # the flag is on every row or on none
        return DistinctCounts(table, not flags & _REPEATS)

    def drop_sketches(self) -> None:
        """Free the sketches once their counts are taken for the last time."""
        if self.sketches:
            self._reducer.drop_sketches()

    def forget_before(self, horizon_us: int) -> None:
        """Drop the sketches and final counts of hours and days before ``horizon_us``
        (``sketches`` only; the unions of days let go keep what they hold)."""
        if self.sketches:
            self._reducer.forget(horizon_us)

    def sketch_sizes(self) -> tuple[int, int]:
        """Sketches held for distinct counts and their bytes."""
        sketches, size = self._reducer.sketch_sizes()
        return int(sketches), int(size)

    def sizes(self) -> tuple[int, int, int, int]:
        """Entries held: hours, cells, presence, evidence heaps."""
        hours, cells, presence, heaps = self._reducer.sizes()
        return int(hours), int(cells), int(presence), int(heaps)


def _micros(column: pa.ChunkedArray, fill: int | None = None) -> npt.NDArray[np.int64]:
    values = column.cast(pa.int64())
    if fill is not None:
        values = pc.fill_null(values, fill)
    return np.ascontiguousarray(values.to_numpy(), np.int64)


def _uint64(column: pa.ChunkedArray) -> npt.NDArray[np.uint64]:
    return np.ascontiguousarray(pc.fill_null(column, 0).to_numpy(), np.uint64)


def present(column: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.bool_]:
    """Which entries of ``column`` are set (not null)."""
    if column.null_count == 0:
        return np.ones(len(column), np.bool_)
    return np.asarray(pc.is_valid(column).to_numpy(zero_copy_only=False), np.bool_)


def _true(column: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.bool_]:
    """Which entries are true (null counts as false)."""
    return np.asarray(pc.fill_null(column, False).to_numpy(zero_copy_only=False), np.bool_)


def _codes(column: pa.ChunkedArray | pa.Array, known: dict[str, int],
           kind: type[np.integer[Any]]) -> npt.NDArray[np.integer[Any]]:
    """Stable small-integer codes of a string column (null: -1); ``known`` grows."""
    encoded = pc.dictionary_encode(column).combine_chunks()
    mapping = np.array([known.setdefault(name, len(known))
                        for name in encoded.dictionary.to_pylist()] + [-1], kind)
    indices = pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64, copy=False)
    return np.ascontiguousarray(mapping[indices], kind)


def string_hashes(strings: pa.Array) -> npt.NDArray[np.uint64]:
    """64-bit hash of each string (anything for a null)."""
    strings = strings.cast(pa.string())
    _, offsets, data = strings.buffers()
    if offsets is None:
        return np.zeros(len(strings), np.uint64)
    return np.frombuffer(
        hash_strings(offsets, b"" if data is None else data, strings.offset, len(strings)),
        np.uint64)


def _country(names: pa.Array, codes: npt.NDArray[np.int16], coded: bool) -> pa.Array:
    """The countries of ``codes`` (-1: none) by name, or (``coded``) as they are."""
    return pa.array(codes, mask=codes < 0) if coded else _names(names, codes)


def _names(names: pa.Array, codes: npt.NDArray[np.integer[Any]]) -> pa.Array:
    missing = codes < 0
    return names.take(pa.array(np.where(missing, 0, codes).astype(np.int64), mask=missing)) \
        if len(names) else pa.nulls(len(codes), pa.string())
