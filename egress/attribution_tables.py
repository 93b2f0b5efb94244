"""The lookup tables of column-wise attribution, and the same tables for compiled code.

:class:`Spans` (timelines flattened), :class:`Ranges` (a union of IPv4 networks) and
:class:`Prefixes` (IPv4 prefixes by length) answer for a whole column at once with numpy;
:func:`compiled_attributor` hands them, with the rules' outcome table and optionally a geo
range table, to :class:`egress._wincore.Ipv4Attributor`, which answers row by row in C.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network

import numpy as np
import numpy.typing as npt

from egress._wincore import Ipv4Attributor
from egress.geo import merged_ipv4_bounds
from egress.inventory_index import Timeline

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]
#: Prefix numbers of one length spanning up to this many are looked up in a dense table.
DENSE_MIN = 1 << 16


@dataclass(frozen=True, slots=True)
class Spans:
    """Timelines flattened: timeline ``i`` owns spans ``first[i]`` to ``first[i] + count[i]``."""

    first: Ints
    count: Ints
    starts: Floats
    ends: Floats
    owners: Ints

    @staticmethod
    def build(timelines: Sequence[Timeline], codes: Mapping[str, int]) -> Spans:
        count = np.array([len(tl.starts) for tl in timelines], np.int64)
        first = np.cumsum(count) - count
        return Spans(
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
class Ranges:
    """A union of IPv4 networks as sorted, merged ``[start, end)`` bounds."""

    bounds: npt.NDArray[np.uint64]

    @staticmethod
    def build(networks: Sequence[IPv4Network]) -> Ranges:
        return Ranges(merged_ipv4_bounds(networks))

    def contains(self, addresses: npt.NDArray[np.uint64]) -> Bools:
        return np.asarray(np.searchsorted(self.bounds, addresses, side="right") % 2 == 1)


@dataclass(frozen=True, slots=True)
class Prefixes:
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
    def build(items: Mapping[tuple[int, int], int]) -> Prefixes:
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
            if span <= max(DENSE_MIN, 4 * len(k)):
                table = np.full(span, -1, np.int64)
                table[(k - k[0]).astype(np.int64)] = v
            dense.append(table)
        return Prefixes(lengths, tuple(keys), tuple(values), tuple(dense))

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


@dataclass(frozen=True, slots=True, kw_only=True)
class GeoRanges:
    """A geo range table for compiled code: disjoint sorted ranges, ``starts`` to ``ends``
    inclusive, each with the attribution's country code (-1 none), cross-border value (-1
    unknown, 0, 1) and AS number (-1 none)."""

    starts: npt.NDArray[np.uint64]
    ends: npt.NDArray[np.uint64]
    country: Ints
    cross: Ints
    asn: Ints


def compiled_attributor(
    *, outcomes: npt.NDArray[np.int8], site: Ranges, private: Ranges, prefixes: Prefixes,
    nets: Spans, vni_keys: Ints, vnis: Spans, geo: GeoRanges | None,
) -> Ipv4Attributor:
    """The :class:`~egress._wincore.Ipv4Attributor` of these tables (see csrc/wincore/attrib.c
    for their meaning and order)."""
    levels = len(prefixes.lengths)
    dense = [d if d is not None else np.zeros(0, np.int64) for d in prefixes.dense]
    no_geo = np.zeros(0, np.int64)
    tables = (
        np.ascontiguousarray(outcomes, np.int8), site.bounds, private.bounds,
        np.array(prefixes.lengths, np.int64),
        np.cumsum([0, *(len(k) for k in prefixes.keys)]).astype(np.int64),
        _joined(prefixes.keys, np.uint64), _joined(prefixes.values, np.int64),
        np.array([k[0] if len(k) else 0 for k in prefixes.keys], np.uint64).reshape(levels),
        np.cumsum([0, *(len(d) for d in dense)]).astype(np.int64),
        _joined(dense, np.int64),
        *_span_tables(nets), vni_keys.astype(np.int64), *_span_tables(vnis),
        *((geo.starts, geo.ends, geo.country, geo.cross, geo.asn) if geo is not None
          else (no_geo.astype(np.uint64), no_geo.astype(np.uint64), no_geo, no_geo, no_geo)),
    )
    return Ipv4Attributor(tuple(np.ascontiguousarray(t) for t in tables))


def _joined(parts: Sequence[npt.NDArray[np.generic]], kind: type[np.generic]) -> npt.NDArray[
        np.generic]:
    return np.concatenate([np.asarray(p, kind) for p in parts]) if parts else np.zeros(0, kind)


def _span_tables(spans: Spans) -> tuple[npt.NDArray[np.generic], ...]:
    return (spans.first.astype(np.int64), spans.count.astype(np.int64),
            spans.starts.astype(np.float64), spans.ends.astype(np.float64),
            spans.owners.astype(np.int64))
