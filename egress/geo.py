"""Remote country and autonomous system of an address, from MaxMind DB or range CSV files.

Sources, detected by :func:`load_geo`:

* MaxMind DB (``.mmdb``, found by its metadata marker): GeoLite2/GeoIP2 City or Country
  (``country.iso_code``, falling back to ``registered_country.iso_code``) and ASN
  (``autonomous_system_number``, ``autonomous_system_organization``) databases.
* Range files, IPv4 and IPv6 rows mixed, optionally gzip-compressed, found by content:

  - DB-IP lite country: ``start,end,country`` (``ZZ`` is unknown);
  - DB-IP lite city: ``start,end,continent,country,stateprov,city,latitude,longitude``;
  - DB-IP lite ASN: ``start,end,asn,organization``;
  - iptoasn ``ip2asn-combined.tsv``: ``start<TAB>end<TAB>asn<TAB>country<TAB>description``
    (AS 0 marks a range that is not routed: it says nothing and is skipped).

Range files are sorted by start on loading and searched by bisection per address family.
Overlapping ranges within one file are a :class:`~egress.errors.ConfigError` naming both lines:
no published layout overlaps, so an overlap means a damaged or hand-edited file, and picking
one of the two answers would be a guess. So is any malformed line.

Several sources combine field by field: the country comes from the first source that knows it,
the AS number and organization (as a pair) from the first source that knows the number.

Private and reserved addresses (RFC 1918, CGNAT, loopback, link-local, ULA, unspecified,
multicast, 240/4) are never looked up: they map to :data:`UNKNOWN`. Documentation ranges
(192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are looked up like any
public address, since :attr:`ipaddress.IPv4Address.is_private` would lump them in.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import ipaddress
import logging
from abc import ABC, abstractmethod
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, NamedTuple, Protocol, Self

import maxminddb
import numpy as np
import numpy.typing as npt

from egress.errors import ConfigError

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Default number of distinct addresses whose answers are kept; flows repeat addresses.
DEFAULT_CACHE_SIZE = 65_536

_MMDB_MARKER = b"\xab\xcd\xefMaxMind.com"
#: The metadata section sits in the last 128 KiB of a MaxMind DB file.
_MMDB_TAIL_BYTES = 128 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True, kw_only=True)
class GeoInfo:
    """What is known of a remote address; each field is ``None`` when unknown.

    ``country`` is an ISO 3166-1 alpha-2 code in upper case, ``asn`` the AS number,
    ``as_org`` the AS organization as the source spells it.
    """

    country: str | None
    asn: int | None
    as_org: str | None


#: The answer for private, reserved and unknown addresses.
UNKNOWN = GeoInfo(country=None, asn=None, as_org=None)


class GeoLookup(Protocol):
    """Anything that answers country and AS questions about an address."""

    def lookup(self, addr: str) -> GeoInfo:
        """Return what is known of ``addr``; raise ``ValueError`` if it is not an address."""
        ...


_NOT_LOOKED_UP = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this" network
        "10.0.0.0/8",  # RFC 1918
        "100.64.0.0/10",  # CGNAT, RFC 6598
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local
        "172.16.0.0/12",  # RFC 1918
        "192.168.0.0/16",  # RFC 1918
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved and broadcast
        "::/128",  # unspecified
        "::1/128",  # loopback
        "fc00::/7",  # ULA
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
    )
)


def merged_ipv4_bounds(networks: Sequence[ipaddress.IPv4Network]) -> npt.NDArray[np.uint64]:
    """The union of IPv4 networks as sorted ``start, end + 1`` pairs, overlaps merged."""
    merged: list[list[int]] = []
    for start, end in sorted((int(n.network_address), int(n.broadcast_address) + 1)
                             for n in networks):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return np.array([b for pair in merged for b in pair], np.uint64)


_NOT_LOOKED_UP_V4 = merged_ipv4_bounds(
    [n for n in _NOT_LOOKED_UP if isinstance(n, ipaddress.IPv4Network)])


def not_looked_up_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The private and reserved networks :func:`is_not_looked_up` tests against."""
    return _NOT_LOOKED_UP


