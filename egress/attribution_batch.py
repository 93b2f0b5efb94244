"""Attribute Zeek conn batches column-wise, with the rules of :mod:`egress.attribution`.

The answers are those of the per-record rules (the docstring of :mod:`egress.attribution`);
only the way of computing them differs, so that a batch costs numpy and Arrow kernels rather
than a Python step per row:

1. ``orig_h`` and ``resp_h`` are dictionary-encoded and each distinct address is resolved
   once: whether it parses, lies in a site network, is private, and which tenant ranges
   contain it, longest prefix first. Dotted-quad IPv4 addresses go through sorted numpy prefix
   tables; anything else (IPv6, malformed text) asks the inventory, one value at a time.
2. A row's owner at its ``ts`` is read from the spans of those ranges, all timelines flattened
   into one table and bisected in step for every row (a range with one span costs one
   comparison). VNIs are read the same way.
3. The facts the rules look at (has a time, is inside, has a tenant, who sent more, ...)
   become bits of a case number per row; :func:`_decide` (the rules for one case, in plain
   Python) is tabled once for every case, and each row reads its answers from the table.
4. Remote country and AS number: dotted quads from range files all at once
   (:func:`egress.geo.ipv4_lookup`); otherwise once per distinct remote address through
   :class:`~egress.geo.GeoLookup`, remembered across batches.

Public: :class:`ConnBatchAttributor` (used by
:meth:`egress.attribution.Attributor.attribute_batch`), :class:`BatchCounts`, :data:`REASONS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, ip_address

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from egress._wincore import ipv4_numbers
from egress.attribution import (
    ATTRIBUTION_FIELDS,
    INBOUND,
    INTERNAL,
    OUTBOUND,
    UNATTRIBUTED,
    UNKNOWN,
)
from egress.geo import (
    GeoInfo,
    GeoLookup,
    ipv4_lookup,
    is_cross_border,
    is_not_looked_up,
    merged_ipv4_bounds,
    not_looked_up_networks,
    parse_address,
)
from egress.inventory import Inventory
from egress.inventory_index import PrefixKey, Timeline

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]
Index = npt.NDArray[np.int32]  # positions in a batch's dictionary of addresses

#: Reasons a conn row is unattributed, in code order (code 0 is "attributed").
REASONS: tuple[str, ...] = (
    "", "no_time", "bad_address", "unknown_vni", "two_tenants_tie", "site_only",
    "outside_site", "no_tenant",
)
_NO_TIME, _BAD, _UNKNOWN_VNI, _TIE, _SITE_ONLY, _OUTSIDE, _NO_TENANT = range(1, 8)
_HOWS = pa.array(["address", "vni", UNATTRIBUTED], pa.string())
_DIRECTIONS = pa.array([UNKNOWN, INBOUND, OUTBOUND, INTERNAL], pa.string())
_D_UNKNOWN, _D_INBOUND, _D_OUTBOUND, _D_INTERNAL = range(4)
#: The ``direction`` code of internal (east-west) rows in a :class:`ConnSolution`.
INTERNAL_CODE = _D_INTERNAL
_VALID, _SITE, _PRIVATE = 1, 2, 4  # flags of a distinct address

_FROM_ORIG, _FROM_RESP = 1, 2  # which end's tenant a row gets


def _decide(case: int) -> tuple[int, int, int, int, int]:
    """The rules of ``Attributor._conn`` for one combination of facts about a row.

    ``case`` bits, from bit 0: the row has a time and two addresses; it has a time; it has a
    VNI; the VNI has an owner; the originator is inside; the responder is inside; the
    originator has a tenant; the responder has one (both the VNI's owner on VNI rows); the two
    are the same; the originator sent more; the responder sent more. Returns which tenant the
    row gets, which end is remote (1 the originator, 0 the responder, -1 none), the direction,
    the reason code and the ``how`` code.
    """
    ok, timed, overlay, vni_known, o_in, r_in, has_o, has_r, same, o_more, r_more = (
        bool(case >> bit & 1) for bit in range(11))
    placed_how = 1 if overlay else 0
    if not timed:
        return 0, -1, _D_UNKNOWN, _NO_TIME, 2
    if not ok:
        return 0, -1, _D_UNKNOWN, _BAD, 2
    if overlay and not vni_known:
        return 0, -1, _D_UNKNOWN, _UNKNOWN_VNI, 2
    if o_in and r_in:
        if has_o and has_r and not same:  # two tenants: the receiver's
            if not (o_more or r_more):
                return 0, -1, _D_INTERNAL, _TIE, 2
            return (_FROM_RESP, 1, _D_INTERNAL, 0, placed_how) if o_more else (
                _FROM_ORIG, 0, _D_INTERNAL, 0, placed_how)
        if not (has_o or has_r):
            return 0, -1, _D_INTERNAL, _SITE_ONLY, 2
        if has_o and has_r:
            return _FROM_ORIG, -1, _D_INTERNAL, 0, placed_how
        return (_FROM_ORIG, 0, _D_INTERNAL, 0, placed_how) if has_o else (
            _FROM_RESP, 1, _D_INTERNAL, 0, placed_how)
    if not (o_in or r_in):
        return 0, -1, _D_UNKNOWN, _OUTSIDE, 2
    received_more, sent_more = (o_more, r_more) if r_in else (r_more, o_more)
    direction = _D_INBOUND if received_more else _D_OUTBOUND if sent_more else _D_UNKNOWN
    if not (has_r if r_in else has_o):
        return 0, 1 if r_in else 0, direction, _NO_TENANT, 2
    return _FROM_RESP if r_in else _FROM_ORIG, 1 if r_in else 0, direction, 0, placed_how


#: ``_decide`` for every case, one row per answer: source, remote, direction, reason, how.
_OUTCOMES = np.array([_decide(case) for case in range(1 << 11)], np.int8).T.copy()

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
#: Exactly the IPv4 text :func:`ipaddress.ip_address` accepts (no leading zeros).
_DOTTED_QUAD = rf"^{_OCTET}(?:\.{_OCTET}){{3}}$"
#: Above this many microseconds a float64 division no longer matches Python's exact one.
_EXACT_US = 2**53
#: Prefix numbers of one length spanning up to this many are looked up in a dense table.
_DENSE_MIN = 1 << 16
#: Up to this many addresses of a batch that are not dotted quads (IPv6, malformed, null),
#: the batch's addresses are resolved row by row; beyond, once per distinct address.
_OTHER_PER_ROW = 64
#: Distinct remote addresses whose geo answers are remembered across batches.
_GEO_CACHE = 100_000


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchCounts:
    """What one batch adds to the counters: rows placed, rows not, and why not."""

    attributed: int
    unattributed: int
    reasons: dict[str, int]


@dataclass(frozen=True, slots=True)
class _Spans:
    """Timelines flattened: timeline ``i`` owns spans ``first[i]`` to ``first[i] + count[i]``."""

    first: Ints
    count: Ints
    starts: Floats
    ends: Floats
    owners: Ints

    @staticmethod
    def build(timelines: Sequence[Timeline], codes: Mapping[str, int]) -> _Spans:
        count = np.array([len(tl.starts) for tl in timelines], np.int64)
        first = np.cumsum(count) - count
        return _Spans(
            first,
            count,
            np.array([s for tl in timelines for s in tl.starts], np.float64),
            np.array([e for tl in timelines for e in tl.ends], np.float64),
            np.array([codes[o] for tl in timelines for o in tl.owners], np.int64),
        )

    def owner_at(self, timeline: Ints, t: Floats) -> Ints:
        """Owner code of ``timeline[i]`` at ``t[i]``; -1 for no timeline (-1) or no owner."""
        owner = np.full(len(timeline), -1, np.int64)
        rows = np.flatnonzero(timeline >= 0)
        if len(rows) == 0:
            return owner
        timeline, t = timeline[rows], t[rows]
        first = self.first[timeline]
        found = first  # the span that may hold t; one span is the common case
        ok = self.starts[first] <= t
        multi = np.flatnonzero(self.count[timeline] > 1)
        if len(multi):
            # bisect_right over each row's own spans, all rows in step
            low, high, at = first[multi], first[multi] + self.count[timeline[multi]], t[multi]
            step = np.arange(len(multi))
            while len(step):
                mid = (low[step] + high[step]) >> 1
                right = self.starts[mid] <= at[step]
                low[step] = np.where(right, mid + 1, low[step])
                high[step] = np.where(right, high[step], mid)
                step = step[low[step] < high[step]]
            found = first.copy()
            found[multi] = np.maximum(low - 1, first[multi])
            ok[multi] = low - 1 >= first[multi]
        ok &= t < self.ends[found]
        owner[rows] = np.where(ok, self.owners[found], -1)
        return owner


@dataclass(frozen=True, slots=True)
class _Ranges:
    """A union of IPv4 networks as sorted, merged ``[start, end)`` bounds."""

    bounds: npt.NDArray[np.uint64]

    @staticmethod
    def build(networks: Sequence[IPv4Network]) -> _Ranges:
        return _Ranges(merged_ipv4_bounds(networks))

    def contains(self, addresses: npt.NDArray[np.uint64]) -> Bools:
        return np.asarray(np.searchsorted(self.bounds, addresses, side="right") % 2 == 1)


@dataclass(frozen=True, slots=True)
class _Prefixes:
    """IPv4 prefixes by length, longest first: sorted network numbers and a value for each.

    Where the numbers of one length lie close together (a site's tenant ranges usually do),
    ``dense`` holds the values by number minus the first, -1 in the gaps: one gather instead
    of a bisection per address.
    """

    lengths: tuple[int, ...]
    keys: tuple[npt.NDArray[np.uint64], ...]
    values: tuple[Ints, ...]
    dense: tuple[Ints | None, ...]

    @staticmethod
    def build(items: Mapping[tuple[int, int], int]) -> _Prefixes:
        """``items`` maps (prefix length, network number) to a value (>= 0)."""
        lengths = tuple(sorted({length for length, _ in items}, reverse=True))
        keys, values = [], []
        for length in lengths:
            pairs = sorted((k, v) for (n, k), v in items.items() if n == length)
            keys.append(np.array([k for k, _ in pairs], np.uint64))
            values.append(np.array([v for _, v in pairs], np.int64))
        dense: list[Ints | None] = []
        for k, v in zip(keys, values, strict=True):
            span = int(k[-1] - k[0]) + 1
            table = None
            if span <= max(_DENSE_MIN, 4 * len(k)):
                table = np.full(span, -1, np.int64)
                table[(k - k[0]).astype(np.int64)] = v
            dense.append(table)
        return _Prefixes(lengths, tuple(keys), tuple(values), tuple(dense))

    def lookup(self, addresses: npt.NDArray[np.uint64]) -> Ints:
        """Values of the prefixes containing each address: shape (lengths, addresses), -1 none."""
        out = np.full((len(self.lengths), len(addresses)), -1, np.int64)
        for row, (length, keys, values, dense) in enumerate(
            zip(self.lengths, self.keys, self.values, self.dense, strict=True)
        ):
            wanted = addresses >> np.uint64(32 - length)
            if dense is not None:
                offset = wanted - keys[0]  # wraps round below the first: out of range too
                within = offset < np.uint64(len(dense))
                out[row] = np.where(within, dense[np.where(within, offset, 0)], -1)
                continue
            pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
            out[row] = np.where(keys[pos] == wanted, values[pos], -1)
        return out


@dataclass(frozen=True, slots=True)
class _Addresses:
    """What is known of each distinct address of a batch, time aside."""

    flags: npt.NDArray[np.int8]  # _VALID | _SITE | _PRIVATE
    quad: Bools  # dotted-quad IPv4 text
    numbers: npt.NDArray[np.uint64]  # the IPv4 address of each dotted quad, else 0
    ranges: Ints  # (levels, addresses): tenant timelines containing it, longest first, -1 none


class ConnBatchAttributor:
    """Column-wise attribution of :data:`~egress.columns.CONN_SCHEMA` batches.

    Build once per inventory (tables of every range and VNI) and reuse for every batch.
    Geo works as in :class:`~egress.attribution.Attributor`; answers that come one address
    at a time (MaxMind DB, IPv6) are remembered across batches, up to 100,000 addresses.
    Raises ``ValueError`` for a ``ts`` column without a time zone.
    """

    def __init__(self, inventory: Inventory, geo: GeoLookup | None = None) -> None:
        self._inventory = inventory
        self._geo = geo
        self._site_country = inventory.site.country
        nets = inventory.network_timelines()
        vnis = inventory.vni_timelines()
        owners = sorted({o for tl in [*nets.values(), *vnis.values()] for o in tl.owners})
        codes = {owner: i for i, owner in enumerate(owners)}
        self._tenants = pa.array(owners, pa.string())
        keys: list[PrefixKey] = list(nets)
        self._net_ids = {key: i for i, key in enumerate(keys)}
        self._nets = _Spans.build([nets[key] for key in keys], codes)
        self._v4 = _Prefixes.build({
            (length, number): i for i, (version, length, number) in enumerate(keys)
            if version == 4
        })
        self._site_v4 = _Ranges.build([n for n in inventory.site.networks
                                       if isinstance(n, IPv4Network)])
        self._private_v4 = _Ranges.build([n for n in not_looked_up_networks()
                                          if isinstance(n, IPv4Network)])
        vni_keys = sorted(vnis)
        self._vni_keys = np.array(vni_keys, np.int64)
        self._vnis = _Spans.build([vnis[v] for v in vni_keys], codes)
        self._countries: dict[str, int] = {}
        self._geo_cache: dict[str, tuple[int, int | None, int]] = {}

    # -- distinct addresses ---------------------------------------------------------------

    def _resolve(self, uniques: pa.Array, parsed: Ints) -> _Addresses:
        """What is known of each address of ``uniques`` (``parsed``: their
        :func:`_dotted_quads`)."""
        size = len(uniques)
        valid = np.zeros(size, np.bool_)
        site = np.zeros(size, np.bool_)
        private = np.zeros(size, np.bool_)
        is_quad = parsed >= 0
        at = np.flatnonzero(is_quad)
        levels: list[Ints] = []
        numbers_all = np.zeros(size, np.uint64)
        if len(at):
            numbers = parsed[at].astype(np.uint64)
            valid[at] = True
            numbers_all[at] = numbers
            site[at] = self._site_v4.contains(numbers)
            private[at] = self._private_v4.contains(numbers)
            found = self._v4.lookup(numbers)
            levels = [np.full(size, -1, np.int64) for _ in range(len(found))]
            for level, row in zip(levels, found, strict=True):
                level[at] = row
        inv = self._inventory
        for i in np.flatnonzero(~is_quad).tolist():
            text = uniques[i].as_py()
            try:
                addr = ip_address(text) if text is not None else None
            except ValueError:
                addr = None
            if addr is None:
                continue
            valid[i] = True
            site[i] = inv.is_site_address(addr)
            private[i] = is_not_looked_up(parse_address(text))
            for depth, (key, _) in enumerate(inv.address_timelines(addr)):
                if depth == len(levels):
                    levels.append(np.full(size, -1, np.int64))
                levels[depth][i] = self._net_ids[key]
        ranges = np.stack(levels) if levels else np.full((0, size), -1, np.int64)
        # longest matching range first, without gaps, so rows try as few levels as needed
        ranges = np.take_along_axis(ranges, np.argsort(ranges < 0, axis=0, kind="stable"), 0)
        depth = int((ranges >= 0).sum(axis=0).max()) if size and len(ranges) else 0
        flags = (valid * _VALID) | (site * _SITE) | (private * _PRIVATE)
        return _Addresses(flags.astype(np.int8), is_quad, numbers_all, ranges[:depth])

    def _owner(self, ranges: Ints, index: Index, t: Floats) -> Ints:
        """Tenant code holding each row's address at its time: first range with an owner."""
        owner = np.full(len(index), -1, np.int64)
        for depth, level in enumerate(ranges):
            timeline = level[index]
            if depth == 0:
                owner = self._nets.owner_at(timeline, t)
            else:
                rows = np.flatnonzero((owner < 0) & (timeline >= 0))
                owner[rows] = self._nets.owner_at(timeline[rows], t[rows])
        return owner

    # -- geo ------------------------------------------------------------------------------

    def _geo_of(self, text: str) -> tuple[int, int | None, int]:
        """Country code (-1 none), AS number and cross-border (-1 unknown, 0, 1)."""
        cached = self._geo_cache.get(text)
        if cached is not None:
            return cached
        assert self._geo is not None
        info = self._geo.lookup(text)
        cross = is_cross_border(self._site_country, info)
        country = -1
        if info.country is not None:
            country = self._countries.setdefault(info.country, len(self._countries))
        answer = (country, info.asn, -1 if cross is None else int(cross))
        if len(self._geo_cache) >= _GEO_CACHE:
            self._geo_cache.clear()
        self._geo_cache[text] = answer
        return answer

    def _geo_table(self, uniques: pa.Array, known: _Addresses,
                   used: Ints) -> tuple[Ints, Ints, Bools, Ints]:
        """Per distinct address (only ``used`` filled): country, ASN, ASN known, cross."""
        size = len(uniques)
        country = np.full(size, -1, np.int64)
        asn = np.zeros(size, np.int64)
        has_asn = np.zeros(size, np.bool_)
        cross = np.full(size, -1, np.int64)
        assert self._geo is not None
        columns = ipv4_lookup(self._geo)
        if columns is not None:  # dotted quads all at once, the rest one by one
            quads = used[known.quad[used]]
            used = used[~known.quad[used]]
            found = columns(known.numbers[quads])
            codes = np.array([self._countries.setdefault(c, len(self._countries))
                              for c in found.countries], np.int64)
            crossing = np.array([is_cross_border(self._site_country, GeoInfo(
                country=c, asn=None, as_org=None)) for c in found.countries], np.int64)
            known_country = found.country >= 0
            safe = np.where(known_country, found.country, 0)
            if len(codes):
                country[quads] = np.where(known_country, codes[safe], -1)
                cross[quads] = np.where(known_country, crossing[safe], -1)
            asn[quads], has_asn[quads] = found.asn, found.asn >= 0
        texts = uniques.take(pa.array(used, pa.int64())).to_pylist()
        for i, text in zip(used.tolist(), texts, strict=True):
            country[i], number, cross[i] = self._geo_of(text)
            if number is not None:
                asn[i], has_asn[i] = number, True
        return country, asn, has_asn, cross

    # -- batches --------------------------------------------------------------------------

    def columns(self, batch: pa.RecordBatch) -> tuple[list[pa.Array], BatchCounts]:
        """The attribution columns of ``batch`` (in ``ATTRIBUTION_FIELDS`` order) and counts."""
        solution, counts = self.solve(batch)
        return solution.arrays(batch), counts

    def solve(self, batch: pa.RecordBatch) -> tuple[ConnSolution, BatchCounts]:
        """Each row's attribution as codes (:class:`ConnSolution`) and the batch's counts."""
        n = batch.num_rows
        ts = batch.column("ts")
        if ts.type.tz is None:
            raise ValueError("conn batch column ts has no time zone")
        if ts.type.unit != "us":
            ts = pc.cast(ts, pa.timestamp("us", tz=ts.type.tz), safe=False)  # as datetimes hold
        has_ts = _valid(ts)
        micros = pc.fill_null(ts.cast(pa.int64()), 0).to_numpy()
        t = micros / 1e6
        for i in np.flatnonzero(np.abs(micros) >= _EXACT_US).tolist():
            t[i] = int(micros[i]) / 10**6  # as datetime.timestamp() computes it
        orig_col, resp_col = batch.column("orig_h"), batch.column("resp_h")
        if n == 0:
            return ConnSolution.empty(self._tenants), BatchCounts(
                attributed=0, unattributed=0, reasons={})
        # Both columns one after the other; when nearly all are dotted quads, each is
        # resolved as it is (numbers, no Python step per address). Otherwise one dictionary
        # for both: an address is resolved once per batch.
        uniques = pa.concat_arrays([_array(orig_col), _array(resp_col)])
        parsed = _dotted_quads(uniques)
        u_o, u_r = np.arange(n), np.arange(n, 2 * n)
        if int((parsed < 0).sum()) > _OTHER_PER_ROW:
            encoded = pc.dictionary_encode(pa.chunked_array([orig_col, resp_col]),
                                           null_encoding="encode")
            uniques = encoded.chunk(1).dictionary  # the memo only grows: covers chunk 0 too
            u_o, u_r = encoded.chunk(0).indices.to_numpy(), encoded.chunk(1).indices.to_numpy()
            parsed = _dotted_quads(uniques)
        known = self._resolve(uniques, parsed)
        f_o, f_r = known.flags[u_o], known.flags[u_r]

        ok = has_ts & (f_o & f_r & _VALID > 0)
        own_o = self._owner(known.ranges, u_o, t)
        own_r = self._owner(known.ranges, u_r, t)
        vni_col = batch.column("vni")
        overlay = _valid(vni_col)
        vni_owner = np.full(n, -1, np.int64)
        vni_rows = np.flatnonzero(overlay)
        if len(vni_rows) and len(self._vni_keys):
            vni = pc.fill_null(vni_col, 0).to_numpy().astype(np.int64)[vni_rows]
            pos = np.minimum(np.searchsorted(self._vni_keys, vni), len(self._vni_keys) - 1)
            timeline = np.where(self._vni_keys[pos] == vni, pos, -1)
            vni_owner[vni_rows] = self._vnis.owner_at(timeline, t[vni_rows])

        inside = np.where(overlay, _SITE | _PRIVATE, _SITE).astype(np.int8)
        o_t = np.where(overlay, vni_owner, own_o)
        r_t = np.where(overlay, vni_owner, own_r)
        b_o = pc.fill_null(batch.column("delta_orig_ip_bytes"), 0).to_numpy()
        b_r = pc.fill_null(batch.column("delta_resp_ip_bytes"), 0).to_numpy()
        # every row's case as bits (see _decide), then the outcome of each case from tables
        case = np.zeros(n, np.int16)
        for bit, value in enumerate((
            ok, has_ts, overlay, vni_owner >= 0,
            (own_o >= 0) | (f_o & inside > 0), (own_r >= 0) | (f_r & inside > 0),
            o_t >= 0, r_t >= 0, o_t == r_t, b_o > b_r, b_o < b_r,
        )):
            case |= value.astype(np.int16) << bit
        source, remote, direction, reason, how = _OUTCOMES[:, case]
        tenant = np.where(source == _FROM_ORIG, o_t, np.where(source == _FROM_RESP, r_t, -1))
        placed = tenant >= 0

        tally = np.bincount(reason, minlength=len(REASONS))
        counts = BatchCounts(
            attributed=int(placed.sum()),
            unattributed=int(n - placed.sum()),
            reasons={REASONS[i]: int(c) for i, c in enumerate(tally) if i and c},
        )
        ends = np.where(remote == 1, u_o, np.where(remote == 0, u_r, -1))
        country, asn, has_asn, cross = self._remote_codes(uniques, known, ends,
                                                          direction == _D_INTERNAL)
        return ConnSolution(
            tenant=tenant, how=how, direction=direction, remote=remote, ends=ends,
            uniques=uniques, country=country, asn=asn, has_asn=has_asn, cross=cross,
            tenants=self._tenants, countries=pa.array(list(self._countries), pa.string()),
            geo=self._geo is not None,
        ), counts

    def _remote_codes(self, uniques: pa.Array, known: _Addresses, ends: Ints,
                      internal: Bools) -> tuple[Ints, Ints, Bools, Ints]:
        """Per row: remote country code (-1 none), AS number, AS known, cross-border (-1
        unknown, 0, 1; internal rows 0), from the remote end's address (``ends``: its
        position in ``uniques``, -1 none)."""
        n = len(ends)
        if self._geo is None:
            return (np.full(n, -1, np.int64), np.zeros(n, np.int64), np.zeros(n, np.bool_),
                    np.full(n, -1, np.int64))
        wanted = np.zeros(len(uniques), np.bool_)
        wanted[ends[ends >= 0]] = True
        found = ends >= 0
        safe = np.where(found, ends, 0)
        country, asn, has_asn, cross = (
            values[safe] for values in self._geo_table(uniques, known, np.flatnonzero(wanted))
        )
        known_asn = np.asarray(found & has_asn, np.bool_)
        return (np.where(found, country, -1).astype(np.int64), np.where(known_asn, asn, 0),
                known_asn, np.where(internal, 0, np.where(found, cross, -1)).astype(np.int64))



@dataclass(frozen=True, slots=True, kw_only=True)
class ConnSolution:
    """The attribution of each row of a conn batch as codes (what
    :meth:`ConnBatchAttributor.columns` turns into :data:`ATTRIBUTION_FIELDS` columns).

    ``tenant``: position in ``tenants`` (-1: unattributed); ``how`` and ``direction``: codes
    of :data:`_HOWS` and :data:`_DIRECTIONS`; ``remote``: which end is remote (1 the
    originator, 0 the responder, -1 none); ``ends``: the remote end's position in
    ``uniques`` (-1 none); ``country``: position in ``countries`` (-1 none); ``asn`` where
    ``has_asn``; ``cross``: -1 unknown, 0, 1 (meaningful where there is a remote end).
    ``geo``: whether geo data was given (without, cross-border is false on internal rows
    with a remote end and unknown elsewhere).
    """

    tenant: Ints
    how: npt.NDArray[np.int8]
    direction: npt.NDArray[np.int8]
    remote: npt.NDArray[np.int8]
    ends: Ints
    uniques: pa.Array
    country: Ints
    asn: Ints
    has_asn: Bools
    cross: Ints
    tenants: pa.Array
    countries: pa.Array
    geo: bool

    @staticmethod
    def empty(tenants: pa.Array) -> ConnSolution:
        none = np.zeros(0, np.int64)
        small = np.zeros(0, np.int8)
        return ConnSolution(
            tenant=none, how=small, direction=small, remote=small, ends=none,
            uniques=pa.array([], pa.string()), country=none, asn=none,
            has_asn=np.zeros(0, np.bool_), cross=none, tenants=tenants,
            countries=pa.array([], pa.string()), geo=False)

    def take(self, rows: Ints) -> ConnSolution:
        """The solution of ``rows`` (positions in the batch)."""
        return ConnSolution(
            tenant=self.tenant[rows], how=self.how[rows], direction=self.direction[rows],
            remote=self.remote[rows], ends=self.ends[rows], uniques=self.uniques,
            country=self.country[rows], asn=self.asn[rows], has_asn=self.has_asn[rows],
            cross=self.cross[rows], tenants=self.tenants, countries=self.countries,
            geo=self.geo)

    def arrays(self, batch: pa.RecordBatch) -> list[pa.Array]:
        """The :data:`ATTRIBUTION_FIELDS` columns of ``batch`` (the rows solved)."""
        n = len(self.tenant)
        if n == 0:
            return [pa.array([], f.type) for f in ATTRIBUTION_FIELDS]
        placed = self.tenant >= 0
        no_remote = self.remote < 0
        swap = pa.array(self.remote == 0)
        orig_col, resp_col = batch.column("orig_h"), batch.column("resp_h")
        d_orig, d_resp = batch.column("delta_orig_ip_bytes"), batch.column("delta_resp_ip_bytes")
        return [
            pc.take(self.tenants, pa.array(self.tenant, mask=~placed)) if len(self.tenants)
            else pa.nulls(n, pa.string()),
            pc.take(_HOWS, pa.array(self.how)),
            pc.take(_DIRECTIONS, pa.array(self.direction)),
            pc.if_else(swap, d_resp, d_orig),
            pc.if_else(swap, d_orig, d_resp),
            pc.if_else(pa.array(self.remote == 1, mask=no_remote), orig_col, resp_col),
            *self._remote_arrays(),
        ]

    def _remote_arrays(self) -> list[pa.Array]:
        """``remote_country``, ``remote_asn`` and ``cross_border`` of every row."""
        n = len(self.remote)
        no_remote = self.remote < 0
        if not self.geo:
            internal = self.direction == _D_INTERNAL
            return [pa.nulls(n, pa.string()), pa.nulls(n, pa.int64()),
                    pa.array(np.zeros(n, np.bool_), mask=no_remote | ~internal)]
        country = self.country
        return [
            pc.take(self.countries, pa.array(country, mask=no_remote | (country < 0)))
            if len(self.countries) else pa.nulls(n, pa.string()),
            pa.array(self.asn, mask=no_remote | ~self.has_asn),
            pa.array(self.cross == 1, mask=no_remote | (self.cross < 0)),
        ]


def _dotted_quads(strings: pa.Array) -> Ints:
    """The IPv4 address of each dotted quad (:data:`_DOTTED_QUAD`), else -1 (null too)."""
    strings = strings.cast(pa.string())
    validity, offsets, data = strings.buffers()
    if offsets is None or len(strings) == 0:
        return np.full(len(strings), -1, np.int64)
    numbers = np.frombuffer(ipv4_numbers(offsets, b"" if data is None else data,
                                         strings.offset, len(strings)), np.int64)
    if validity is not None:
        numbers = np.where(_valid(strings), numbers, -1)
    return numbers


def _array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous string array of ``column``."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.cast(pa.string())


def _valid(column: pa.Array) -> Bools:
    """Which entries of ``column`` are set."""
    if column.null_count == 0:
        return np.ones(len(column), np.bool_)
    return np.asarray(column.is_valid().to_numpy(zero_copy_only=False), np.bool_)
