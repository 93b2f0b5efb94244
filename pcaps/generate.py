"""Generate the sample captures in ``pcaps/`` and the flows each one must yield.

Run ``python pcaps/generate.py [OUTDIR]`` (default: the directory of this file). It writes
one capture per supported encapsulation, ``expected.json`` (the exact flows of every
capture) and ``README.md`` (the same facts for people). The output is a pure function of
this file: timestamps are fixed, every random choice comes from a ``random.Random`` seeded
with a constant string, and gzip headers carry no name or time, so two runs give
byte-identical files.

Packets are crafted with scapy. Expected flows are counted from the bytes written, not by
running egress: each frame carries the *units* a Zeek-style flow table counts for it (the
IP datagram; for VXLAN/Geneve the outer datagram and the inner one; for GRE only the inner
one; for fragments the reassembled datagram, on the fragment that completes it), and
:func:`tally` groups the units into flows with Zeek's conn.log rules.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import socket
import struct
import sys
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from scapy.contrib.geneve import GENEVE, GeneveOptions
from scapy.contrib.mpls import MPLS
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import (
    ICMP,
    IP,
    TCP,
    UDP,
    IPOption_NOP,
    IPOption_Router_Alert,
    IPOption_RR,
    fragment,
)
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    PadN,
    RouterAlert,
    fragment6,
)
from scapy.layers.l2 import ARP, GRE, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.layers.ntp import NTPHeader
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Padding, Raw
from scapy.utils import RawPcapWriter

NS = 1_000_000_000
US = 1_000
MS = 1_000_000
BASE_NS = 1_709_294_400 * NS  # 2024-03-01T12:00:00Z; file i starts i hours later
DEFAULT_SNAPLEN = 262_144
ICMP_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 128: 129, 129: 128}  # echo / timestamp / echo v6
DNS_PORTS = frozenset({53, 137, 5353, 5355})

Frame = tuple[bytes, tuple["Unit", ...]]
Link = Callable[[Packet], Frame]
Datagram = tuple[int, Packet]  # (timestamp in ns, IP or IPv6 packet)


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


# ----------------------------------------------------------------------------- network layer


class Network:
    """Build IP headers: per-source IPv4 IDs, optional IPv4 options or IPv6 extension headers."""

    def __init__(self, *, ip_options: Sequence[Packet] = (),
                 ext_headers: Sequence[Packet] = ()) -> None:
        self._ids: dict[str, int] = {}
        self._options = list(ip_options)
        self._ext = list(ext_headers)

    def ip(self, src: str, dst: str) -> Packet:
        """Return a fresh IP (or IPv6 + extension headers) layer from ``src`` to ``dst``."""
        if ":" in src:
            pkt = IPv6(src=src, dst=dst, hlim=64)
            for ext in self._ext:
                pkt = pkt / ext.copy()
            return pkt
        ident = self._ids.get(src, zlib.crc32(src.encode()) & 0xFFFF)
        self._ids[src] = (ident + 1) & 0xFFFF
        return IP(src=src, dst=dst, id=ident, ttl=64, options=[o.copy() for o in self._options])


def _icmp_echo(src: str, ident: int, seq: int, data: bytes, *, reply: bool) -> Packet:
    if ":" in src:
        cls = ICMPv6EchoReply if reply else ICMPv6EchoRequest
        return cls(id=ident, seq=seq, data=data)
    return ICMP(type=0 if reply else 8, id=ident, seq=seq) / Raw(data)


# ----------------------------------------------------------------------------- conversations


@dataclass(frozen=True, slots=True, kw_only=True)
class Talk:
    """Both ends of a conversation."""

    client: str
    cport: int
    server: str
    sport: int


CLIENT, SERVER = "client", "server"


class TcpConn:
    """Track both sides' next sequence numbers and build their segments (ACKing all seen).

    Sides are named, not addressed, so a loopback session (same address) works too.
    """

    def __init__(self, net: Network, talk: Talk, *, isn: int, window: int = 64240) -> None:
        self.net, self.talk, self.window = net, talk, window
        self.nxt = {CLIENT: isn, SERVER: (isn * 7 + 12345) & 0xFFFFFFFF}

    def seg(self, side: str, flags: str, data: bytes = b"", opts: Sequence[Any] = ()) -> Packet:
        """Return the next segment from ``side`` and advance its sequence number."""
        t = self.talk
        peer = SERVER if side == CLIENT else CLIENT
        src, sp, dst, dp = ((t.client, t.cport, t.server, t.sport) if side == CLIENT
                            else (t.server, t.sport, t.client, t.cport))
        tcp = TCP(sport=sp, dport=dp, flags=flags, seq=self.nxt[side],
                  ack=self.nxt[peer] if "A" in flags else 0, window=self.window,
                  options=list(opts))
        self.nxt[side] = (self.nxt[side] + len(data) + ("S" in flags) + ("F" in flags)) % 2**32
        pkt = self.net.ip(src, dst) / tcp
        return pkt / Raw(data) if data else pkt


def tcp_session(net: Network, talk: Talk, t0: int, *, request: bytes, responses: Sequence[bytes],
                rtt_ns: int = 2 * MS, isn: int = 1000) -> list[Datagram]:
    """Return handshake, one request, response segments, client ACK, FIN/FIN/ACK."""
    conn, half = TcpConn(net, talk, isn=isn), rtt_ns // 2
    mss = 1440 if ":" in talk.client else 1460
    syn = [("MSS", mss), ("SAckOK", b""), ("NOP", None), ("WScale", 7)]
    out = [(t0, conn.seg(CLIENT, "S", opts=syn)), (t0 + half, conn.seg(SERVER, "SA", opts=syn)),
           (t0 + rtt_ns, conn.seg(CLIENT, "A")),
           (t0 + rtt_ns + 20 * US, conn.seg(CLIENT, "PA", request))]
    t = t0 + rtt_ns + 20 * US + half
    for body in responses:
        out.append((t, conn.seg(SERVER, "PA", body)))
        t += 30 * US
    out += [(t + half, conn.seg(CLIENT, "A")), (t + half + MS, conn.seg(CLIENT, "FA")),
            (t + rtt_ns + MS, conn.seg(SERVER, "FA")),
            (t + rtt_ns + half + MS, conn.seg(CLIENT, "A"))]
    return out


def udp_dgram(net: Network, src: str, sport: int, dst: str, dport: int,
              body: Packet | bytes) -> Packet:
    """Return one UDP datagram."""
    return net.ip(src, dst) / UDP(sport=sport, dport=dport) / (
        Raw(body) if isinstance(body, bytes) else body)


def udp_exchange(net: Network, talk: Talk, t0: int, *, request: Packet | bytes,
                 response: Packet | bytes, rtt_ns: int = MS) -> list[Datagram]:
    """Return a request datagram and its response."""
    return [(t0, udp_dgram(net, talk.client, talk.cport, talk.server, talk.sport, request)),
            (t0 + rtt_ns, udp_dgram(net, talk.server, talk.sport, talk.client, talk.cport,
                                    response))]


def icmp_echo(net: Network, client: str, server: str, t0: int, *, count: int = 2,
              ident: int = 0x4242, interval_ns: int = NS, size: int = 56,
              rtt_ns: int = MS) -> list[Datagram]:
    """Return ``count`` echo request/reply pairs, ``interval_ns`` apart."""
    data = bytes(range(size % 256)) + bytes(max(0, size - 256))
    out: list[Datagram] = []
    for seq in range(1, count + 1):
        t = t0 + (seq - 1) * interval_ns
        out.append((t, net.ip(client, server) / _icmp_echo(client, ident, seq, data, reply=False)))
        out.append((t + rtt_ns, net.ip(server, client) / _icmp_echo(server, ident, seq, data,
                                                                     reply=True)))
    return out


def dns_pair(name: str, qid: int, answer: str) -> tuple[Packet, Packet]:
    """Return a DNS query and its answer (A or AAAA by the form of ``answer``)."""
    qtype = "AAAA" if ":" in answer else "A"
    query = DNS(id=qid, rd=1, qd=DNSQR(qname=name, qtype=qtype))
    reply = DNS(id=qid, qr=1, rd=1, ra=1, qd=DNSQR(qname=name, qtype=qtype),
                an=DNSRR(rrname=name, type=qtype, ttl=300, rdata=answer))
    return query, reply


def ntp_pair(t_ns: int) -> tuple[Packet, Packet]:
    """Return an NTPv4 client request and server reply with fixed timestamps."""
    era = 2_208_988_800 + t_ns / NS
    req = NTPHeader(version=4, mode=3, ref=0, orig=0, recv=0, sent=era)
    rep = NTPHeader(version=4, mode=4, stratum=2, ref=era - 30, orig=era, recv=era + 0.0004,
                    sent=era + 0.0005)
    return req, rep


def standard_mix(net: Network, t0: int, *, v4: tuple[str, str, str],
                 v6: tuple[str, str, str] | None, port: int) -> list[Datagram]:
    """Return a TCP session, a DNS exchange and pings over IPv4 (and IPv6 when given)."""
    rng = random.Random(f"mix:{v4[0]}:{port}")
    out: list[Datagram] = []
    stacks = [(v4, "192.0.2.80"), (v6, "2001:db8::80")] if v6 else [(v4, "192.0.2.80")]
    for i, (hosts, answer) in enumerate(stacks):
        if hosts is None:
            continue
        client, server, resolver = hosts
        t = t0 + i * 10 * NS
        req = f"GET /{i} HTTP/1.1\r\nHost: example.net\r\n\r\n".encode()
        out += tcp_session(net, Talk(client=client, cport=port + i, server=server, sport=80), t,
                           request=req, responses=[b"HTTP/1.1 200 OK\r\n\r\n" + rng.randbytes(900),
                                                   rng.randbytes(400)], isn=rng.getrandbits(31))
        q, a = dns_pair("example.net", rng.getrandbits(16), answer)
        out += udp_exchange(net, Talk(client=client, cport=port + 100 + i, server=resolver,
                                      sport=53), t + 3 * NS, request=q, response=a)
        out += icmp_echo(net, client, server, t + 5 * NS, ident=port + i)
    return sorted(out, key=lambda d: d[0])


# ----------------------------------------------------------------------------- link layers


def mac(addr: str) -> str:
    """Return a fixed locally administered MAC address for an IP address."""
    digest = hashlib.sha256(addr.encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def _l3_src_dst(l3: Packet) -> tuple[str, str]:
    return str(l3.src), str(l3.dst)


def ether_bytes(l3: Packet, tags: Sequence[tuple[int, int]] = ()) -> bytes:
    """Frame ``l3`` in Ethernet with a VLAN tag stack of (TPID, VID); pad to 60 bytes."""
    src, dst = _l3_src_dst(l3)
    etype = 0x86DD if ":" in src else 0x0800
    frame = Ether(src=mac(src), dst=mac(dst), type=tags[0][0] if tags else etype)
    for i, (tpid, vid) in enumerate(tags):
        nxt = tags[i + 1][0] if i + 1 < len(tags) else etype
        frame = frame / (Dot1AD if i == 0 and tpid == 0x88A8 else Dot1Q)(vlan=vid, type=nxt)
    raw = bytes(frame / l3)
    return raw + bytes(max(0, 60 - len(raw)))  # minimum frame size, as received off a wire


def ether(tags: Sequence[tuple[int, int]] = ()) -> Link:
    """Ethernet link; Zeek logs the first tag as vlan and the last of 2+ as inner_vlan."""
    vlan = tags[0][1] if tags else None
    inner = tags[-1][1] if len(tags) > 1 else None  # a third tag overwrites inner_vlan

    def link(l3: Packet) -> Frame:
        return ether_bytes(l3, tags), (unit_of(bytes(l3), vlan=vlan, inner_vlan=inner),)
    return link


def raw_ip(l3: Packet) -> Frame:
    """LINKTYPE_RAW: the IP datagram itself."""
    raw = bytes(l3)
    return raw, (unit_of(raw),)


def sll(local: Iterable[str], *, version: int = 1, ifindex: int = 2) -> Link:
    """Linux cooked capture v1 or v2; ``local`` addresses are sent by the capturing host."""
    mine = frozenset(local)

    def link(l3: Packet) -> Frame:
        src, _ = _l3_src_dst(l3)
        proto = 0x86DD if ":" in src else 0x0800
        hwaddr = bytes.fromhex(mac(src).replace(":", "")) + b"\0\0"
        kind = 4 if src in mine else 0
        if version == 1:
            head = CookedLinux(pkttype=kind, lladdrtype=1, lladdrlen=6, src=hwaddr, proto=proto)
        else:
            head = CookedLinuxV2(proto=proto, ifindex=ifindex, lladdrtype=1, pkttype=kind,
                                 lladdrlen=6, src=hwaddr)
        return bytes(head / l3), (unit_of(bytes(l3)),)
    return link


def bsd_loopback(*, big_endian: bool, af_inet6: int) -> Link:
    """DLT_NULL (host byte order, here little-endian) or DLT_LOOP (big-endian) AF header."""
    def link(l3: Packet) -> Frame:
        af = af_inet6 if ":" in str(l3.src) else socket.AF_INET
        head = struct.pack(">I" if big_endian else "<I", af)
        raw = bytes(l3)
        return head + raw, (unit_of(raw),)
    return link


def mpls(labels: Sequence[int]) -> Link:
    """Ethernet + an MPLS label stack (bottom-of-stack on the last label)."""
    def link(l3: Packet) -> Frame:
        src, dst = _l3_src_dst(l3)
        frame = Ether(src=mac(src), dst=mac(dst), type=0x8847)
        for i, label in enumerate(labels):
            frame = frame / MPLS(label=label, s=int(i == len(labels) - 1), ttl=64 - i)
        return bytes(frame / l3), (unit_of(bytes(l3)),)
    return link


def _overlay_sport(inner: Unit) -> int:
    """Return the source port a VTEP derives from the inner flow (a hash, as Linux does)."""
    flow = f"{inner.src}|{inner.sport}|{inner.dst}|{inner.dport}|{inner.proto}"
    return 49152 + zlib.crc32(flow.encode()) % 16384


@dataclass(frozen=True, slots=True, kw_only=True)
class Overlay:
    """A UDP overlay (VXLAN or Geneve) between tunnel endpoints."""

    kind: str  # "vxlan" or "geneve"
    vni: int
    vteps: dict[str, str]  # inner address -> the address of the VTEP in front of it
    geneve_options: tuple[tuple[int, int, bytes], ...] = ()  # (class, type, data)
    geneve_inner_ip: bool = False  # Geneve protocol 0x0800 instead of 0x6558


def overlay(ov: Overlay, net: Network) -> Link:
    """Wrap inner datagrams in VXLAN (UDP 4789) or Geneve (UDP 6081) between the VTEPs."""
    def link(l3: Packet) -> Frame:
        src, dst = _l3_src_dst(l3)
        osrc, odst = ov.vteps[src], ov.vteps[dst]
        inner_raw = bytes(l3)
        sport = _overlay_sport(unit_of(inner_raw))
        inner = Ether(src=mac(src), dst=mac(dst)) / l3
        if ov.kind == "vxlan":  # checksum 0, as Linux sends VXLAN over IPv4
            encap = UDP(sport=sport, dport=4789, chksum=0) / VXLAN(
                flags=0x08, vni=ov.vni) / inner
        else:
            opts = [GeneveOptions(classid=c, type=t, data=d) for c, t, d in ov.geneve_options]
            proto = 0x0800 if ov.geneve_inner_ip else 0x6558
            encap = UDP(sport=sport, dport=6081) / GENEVE(
                vni=ov.vni, proto=proto, options=opts) / (l3 if ov.geneve_inner_ip else inner)
        outer = net.ip(osrc, odst) / encap
        raw = bytes(Ether(src=mac(osrc), dst=mac(odst)) / outer)
        assert raw.endswith(inner_raw)
        return raw, (unit_of(raw[14:]), unit_of(inner_raw, vni=ov.vni))
    return link


def gre(net: Network, endpoints: dict[str, str], **flags: Any) -> Link:
    """Wrap inner datagrams in GRE between tunnel endpoints; only the inner one is counted."""
    def link(l3: Packet) -> Frame:
        src, dst = _l3_src_dst(l3)
        osrc, odst = endpoints[src], endpoints[dst]
        proto = 0x86DD if ":" in src else 0x0800
        outer = net.ip(osrc, odst) / GRE(proto=proto, **flags) / l3
        raw = bytes(Ether(src=mac(osrc), dst=mac(odst)) / outer)
        assert raw.endswith(bytes(l3))
        return raw, (unit_of(bytes(l3)),)
    return link


def records(datagrams: Iterable[Datagram], link: Link, *, ifid: int = 0) -> list[Record]:
    """Frame each datagram with ``link``."""
    out = []
    for ts, l3 in datagrams:
        data, units = link(l3)
        out.append(Record(ts_ns=ts, data=data, wire_len=len(data), units=units, ifid=ifid))
    return out


def fragmented(datagram: Packet, t0: int, *, size: int,
               order: Sequence[int] | None = None) -> list[Record]:
    """Fragment ``datagram`` (IPv6: it must carry a Fragment header) into Ethernet frames.

    Fragments go out 100 us apart in ``order``; the reassembled datagram is the unit of the
    fragment that completes the set (Zeek counts it once, at that time).
    """
    split: Callable[[Packet, int], list[Packet]] = (  # scapy's helpers are unannotated
        fragment6 if ":" in str(datagram.src) else fragment)
    frags = split(datagram, size)
    order = list(order) if order is not None else list(range(len(frags)))
    whole = unit_of(reassemble([bytes(f) for f in frags]))
    out = []
    for i, idx in enumerate(order):
        data = ether_bytes(frags[idx])
        units = (whole,) if i == len(order) - 1 else ()
        out.append(Record(ts_ns=t0 + i * 100 * US, data=data, wire_len=len(data), units=units))
    return out


def merge(*groups: Sequence[Record]) -> list[Record]:
    """Return all records in time order (stable for equal times)."""
    return sorted((r for g in groups for r in g), key=lambda r: r.ts_ns)


def arp(t: int, who: str, asker: str) -> Record:
    """An ARP request: a frame that carries no IP datagram."""
    frame = Ether(src=mac(asker), dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=mac(asker), psrc=asker, pdst=who) / Padding(bytes(18))
    data = bytes(frame)
    return Record(ts_ns=t, data=data, wire_len=len(data), units=())


# ----------------------------------------------------------------------------- captures


def start(i: int) -> int:
    """Return the first timestamp of capture number ``i`` (one hour apart)."""
    return BASE_NS + i * 3600 * NS


def ns_jitter(dgs: Sequence[Datagram]) -> list[Datagram]:
    """Give every timestamp a sub-microsecond part, for nanosecond-resolution files."""
    return [(t + 1 + (k * 137) % 999, p) for k, (t, p) in enumerate(dgs)]


def cap_ethernet(name: str = "ethernet.pcap") -> Capture:
    """Ethernet, classic pcap, little-endian, microseconds; short frames padded to 60."""
    t0 = start(0)
    dgs = standard_mix(Network(), t0 + NS, v4=("192.168.1.10", "192.0.2.80", "192.168.1.1"),
                       v6=("2001:db8:1::10", "2001:db8::80", "2001:db8:1::1"), port=49200)
    recs = merge(records(dgs, ether()), [arp(t0, "192.168.1.1", "192.168.1.10")])
    gz = " gzip-compressed (no name, mtime 0)" if name.endswith(".gz") else ""
    return Capture(name=name, records=recs, description=(
        f"Ethernet{gz}: an ARP request, then over IPv4 and IPv6 each a TCP session "
        "(handshake, request, 2 response segments, FIN), a DNS exchange and 2 pings."))


def cap_ethernet_be_nsec() -> Capture:
    """Ethernet, big-endian pcap with the nanosecond magic."""
    dgs = standard_mix(Network(), start(1), v4=("10.1.1.10", "198.51.100.80", "10.1.1.1"),
                       v6=("fd00:1::10", "2001:db8::8080", "fd00:1::1"), port=50200)
    return Capture(name="ethernet-be-nsec.pcap", records=records(ns_jitter(dgs), ether()),
                   big_endian=True, nano=True, snaplen=65535, description=(
                       "Ethernet, big-endian, nanosecond timestamps (sub-microsecond parts "
                       "set): IPv4 and IPv6 TCP session, DNS exchange and 2 pings each."))


def cap_raw() -> Capture:
    """LINKTYPE_RAW (101): IPv4 and IPv6 with no link header, as on a tun/WireGuard device."""
    dgs = standard_mix(Network(), start(2), v4=("10.66.0.2", "192.0.2.81", "10.66.0.1"),
                       v6=("fd66::2", "2001:db8::81", "fd66::1"), port=51200)
    return Capture(name="raw-ip.pcap", records=records(dgs, raw_ip), linktype=101,
                   description="LINKTYPE_RAW (tun/WireGuard): IPv4 and IPv6 TCP, DNS and pings.")


def cap_sll(version: int) -> Capture:
    """Linux cooked capture v1 (113) or v2 (276), as from ``tcpdump -i any``."""
    v4, v6 = ("172.20.0.5", "192.0.2.82", "172.20.0.1"), ("fd20::5", "2001:db8::82", "fd20::1")
    dgs = standard_mix(Network(), start(2 + version), v4=v4, v6=v6, port=52200 + version * 100)
    name, lt = ("linux-sll.pcap", 113) if version == 1 else ("linux-sll2.pcap", 276)
    return Capture(name=name, linktype=lt,
                   records=records(dgs, sll({v4[0], v6[0]}, version=version)),
                   description=f"Linux cooked v{version} (outgoing/host packet types): "
                               "IPv4 and IPv6 TCP, DNS and pings.")


def cap_bsd_null() -> Capture:
    """DLT_NULL (0) loopback: AF in host (little-endian) order; macOS AF_INET6 = 30."""
    dgs = standard_mix(Network(), start(5), v4=("127.0.0.1", "127.0.0.1", "127.0.0.1"),
                       v6=("::1", "::1", "::1"), port=53200)
    return Capture(name="bsd-null.pcap", linktype=0,
                   records=records(dgs, bsd_loopback(big_endian=False, af_inet6=30)),
                   description="DLT_NULL loopback (macOS, AF_INET6=30): 127.0.0.1 and ::1 "
                               "talking to themselves (same address both ends).")


def cap_bsd_loop() -> Capture:
    """DLT_LOOP (108): AF always big-endian; OpenBSD AF_INET6 = 24."""
    dgs = standard_mix(Network(), start(6), v4=("10.8.0.2", "198.51.100.7", "10.8.0.1"),
                       v6=("fd08::2", "2001:db8::7", "fd08::1"), port=54200)
    return Capture(name="bsd-loop.pcap", linktype=108,
                   records=records(dgs, bsd_loopback(big_endian=True, af_inet6=24)),
                   description="DLT_LOOP (OpenBSD tun, AF_INET6=24 big-endian): IPv4 and IPv6 "
                               "TCP, DNS and pings.")


def cap_vlan() -> Capture:
    """802.1Q, 802.1ad QinQ and a 3-deep tag stack."""
    t0, net, rng = start(7), Network(), random.Random("vlan")
    q, a = dns_pair("svc.local", 0x5151, "10.100.200.53")
    return Capture(name="vlan-qinq.pcap", records=merge(
        records(tcp_session(net, Talk(client="10.7.42.10", cport=40042, server="10.7.42.20",
                                      sport=8080), t0, request=b"GET / HTTP/1.1\r\n\r\n",
                            responses=[rng.randbytes(700)]), ether([(0x8100, 42)])),
        records(udp_exchange(net, Talk(client="10.100.200.5", cport=40100, server="10.100.200.1",
                                       sport=53), t0 + 2 * NS, request=q, response=a)
                + icmp_echo(net, "10.100.200.5", "10.100.200.1", t0 + 3 * NS),
                ether([(0x88A8, 100), (0x8100, 200)])),
        records(tcp_session(net, Talk(client="10.31.1.5", cport=40300, server="10.31.1.6",
                                      sport=443), t0 + 5 * NS, request=rng.randbytes(517),
                            responses=[rng.randbytes(1400), rng.randbytes(300)]),
                ether([(0x88A8, 300), (0x8100, 310), (0x8100, 311)]))),
        description="802.1Q (VID 42) TCP; 802.1ad+802.1Q (S-VID 100, C-VID 200) DNS and pings; "
                    "a 3-deep stack 0x88a8/0x8100/0x8100 (300/310/311) TCP. Expected vlan / "
                    "inner_vlan follow Zeek: first tag, then the LAST of the others (311).")


def cap_mpls() -> Capture:
    """MPLS label stacks of 2 and 3 labels, IPv4 and IPv6 (6PE) payloads."""
    t0, net, rng = start(8), Network(), random.Random("mpls")
    q, a = dns_pair("mpls.example", 0x1717, "172.16.9.9")
    return Capture(name="mpls.pcap", records=merge(
        records(tcp_session(net, Talk(client="172.16.1.10", cport=41000, server="172.16.2.20",
                                      sport=80), t0, request=b"GET /mpls HTTP/1.1\r\n\r\n",
                            responses=[rng.randbytes(1200)]), mpls([16004, 24001])),
        records(udp_exchange(net, Talk(client="172.16.1.11", cport=41001, server="172.16.2.53",
                                       sport=53), t0 + 2 * NS, request=q, response=a)
                + icmp_echo(net, "172.16.1.11", "172.16.2.53", t0 + 3 * NS),
                mpls([16005, 24002, 30])),
        records(icmp_echo(net, "2001:db8:a::1", "2001:db8:b::1", t0 + 6 * NS),
                mpls([16006, 2]))),
        description="Ethernet + MPLS: 2 labels over IPv4 TCP, 3 labels over IPv4 DNS and "
                    "pings, 2 labels over IPv6 (6PE) pings.")


def cap_ipv4_options() -> Capture:
    """IPv4 headers with options (IHL > 5): Record Route, Router Alert, NOP."""
    t0, rng = start(9), random.Random("ipv4-options")
    rr = Network(ip_options=[IPOption_RR(routers=["0.0.0.0"] * 9)])
    ra = Network(ip_options=[IPOption_Router_Alert()])
    nop_rr = Network(ip_options=[IPOption_NOP(), IPOption_RR(routers=["0.0.0.0"] * 3)])
    return Capture(name="ipv4-options.pcap", records=merge(
        records(icmp_echo(rr, "10.9.0.10", "10.9.1.1", t0), ether()),
        records(udp_exchange(ra, Talk(client="10.9.0.10", cport=42000, server="10.9.1.2",
                                      sport=5000), t0 + 3 * NS, request=rng.randbytes(200),
                             response=rng.randbytes(64)), ether()),
        records(tcp_session(nop_rr, Talk(client="10.9.0.10", cport=42001, server="10.9.1.3",
                                         sport=80), t0 + 5 * NS, request=b"GET / HTTP/1.0\r\n\r\n",
                            responses=[rng.randbytes(500)]), ether())),
        description="IPv4 options: pings with Record Route (IHL 15), UDP with Router Alert "
                    "(IHL 6), a TCP session with NOP + Record Route (IHL 9). ip_bytes include "
                    "the options.")


def cap_ipv6_exthdr() -> Capture:
    """IPv6 extension headers: hop-by-hop, routing (type 0, segleft 0), destination options."""
    t0, rng = start(10), random.Random("ipv6-exthdr")
    hbh = IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)])
    dst = IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0\0\0\0")])
    rth = IPv6ExtHdrRouting(type=0, segleft=0, addresses=["2001:db8:ffff::1"])
    q, a = dns_pair("v6.example", 0x6666, "2001:db8::53")
    req, rep = ntp_pair(t0)
    return Capture(name="ipv6-exthdr.pcap", records=merge(
        records(tcp_session(Network(ext_headers=[hbh]), Talk(
            client="2001:db8:6::10", cport=43000, server="2001:db8:6::20", sport=80), t0,
            request=b"GET / HTTP/1.1\r\n\r\n", responses=[rng.randbytes(800)]), ether()),
        records(udp_exchange(Network(ext_headers=[dst]), Talk(
            client="2001:db8:6::10", cport=43001, server="2001:db8:6::53", sport=53),
            t0 + 2 * NS, request=q, response=a), ether()),
        records(icmp_echo(Network(ext_headers=[rth]), "2001:db8:6::10", "2001:db8:6::30",
                          t0 + 3 * NS), ether()),
        records(udp_exchange(Network(ext_headers=[hbh, dst, rth, dst]), Talk(
            client="2001:db8:6::10", cport=123, server="2001:db8:6::123", sport=123),
            t0 + 6 * NS, request=req, response=rep), ether())),
        description="IPv6 extension headers: TCP with hop-by-hop, DNS with destination "
                    "options, pings with a routing header (type 0, segments left 0), NTP "
                    "with hop-by-hop + dest-opts + routing + dest-opts. ip_bytes = plen + 40.")


def cap_fragments() -> Capture:
    """IPv4 and IPv6 fragmented datagrams; each reassembled datagram counts once."""
    t0, net, rng = start(11), Network(), random.Random("fragments")
    v4 = net.ip("10.11.0.5", "10.11.0.9") / UDP(sport=44000, dport=5001) / Raw(rng.randbytes(3000))
    ping = net.ip("10.11.0.5", "10.11.0.9") / ICMP(type=8, id=0x11, seq=1) / Raw(bytes(2000))
    pong = net.ip("10.11.0.9", "10.11.0.5") / ICMP(type=0, id=0x11, seq=1) / Raw(bytes(2000))
    v6 = (IPv6(src="2001:db8:11::5", dst="2001:db8:11::9") / IPv6ExtHdrFragment(id=0x1B0B)
          / UDP(sport=44001, dport=5001) / Raw(rng.randbytes(3000)))
    reply4 = [(t0 + NS, udp_dgram(net, "10.11.0.9", 5001, "10.11.0.5", 44000,
                                  rng.randbytes(100)))]
    reply6 = [(t0 + 5 * NS, udp_dgram(net, "2001:db8:11::9", 5001, "2001:db8:11::5", 44001,
                                      rng.randbytes(100)))]
    return Capture(name="fragments.pcap", records=merge(
        fragmented(v4, t0, size=1200), records(reply4, ether()),
        fragmented(ping, t0 + 2 * NS, size=1480, order=[1, 0]),
        fragmented(pong, t0 + 2 * NS + MS, size=1480),
        fragmented(v6, t0 + 4 * NS, size=1280), records(reply6, ether())),
        description="IPv4 UDP datagram of 3028 bytes in 3 fragments + a reply; a 2028-byte "
                    "ping whose 2 fragments arrive last-first, its reply in order; an IPv6 UDP "
                    "datagram in 3 fragments + a reply. A reassembled datagram is ONE packet "
                    "with the reassembled length (IPv6 without the Fragment header).")


def cap_vxlan() -> Capture:
    """VXLAN: two tenants (VNI 4242 and 4343) reuse the same inner addresses."""
    t0, net, rng = start(12), Network(), random.Random("vxlan")
    a, b = "192.168.10.5", "192.168.10.6"
    ten_a = overlay(Overlay(kind="vxlan", vni=4242, vteps={a: "10.0.0.11", b: "10.0.0.12"}), net)
    ten_b = overlay(Overlay(kind="vxlan", vni=4343, vteps={a: "10.0.0.21", b: "10.0.0.22"}), net)
    q, r = dns_pair("db.tenant-b", 0x4343, "192.168.10.6")
    return Capture(name="vxlan.pcap", records=merge(
        records(tcp_session(net, Talk(client=a, cport=45000, server=b, sport=8080), t0,
                            request=b"POST /v1 HTTP/1.1\r\n\r\n" + rng.randbytes(300),
                            responses=[rng.randbytes(600)]), ten_a),
        records(icmp_echo(net, a, b, t0 + 2 * NS), ten_a),
        records(icmp_echo(net, a, b, t0 + 2 * NS + 500 * US, ident=0x4343), ten_b),
        records(udp_exchange(net, Talk(client=a, cport=45001, server=b, sport=53),
                             t0 + 5 * NS, request=q, response=r), ten_b)),
        description="VXLAN (UDP 4789, outer UDP checksum 0). Tenant A VNI 4242 (VTEPs "
                    "10.0.0.11/12): TCP session and pings; tenant B VNI 4343 (VTEPs "
                    "10.0.0.21/22): pings with the SAME inner 5-tuple, and DNS. Outer UDP "
                    "flows (one per VTEP and source port, outer IP lengths) plus inner flows "
                    "keyed by VNI. Zeek would merge the two tenants' ping flows (no VNI in "
                    "its key); egress keeps them apart.")


def cap_geneve() -> Capture:
    """Geneve (UDP 6081): Ethernet payload with an option, and an IPv4 payload."""
    t0, net, rng = start(13), Network(), random.Random("geneve")
    a, b, c, d = "172.30.1.5", "172.30.1.6", "172.30.2.5", "172.30.2.6"
    eth = overlay(Overlay(kind="geneve", vni=7001, vteps={a: "10.1.0.11", b: "10.1.0.12"},
                          geneve_options=((0x0103, 0x80, b"\x00\x00\x00\x2a"),)), net)
    ipv4 = overlay(Overlay(kind="geneve", vni=7002, vteps={c: "10.1.0.11", d: "10.1.0.12"},
                           geneve_inner_ip=True), net)
    return Capture(name="geneve.pcap", records=merge(
        records(tcp_session(net, Talk(client=a, cport=46000, server=b, sport=5432), t0,
                            request=rng.randbytes(120), responses=[rng.randbytes(900)]), eth),
        records(icmp_echo(net, c, d, t0 + 2 * NS), ipv4)),
        description="Geneve (UDP 6081): VNI 7001 carries Ethernet (protocol 0x6558) with one "
                    "8-byte option, a TCP session; VNI 7002 carries IPv4 directly (0x0800), "
                    "pings. Outer UDP flows plus inner flows keyed by VNI.")


def cap_gre() -> Capture:
    """GRE (IP protocol 47) carrying IPv4: plain, with key + sequence, with checksum."""
    t0, net, rng = start(14), Network(), random.Random("gre")
    ends = {f"10.20.{s}.{h}": f"198.51.100.{s}" for s in (1, 2) for h in (5, 6, 7, 53)}
    q, a = dns_pair("gre.example", 0x0047, "10.20.2.5")
    return Capture(name="gre.pcap", records=merge(
        records(tcp_session(net, Talk(client="10.20.1.5", cport=47000, server="10.20.2.5",
                                      sport=80), t0, request=b"GET /gre HTTP/1.1\r\n\r\n",
                            responses=[rng.randbytes(1000)]), gre(net, ends)),
        records(icmp_echo(net, "10.20.1.6", "10.20.2.6", t0 + 2 * NS),
                gre(net, ends, key_present=1, key=1000, seqnum_present=1, seqence_number=7)),
        records(udp_exchange(net, Talk(client="10.20.1.7", cport=47001, server="10.20.2.53",
                                       sport=53), t0 + 5 * NS, request=q, response=a),
                gre(net, ends, chksum_present=1))),
        description="GRE between 198.51.100.1 and .2: plain (TCP session), with key and "
                    "sequence number (pings), with checksum (DNS). Zeek gives NO flow for "
                    "the outer GRE packets, only the inner ones.")


def forwarded(dgs: Sequence[Datagram], *, delay_ns: int) -> list[Datagram]:
    """Return each datagram again ``delay_ns`` later with the TTL lowered (routed copy)."""
    out = []
    for t, pkt in dgs:
        copy = pkt.copy()
        copy.ttl -= 1
        del copy.chksum
        out.append((t + delay_ns, copy))
    return out


def cap_pcapng() -> Capture:
    """pcapng: two sections (little- then big-endian), 5 interfaces, EPB, SPB, a custom block."""
    t0, net, rng = start(15), Network(), random.Random("pcapng")
    lan, peer = "192.168.50.20", "203.0.113.9"
    q, a = dns_pair("ng.example", 0x0A0D, "203.0.113.9")
    pings = icmp_echo(net, lan, peer, t0 + 2 * NS)
    seen_eth0 = [d for d in pings if d[1].src == lan] + forwarded(
        [d for d in pings if d[1].src == peer], delay_ns=40 * US)
    seen_eth1 = forwarded([d for d in pings if d[1].src == lan], delay_ns=40 * US) + [
        d for d in pings if d[1].src == peer]
    custom = Record(ts_ns=t0 + 3 * NS, data=struct.pack("<I", 32473) + b"egress: skip me!",
                    wire_len=0, units=(), block="custom")
    first = merge(
        records(udp_exchange(net, Talk(client="192.168.50.10", cport=50001,
                                       server="192.168.50.1", sport=53), t0, request=q,
                             response=a), ether(), ifid=0),
        records(ns_jitter(tcp_session(net, Talk(client="10.200.0.2", cport=50010,
                                                server="10.200.0.1", sport=443), t0 + NS,
                                      request=rng.randbytes(517),
                                      responses=[rng.randbytes(1300)])), raw_ip, ifid=1),
        records(seen_eth0, ether(), ifid=0),
        records(ns_jitter(seen_eth1), sll({lan}), ifid=2), [custom])
    t1 = t0 + 60 * NS
    tcp6 = ns_jitter(tcp_session(net, Talk(client="2001:db8:50::10", cport=50020,
                                           server="2001:db8::443", sport=443), t1,
                                 request=rng.randbytes(517), responses=[rng.randbytes(1200)]))
    syslog = [(tcp6[4][0] + 10 * US * (k + 1), udp_dgram(
        net, "192.168.60.10", 51514, "192.168.60.2", 514,
        f"<134>Mar  1 16:01:0{k} host app: event {k}".encode())) for k in range(3)]
    req, rep = ntp_pair(t1)
    second = merge(
        records(tcp6, ether(), ifid=0),
        [replace(r, block="spb") for r in records(syslog, ether(), ifid=0)],
        records(udp_exchange(net, Talk(client="192.168.60.10", cport=123, server="192.168.60.1",
                                       sport=123), t1 + 2 * NS, request=req, response=rep),
                sll({"192.168.60.10"}, version=2), ifid=1))
    return Capture(name="pcapng-multi.pcapng", sections=(
        Section(big_endian=False, records=first, interfaces=(
            Interface(linktype=1, name="eth0", tsresol=None),
            Interface(linktype=101, name="wg0", tsresol=9),
            Interface(linktype=113, name="eth1", tsresol=9))),
        Section(big_endian=True, records=second, interfaces=(
            Interface(linktype=1, name="eth0", tsresol=9),
            Interface(linktype=276, name="any", tsresol=6)))),
        description="pcapng, section 1 little-endian: eth0 Ethernet (no if_tsresol: us), wg0 "
                    "RAW (ns), eth1 Linux SLL (ns); a DNS exchange on eth0, a TCP session on "
                    "wg0, pings routed from eth0 to eth1 (each packet seen on both, so counted "
                    "twice in ONE flow: the interface is not in the key), a custom block "
                    "(0x00000BAD) to skip. Section 2 big-endian: eth0 Ethernet (ns), any SLL2 "
                    "(if_tsresol 6); an IPv6 TCP session in EPBs with 3 syslog datagrams in "
                    "Simple Packet Blocks (no timestamp: start not checked) in the middle, "
                    "and NTP on SLL2.")


# ----------------------------------------------------------------------------- datacenter scenario

DC_HOST, DC_PEER, DC_RESOLVER, DC_GATEWAY = "10.42.7.15", "203.0.113.50", "10.42.0.2", "10.42.0.1"
DC_SNAPLEN = 96
DC_UPLOAD_IP_BYTES = 2_250_000_000  # > 2 GiB of IP datagrams from the peer
DC_MSS = 1448  # with TCP timestamps
TS_OPT = ("Timestamp", (0, 0))


def ones_sum(data: bytes) -> int:
    """Return the folded 16-bit one's-complement sum of ``data`` (zero-padded to even)."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _patch_tcp(tmpl: bytes, *, ip_len: int, ip_id: int, seq: int, ack: int, tsval: int,
               tsecr: int, payload_head: bytes = b"") -> bytes:
    """Return ``tmpl`` (an Ethernet/IPv4/TCP frame with NOP,NOP,TS options) with fields set.

    The TCP payload is ``payload_head`` followed by zeros up to ``ip_len``, so the TCP
    checksum over the whole segment is computable from the head alone.
    """
    buf = bytearray(tmpl)
    struct.pack_into("!HH", buf, 16, ip_len, ip_id)
    struct.pack_into("!H", buf, 24, 0)
    struct.pack_into("!H", buf, 24, ~ones_sum(bytes(buf[14:34])) & 0xFFFF)
    struct.pack_into("!II", buf, 38, seq, ack)
    struct.pack_into("!II", buf, 58, tsval, tsecr)
    buf[66:66 + len(payload_head)] = payload_head
    struct.pack_into("!H", buf, 50, 0)
    pseudo = bytes(buf[26:34]) + struct.pack("!BBH", 0, 6, ip_len - 20)
    struct.pack_into("!H", buf, 50, ~ones_sum(pseudo + bytes(buf[34:])) & 0xFFFF)
    return bytes(buf)


