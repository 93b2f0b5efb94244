"""Frame IP datagrams for a link type or tunnel, and say which units each frame counts.

A :data:`Link` turns one IP packet into a :data:`Frame`: the bytes to store and the
units a flow table counts for them (an overlay frame counts twice, outer and inner; a
GRE frame only for the inner datagram). :func:`records` applies a link to datagrams;
:func:`fragmented`, :func:`merge` and :func:`arp` make the other records captures need.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from scapy.contrib.geneve import GENEVE, GeneveOptions
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import UDP, fragment
from scapy.layers.inet6 import fragment6
from scapy.layers.l2 import ARP, GRE, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Padding

from .capture import US, Record, Unit, reassemble, unit_of
from .conversations import Datagram, Network

Frame = tuple[bytes, tuple[Unit, ...]]
Link = Callable[[Packet], Frame]


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
