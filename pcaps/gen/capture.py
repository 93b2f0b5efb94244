"""What a generated capture is made of, and the units a flow table counts in it.

A :class:`Capture` is a list of :class:`Record` frames (or pcapng :class:`Section` s of
them); each record carries the :class:`Unit` s a Zeek-style flow table counts for it,
read from the bytes written by :func:`unit_of` (and :func:`reassemble` for fragments).
Times are integer nanoseconds (:data:`NS`, :data:`US`, :data:`MS`); capture number ``i``
starts at :func:`start`.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

NS = 1_000_000_000
US = 1_000
MS = 1_000_000
BASE_NS = 1_709_294_400 * NS  # 2024-03-01T12:00:00Z; file i starts i hours later
DEFAULT_SNAPLEN = 262_144
ICMP_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 128: 129, 129: 128}  # echo / timestamp / echo v6


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True, kw_only=True)
class Unit:
    """One IP datagram as a flow table counts it (ports: ICMP type / counterpart)."""

    src: str
    sport: int
    dst: str
    dport: int
    proto: str
    pure_syn: bool
    ip_len: int
    vni: int | None = None
    vlan: int | None = None
    inner_vlan: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One captured frame: what is stored (``data``), its wire length, and its units."""

    ts_ns: int
    data: bytes
    wire_len: int
    units: tuple[Unit, ...]
    ifid: int = 0
    block: str = "epb"  # pcapng only: "epb", "spb" or "custom"


@dataclass(frozen=True, slots=True, kw_only=True)
class Interface:
    """A pcapng interface; ``tsresol`` None means the option is left out (microseconds)."""

    linktype: int
    name: str
    tsresol: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Section:
    """A pcapng section: its byte order, interfaces and blocks in file order."""

    big_endian: bool
    interfaces: tuple[Interface, ...]
    records: list[Record]


@dataclass(frozen=True, slots=True, kw_only=True)
class Capture:
    """A capture file to write and describe."""

    name: str
    description: str
    records: list[Record] = field(default_factory=list)
    linktype: int = 1
    big_endian: bool = False
    nano: bool = False
    snaplen: int = DEFAULT_SNAPLEN
    sections: tuple[Section, ...] = ()

    @property
    def all_records(self) -> list[Record]:
        """Return the records in file order, across pcapng sections."""
        if self.sections:
            return [r for s in self.sections for r in s.records]
        return self.records


# ----------------------------------------------------------------------------- units


def _addr(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def unit_of(raw: bytes, *, vni: int | None = None, vlan: int | None = None,
            inner_vlan: int | None = None) -> Unit:
    """Read the unit of an unfragmented IP datagram from its bytes (headers suffice)."""
    if raw[0] >> 4 == 4:
        off = (raw[0] & 0x0F) * 4
        ip_len, proto = struct.unpack_from("!H", raw, 2)[0], raw[9]
        src, dst = _addr(raw[12:16]), _addr(raw[16:20])
    else:
        ip_len, proto, off = struct.unpack_from("!H", raw, 4)[0] + 40, raw[6], 40
        src, dst = _addr(raw[8:24]), _addr(raw[24:40])
        while proto in (0, 43, 60):  # hop-by-hop, routing, destination options
            proto, off = raw[off], off + (raw[off + 1] + 1) * 8
    if proto in (6, 17):
        sport, dport = struct.unpack_from("!HH", raw, off)
        pure_syn = proto == 6 and raw[off + 13] & 0x12 == 0x02
        name = "tcp" if proto == 6 else "udp"
    elif proto in (1, 58):
        sport, pure_syn, name = raw[off], False, "icmp"
        dport = ICMP_PAIRS.get(sport, raw[off + 1])
    else:
        raise ValueError(f"no unit rule for IP protocol {proto}")
    return Unit(src=src, sport=sport, dst=dst, dport=dport, proto=name, pure_syn=pure_syn,
                ip_len=ip_len, vni=vni, vlan=vlan, inner_vlan=inner_vlan)


def reassemble(frags: Sequence[bytes]) -> bytes:
    """Rebuild the datagram of a complete fragment set (any order), as a reassembler would."""
    if frags[0][0] >> 4 == 4:
        parts = sorted((struct.unpack_from("!H", f, 6)[0] & 0x1FFF, f) for f in frags)
        head = bytearray(parts[0][1][: (parts[0][1][0] & 0x0F) * 4])
        body = b"".join(f[(f[0] & 0x0F) * 4: struct.unpack_from("!H", f, 2)[0]] for _, f in parts)
        struct.pack_into("!H", head, 2, len(head) + len(body))
        struct.pack_into("!H", head, 6, 0)  # no more fragments, offset 0
        return bytes(head) + body
    pieces = []
    for f in frags:
        nh_at, off = 6, 40
        while f[nh_at] != 44:
            nh_at, off = off, off + (f[off + 1] + 1) * 8
        pieces.append((struct.unpack_from("!H", f, off + 2)[0] >> 3, f, nh_at, off))
    pieces.sort()
    _, first, nh_at, off = pieces[0]
    head = bytearray(first[:off])
    head[nh_at] = first[off]  # the fragment header's next header takes its place
    body = b"".join(f[o + 8: 40 + struct.unpack_from("!H", f, 4)[0]] for _, f, _, o in pieces)
    struct.pack_into("!H", head, 4, len(head) + len(body) - 40)
    return bytes(head) + body


def start(i: int) -> int:
    """Return the first timestamp of capture number ``i`` (one hour apart)."""
    return BASE_NS + i * 3600 * NS