def _bulk(net: Network, rng: random.Random, t0: int, *, seq: int,
          ack: int) -> tuple[list[Record], int]:
    """Return the upload's data segments (one per 20 ms) and ACKs (every 4th), and the end seq.

    Each record is a patched copy of a scapy-built template (a scapy build per packet would
    take minutes), cut to the snaplen, with the real wire length.
    """
    data_tmpl = ether_bytes(net.ip(DC_PEER, DC_HOST) / TCP(
        sport=51514, dport=443, flags="PA", window=2048,
        options=[("NOP", None), ("NOP", None), TS_OPT]) / Raw(bytes(DC_SNAPLEN - 66)))
    ack_tmpl = ether_bytes(net.ip(DC_HOST, DC_PEER) / TCP(
        sport=443, dport=51514, flags="A", window=2048,
        options=[("NOP", None), ("NOP", None), TS_OPT]))
    out: list[Record] = []
    t, sent, segments = t0, 0, 0
    while sent < DC_UPLOAD_IP_BYTES:
        payload = DC_MSS * (44 if rng.random() < 0.9 else rng.randint(8, 43))
        tls = b"\x17\x03\x03\x40\x18" + struct.pack("!Q", segments)  # TLS header + nonce
        ts_peer = (t // MS) % 2**32
        frame = _patch_tcp(data_tmpl, ip_len=52 + payload, ip_id=(0x1000 + segments) % 2**16,
                           seq=seq, ack=ack, tsval=ts_peer, tsecr=ts_peer - 7, payload_head=tls)
        out.append(Record(ts_ns=t, data=frame, wire_len=66 + payload,
                          units=(unit_of(frame[14:]),)))
        seq, sent, segments = (seq + payload) % 2**32, sent + 52 + payload, segments + 1
        if segments % 4 == 0:
            frame = _patch_tcp(ack_tmpl, ip_len=52, ip_id=(0x2000 + segments // 4) % 2**16,
                               seq=ack, ack=seq, tsval=ts_peer - 7, tsecr=ts_peer)
            out.append(Record(ts_ns=t + 60 * US, data=frame, wire_len=len(frame),
                              units=(unit_of(frame[14:]),)))
        t += 20 * MS
    return out, seq


def upload(t0: int) -> list[Record]:
    """Return the upload: handshake, TLS start, > 2 GiB in GRO-sized segments, reply, close."""
    rng, net = random.Random("datacenter-upload"), Network()
    conn = TcpConn(net, Talk(client=DC_PEER, cport=51514, server=DC_HOST, sport=443),
                   isn=rng.getrandbits(31), window=2048)
    syn = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1000, 0)), ("NOP", None), ("WScale", 9)]
    head = [(t0, conn.seg(CLIENT, "S", opts=syn)),
            (t0 + 9 * MS, conn.seg(SERVER, "SA", opts=syn)),
            (t0 + 18 * MS, conn.seg(CLIENT, "A", opts=[TS_OPT])),
            (t0 + 18 * MS + 50 * US, conn.seg(CLIENT, "PA", rng.randbytes(517), opts=[TS_OPT])),
            (t0 + 27 * MS, conn.seg(SERVER, "PA", rng.randbytes(4200), opts=[TS_OPT])),
            (t0 + 36 * MS, conn.seg(CLIENT, "PA", rng.randbytes(80), opts=[TS_OPT]))]
    out = records(head, ether())
    bulk, end_seq = _bulk(net, rng, t0 + 60 * MS, seq=conn.nxt[CLIENT], ack=conn.nxt[SERVER])
    out += bulk
    t = bulk[-1].ts_ns + 20 * MS
    conn.nxt[CLIENT] = end_seq
    tail = [(t, conn.seg(SERVER, "PA", rng.randbytes(350), opts=[TS_OPT])),
            (t + 9 * MS, conn.seg(CLIENT, "A", opts=[TS_OPT])),
            (t + 10 * MS, conn.seg(CLIENT, "FA", opts=[TS_OPT])),
            (t + 19 * MS, conn.seg(SERVER, "FA", opts=[TS_OPT])),
            (t + 28 * MS, conn.seg(CLIENT, "A", opts=[TS_OPT]))]
    return out + records(tail, ether())


