"""IP conversations as timestamped datagrams: TCP sessions, UDP exchanges, pings, DNS, NTP.

Everything here builds network-layer packets with scapy (:class:`Network` for the IP
header, the rest for what rides on it) and returns :data:`Datagram` s, (time in ns,
packet); :mod:`gen.framing` then puts them in frames of one link type.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.ntp import NTPHeader
from scapy.packet import Packet, Raw

from .capture import MS, NS, US

Datagram = tuple[int, Packet]  # (timestamp in ns, IP or IPv6 packet)


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
