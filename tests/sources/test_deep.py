"""Tests for the tshark deep look: real tshark over captures crafted here with scapy."""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from egress.errors import ConfigError, SourceError
from egress.formats.insights import render_insights
from egress.records import Flow
from egress.sources.deep import (
    APPLICATION_FILTER,
    FlowInsight,
    HttpRequest,
    build_display_filter,
    inspect_flows,
)
from egress.sources.pcap import read_flows
from tests.sources.x509_der import PRINTABLE, UTF8, certificate, name

needs_tshark = pytest.mark.skipif(
    shutil.which("tshark") is None, reason="tshark is not installed (apt install tshark)"
)

T0 = 1_700_000_000.0


def eth() -> Any:
    # Explicit addresses: without them scapy would send ARP requests to find a MAC.
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


# --- packet crafting ------------------------------------------------------------------------


class Capture:
    """Packets of several conversations, timestamped in order, written as one pcap."""

    def __init__(self) -> None:
        self.packets: list[Any] = []

    def add(self, packet: Any, when: float) -> None:
        packet.time = when
        self.packets.append(packet)

    def tcp_session(
        self,
        client: str,
        server: str,
        cport: int,
        sport: int,
        *,
        to_server: Sequence[bytes] = (),
        to_client: Sequence[bytes] = (),
        retransmit: int | None = None,
        start: float,
    ) -> None:
        """Handshake, client segments, server segments, then FIN/ACK closing.

        ``retransmit`` sends the client segment with that index a second time.
        """
        ip: Any = IPv6 if ":" in client else IP
        when = start

        def send(src: str, dst: str, sp: int, dp: int, flags: str, seq: int, ack: int,
                 data: bytes = b"") -> None:
            nonlocal when
            pkt = eth() / ip(src=src, dst=dst)
            pkt = pkt / TCP(sport=sp, dport=dp, flags=flags, seq=seq, ack=ack, window=65535)
            self.add(pkt / Raw(data) if data else pkt, when)
            when += 0.001

        cseq, sseq = 1000, 9000
        send(client, server, cport, sport, "S", cseq, 0)
        send(server, client, sport, cport, "SA", sseq, cseq + 1)
        cseq, sseq = cseq + 1, sseq + 1
        send(client, server, cport, sport, "A", cseq, sseq)
        for i, data in enumerate(to_server):
            send(client, server, cport, sport, "PA", cseq, sseq, data)
            if i == retransmit:
                send(client, server, cport, sport, "PA", cseq, sseq, data)
            cseq += len(data)
        for data in to_client:
            send(server, client, sport, cport, "PA", sseq, cseq, data)
            sseq += len(data)
        send(client, server, cport, sport, "FA", cseq, sseq)
        send(server, client, sport, cport, "FA", sseq, cseq + 1)
        send(client, server, cport, sport, "A", cseq + 1, sseq + 1)

    def udp_exchange(
        self, client: str, server: str, cport: int, sport: int, sizes: Sequence[int], *,
        start: float,
    ) -> None:
        """One datagram per size, alternating client and server, 1 ms apart."""
        for i, size in enumerate(sizes):
            src, dst, sp, dp = (
                (client, server, cport, sport) if i % 2 == 0 else (server, client, sport, cport)
            )
            self.add(eth() / IP(src=src, dst=dst) / UDP(sport=sp, dport=dp) / Raw(bytes(size)),
                     start + i * 0.001)

    def write(self, path: Path) -> Path:
        wrpcap(str(path), self.packets)
        return path


def segments(data: bytes, size: int = 1400) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def tls_record(*handshakes: tuple[int, bytes]) -> bytes:
    body = b"".join(bytes([t]) + len(m).to_bytes(3, "big") + m for t, m in handshakes)
    return b"\x16\x03\x03" + len(body).to_bytes(2, "big") + body


