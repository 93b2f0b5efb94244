"""Attribute Zeek conn batches column-wise, with the rules of :mod:`egress.attribution`.

The answers are those of the per-record rules (the docstring of :mod:`egress.attribution`);
only the way of computing them differs. Rows whose two addresses are dotted-quad IPv4 text
(nearly all, in a data center) are solved by compiled code in one pass per batch
(:class:`egress._wincore.Ipv4Attributor`, built by
:func:`egress.attribution_tables.compiled_attributor` from the tables below); the others
(IPv6, malformed text, times past 2**53 microseconds) column-wise with numpy
(:meth:`ConnBatchAttributor._solve_columns`), then put back in place:

1. ``orig_h`` and ``resp_h`` are resolved row by row, or, when more than 64 addresses of a
   batch are not dotted quads, dictionary-encoded and resolved once per distinct address:
   whether it parses, lies in a site network, is private, and which tenant ranges contain
   it, longest prefix first. Dotted quads go through sorted prefix tables; anything else
   asks the inventory, one value at a time.
2. A row's owner at its ``ts`` is read from the spans of those ranges, all timelines flattened
   into one table and bisected (a range with one span costs one comparison). VNIs are read
   the same way.
3. The facts the rules look at (has a time, is inside, has a tenant, who sent more, ...)
   become bits of a case number per row; :func:`_decide` (the rules for one case, in plain
   Python) is tabled once for every case, and each row reads its answers from the table.
   Compiled code reads the same table.
4. Remote country and AS number: dotted quads from range files through one table of
   disjoint ranges (:func:`egress.geo.ipv4_ranges`); otherwise once per distinct remote
   address through :class:`~egress.geo.GeoLookup`, remembered across batches.

Public: :class:`ConnBatchAttributor` (used by
:meth:`egress.attribution.Attributor.attribute_batch` and ``solve_batch``),
:class:`ConnSolution`, :class:`BatchCounts`, :data:`REASONS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, ip_address

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from egress._wincore import hash_strings, ipv4_numbers
from egress.attribution import (
    ATTRIBUTION_FIELDS,
    INBOUND,
    INTERNAL,
    OUTBOUND,
    UNATTRIBUTED,
    UNKNOWN,
)
from egress.attribution_tables import (
    GeoRanges,
    Prefixes,
    Ranges,
    Spans,
    compiled_attributor,
)
from egress.geo import (
    GeoInfo,
    GeoLookup,
    ipv4_lookup,
    ipv4_ranges,
    is_cross_border,
    is_not_looked_up,
    not_looked_up_networks,
    parse_address,
)
from egress.inventory import Inventory
from egress.inventory_index import PrefixKey

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
        self._nets = Spans.build([nets[key] for key in keys], codes)
        self._v4 = Prefixes.build({
            (length, number): i for i, (version, length, number) in enumerate(keys)
            if version == 4
        })
        self._site_v4 = Ranges.build([n for n in inventory.site.networks
                                       if isinstance(n, IPv4Network)])
        self._private_v4 = Ranges.build([n for n in not_looked_up_networks()
                                          if isinstance(n, IPv4Network)])
        vni_keys = sorted(vnis)
        self._vni_keys = np.array(vni_keys, np.int64)
        self._vnis = Spans.build([vnis[v] for v in vni_keys], codes)
        self._countries: dict[str, int] = {}
        self._names = pa.array([], pa.string())  # _country_names, while no code is added
        self._scratch = _Scratch()
        self._geo_cache: dict[str, tuple[int, int | None, int]] = {}
        geo_ranges = self._geo_ranges()
        self._geo_compiled = geo_ranges is not None
        self._compiled = compiled_attributor(
            outcomes=_OUTCOMES, site=self._site_v4, private=self._private_v4,
            prefixes=self._v4, nets=self._nets, vni_keys=self._vni_keys, vnis=self._vnis,
            geo=geo_ranges)

    def _geo_ranges(self) -> GeoRanges | None:
        """The geo range table for compiled code, when geo comes from range files only."""
        found = None if self._geo is None else ipv4_ranges(self._geo)
        if found is None:
            return None
        codes = np.array([self._countries.setdefault(c, len(self._countries))
                          for c in found.countries] + [-1], np.int64)
        crossing = np.array([_cross_code(is_cross_border(self._site_country, GeoInfo(
            country=c, asn=None, as_org=None))) for c in found.countries] + [-1], np.int64)
        return GeoRanges(starts=found.starts, ends=found.ends, country=codes[found.country],
                         cross=crossing[found.country], asn=found.asn)

    def _country_names(self) -> pa.Array:
        """The country names by code (codes only ever get added)."""
        if len(self._names) != len(self._countries):
            self._names = pa.array(list(self._countries), pa.string())
        return self._names

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
        """Each row's attribution as codes (:class:`ConnSolution`) and the batch's counts.

        Rows whose two addresses are dotted quads (and rows without a time) are solved by
        compiled code in one pass; the others, column-wise with numpy
        (:meth:`_solve_columns`), and put in their places.
        """
        n = batch.num_rows
        if n == 0:
            return self._solve_columns(batch)
        ts = batch.column("ts")
        micros, has_ts = _micros(ts)
        orig, resp = _array(batch.column("orig_h")), _array(batch.column("resp_h"))
        vni_col = batch.column("vni")
        out = _Outputs.empty(n, self._scratch)
        others = self._compiled.solve(_string_buffers(orig), _string_buffers(resp), (
            micros, None if ts.null_count == 0 else _set_or_none(has_ts),
            _valid_or_none(orig), _valid_or_none(resp),
            None if vni_col.null_count == n else _valid(vni_col),
            # the VNIs are read on overlay rows only: none, none read (zeros cost no pages)
            np.zeros(n, np.int64) if vni_col.null_count == n else
            pc.fill_null(vni_col, 0).to_numpy().astype(np.int64),
            _uint64s(batch.column("delta_orig_ip_bytes")),
            _uint64s(batch.column("delta_resp_ip_bytes")),
            *out.columns()))
        if self._geo is not None and not self._geo_compiled:
            self._geo_rows(out, orig, resp)
        tally = np.bincount(out.reason[out.other == 0] if others else out.reason,
                            minlength=len(REASONS))
        reasons = {REASONS[i]: int(c) for i, c in enumerate(tally) if i and c}
        if others:
            rows = np.flatnonzero(out.other)
            part, part_counts = self._solve_columns(batch.take(pa.array(rows)))
            out.put(rows, part)
            for reason, count in part_counts.reasons.items():
                reasons[reason] = reasons.get(reason, 0) + count
        placed = int((out.tenant >= 0).sum())
        counts = BatchCounts(attributed=placed, unattributed=n - placed, reasons=reasons)
        return ConnSolution(
            tenant=out.tenant, how=out.how, direction=out.direction, remote=out.remote,
            addr=out.addr, country=out.country, asn=out.asn, has_asn=out.has_asn.view(np.bool_),
            cross=out.cross, tenants=self._tenants, countries=self._country_names(),
            geo=self._geo is not None,
        ), counts

    def _geo_rows(self, out: _Outputs, orig: pa.Array, resp: pa.Array) -> None:
        """Country, AS number and cross-border of the rows ``out`` solved, from geo data
        that has no range table (a MaxMind DB): once per distinct remote address."""
        rows = np.flatnonzero((out.remote >= 0) & (out.other == 0))
        internal = out.direction == _D_INTERNAL
        out.cross[internal & (out.other == 0)] = 0
        if len(rows) == 0:
            return
        picked = pa.array(rows)
        texts = pc.if_else(pa.array(out.remote[rows] == 1), orig.take(picked),
                           resp.take(picked)).dictionary_encode()
        answers = [self._geo_of(text) for text in texts.dictionary.to_pylist()]
        country = np.array([a[0] for a in answers], np.int64)
        asn = np.array([a[1] if a[1] is not None else -1 for a in answers], np.int64)
        cross = np.array([a[2] for a in answers], np.int64)
        at = texts.indices.to_numpy()
        out.country[rows] = country[at]
        out.has_asn[rows] = asn[at] >= 0
        out.asn[rows] = np.maximum(asn[at], 0)
        out.cross[rows] = np.where(internal[rows], 0, cross[at])

    def _solve_columns(self, batch: pa.RecordBatch) -> tuple[ConnSolution, BatchCounts]:
        """:meth:`solve` column-wise with numpy, whatever the addresses."""
        n = batch.num_rows
        micros, has_ts = _micros(batch.column("ts"))
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
        hashes = _hashes(uniques)
        return ConnSolution(
            tenant=tenant, how=how, direction=direction, remote=remote,
            addr=np.where(ends >= 0, hashes[np.maximum(ends, 0)], np.uint64(0)),
            country=country, asn=asn, has_asn=has_asn, cross=cross,
            tenants=self._tenants, countries=self._country_names(), geo=self._geo is not None,
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
    originator, 0 the responder, -1 none); ``addr``: the 64-bit hash of the remote end's
    text (``hash_strings`` of :mod:`egress._wincore`; 0 none); ``country``: position in
    ``countries`` (-1 none); ``asn`` where ``has_asn``; ``cross``: -1 unknown, 0, 1
    (meaningful where there is a remote end). ``geo``: whether geo data was given (without,
    cross-border is false on internal rows with a remote end and unknown elsewhere).
    """

    tenant: Ints
    how: npt.NDArray[np.int8]
    direction: npt.NDArray[np.int8]
    remote: npt.NDArray[np.int8]
    addr: npt.NDArray[np.uint64]
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
            tenant=none, how=small, direction=small, remote=small,
            addr=np.zeros(0, np.uint64), country=none, asn=none,
            has_asn=np.zeros(0, np.bool_), cross=none, tenants=tenants,
            countries=pa.array([], pa.string()), geo=False)

    def take(self, rows: Ints) -> ConnSolution:
        """The solution of ``rows`` (positions in the batch)."""
        return ConnSolution(
            tenant=self.tenant[rows], how=self.how[rows], direction=self.direction[rows],
            remote=self.remote[rows], addr=self.addr[rows],
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


def _hashes(strings: pa.Array) -> npt.NDArray[np.uint64]:
    """The 64-bit hash of each string (anything for a null)."""
    _, offsets, data = strings.buffers()
    if offsets is None or len(strings) == 0:
        return np.zeros(len(strings), np.uint64)
    return np.frombuffer(hash_strings(offsets, b"" if data is None else data, strings.offset,
                                      len(strings)), np.uint64)


def _micros(ts: pa.Array) -> tuple[Ints, Bools]:
    """A ``ts`` column as microseconds (null: 0), and which are set."""
    if ts.type.tz is None:
        raise ValueError("conn batch column ts has no time zone")
    if ts.type.unit != "us":
        ts = pc.cast(ts, pa.timestamp("us", tz=ts.type.tz), safe=False)  # as datetimes hold
    if ts.null_count == 0:  # the values as they are, without a copy
        return np.ascontiguousarray(ts.view(pa.int64()).to_numpy(), np.int64), _valid(ts)
    return (np.ascontiguousarray(pc.fill_null(ts.cast(pa.int64()), 0).to_numpy(), np.int64),
            _valid(ts))


def _string_buffers(strings: pa.Array) -> tuple[object, object, int, int]:
    """An Arrow string array as compiled code takes it: offsets, data, offset, length."""
    _, offsets, data = strings.buffers()
    if offsets is None:  # an empty array may have none
        offsets = pa.py_buffer(np.zeros(1, np.int32).tobytes())
    return offsets, b"" if data is None else data, strings.offset, len(strings)


def _set_or_none(flags: Bools) -> Bools | None:
    """``flags``, or None when all are set (compiled code takes that as all)."""
    return None if flags.all() else np.ascontiguousarray(flags)


def _uint64s(column: pa.Array) -> npt.NDArray[np.uint64]:
    """A byte count column as uint64 (null: 0)."""
    if column.null_count:
        column = pc.fill_null(column, 0)
    return np.ascontiguousarray(column.to_numpy(), np.uint64)


def _valid_or_none(column: pa.Array) -> Bools | None:
    """Which entries of ``column`` are set, or None when all are."""
    return None if column.null_count == 0 else _set_or_none(_valid(column))


def _cross_code(cross: bool | None) -> int:
    return -1 if cross is None else int(cross)


class _Scratch:
    """Output columns that live for one batch only, reused from batch to batch (fresh
    arrays cost a page fault every 4 KiB)."""

    def __init__(self) -> None:
        self._reason = np.empty(0, np.int8)
        self._number = np.empty(0, np.int64)
        self._other = np.empty(0, np.uint8)

    def take(self, n: int) -> tuple[npt.NDArray[np.int8], Ints, npt.NDArray[np.uint8]]:
        """``reason``, ``number`` and ``other`` columns of ``n`` rows (contents unset)."""
        if len(self._reason) < n:
            self._reason = np.empty(n, np.int8)
            self._number = np.empty(n, np.int64)
            self._other = np.empty(n, np.uint8)
        return self._reason[:n], self._number[:n], self._other[:n]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Outputs:
    """The per-row outputs compiled code writes (see csrc/wincore/attrib.c)."""

    tenant: Ints
    how: npt.NDArray[np.int8]
    direction: npt.NDArray[np.int8]
    remote: npt.NDArray[np.int8]
    reason: npt.NDArray[np.int8]
    country: Ints
    asn: Ints
    has_asn: npt.NDArray[np.uint8]
    cross: Ints
    addr: npt.NDArray[np.uint64]
    number: Ints
    other: npt.NDArray[np.uint8]

    @staticmethod
    def empty(n: int, scratch: _Scratch) -> _Outputs:
        """Fresh columns for what the solution keeps; ``reason``, ``number`` and ``other``
        (read before the next batch only) from ``scratch``."""
        reason, number, other = scratch.take(n)
        return _Outputs(
            tenant=np.empty(n, np.int64), how=np.empty(n, np.int8),
            direction=np.empty(n, np.int8), remote=np.empty(n, np.int8), reason=reason,
            country=np.empty(n, np.int64), asn=np.empty(n, np.int64),
            has_asn=np.empty(n, np.uint8), cross=np.empty(n, np.int64),
            addr=np.empty(n, np.uint64), number=number, other=other)

    def columns(self) -> tuple[npt.NDArray[np.generic], ...]:
        return (self.tenant, self.how, self.direction, self.remote, self.reason, self.country,
                self.asn, self.has_asn, self.cross, self.addr, self.number, self.other)

    def put(self, rows: Ints, part: ConnSolution) -> None:
        """Write the solution of ``rows`` (solved elsewhere) into their places."""
        self.tenant[rows] = part.tenant
        self.how[rows] = part.how
        self.direction[rows] = part.direction
        self.remote[rows] = part.remote
        self.country[rows] = part.country
        self.asn[rows] = part.asn
        self.has_asn[rows] = part.has_asn
        self.cross[rows] = part.cross
        self.addr[rows] = part.addr


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
