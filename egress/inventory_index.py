"""The lookup structures behind :class:`egress.inventory.Inventory`, built once per inventory.

Each answers "who holds this key at time ``t``" with times as POSIX seconds (floats,
``-inf``/``inf`` for open ends) and validity half-open, ``start <= t < end``:

- :class:`Timeline`: non-overlapping spans of one key (a VNI, an address range), bisected;
  :func:`build_timelines` builds them and reports every overlap as a :class:`Conflict`
  instead of picking a winner.
- :class:`PrefixIndex`: longest-prefix match of an address over per-prefix timelines.
- :class:`GlobIndex`: fnmatch patterns (bucket names, copy-log file names) keyed by their
  literal prefix; the most specific match wins and a tie answers ``None``.

Nothing here knows about tenants as records: :mod:`egress.inventory` turns its records into
spans and patterns and keeps the public API.
"""

from __future__ import annotations

import fnmatch
import re
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import NamedTuple, TypeVar

from egress.yaml_lines import FieldPath

AnyAddress = IPv4Address | IPv6Address
AnyNetwork = IPv4Network | IPv6Network
K = TypeVar("K")


class Span(NamedTuple):
    start: float
    end: float
    owner: str
    origin: FieldPath  # where it was declared, for error messages
    label: AnyNetwork | int  # the range or VNI, for error messages (str() when one is)


class Conflict(NamedTuple):
    """Two declarations that claim the same key at overlapping times."""

    key: str
    first: FieldPath
    second: FieldPath


@dataclass(frozen=True, slots=True)
class Timeline:
    """Non-overlapping spans of one key, sorted by start, searched with bisect."""

    starts: tuple[float, ...]
    ends: tuple[float, ...]
    owners: tuple[str, ...]

    def owner_at(self, t: float) -> str | None:
        i = bisect_right(self.starts, t) - 1
        return self.owners[i] if i >= 0 and t < self.ends[i] else None


def build_timelines(spans: dict[K, list[Span]]) -> tuple[dict[K, Timeline], list[Conflict]]:
    tables: dict[K, Timeline] = {}
    conflicts: list[Conflict] = []
    for key, items in spans.items():
        if len(items) == 1:  # most keys: one holder in the inventory's whole history
            only = items[0]
            tables[key] = Timeline((only.start,), (only.end,), (only.owner,))
            continue
        items.sort(key=lambda span: (span.start, span.end))
        latest = items[0]
        for span in items[1:]:
            if span.start < latest.end:
                conflicts.append(Conflict(str(span.label), latest.origin, span.origin))
            if span.end > latest.end:
                latest = span
        tables[key] = Timeline(
            tuple(s.start for s in items),
            tuple(s.end for s in items),
            tuple(s.owner for s in items),
        )
    return tables, conflicts


def _literal_prefix(pattern: str) -> str:
    match = re.search(r"[*?\[]", pattern)
    return pattern if match is None else pattern[: match.start()]


class Glob(NamedTuple):
    rank: tuple[int, int]  # (exact, literal characters): higher is more specific
    regex: re.Pattern[str] | None  # None: an exact name, or literal prefix + "*"
    start: float
    end: float
    owner: str
    job: str


@dataclass(frozen=True, slots=True)
class GlobIndex:
    """fnmatch patterns keyed by their literal prefix: a lookup reads one dict per prefix."""

    by_prefix: dict[str, tuple[Glob, ...]]
    prefix_lengths: tuple[int, ...]

    @staticmethod
    def build(entries: Iterable[tuple[str, float, float, str, str]]) -> GlobIndex:
        groups: dict[str, list[Glob]] = defaultdict(list)
        for pattern, start, end, owner, job in entries:
            prefix = _literal_prefix(pattern)
            exact = int(prefix == pattern)
            literal = len(re.sub(r"\[[^\]]*\]|[*?]", "", pattern))
            simple = exact or pattern == prefix + "*"
            regex = None if simple else re.compile(fnmatch.translate(pattern))
            groups[prefix].append(Glob((exact, literal), regex, start, end, owner, job))
        lengths = tuple(sorted({len(prefix) for prefix in groups}))
        return GlobIndex({k: tuple(v) for k, v in groups.items()}, lengths)

    def matches(self, name: str) -> Iterator[Glob]:
        for length in self.prefix_lengths:
            if length > len(name):
                break
            for glob in self.by_prefix.get(name[:length], ()):
                if glob.regex is None:
                    if not glob.rank[0] or length == len(name):
                        yield glob
                elif glob.regex.match(name):
                    yield glob

    def best(self, name: str, t: float) -> tuple[str, str] | None:
        """Owner and job of the most specific pattern matching at ``t``; None if tied."""
        best: list[Glob] = []
        for glob in self.matches(name):
            if not glob.start <= t < glob.end:
                continue
            if not best or glob.rank > best[0].rank:
                best = [glob]
            elif glob.rank == best[0].rank:
                best.append(glob)
        found = {(glob.owner, glob.job) for glob in best}
        return found.pop() if len(found) == 1 else None


PrefixKey = tuple[int, int, int]
"""(IP version, prefix length, network address shifted right by the host bits)."""


def prefix_key(network: AnyNetwork) -> PrefixKey:
    shift = network.max_prefixlen - network.prefixlen
    return network.version, network.prefixlen, int(network.network_address) >> shift


@dataclass(frozen=True, slots=True)
class PrefixIndex:
    """Longest-prefix match: one dict lookup per prefix length in use, longest first."""

    timelines: dict[PrefixKey, Timeline]
    lengths: dict[int, tuple[int, ...]]  # version -> prefix lengths in use, longest first

    @staticmethod
    def build(timelines: dict[PrefixKey, Timeline]) -> PrefixIndex:
        lengths: dict[int, set[int]] = {4: set(), 6: set()}
        for version, length, _ in timelines:
            lengths[version].add(length)
        return PrefixIndex(
            timelines, {v: tuple(sorted(ls, reverse=True)) for v, ls in lengths.items()}
        )

    def matching(self, address: AnyAddress) -> tuple[tuple[PrefixKey, Timeline], ...]:
        """Keys and timelines of the prefixes containing ``address``, longest first."""
        value, bits = int(address), address.max_prefixlen
        found = []
        for length in self.lengths[address.version]:
            key = (address.version, length, value >> (bits - length))
            timeline = self.timelines.get(key)
            if timeline is not None:
                found.append((key, timeline))
        return tuple(found)

    def owner(self, address: AnyAddress, t: float) -> str | None:
        value, bits = int(address), address.max_prefixlen
        for length in self.lengths[address.version]:
            timeline = self.timelines.get((address.version, length, value >> (bits - length)))
            if timeline is not None:
                found = timeline.owner_at(t)
                if found is not None:
                    return found
        return None
