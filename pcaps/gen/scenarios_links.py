"""Captures of each link type and file format: Ethernet, RAW, SLL, BSD loopback, pcapng.

Each ``cap_*`` function builds one capture of the ordinary traffic mix over a link
type and file variant (byte order, nanosecond timestamps, gzip, pcapng sections with
several interfaces and block types).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from dataclasses import replace

from .capture import NS, US, Capture, Interface, Record, Section, start
from .conversations import (
    Datagram,
    Network,
    Talk,
    dns_pair,
    icmp_echo,
    ntp_pair,
    standard_mix,
    tcp_session,
    udp_dgram,
    udp_exchange,
)
from .framing import arp, bsd_loopback, ether, merge, raw_ip, records, sll


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