def client_hello(server_name: str) -> bytes:
    host = server_name.encode()
    entry = b"\x00" + len(host).to_bytes(2, "big") + host
    sni = b"\x00\x00" + (len(entry) + 2).to_bytes(2, "big") + len(entry).to_bytes(2, "big") + entry
    hello = (b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\xc0\x2f" + b"\x01\x00"
             + len(sni).to_bytes(2, "big") + sni)
    return tls_record((1, hello))


def server_flight(chain: Sequence[bytes]) -> bytes:
    hello = b"\x03\x03" + bytes(32) + b"\x00" + b"\xc0\x2f" + b"\x00" + b"\x00\x00"
    certs = b"".join(len(c).to_bytes(3, "big") + c for c in chain)
    return tls_record((2, hello), (11, len(certs).to_bytes(3, "big") + certs), (14, b""))


def rpc_record(xid: int, body: bytes, *, call: tuple[int, int, int] | None) -> bytes:
    """ONC RPC over TCP: a CALL (program, version, procedure) or an accepted REPLY."""
    if call is not None:
        head = struct.pack(">IIIIII", xid, 0, 2, *call) + bytes(16)  # AUTH_NULL cred and verf
    else:
        head = struct.pack(">II", xid, 1) + bytes(16)  # accepted, AUTH_NULL verf, SUCCESS
    message = head + body
    return struct.pack(">I", 0x8000_0000 | len(message)) + message