def background(t0: int, t_end: int) -> list[Record]:
    """Ordinary tenant traffic: DNS, small HTTPS flows, NTP polls, monitoring pings."""
    rng, net = random.Random("datacenter-background"), Network()
    names = ["pypi.org", "files.pythonhosted.org", "download.pytorch.org", "api.wandb.ai",
             "huggingface.co", "cdn-lfs.huggingface.co", "github.com",
             "objects.githubusercontent.com", "registry-1.docker.io", "auth.docker.io",
             "production.cloudflare.docker.com", "ntp.ubuntu.com", "security.ubuntu.com",
             "archive.ubuntu.com"]
    ports = iter(rng.sample(range(32768, 61000), 64))
    dgs: list[Datagram] = []
    for k, name in enumerate(names):
        host = DC_HOST if k % 5 else "10.42.7.16"
        t = t0 + 2 * NS + k * 55 * NS
        q, a = dns_pair(name, rng.getrandbits(16), f"198.51.100.{20 + k}")
        dgs += udp_exchange(net, Talk(client=host, cport=next(ports), server=DC_RESOLVER,
                                      sport=53), t, request=q, response=a, rtt_ns=400 * US)
        if k % 3 == 0:  # fetch something small over HTTPS from the name just looked up
            dgs += tcp_session(net, Talk(client=host, cport=next(ports),
                                         server=f"198.51.100.{20 + k}", sport=443),
                               t + 5 * MS, request=rng.randbytes(517),
                               responses=[rng.randbytes(1448), rng.randbytes(1448),
                                          rng.randbytes(rng.randint(100, 1400))],
                               rtt_ns=12 * MS, isn=rng.getrandbits(31))
    for t in range(t0 + 5 * NS, t_end, 64 * NS):  # NTP every 64 s: each poll is its own flow
        req, rep = ntp_pair(t)
        dgs += udp_exchange(net, Talk(client=DC_HOST, cport=123, server=DC_GATEWAY, sport=123),
                            t, request=req, response=rep, rtt_ns=300 * US)
    count = (t_end - t0 - NS) // (10 * NS)
    dgs += icmp_echo(net, DC_GATEWAY, DC_HOST, t0 + NS, count=count, interval_ns=10 * NS,
                     size=32, rtt_ns=150 * US, ident=0x0A2A)
    return records(dgs, ether())