def parse_address(addr: str) -> IPAddress:
    """Parse ``addr``; IPv4-mapped IPv6 (``::ffff:a.b.c.d``) becomes the IPv4 address.

    Raises ``ValueError`` when ``addr`` is not an IP address.
    """
    ip = ipaddress.ip_address(addr.strip())
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_not_looked_up(ip: IPAddress) -> bool:
    """Tell whether ``ip`` is private or reserved, so that no source is asked about it."""
    return any(ip in net for net in _NOT_LOOKED_UP if net.version == ip.version)


def is_cross_border(site_country: str, info: GeoInfo) -> bool | None:
    """Tell whether a transfer between a site in ``site_country`` and ``info`` crosses a border.

    Countries are ISO alpha-2 codes compared without regard to case. Returns ``None`` when the
    remote country is unknown: that is never taken for either answer.
    """
    if info.country is None:
        return None
    return info.country.upper() != site_country.strip().upper()


def _merge(infos: Iterator[GeoInfo]) -> GeoInfo:
    """Combine answers: first known country, first known AS number with its organization."""
    country: str | None = None
    asn: int | None = None
    as_org: str | None = None
    for info in infos:
        if country is None:
            country = info.country
        if asn is None and info.asn is not None:
            asn, as_org = info.asn, info.as_org
        if country is not None and asn is not None:
            break
    if country is None and asn is None:
        return UNKNOWN
    return GeoInfo(country=country, asn=asn, as_org=as_org)


class _CachedLookup(ABC):
    """Shared front of every source: parse, skip private addresses, cache, then ``_find``."""

    def __init__(self, *, cache_size: int) -> None:
        self._cached = functools.lru_cache(maxsize=cache_size)(self._lookup_parsed)

    def lookup(self, addr: str) -> GeoInfo:
        """Return what is known of ``addr``; :data:`UNKNOWN` for private or unknown addresses.

        Raises ``ValueError`` when ``addr`` is not an IP address.
        """
        return self._cached(parse_address(addr))

    def _lookup_parsed(self, ip: IPAddress) -> GeoInfo:
        if is_not_looked_up(ip):
            return UNKNOWN
        return self._find(ip)

    @abstractmethod
    def _find(self, ip: IPAddress) -> GeoInfo:
        """Look ``ip`` up in this source (a public, routable address)."""

    def close(self) -> None:
        """Release the files behind this source (nothing to do unless overridden)."""
        self._cached.cache_clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --- MaxMind DB ----------------------------------------------------------------------------


def _field(record: object, *keys: str) -> object:
    """Follow ``keys`` through nested dicts; ``None`` where a level is missing."""
    value = record
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _country_code(value: object) -> str | None:
    if isinstance(value, str) and len(value) == 2 and value.isalpha():
        return value.upper()
    return None


