"""Captures of encapsulations and IP header variants.

VLAN tag stacks, MPLS label stacks, IPv4 options, IPv6 extension headers, IPv4 and
IPv6 fragments, and the tunnels VXLAN, Geneve and GRE; all over Ethernet.
"""

from __future__ import annotations

import random

from scapy.layers.inet import (
    ICMP,
    UDP,
    IPOption_NOP,
    IPOption_Router_Alert,
    IPOption_RR,
)
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    PadN,
    RouterAlert,
)
from scapy.packet import Raw

from .capture import MS, NS, US, Capture, start
from .conversations import (
    Network,
    Talk,
    dns_pair,
    icmp_echo,
    ntp_pair,
    tcp_session,
    udp_dgram,
    udp_exchange,
)
from .framing import Overlay, ether, fragmented, gre, merge, mpls, overlay, records


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