def cap_datacenter() -> Capture:
    """A tenant host receives a >2 GB upload over TCP 443 among ordinary traffic, snaplen 96."""
    t0 = start(16)
    bulk = upload(t0 + 30 * NS)
    return Capture(name="datacenter-upload.pcap.gz", snaplen=DC_SNAPLEN,
                   records=merge(bulk, background(t0, bulk[-1].ts_ns + 20 * NS)),
                   description=(
        f"Tenant host {DC_HOST} (tenant 10.42.0.0/16) captured with snaplen 96 "
        f"(caplen <= 96, orig_len real). {DC_PEER}:51514 uploads > 2 GiB to {DC_HOST}:443 "
        "over about 12 minutes in GRO/TSO-sized segments (IP length up to 63764) with an ACK "
        "every 4 segments; around it DNS to 10.42.0.2 (also from 10.42.7.16), small HTTPS "
        "fetches, NTP polls every 64 s to 10.42.0.1 (each poll a separate flow after the 60 s "
        "UDP timeout) and a ping from 10.42.0.1 every 10 s (32-byte payload so every ICMP "
        "packet is fully captured; Zeek does not count truncated ICMP packets). Payload "
        "beyond the captured TLS record header and nonce is zeros (checksums are valid)."))


# ----------------------------------------------------------------------------- writers