class MmdbGeo(_CachedLookup):
    """Lookups in one or more MaxMind DB files (a City or Country database and an ASN database).

    Each database answers whatever fields it holds (GeoLite2 names); answers combine as
    described in the module docstring. The files stay open (memory-mapped) until
    :meth:`close`; use as a context manager.
    """

    def __init__(self, paths: Sequence[Path], *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        """Open ``paths``; raise :class:`ConfigError` naming a file that is not a MaxMind DB."""
        super().__init__(cache_size=cache_size)
        if not paths:
            raise ValueError("MmdbGeo needs at least one database")
        self._readers: list[maxminddb.Reader] = []
        for path in paths:
            try:
                self._readers.append(maxminddb.open_database(str(path)))
            except (OSError, ValueError, RuntimeError) as exc:
                self.close()
                raise ConfigError(f"{path}: not a readable MaxMind DB file: {exc}") from exc
        self.paths = tuple(paths)

    def _find(self, ip: IPAddress) -> GeoInfo:
        return _merge(self._ask(reader, ip) for reader in self._readers)

    @staticmethod
    def _ask(reader: maxminddb.Reader, ip: IPAddress) -> GeoInfo:
        try:
            record = reader.get(ip)
        except ValueError:
            # An IPv6 address asked of an IPv4-only database: it cannot know.
            return UNKNOWN
        if record is None:
            return UNKNOWN
        country = _country_code(_field(record, "country", "iso_code")) or _country_code(
            _field(record, "registered_country", "iso_code")
        )
        asn_value = _field(record, "autonomous_system_number")
        asn = asn_value if isinstance(asn_value, int) and asn_value > 0 else None
        org_value = _field(record, "autonomous_system_organization")
        as_org = org_value if asn is not None and isinstance(org_value, str) else None
        return GeoInfo(country=country, asn=asn, as_org=as_org)

    def close(self) -> None:
        """Close every database; lookups afterwards raise ``ValueError``."""
        super().close()
        for reader in self._readers:
            reader.close()


# --- Range files ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Family:
    """Ranges of one address family in one file, sorted by start after :meth:`seal`."""

    starts: list[int]
    ends: list[int]
    infos: list[GeoInfo]
    lines: list[int]

    def find(self, value: int) -> GeoInfo | None:
        i = bisect_right(self.starts, value) - 1
        if i >= 0 and value <= self.ends[i]:
            return self.infos[i]
        return None


def _empty_family() -> _Family:
    return _Family(starts=[], ends=[], infos=[], lines=[])


def _seal(family: _Family, path: Path) -> _Family:
    """Sort ``family`` by start and reject overlapping ranges."""
    order = sorted(range(len(family.starts)), key=family.starts.__getitem__)
    sealed = _Family(
        starts=[family.starts[i] for i in order],
        ends=[family.ends[i] for i in order],
        infos=[family.infos[i] for i in order],
        lines=[family.lines[i] for i in order],
    )
    for i in range(1, len(sealed.starts)):
        if sealed.starts[i] <= sealed.ends[i - 1]:
            raise ConfigError(
                f"{path}:{sealed.lines[i]}: range overlaps the range on line {sealed.lines[i - 1]}"
            )
    return sealed


def _layout(fields: list[str]) -> str | None:
    """Name the layout of a data row, or ``None`` when none fits."""
    if len(fields) == 5 and fields[2].isdigit():
        return "iptoasn"
    if len(fields) == 3:
        return "dbip-country"
    if len(fields) == 4 and fields[2].isdigit():
        return "dbip-asn"
    if len(fields) == 8:
        return "dbip-city"
    return None


def _open_text(path: Path) -> IO[str]:
    with path.open("rb") as raw:
        magic = raw.read(2)
    if magic == _GZIP_MAGIC:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


class _RangeFile:
    """One parsed range file: an IPv4 and an IPv6 table."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.layout: str | None = None
        self.rows = 0
        self.ipv4_table: _Ipv4Table | None = None  # numpy form of v4, see lookup_ipv4
        families = {4: _empty_family(), 6: _empty_family()}
        interned: dict[GeoInfo, GeoInfo] = {}
        try:
            with _open_text(path) as text:
                first = text.readline()
                delimiter = "\t" if "\t" in first else ","
                text.seek(0)
                for line_no, fields in enumerate(csv.reader(text, delimiter=delimiter), 1):
                    if not fields or not "".join(fields).strip():
                        continue
                    self._row(fields, line_no, families, interned)
        except (OSError, UnicodeDecodeError, EOFError, csv.Error) as exc:
            raise ConfigError(f"{path}: cannot read geo range file: {exc}") from exc
        if self.layout is None:
            raise ConfigError(f"{path}: no ranges in geo range file")
        self.v4: _Family = _seal(families[4], path)
        self.v6: _Family = _seal(families[6], path)
        log.debug("loaded %d ranges (%s) from %s", self.rows, self.layout, path)

    def _row(
        self,
        fields: list[str],
        line_no: int,
        families: dict[int, _Family],
        interned: dict[GeoInfo, GeoInfo],
    ) -> None:
        where = f"{self.path}:{line_no}"
        try:
            start = parse_address(fields[0])
        except ValueError:
            if self.layout is None and line_no == 1 and any(c.isalpha() for c in fields[0]):
                return  # a header row: layouts are told apart by the data rows
            raise ConfigError(f"{where}: bad range start {fields[0]!r}") from None
        layout = _layout(fields)
        if self.layout is None:
            if layout is None:
                raise ConfigError(f"{where}: unrecognized geo range layout ({len(fields)} fields)")
            self.layout = layout
        elif layout != self.layout:
            raise ConfigError(f"{where}: expected a {self.layout} row, got {len(fields)} fields")
        try:
            end = parse_address(fields[1])
        except ValueError:
            raise ConfigError(f"{where}: bad range end {fields[1]!r}") from None
        if start.version != end.version:
            raise ConfigError(f"{where}: range mixes IPv4 and IPv6")
        if int(end) < int(start):
            raise ConfigError(f"{where}: range ends before it starts")
        info = self._info(fields, where)
        self.rows += 1
        if info is None:
            return
        info = interned.setdefault(info, info)
        family = families[start.version]
        family.starts.append(int(start))
        family.ends.append(int(end))
        family.infos.append(info)
        family.lines.append(line_no)

    def _info(self, fields: list[str], where: str) -> GeoInfo | None:
        """Turn the payload of a row into a GeoInfo; ``None`` for rows that say nothing."""
        if self.layout in ("dbip-country", "dbip-city"):
            raw = fields[2] if self.layout == "dbip-country" else fields[3]
            code = raw.strip()
            if code.upper() == "ZZ":
                return None
            country = _country_code(code)
            if country is None:
                raise ConfigError(f"{where}: bad country code {raw!r}")
            return GeoInfo(country=country, asn=None, as_org=None)
        try:
            asn = int(fields[2])
        except ValueError:
            raise ConfigError(f"{where}: bad AS number {fields[2]!r}") from None
        if self.layout == "dbip-asn":
            org = fields[3].strip() or None
            return GeoInfo(country=None, asn=asn, as_org=org) if asn > 0 else None
        # iptoasn
        if asn == 0:
            return None  # not routed
        code = fields[3].strip()
        country = None if code in ("None", "", "ZZ") else _country_code(code)
        if country is None and code not in ("None", "", "ZZ"):
            raise ConfigError(f"{where}: bad country code {code!r}")
        return GeoInfo(country=country, asn=asn, as_org=fields[4].strip() or None)

    def find(self, ip: IPAddress) -> GeoInfo:
        table = self.v4 if ip.version == 4 else self.v6
        return table.find(int(ip)) or UNKNOWN


class RangeCsvGeo(_CachedLookup):
    """Lookups in DB-IP lite CSV and iptoasn TSV range files (see the module docstring).

    Every file is read whole on construction; lookups then bisect sorted integer range starts.
    """

    def __init__(self, paths: Sequence[Path], *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        """Load ``paths``; raise :class:`ConfigError` with file and line for a bad file."""
        super().__init__(cache_size=cache_size)
        if not paths:
            raise ValueError("RangeCsvGeo needs at least one file")
        self._files = [_RangeFile(path) for path in paths]
        self.paths = tuple(paths)

    def _find(self, ip: IPAddress) -> GeoInfo:
        return _merge(f.find(ip) for f in self._files)

    def lookup_ipv4(self, numbers: npt.NDArray[np.uint64]) -> Ipv4Answers:
        """Answer for many IPv4 addresses given as numbers, as :meth:`lookup` would."""
        return _merge_ipv4([_ipv4_table(f) for f in self._files], numbers)


class GeoDatabase(_CachedLookup):
    """Several sources asked in order, answers combined field by field."""

    def __init__(
        self, sources: Sequence[MmdbGeo | RangeCsvGeo], *, cache_size: int = DEFAULT_CACHE_SIZE
    ) -> None:
        super().__init__(cache_size=cache_size)
        self.sources = tuple(sources)

    def _find(self, ip: IPAddress) -> GeoInfo:
        # The sources' own caches would only hold copies of what this one keeps.
        return _merge(source._find(ip) for source in self.sources)

    def lookup_ipv4(self, numbers: npt.NDArray[np.uint64]) -> Ipv4Answers:
        """Answer for many IPv4 addresses given as numbers, as :meth:`lookup` would.

        Raises ``TypeError`` unless every source is a :class:`RangeCsvGeo`
        (see :func:`ipv4_lookup`).
        """
        tables = []
        for source in self.sources:
            if not isinstance(source, RangeCsvGeo):
                raise TypeError("IPv4 column lookups need range files only")
            tables += [_ipv4_table(f) for f in source._files]
        return _merge_ipv4(tables, numbers)

    def close(self) -> None:
        """Close every source."""
        super().close()
        for source in self.sources:
            source.close()


# --- many IPv4 addresses at once -----------------------------------------------------------


class Ipv4Answers(NamedTuple):
    """Answers for many IPv4 addresses: one entry per address, -1 where unknown.

    ``country`` indexes ``countries``; ``asn`` is the AS number (the organization is left out).
    """

    countries: tuple[str, ...]
    country: npt.NDArray[np.int64]
    asn: npt.NDArray[np.int64]


class _Ipv4Table(NamedTuple):
    starts: npt.NDArray[np.uint64]
    ends: npt.NDArray[np.uint64]
    countries: tuple[str, ...]  # the distinct countries of the ranges
    country: npt.NDArray[np.int64]  # each range's position in countries, -1 none
    asn: npt.NDArray[np.int64]


def _ipv4_table(file: _RangeFile) -> _Ipv4Table:
    """The IPv4 ranges of a file as sorted arrays, built on first use and kept."""
    table = file.ipv4_table
    if table is None:
        family = file.v4
        countries: dict[str, int] = {}
        codes = [-1 if i.country is None else countries.setdefault(i.country, len(countries))
                 for i in family.infos]
        table = _Ipv4Table(
            np.array(family.starts, np.uint64),
            np.array(family.ends, np.uint64),
            tuple(countries),
            np.array(codes, np.int64),
            np.array([-1 if i.asn is None else i.asn for i in family.infos], np.int64),
        )
        file.ipv4_table = table
    return table


def _merge_ipv4(tables: Sequence[_Ipv4Table], numbers: npt.NDArray[np.uint64]) -> Ipv4Answers:
    """Look ``numbers`` up in each table; merge as :func:`_merge` does, field by field."""
    names: dict[str, int] = {}
    country = np.full(len(numbers), -1, np.int64)
    asn = np.full(len(numbers), -1, np.int64)
    # outside every private and reserved network: an even number of bounds at or below
    looked_up = np.searchsorted(_NOT_LOOKED_UP_V4, numbers, side="right") % 2 == 0
    for table in tables:
        if len(table.starts) == 0:
            continue
        i = np.searchsorted(table.starts, numbers, side="right") - 1
        safe = np.maximum(i, 0)
        hit = looked_up & (i >= 0) & (numbers <= table.ends[safe])
        # the table's country positions as positions in names (-1 stays -1)
        merged = np.array([names.setdefault(c, len(names)) for c in table.countries] + [-1],
                          np.int64)
        found = np.where(hit, merged[table.country[safe]], -1)
        country = np.where(country < 0, found, country)
        asn = np.where(asn < 0, np.where(hit, table.asn[safe], -1), asn)
    return Ipv4Answers(tuple(names), country, asn)


class Ipv4Ranges(NamedTuple):
    """The IPv4 answers of a geo source as disjoint sorted ranges, ``starts[i]`` to
    ``ends[i]`` inclusive; ``country`` indexes ``countries`` (-1 none), ``asn`` -1 none.
    Addresses outside every range, and private or reserved ones, have no answer."""

    starts: npt.NDArray[np.uint64]
    ends: npt.NDArray[np.uint64]
    countries: tuple[str, ...]
    country: npt.NDArray[np.int64]
    asn: npt.NDArray[np.int64]


def ipv4_ranges(geo: GeoLookup) -> Ipv4Ranges | None:
    """What :func:`ipv4_lookup` answers, as one table of ranges (range files only, else None).

    Every bound of every file, and of the networks never looked up, starts a range, so each
    address of a range gets the same answer, merged field by field over the files; the
    answer of its first address is the range's.
    """
    sources = [geo] if isinstance(geo, RangeCsvGeo) else list(
        geo.sources) if isinstance(geo, GeoDatabase) else []
    ranges = [s for s in sources if isinstance(s, RangeCsvGeo)]
    if not ranges or len(ranges) < len(sources):
        return None
    tables = [_ipv4_table(f) for s in ranges for f in s._files]
    top = np.uint64(1 << 32)
    bounds = np.unique(np.concatenate([
        np.zeros(1, np.uint64), _NOT_LOOKED_UP_V4,
        *(t.starts for t in tables), *(t.ends + np.uint64(1) for t in tables)]))
    starts = bounds[bounds < top]
    ends = np.append(starts[1:], top) - np.uint64(1)
    found = _merge_ipv4(tables, starts)
    keep = (found.country >= 0) | (found.asn >= 0)
    return Ipv4Ranges(starts[keep], ends[keep], found.countries, found.country[keep],
                      found.asn[keep])


def ipv4_lookup(
    geo: GeoLookup,
) -> Callable[[npt.NDArray[np.uint64]], Ipv4Answers] | None:
    """The column-wise IPv4 lookup of ``geo`` when it has one (range files only), else None."""
    if isinstance(geo, RangeCsvGeo):
        return geo.lookup_ipv4
    if isinstance(geo, GeoDatabase) and all(isinstance(s, RangeCsvGeo) for s in geo.sources):
        return geo.lookup_ipv4
    return None


def is_mmdb(path: Path) -> bool:
    """Tell whether ``path`` is a MaxMind DB file, by its metadata marker.

    A ``.mmdb`` file without the marker raises :class:`ConfigError`, as does an unreadable file.
    """
    try:
        with path.open("rb") as f:
            size = f.seek(0, io.SEEK_END)
            f.seek(max(0, size - _MMDB_TAIL_BYTES))
            found = _MMDB_MARKER in f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read geo file: {exc}") from exc
    if not found and path.suffix.lower() == ".mmdb":
        raise ConfigError(f"{path}: not a MaxMind DB file (no metadata marker)")
    return found


def load_geo(paths: Sequence[Path], *, cache_size: int = DEFAULT_CACHE_SIZE) -> GeoDatabase:
    """Load country and ASN sources from ``paths``, telling MaxMind DB from range files.

    MaxMind DB files are asked first, then range files, each kind in the order given.
    Raises :class:`ConfigError` naming the file (and line, for range files) that is bad.
    """
    if not paths:
        raise ConfigError("no geo files given")
    mmdb = [p for p in paths if is_mmdb(p)]
    ranges = [p for p in paths if p not in mmdb]
    sources: list[MmdbGeo | RangeCsvGeo] = []
    try:
        if mmdb:
            sources.append(MmdbGeo(mmdb, cache_size=0))
        if ranges:
            sources.append(RangeCsvGeo(ranges, cache_size=0))
    except ConfigError:
        for source in sources:
            source.close()
        raise
    return GeoDatabase(sources, cache_size=cache_size)
