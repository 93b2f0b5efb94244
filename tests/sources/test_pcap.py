"""Flow assembly on captures crafted with scapy: timeouts, reuse, interim records, files."""

from __future__ import annotations

import gzip
import os
import struct
import threading
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

from egress.errors import SourceError
from egress.sources.pcap import CaptureReader, FlowOptions, read_flows

CLIENT, SERVER = "10.42.7.15", "203.0.113.50"
T0 = 1_700_000_000.0


def _at(pkt: Packet, t: float) -> Packet:
    pkt.time = T0 + t
    return pkt


def tcp(t: float, sport: int, dport: int, flags: str, seq: int, ack: int = 0,
        payload: bytes = b"", *, src: str = CLIENT, dst: str = SERVER) -> Packet:
    pkt = Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq,
                                               ack=ack, window=65535)
    if payload:
        pkt = pkt / Raw(payload)
    return _at(pkt, t)


def handshake_transfer_close(t0: float, sport: int, nbytes: int) -> list[Packet]:
    """A client uploads ``nbytes`` in 1000-byte segments and closes."""
    pkts = [
        tcp(t0, sport, 443, "S", 100),
        tcp(t0 + 0.01, 443, sport, "SA", 900, 101, src=SERVER, dst=CLIENT),
        tcp(t0 + 0.02, sport, 443, "A", 101, 901),
    ]
    seq = 101
    for i in range(nbytes // 1000):
        pkts.append(tcp(t0 + 0.03 + i * 0.001, sport, 443, "PA", seq, 901, b"x" * 1000))
        seq += 1000
    t = t0 + 0.1 + nbytes / 1e6
    pkts += [
        tcp(t, sport, 443, "FA", seq, 901),
        tcp(t + 0.01, 443, sport, "FA", 901, seq + 1, src=SERVER, dst=CLIENT),
        tcp(t + 0.02, sport, 443, "A", seq + 1, 902),
    ]
    return pkts


def write(tmp_path: Path, name: str, pkts: list[Packet]) -> Path:
    path = tmp_path / name
    wrpcap(str(path), pkts)
    return path


def test_complete_tcp_connection_counts_like_zeek(tmp_path: Path) -> None:
    path = write(tmp_path, "upload.pcap", handshake_transfer_close(0, 40000, 5000))
    (flow,) = read_flows([path])
    assert (flow.orig_h, flow.orig_p, flow.resp_h, flow.resp_p) == (CLIENT, 40000, SERVER, 443)
    assert (flow.proto, flow.ip_proto, flow.conn_state, flow.history) == ("tcp", 6, "SF", "ShADFf")
    # client: SYN, ACK, 5 data, FIN, ACK = 9 packets of 40 bytes plus 5000 payload bytes
    assert (flow.orig_pkts, flow.orig_ip_bytes, flow.orig_bytes) == (9, 9 * 40 + 5000, 5000)
    assert (flow.resp_pkts, flow.resp_ip_bytes, flow.resp_bytes) == (2, 80, 0)
    # the last ACK, after both FINs, is counted but does not extend the duration (as Zeek)
    assert flow.duration_s == pytest.approx(0.115)
    assert flow.start.timestamp() == T0
    assert flow.interim is False


def test_inactivity_timeout_splits_and_is_configurable(tmp_path: Path) -> None:
    datagram = Ether() / IP(src=CLIENT, dst=SERVER) / UDP(sport=5000, dport=9000) / Raw(b"a" * 10)
    pkts = [_at(datagram.copy(), t) for t in (0, 59, 121)]
    path = write(tmp_path, "udp.pcap", pkts)
    assert [f.orig_pkts for f in read_flows([path])] == [2, 1]
    assert [f.orig_pkts for f in read_flows([path], options=FlowOptions(udp_timeout_s=10))] == [
        1, 1, 1]
    assert [f.orig_pkts for f in read_flows([path], options=FlowOptions(udp_timeout_s=100))] == [3]


def test_new_syn_on_a_closed_five_tuple_starts_a_new_connection(tmp_path: Path) -> None:
    first = handshake_transfer_close(0, 40001, 1000)
    second = handshake_transfer_close(1, 40001, 2000)
    flows = read_flows([write(tmp_path, "reuse.pcap", first + second)])
    assert [(f.conn_state, f.orig_bytes) for f in flows] == [("SF", 1000), ("SF", 2000)]
    assert flows[0].uid != flows[1].uid


def test_first_packet_from_a_likely_server_port_is_flipped(tmp_path: Path) -> None:
    pkts = [tcp(0, 443, 40002, "PA", 5000, 77, b"y" * 100, src=SERVER, dst=CLIENT)]
    (flow,) = read_flows([write(tmp_path, "mid.pcap", pkts)])
    assert (flow.orig_h, flow.orig_p, flow.resp_p) == (CLIENT, 40002, 443)
    assert (flow.orig_pkts, flow.resp_pkts, flow.resp_ip_bytes) == (0, 1, 140)
    assert flow.history == "^d"


def test_icmp_echo_request_and_reply_are_one_flow(tmp_path: Path) -> None:
    pkts = [
        _at(Ether() / IP(src=CLIENT, dst=SERVER) / ICMP(type=8, id=1) / Raw(b"p" * 56), 0),
        _at(Ether() / IP(src=SERVER, dst=CLIENT) / ICMP(type=0, id=1) / Raw(b"p" * 56), 0.01),
    ]
    (flow,) = read_flows([write(tmp_path, "ping.pcap", pkts)])
    assert (flow.proto, flow.orig_p, flow.resp_p) == ("icmp", 8, 0)
    assert (flow.orig_pkts, flow.orig_ip_bytes) == (1, 84)
    assert (flow.resp_pkts, flow.resp_ip_bytes) == (1, 84)
    assert (flow.orig_bytes, flow.resp_bytes) == (56, 56)


def test_interim_records_carry_running_totals_of_a_long_transfer(tmp_path: Path) -> None:
    pkts = [tcp(0, 40003, 443, "S", 100),
            tcp(0.01, 443, 40003, "SA", 900, 101, src=SERVER, dst=CLIENT)]
    seq = 101
    for minute in range(1, 6):  # one 1000-byte segment per minute
        pkts.append(tcp(minute * 60.0, 40003, 443, "PA", seq, 901, b"z" * 1000))
        seq += 1000
    path = write(tmp_path, "long.pcap", pkts)
    reader = CaptureReader(options=FlowOptions(interim_interval_s=100))
    records = list(reader.read([path]))
    interim = [f for f in records if f.interim]
    final = [f for f in records if not f.interim]
    assert [(f.orig_pkts, f.orig_bytes) for f in interim] == [(3, 2000), (5, 4000)]
    assert [(f.orig_pkts, f.orig_bytes) for f in final] == [(6, 5000)]
    assert len({f.uid for f in records}) == 1
    assert reader.stats.interim_records == 2
    assert reader.stats.flows == 1


def test_gzip_and_plain_give_the_same_flows(tmp_path: Path) -> None:
    plain = write(tmp_path, "a.pcap", handshake_transfer_close(0, 40004, 3000))
    packed = tmp_path / "a.pcap.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert read_flows([packed]) == read_flows([plain])


def test_several_files_are_one_continuous_capture(tmp_path: Path) -> None:
    pkts = handshake_transfer_close(0, 40005, 4000)
    first = write(tmp_path, "part1.pcap", pkts[:4])
    second = write(tmp_path, "part2.pcap", pkts[4:])
    (flow,) = read_flows([first, second])
    assert (flow.conn_state, flow.orig_bytes, flow.orig_pkts) == ("SF", 4000, 8)


def test_small_chunks_give_the_same_result_as_large_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "chunks.pcap", handshake_transfer_close(0, 40006, 20000))
    small = list(CaptureReader(chunk_bytes=64).read([path]))
    assert small == read_flows([path])