def xdr_opaque(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data + bytes(-len(data) % 4)


NFS = 100003
FILE_HANDLE = xdr_opaque(b"\x01" * 32)


def nfs3_write(xid: int, count: int) -> bytes:
    args = FILE_HANDLE + struct.pack(">QII", 0, count, 2) + xdr_opaque(b"d" * count)
    return rpc_record(xid, args, call=(NFS, 3, 7))


def nfs3_write_reply(xid: int, count: int) -> bytes:
    # status OK, no pre/post attributes, count, FILE_SYNC, write verifier
    return rpc_record(xid, struct.pack(">IIIII", 0, 0, 0, count, 2) + bytes(8), call=None)


def nfs3_read(xid: int, count: int) -> bytes:
    return rpc_record(xid, FILE_HANDLE + struct.pack(">QI", 0, count), call=(NFS, 3, 6))


def nfs4_write(xid: int, count: int) -> bytes:
    putfh = struct.pack(">I", 22) + FILE_HANDLE
    write = struct.pack(">I", 38) + bytes(16) + struct.pack(">QI", 0, 2) + xdr_opaque(b"d" * count)
    compound = xdr_opaque(b"") + struct.pack(">II", 0, 2) + putfh + write
    return rpc_record(xid, compound, call=(NFS, 4, 1))


def smb2_write(message_id: int, count: int) -> bytes:
    header = b"\xfeSMB" + struct.pack(
        "<HHIHHIIQIIQ16s", 64, 1, 0, 9, 1, 0, 0, message_id, 0xFEFF, 1, 0x1234,
        bytes(16),
    )
    request = struct.pack("<HHIQ16sIIHHI", 49, 64 + 48, count, 0, b"\x11" * 16, 0, 0, 0, 0, 0)
    return header + request + b"w" * count


def nbss(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(3, "big") + message


def by_endpoints(flows: Sequence[Flow]) -> dict[tuple[str, int], Flow]:
    return {(f.resp_h, f.orig_p): f for f in flows}


# --- application layer ----------------------------------------------------------------------


@needs_tshark
def test_tls_server_name_and_certificate_subjects(tmp_path: Path) -> None:
    root = name([("2.5.4.6", PRINTABLE, "US")], [("2.5.4.3", UTF8, "Example Root CA")])
    leaf = name(
        [("2.5.4.6", PRINTABLE, "US")],
        [("2.5.4.10", UTF8, "Example, Datasets")],
        [("2.5.4.3", UTF8, "datasets.example.org")],
    )
    flight = server_flight([certificate(leaf, root), certificate(root, root)])
    cap = Capture()
    # The server's flight spans two segments, so the certificates need TCP reassembly.
    cap.tcp_session("10.1.0.5", "192.0.2.80", 51000, 443,
                    to_server=[client_hello("datasets.example.org")],
                    to_client=segments(flight, 600), start=T0)
    path = cap.write(tmp_path / "tls.pcap")
    flows = read_flows([path])
    assert len(flows) == 1

    (insight,) = inspect_flows(path, flows)

    flow = flows[0]
    assert insight == FlowInsight(
        uid=flow.uid, community_id=flow.community_id, proto="tcp",
        orig_h="10.1.0.5", orig_p=51000, resp_h="192.0.2.80", resp_p=443,
        total_ip_bytes=flow.total_ip_bytes,
        tls_server_names=("datasets.example.org",),
        tls_certificate_subjects=(
            "CN=datasets.example.org,O=Example\\, Datasets,C=US",
            "CN=Example Root CA,C=US",
        ),
        packets_inspected=2,  # the ClientHello and the reassembled Certificate
    )
    assert flow.orig_pkts + flow.resp_pkts == 9


@needs_tshark
def test_http_put_to_object_store(tmp_path: Path) -> None:
    put = (b"PUT /t0042-datasets/part-0001 HTTP/1.1\r\n"
           b"Host: objects.example.net\r\n"
           b"Content-Length: 1048576\r\n"
           b"Content-Type: application/octet-stream\r\n\r\n")
    listing = b"GET /t0042-datasets/?list-type=2 HTTP/1.1\r\nHost: objects.example.net\r\n\r\n"
    cap = Capture()
    # Headers, a retransmission of them, part of the body (the rest was not captured),
    # then a second request on the same connection.
    cap.tcp_session("10.1.0.6", "198.51.100.20", 52000, 80,
                    to_server=[put, b"\x00" * 1400, b"\x00" * 1400, listing],
                    to_client=[b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
                    retransmit=0, start=T0)
    path = cap.write(tmp_path / "put.pcap")
    flows = read_flows([path])

    (insight,) = inspect_flows(path, flows)

    assert insight.http_requests == (
        HttpRequest(method="PUT", host="objects.example.net",
                    uri="/t0042-datasets/part-0001", content_length=1048576),
        HttpRequest(method="GET", host="objects.example.net",
                    uri="/t0042-datasets/?list-type=2", content_length=None),
    )
    assert insight.http_put_bytes == 1048576
    assert (insight.tls_server_names, insight.tls_certificate_subjects) == ((), ())
    assert (insight.smb_write_bytes, insight.nfs_write_bytes) == (None, None)
    assert insight.packets_inspected == 2  # the PUT and the GET


@needs_tshark
def test_smb2_and_nfs_write_volume(tmp_path: Path) -> None:
    # Two WRITEs compounded in one NetBIOS message: the first, padded to 8 bytes,
    # points at the second through its header's NextCommand field (offset 20).
    first = smb2_write(1, 5000)
    first += bytes(-len(first) % 8)
    first = first[:20] + struct.pack("<I", len(first)) + first[24:]
    smb = nbss(first + smb2_write(2, 10))
    nfs3 = nfs3_write(7, 4000) + nfs3_write(8, 100) + nfs3_read(9, 8192)
    cap = Capture()
    cap.tcp_session("10.1.0.7", "203.0.113.45", 50100, 445, to_server=segments(smb), start=T0)
    cap.tcp_session("10.1.0.8", "203.0.113.49", 800, 2049, to_server=segments(nfs3),
                    to_client=[nfs3_write_reply(7, 4000) + nfs3_write_reply(8, 100)],
                    start=T0 + 1)
    cap.tcp_session("10.1.0.9", "203.0.113.49", 801, 2049, to_server=segments(nfs4_write(10, 3000)),
                    start=T0 + 2)
    path = cap.write(tmp_path / "files.pcap")
    flows = by_endpoints(read_flows([path]))

    insights = {(i.resp_h, i.orig_p): i for i in inspect_flows(path, list(flows.values()))}

    smb_flow = insights["203.0.113.45", 50100]
    assert (smb_flow.smb_write_bytes, smb_flow.nfs_write_bytes) == (5010, None)
    # Write calls count; the replies' counts and the READ call's do not.
    assert insights["203.0.113.49", 800].nfs_write_bytes == 4100
    assert insights["203.0.113.49", 801].nfs_write_bytes == 3000
    assert insights["203.0.113.49", 800].smb_write_bytes is None
    assert insights["203.0.113.49", 800].http_put_bytes is None


# --- choosing flows and mapping packets -----------------------------------------------------


@needs_tshark
def test_only_the_top_flows_are_reported_largest_first(tmp_path: Path) -> None:
    cap = Capture()
    cap.udp_exchange("10.2.0.1", "192.0.2.53", 40000, 5000, [300, 100], start=T0)
    cap.tcp_session("2001:db8::10", "2001:db8:0:1::20", 41000, 8443,
                    to_server=[b"a" * 1000, b"b" * 1000], start=T0 + 1)
    cap.tcp_session("10.2.0.2", "192.0.2.54", 42000, 22, to_server=[b"c" * 50], start=T0 + 2)
    path = cap.write(tmp_path / "three.pcap")
    flows = by_endpoints(read_flows([path]))
    assert len(flows) == 3

    insights = inspect_flows(path, list(flows.values()), top=2)

    largest, second = flows["2001:db8:0:1::20", 41000], flows["192.0.2.53", 40000]
    assert [(i.uid, i.resp_h, i.total_ip_bytes) for i in insights] == [
        (largest.uid, "2001:db8:0:1::20", 8 * 60 + 2000),
        (second.uid, "192.0.2.53", 2 * 28 + 400),
    ]
    assert [i.packets_inspected for i in insights] == [0, 0]  # no application messages


@needs_tshark
def test_reused_five_tuple_counts_only_the_chosen_flows_packets(tmp_path: Path) -> None:
    def put(uri: str, size: int) -> bytes:
        return (f"PUT {uri} HTTP/1.1\r\nHost: s3.example\r\nContent-Length: {size}\r\n\r\n"
                .encode() + b"d" * 400)

    cap = Capture()
    cap.tcp_session("10.3.0.1", "192.0.2.99", 45000, 80,
                    to_server=[put("/b/one", 400), put("/b/two", 400)], start=T0)
    # The same 5-tuple a minute later (after Zeek's close delay): another, smaller flow.
    cap.tcp_session("10.3.0.1", "192.0.2.99", 45000, 80, to_server=[put("/b/three", 400)],
                    start=T0 + 60)
    path = cap.write(tmp_path / "reuse.pcap")
    flows = read_flows([path])
    assert len(flows) == 2

    (insight,) = inspect_flows(path, flows, top=1)

    assert [r.uri for r in insight.http_requests] == ["/b/one", "/b/two"]
    assert insight.packets_inspected == 2


@needs_tshark
def test_flows_without_ports_are_reported_but_not_inspected(tmp_path: Path) -> None:
    cap = Capture()
    for i in range(4):
        cap.add(eth() / IP(src="10.4.0.1", dst="192.0.2.7") / ICMP(id=1, seq=i)
                / Raw(bytes(1000)), T0 + i * 0.01)
    cap.tcp_session("10.4.0.2", "192.0.2.8", 46000, 80, to_server=[b"x" * 10], start=T0 + 1)
    path = cap.write(tmp_path / "icmp.pcap")
    flows = read_flows([path])

    icmp, tcp = inspect_flows(path, flows)

    assert (icmp.proto, icmp.packets_inspected, icmp.total_ip_bytes) == ("icmp", None, 4 * 1028)
    assert (tcp.proto, tcp.packets_inspected) == ("tcp", 0)
    assert "not inspected: icmp flows have no ports to filter on" in render_insights([icmp])


def test_no_flows_need_no_tshark(tmp_path: Path) -> None:
    assert inspect_flows(tmp_path / "unread.pcap", [], tshark_path="/nowhere/tshark") == []


def test_top_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="top must be at least 1, got 0"):
        inspect_flows(tmp_path / "x.pcap", [], top=0)


def make_flow(orig_h: str, orig_p: int, resp_h: str, resp_p: int, ip_proto: int,
              *, uid: str = "CTEST0000001", orig_ip_bytes: int = 100) -> Flow:
    return Flow(
        uid=uid, start=datetime.fromtimestamp(T0, UTC), duration_s=1.0,
        orig_h=orig_h, orig_p=orig_p, resp_h=resp_h, resp_p=resp_p,
        proto={6: "tcp", 17: "udp", 1: "icmp"}[ip_proto], ip_proto=ip_proto,
        conn_state="SF", history="ShADadFf", orig_pkts=2, orig_ip_bytes=orig_ip_bytes,
        orig_bytes=0, resp_pkts=2, resp_ip_bytes=80, resp_bytes=0, community_id="1:test=",
    )


def test_display_filter_covers_ipv4_ipv6_tcp_and_udp() -> None:
    flows = [
        make_flow("10.0.0.1", 40000, "192.0.2.1", 443, 6),
        make_flow("2001:db8::1", 5353, "2001:db8::2", 53, 17),
        make_flow("10.0.0.1", 8, "192.0.2.1", 0, 1),
        make_flow("10.0.0.1", 40000, "192.0.2.1", 443, 6),  # same 5-tuple: one term
    ]
    assert build_display_filter(flows) == (
        "((ip.addr==10.0.0.1 && ip.addr==192.0.2.1 && tcp.port==40000 && tcp.port==443)"
        " || (ipv6.addr==2001:db8::1 && ipv6.addr==2001:db8::2"
        " && udp.port==5353 && udp.port==53)) && !icmp && !icmpv6 && "
        + APPLICATION_FILTER
    )
    assert build_display_filter(flows[2:3]) == ""


# --- errors ---------------------------------------------------------------------------------


def test_missing_tshark_path_is_a_config_error(tmp_path: Path) -> None:
    flow = make_flow("10.0.0.1", 40000, "192.0.2.1", 443, 6)
    missing = tmp_path / "bin" / "tshark"
    with pytest.raises(ConfigError, match=r"tshark not found at '.*/bin/tshark': .*apt install"):
        inspect_flows(tmp_path / "x.pcap", [flow], tshark_path=str(missing))


def test_tshark_not_on_path_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    flow = make_flow("10.0.0.1", 40000, "192.0.2.1", 443, 6)
    with pytest.raises(ConfigError, match=r"tshark not found on PATH: .*\(apt install tshark\)"):
        inspect_flows(tmp_path / "x.pcap", [flow])


def test_executable_not_named_tshark_is_a_config_error(tmp_path: Path) -> None:
    flow = make_flow("10.0.0.1", 40000, "192.0.2.1", 443, 6)
    with pytest.raises(ConfigError, match="not named 'tshark', which pyshark requires"):
        inspect_flows(tmp_path / "x.pcap", [flow], tshark_path=shutil.which("true") or "/bin/true")


@needs_tshark
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"this is not a packet capture" * 4, "isn't a capture file in a format TShark"),
        (b"\xd4\xc3\xb2\xa1" + b"\xff" * 60, "pcap: network type reserved field not zero"),
    ],
    ids=["not-a-capture", "corrupt-header"],
)
def test_unreadable_capture_is_a_source_error(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "broken.pcap"
    path.write_bytes(content)
    flow = make_flow("10.0.0.1", 40000, "192.0.2.1", 443, 6)
    with pytest.raises(SourceError, match=r"tshark cannot read the capture \(exit status 2\)") as e:
        inspect_flows(path, [flow])
    assert e.value.path == path
    assert reason in str(e.value)
    assert isinstance(e.value.__cause__, subprocess.CalledProcessError)


@needs_tshark
def test_missing_capture_is_a_source_error(tmp_path: Path) -> None:
    flow = make_flow("10.0.0.1", 40000, "192.0.2.1", 443, 6)
    with pytest.raises(SourceError, match="cannot open capture: no such file") as e:
        inspect_flows(tmp_path / "gone.pcap", [flow])
    assert isinstance(e.value.__cause__, FileNotFoundError)
