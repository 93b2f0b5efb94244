"""The datacenter scenario: a tenant host receives a > 2 GiB upload among ordinary traffic.

The upload's bulk segments are patched copies of one scapy-built template (building
each of the ~50,000 packets with scapy would take minutes), captured with snaplen 96.
"""

from __future__ import annotations

import random
import struct

from scapy.layers.inet import TCP
from scapy.packet import Raw

from .capture import MS, NS, US, Capture, Record, start, unit_of
from .conversations import (
    CLIENT,
    SERVER,
    Datagram,
    Network,
    Talk,
    TcpConn,
    dns_pair,
    icmp_echo,
    ntp_pair,
    tcp_session,
    udp_exchange,
)
from .framing import ether, ether_bytes, merge, records

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