def test_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nope\.pcap: cannot open capture"):
        read_flows([tmp_path / "nope.pcap"])


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="udp_timeout_s must be positive"):
        FlowOptions(udp_timeout_s=0)
    with pytest.raises(ValueError, match="tcp_timeout_s must be positive and at most ten years"):
        FlowOptions(tcp_timeout_s=float("nan"))
    with pytest.raises(ValueError, match="interim_interval_s must be positive"):
        FlowOptions(interim_interval_s=1e11)
    with pytest.raises(ValueError, match="ports must be between 0 and 65535"):
        FlowOptions(tcp_server_ports=frozenset({70000}))


def test_uids_are_zeek_like_and_unique(tmp_path: Path) -> None:
    pkts = handshake_transfer_close(0, 40007, 1000) + handshake_transfer_close(1, 40007, 1000)
    flows = read_flows([write(tmp_path, "two.pcap", pkts)])
    assert [len(f.uid) for f in flows] == [12, 12]
    assert all(f.uid.startswith("C") and f.uid[1:].isalnum() for f in flows)
    assert flows[0].uid != flows[1].uid


def test_gzip_output_is_bounded_per_step_and_complete(tmp_path: Path) -> None:
    """A highly compressible capture inflates chunk by chunk, never all at once."""
    plain = write(tmp_path, "zeros.pcap", handshake_transfer_close(0, 40008, 200_000))
    packed = tmp_path / "zeros.pcap.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    small = list(CaptureReader(chunk_bytes=4096).read([packed]))
    assert small == read_flows([plain])


def test_a_pipe_is_read_as_a_stream(tmp_path: Path) -> None:
    plain = write(tmp_path, "p.pcap", handshake_transfer_close(0, 40009, 3000))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(plain.read_bytes()))
    writer.start()
    try:
        flows = read_flows([fifo])
    finally:
        writer.join()
    assert flows == read_flows([plain])


def test_simple_packet_block_before_any_timestamp_is_counted_not_fatal(tmp_path: Path) -> None:
    frame = bytes(tcp(0, 40010, 443, "S", 1))
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<IIHHI", 1, 20, 1, 0, 0) + struct.pack("<I", 20)
    pad = (-len(frame)) % 4
    spb = struct.pack("<III", 3, 16 + len(frame) + pad, len(frame)) + frame + bytes(pad)
    spb += struct.pack("<I", 16 + len(frame) + pad)
    path = tmp_path / "spb.pcapng"
    path.write_bytes(shb + idb + spb)
    reader = CaptureReader()
    assert list(reader.read([path])) == []
    assert [(i.kind, i.count, i.first_offset) for i in reader.stats.issues] == [
        ("packet_without_timestamp", 1, 48)]


def test_an_engine_that_was_not_initialised_says_so() -> None:
    from egress import _flowcore

    engine = _flowcore.Engine.__new__(_flowcore.Engine)
    with pytest.raises(RuntimeError, match="Engine is not initialised"):
        engine.take()
    with pytest.raises(ValueError, match="udp_timeout must be a finite number of seconds"):
        _flowcore.Engine(udp_timeout=float("nan"))