def pcap_bytes(cap: Capture) -> bytes:
    """Return a classic pcap file written with scapy's writer (records cut at the snaplen)."""
    buf = io.BytesIO()
    writer = RawPcapWriter(buf, linktype=cap.linktype, endianness=">" if cap.big_endian else "<",
                           nano=cap.nano, snaplen=cap.snaplen)
    writer.linktype = cap.linktype  # the constructor ignores a falsy linktype (DLT_NULL = 0)
    writer.write_header(None)
    for rec in cap.records:
        data = rec.data[: cap.snaplen]
        sec, frac = divmod(rec.ts_ns, NS)
        writer.write_packet(data, sec=sec, usec=frac if cap.nano else frac // US,
                            caplen=len(data), wirelen=rec.wire_len)
    writer.flush()
    return buf.getvalue()


def _block(end: str, btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    return struct.pack(f"{end}II", btype, 12 + len(body)) + body + struct.pack(
        f"{end}I", 12 + len(body))


def _options(end: str, opts: Sequence[tuple[int, bytes]]) -> bytes:
    out = b"".join(struct.pack(f"{end}HH", code, len(v)) + v + bytes(-len(v) % 4)
                   for code, v in opts)
    return out + struct.pack(f"{end}HH", 0, 0)


def pcapng_section(sec: Section) -> bytes:
    """Return one pcapng section: SHB, IDBs, then EPB/SPB/custom blocks in order."""
    end = ">" if sec.big_endian else "<"
    out = [_block(end, 0x0A0D0D0A, struct.pack(f"{end}IHHq", 0x1A2B3C4D, 1, 0, -1) + _options(
        end, [(4, b"egress pcaps/generate.py")]))]
    for itf in sec.interfaces:
        opts = [(2, itf.name.encode())] + ([] if itf.tsresol is None else
                                           [(9, bytes([itf.tsresol]))])
        out.append(_block(end, 1, struct.pack(f"{end}HHI", itf.linktype, 0, DEFAULT_SNAPLEN)
                          + _options(end, opts)))
    for rec in sec.records:
        if rec.block == "custom":
            out.append(_block(end, 0x00000BAD, rec.data))
        elif rec.block == "spb":
            out.append(_block(end, 3, struct.pack(f"{end}I", rec.wire_len) + rec.data))
        else:
            res = sec.interfaces[rec.ifid].tsresol or 6
            ts = rec.ts_ns // 10 ** (9 - res)
            out.append(_block(end, 6, struct.pack(f"{end}5I", rec.ifid, ts >> 32, ts & 0xFFFFFFFF,
                                                  len(rec.data), rec.wire_len) + rec.data))
    return b"".join(out)


def capture_bytes(cap: Capture) -> bytes:
    """Return the file contents of ``cap`` (gzip without name or mtime for ``.gz``)."""
    data = b"".join(map(pcapng_section, cap.sections)) if cap.sections else pcap_bytes(cap)
    return gzip.compress(data, compresslevel=6, mtime=0) if cap.name.endswith(".gz") else data


# ----------------------------------------------------------------------------- expected flows


@dataclass(slots=True)
class _Open:
    units: list[tuple[int, Unit, bool]]  # (ts, unit, timestamp known)

    @property
    def last_ts(self) -> int:
        return self.units[-1][0]


def _check_gap(flow: _Open, unit: Unit, ts: int) -> None:
    """Refuse gaps whose outcome depends on Zeek timers this model does not run."""
    gap = ts - flow.last_ts
    if unit.proto == "tcp" and gap >= 5 * NS:
        raise ValueError(f"TCP gap of {gap / NS:.1f} s in {unit}: attempt/close timers apply")
    if unit.proto == "udp" and {unit.sport, unit.dport} & DNS_PORTS and gap >= 9 * NS:
        raise ValueError(f"DNS gap of {gap / NS:.1f} s in {unit}: the DNS timer may split it")


def _finish(flow: _Open) -> dict[str, Any]:
    first = flow.units[0][1]
    syns = [u for _, u, _ in flow.units if u.pure_syn]
    if first.proto == "tcp" and not first.pure_syn:
        raise ValueError(f"TCP flow without a leading SYN: {first}")
    if first.proto == "udp" and first.sport < 1024 <= first.dport:
        raise ValueError(f"UDP flow from a server port would be flipped by Zeek: {first}")
    o = syns[0] if syns else first
    fwd = [u for _, u, _ in flow.units if (u.src, u.sport) == (o.src, o.sport)]
    rev = [u for _, u, _ in flow.units if (u.src, u.sport) != (o.src, o.sport)]
    ts, _, known = flow.units[0]
    return {
        "orig_h": o.src, "orig_p": o.sport, "resp_h": o.dst, "resp_p": o.dport,
        "proto": o.proto, "orig_pkts": len(fwd), "orig_ip_bytes": sum(u.ip_len for u in fwd),
        "resp_pkts": len(rev), "resp_ip_bytes": sum(u.ip_len for u in rev),
        "vni": o.vni, "vlan": o.vlan, "inner_vlan": o.inner_vlan,
        "start_us": ts // US if known else None,
    }


def tally(recs: Sequence[Record]) -> list[dict[str, Any]]:
    """Group the units of ``recs`` into flows, in order of their first packet.

    The key is the unordered pair of (address, port) with the protocol and the VNI (egress
    adds the VNI to Zeek's 5-tuple). A UDP or ICMP flow idle for 60 s ends (Zeek's
    inactivity timeout); other timer-dependent gaps are refused by :func:`_check_gap`.
    """
    table: dict[tuple[Any, ...], _Open] = {}
    flows: list[_Open] = []
    for rec in recs:
        for unit in rec.units:
            ends = sorted([(unit.src, unit.sport), (unit.dst, unit.dport)])
            key = (unit.proto, unit.vni, *ends)
            flow = table.get(key)
            if flow is not None and unit.proto != "tcp" and rec.ts_ns - flow.last_ts >= 60 * NS:
                flow = None
            if flow is None:
                flow = table[key] = _Open(units=[])
                flows.append(flow)
            else:
                _check_gap(flow, unit, rec.ts_ns)
            flow.units.append((rec.ts_ns, unit, rec.block != "spb"))
    return [_finish(f) for f in flows]


# ----------------------------------------------------------------------------- manifest, README

CAPTURES: tuple[Callable[[], Capture], ...] = (
    cap_ethernet, cap_ethernet_be_nsec, cap_raw, lambda: cap_sll(1), lambda: cap_sll(2),
    cap_bsd_null, cap_bsd_loop, cap_vlan, cap_mpls, cap_ipv4_options, cap_ipv6_exthdr,
    cap_fragments, cap_vxlan, cap_geneve, cap_gre, cap_pcapng,
    lambda: cap_ethernet("ethernet.pcap.gz"), cap_datacenter,
)
LINKTYPES = {0: "DLT_NULL (0)", 1: "EN10MB (1)", 101: "RAW (101)", 108: "DLT_LOOP (108)",
             113: "LINUX_SLL (113)", 276: "LINUX_SLL2 (276)"}


def describe_format(cap: Capture) -> str:
    """Return a one-line description of the file format."""
    if cap.sections:
        return "pcapng, 2 sections (LE, BE), link types " + ", ".join(sorted(
            {LINKTYPES[i.linktype] for s in cap.sections for i in s.interfaces}))
    order = "big-endian" if cap.big_endian else "little-endian"
    res = "ns" if cap.nano else "us"
    gz = "gzip of " if cap.name.endswith(".gz") else ""
    return f"{gz}pcap {order} {res}, snaplen {cap.snaplen}, {LINKTYPES[cap.linktype]}"


def manifest_entry(cap: Capture, size: int) -> dict[str, Any]:
    """Return the expected.json entry of a written capture."""
    recs = cap.all_records
    flows = tally(recs)
    return {"file": cap.name, "format": describe_format(cap), "bytes": size,
            "description": cap.description,
            "packets": sum(1 for r in recs if r.block != "custom"),
            "counted_ip_packets": sum(len(r.units) for r in recs),
            "flow_count": len(flows), "flows": flows}


README_HEAD = """# Sample captures

Generated by `pcaps/generate.py` (scapy): `python pcaps/generate.py [OUTDIR]`. Do not edit the
files by hand; the generator is deterministic (fixed timestamps and seeds, gzip without name or
mtime), so a rerun gives byte-identical files. `tests/test_pcaps.py` reads every capture with
`egress.sources.pcap.read_flows` and checks the exact flows listed in `expected.json`, from which
this file is written.

## How the expected numbers are made

They are counted by the generator from the packets it wrote, not by running egress, with Zeek's
conn.log rules (as written down in the project's Zeek counting notes, `zeek_conn_spec.md`):

- a flow is keyed by the unordered pair of (address, port) plus the protocol, **plus the VNI** for
  traffic inside VXLAN/Geneve (egress's one deliberate departure from Zeek); VLAN tags and the
  pcapng interface are not in the key;
- the originator is the sender of the first SYN, else of the first packet (the captures avoid
  cases where Zeek would flip roles); ICMP ports are type and counterpart type (8/0, 128/129);
- `*_pkts` counts packets and `*_ip_bytes` sums IP total length (IPv6: payload length + 40,
  extension headers included), whatever the frame or captured length;
- a reassembled fragmented datagram is one packet with the reassembled length;
- a VXLAN/Geneve frame counts in the outer UDP flow (outer IP length) and in the inner flow
  (inner IP length, with the VNI); a GRE frame counts only in the inner flow;
- a UDP or ICMP flow idle for 60 s ends, and the next packet starts a new flow;
- `start_us` is the first packet's time in microseconds (of the completing fragment for a
  reassembled datagram; null for packets in pcapng Simple Packet Blocks, which have no time);
- `vlan`/`inner_vlan` follow Zeek: the first tag, and the last of the later tags.

`packets` counts every record (including non-IP frames and fragments); `counted_ip_packets` the
units counted into flows (a tunnelled frame counts twice).

Notes: Zeek versions read for the spec do not decode DLT_LOOP (108); `bsd-loop.pcap` lists what
egress should produce. Zeek would merge the two tenants' identical inner ping flows in
`vxlan.pcap` because it does not key on the VNI.
"""


def render_readme(entries: Sequence[dict[str, Any]]) -> str:
    """Return README.md for the manifest entries."""
    total = sum(e["bytes"] for e in entries)
    lines = [README_HEAD, "## Files", "", "| file | format | bytes | packets | flows |",
             "|---|---|---:|---:|---:|"]
    lines += [f"| `{e['file']}` | {e['format']} | {e['bytes']} | {e['packets']} | "
              f"{e['flow_count']} |" for e in entries]
    lines += [f"| **total** | | {total} | {sum(e['packets'] for e in entries)} | "
              f"{sum(e['flow_count'] for e in entries)} |", ""]
    for e in entries:
        lines += [f"### {e['file']}", "", e["description"], "",
                  f"{e['format']}; {e['packets']} packets, {e['counted_ip_packets']} counted "
                  f"IP packets, {e['flow_count']} flows.", "",
                  "| orig_h | orig_p | resp_h | resp_p | proto | orig_pkts | orig_ip_bytes "
                  "| resp_pkts | resp_ip_bytes | vni | vlan/inner |",
                  "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---|"]
        for f in e["flows"]:
            tags = "/".join("-" if v is None else str(v) for v in (f["vlan"], f["inner_vlan"]))
            lines.append(
                f"| {f['orig_h']} | {f['orig_p']} | {f['resp_h']} | {f['resp_p']} | "
                f"{f['proto']} | {f['orig_pkts']} | {f['orig_ip_bytes']} | {f['resp_pkts']} | "
                f"{f['resp_ip_bytes']} | {'-' if f['vni'] is None else f['vni']} | {tags} |")
        lines.append("")
    return "\n".join(lines)


def generate(outdir: Path) -> list[dict[str, Any]]:
    """Write every capture, expected.json and README.md into ``outdir``."""
    outdir.mkdir(parents=True, exist_ok=True)
    entries = []
    for build in CAPTURES:
        cap = build()
        data = capture_bytes(cap)
        (outdir / cap.name).write_bytes(data)
        entries.append(manifest_entry(cap, len(data)))
    manifest = {"generator": "pcaps/generate.py", "captures": entries}
    (outdir / "expected.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (outdir / "README.md").write_text(render_readme(entries))
    return entries


def main(argv: Sequence[str]) -> int:
    """Generate into ``argv[1]`` or next to this file."""
    outdir = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    generate(outdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
