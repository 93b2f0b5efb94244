"""The compiled engine's flow table: growth, slot order and flushes interleaved with packets."""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path
from typing import Any, cast

import pytest

from egress import _flowcore
from egress.community_id import community_id_text
from egress.sources.pcap import CaptureReader

T0 = 1_700_000_000


def _udp_frame(sport: int, dport: int = 9000, src: bytes = b"\x0a\x00\x00\x01",
               dst: bytes = b"\x0a\x00\x00\x02", payload: bytes = b"abcd") -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + udp


def _pcap(records: list[tuple[float, bytes]]) -> bytes:
    """A classic pcap (microseconds, Ethernet) of (seconds after T0, frame) records."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for t, frame in records:
        sec, usec = int(t), round((t - int(t)) * 1e6)
        out.append(struct.pack("<IIII", T0 + sec, usec, len(frame), len(frame)) + frame)
    return b"".join(out)


def _take(engine: _flowcore.Engine) -> list[tuple[Any, ...]]:
    """Records of an engine made without a record type: plain tuples in Flow's field order."""
    return cast("list[tuple[Any, ...]]", engine.take())


def _original_slot_order(nflows: int) -> list[int]:
    """Slot of each new flow under the first engine's free list (no flow ends).

    The table starts with 4096 slots and doubles when one slot is left; the new
    slots are handed out in order before that last one.
    """
    cap, stack, slots = 4096, list(range(4095, -1, -1)), []
    for live in range(nflows):
        if live >= cap - 1:
            below = stack.pop()
            stack = [below, *range(2 * cap - 1, cap - 1, -1)]
            cap *= 2
        slots.append(stack.pop())
    return slots


def test_flows_of_one_instant_end_in_slot_order_across_table_growth(tmp_path: Path) -> None:
    # 10,000 flows that start at the same instant: the flush orders them by slot,
    # which must stay what the first engine gave (the output is compared byte for byte)
    n = 10_000
    engine = _flowcore.Engine()
    engine.begin_file()
    capture = _pcap([(0.0, _udp_frame(20000 + i)) for i in range(n)])
    assert engine.feed(capture, True) == len(capture)
    assert engine.flush() is True
    flows = _take(engine)
    slots = _original_slot_order(n)
    expected = [20000 + i for i in sorted(range(n), key=lambda i: slots[i])]
    assert [f[4] for f in flows] == expected
    assert slots[4094:4097] == [4094, 4096, 4097]  # the 4096th flow skips the last slot
    assert all(f[11] == 1 and f[13] == 4 for f in flows)  # orig_pkts, orig_bytes


def test_a_reader_counts_every_flow_of_a_table_that_grew(tmp_path: Path) -> None:
    path = tmp_path / "many.pcap"
    frames = [(i / 1000, _udp_frame(20000 + i % 9000, src=bytes([10, 1, i // 9000, 7])))
              for i in range(20_000)]
    path.write_bytes(_pcap(frames))
    reader = CaptureReader()
    flows = list(reader.read([path]))
    ends = {frozenset({(f.orig_h, f.orig_p), (f.resp_h, f.resp_p)}) for f in flows}
    assert len(flows) == len(ends) == 20_000
    assert sum(f.orig_pkts + f.resp_pkts for f in flows) == 20_000
    assert reader.stats.flows == 20_000


def test_packets_fed_during_a_flush_find_their_flows() -> None:
    engine = _flowcore.Engine()
    engine.begin_file()
    first = _pcap([(0.0, _udp_frame(5001)), (1.0, _udp_frame(5002)), (2.0, _udp_frame(5003))])
    assert engine.feed(first, True) == len(first)
    assert engine.flush(1) is False  # one flow ended, two still open
    (ended,) = _take(engine)
    assert ended[4] == 5001
    # more packets before the flush is done: the open flows must still be found
    engine.begin_file()
    second = _pcap([(3.0, _udp_frame(5002)), (3.5, _udp_frame(5004))])
    assert engine.feed(second, True) == len(second)
    assert engine.flush() is True  # the flush ends the flows open when it began
    rest = {r[4]: r for r in _take(engine)}
    assert sorted(rest) == [5002, 5003]
    assert (rest[5002][11], rest[5002][14]) == (2, 0)  # orig_pkts, resp_pkts: one flow
    assert rest[5003][11] == 1
    assert engine.stats()["open_flows"] == 1
    assert engine.flush() is True
    (new,) = _take(engine)
    assert (new[4], new[11]) == (5004, 1)
    assert engine.stats()["open_flows"] == 0
    # and the emptied table takes new flows again
    engine.begin_file()
    third = _pcap([(10.0, _udp_frame(5002))])
    engine.feed(third, True)
    engine.flush()
    (again,) = _take(engine)
    assert (again[4], again[11]) == (5002, 1)


def _ip6_frame(src: bytes, dst: bytes, nh: int, l4: bytes) -> bytes:
    ip = struct.pack("!IHBB16s16s", 6 << 28, len(l4), nh, 64, src, dst)
    return b"\x02" * 6 + b"\x04" * 6 + b"\x86\xdd" + ip + l4


def test_community_ids_made_by_the_engine_match_the_reference() -> None:
    # the engine hashes with the CPU's SHA instructions where it has them: every
    # id must still be the reference's, over both families and several protocols
    rng = random.Random(7)
    frames = []
    for i in range(600):
        sport, dport = rng.randrange(65536), rng.randrange(65536)
        proto = (17, 6, 1)[i % 3]
        if proto == 1:
            l4 = bytes([8, 0, 0, 0]) + struct.pack("!HH", sport, i)  # ICMPv4/v6 echo
        elif proto == 6:
            l4 = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 1024, 0, 0)
        else:
            l4 = struct.pack("!HHHH", sport, dport, 8, 0)
        if i % 2:
            src, dst = rng.randbytes(16), rng.randbytes(16)
            if proto == 1:
                proto, l4 = 58, bytes([128]) + l4[1:]
            frames.append((i / 100, _ip6_frame(src, dst, proto, l4)))
        else:
            src, dst = rng.randbytes(4), rng.randbytes(4)
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0, src, dst)
            frames.append((i / 100, b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + l4))
    engine = _flowcore.Engine()
    engine.begin_file()
    capture = _pcap(frames)
    assert engine.feed(capture, True) == len(capture)
    engine.flush()
    records = _take(engine)
    assert len(records) == 600
    assert {r[8] for r in records} == {6, 17, 1, 58}
    for r in records:
        assert r[17] == community_id_text(r[3], r[4], r[5], r[6], r[8])


# ------------------------------------------------------------ files read through the engine's map


def _tcp_frame(sport: int, dport: int, flags: int, seq: int, ack: int, payload: bytes = b"",
               win: int = 8192, src: bytes = b"\x0a\x00\x00\x01",
               dst: bytes = b"\x0a\x00\x00\x02") -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, win, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, src, dst)
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp


def _vxlan_frame(outer_sport: int, inner: bytes) -> bytes:
    """``inner`` (an Ethernet frame) in VXLAN (VNI 42) over UDP between two fixed hosts."""
    return _udp_frame(outer_sport, 4789, src=b"\xc0\xa8\x00\x01", dst=b"\xc0\xa8\x00\x02",
                      payload=struct.pack("!BxxxI", 0x08, 42 << 8) + inner)


def _many_flows_capture() -> bytes:
    """22,000 UDP flows (the table grows to 32,768 slots, past the helper's prefault
    step of 4 MB, and the timer heap past its first 8,192 timers), then a TCP flow
    with retransmissions and zero windows, and tunnelled flows that end and start."""
    frames = [(i / 1000, _udp_frame(1024 + i % 60000, src=bytes([10, 2, i // 60000, 1])))
              for i in range(22_000)]
    t = 30.0
    server, client = b"\x0a\x00\x00\x02", b"\x0a\x00\x00\x01"
    tcp = [_tcp_frame(40000, 80, 0x02, 100, 0),
           _tcp_frame(80, 40000, 0x12, 500, 101, src=server, dst=client),
           _tcp_frame(40000, 80, 0x10, 101, 501), _tcp_frame(40000, 80, 0x18, 101, 501, b"x" * 10)]
    tcp += [_tcp_frame(40000, 80, 0x18, 101, 501, b"x" * 10) for _ in range(100)]  # retransmitted
    tcp += [_tcp_frame(80, 40000, 0x10, 501, 111, win=0, src=server, dst=client)
            for _ in range(10)]  # zero windows
    frames += [(t + i / 1000, f) for i, f in enumerate(tcp)]
    # tunnelled flows in three rounds; the 60 s UDP timeout ends each round's flows
    for r in range(3):
        for k in range(50):
            inner = _udp_frame(3000 + k, 53, src=b"\xac\x10\x00\x01", dst=b"\xac\x10\x00\x02")
            frames.append((100.0 + 100 * r + k / 100, _vxlan_frame(50000 + r, inner)))
    return _pcap(frames)


def _records_by_feed(capture: bytes) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    engine = _flowcore.Engine()
    engine.begin_file()
    assert engine.feed(capture, True) == len(capture)
    records = _take(engine)
    engine.flush()
    return records + _take(engine), dict(engine.stats())


def _records_by_fd(path: Path, window: int) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    engine = _flowcore.Engine()
    engine.begin_file()
    total, pos, records = path.stat().st_size, 0, []
    feed_fd = cast(Any, engine).feed_fd
    with path.open("rb") as fh:
        while pos < total:
            end = min(pos + window, total)
            consumed = feed_fd(fh.fileno(), pos, end - pos, end == total)
            if consumed == 0 and end < total:
                window *= 2  # one record larger than the window
                continue
            pos += consumed
            records += _take(engine)
            if end == total:
                break
    engine.flush()
    return records + _take(engine), dict(engine.stats())


def test_a_file_read_through_the_mapping_gives_what_feeding_its_bytes_gives(tmp_path: Path) -> None:
    capture = _many_flows_capture()
    path = tmp_path / "many.pcap"
    path.write_bytes(capture)
    expected, expected_stats = _records_by_feed(capture)
    assert len(expected) == 22_000 + 1 + 3 * (1 + 50)
    for window in (8 << 20, 65_536, 1000, 60):  # windows end inside records
        records, stats = _records_by_fd(path, window)
        assert records == expected, window
        assert stats == expected_stats, window
    (tcp,) = [r for r in expected if r[4] == 40000]
    # retransmissions (T) at the 1st, 10th and 100th; the responder's zero windows (w) at the
    # 1st and 10th
    assert tcp[10] == "ShADTTTaww"
    assert (tcp[11], tcp[14]) == (103, 11)  # orig_pkts, resp_pkts
    # the tunnelled flows of each round name that round's VXLAN flow, whose pool entry is reused
    outer = {r[4]: r[0] for r in expected if r[6] == 4789}
    inner = [r for r in expected if r[6] == 53]
    assert len(outer) == 3 and len(inner) == 150
    for r in inner:
        assert r[18] == 42  # vni
        assert r[21] == (outer[50000 + round((r[1].timestamp() - T0 - 100) // 100)],)


def test_the_mapping_refuses_what_it_cannot_map(tmp_path: Path) -> None:
    engine = _flowcore.Engine()
    engine.begin_file()
    feed_fd = cast(Any, engine).feed_fd
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(OSError):
            feed_fd(read_end, 0, 100, False)
    finally:
        os.close(read_end)
        os.close(write_end)
    path = tmp_path / "one.pcap"
    path.write_bytes(_pcap([(0.0, _udp_frame(5001))]))
    with path.open("rb") as fh:
        with pytest.raises(ValueError, match="outside the mapped file"):
            feed_fd(fh.fileno(), 10, path.stat().st_size, False)
        assert feed_fd(fh.fileno(), 0, path.stat().st_size, True) == path.stat().st_size
    engine.flush()
    assert [r[4] for r in _take(engine)] == [5001]


def test_a_format_error_met_through_the_mapping_ends_the_file(tmp_path: Path) -> None:
    good = _pcap([(0.0, _udp_frame(5001)), (1.0, _udp_frame(5002))])
    bad = good + struct.pack("<IIII", T0 + 2, 0, 1 << 30, 1 << 30) + b"\x00" * 64
    path = tmp_path / "bad.pcap"
    path.write_bytes(bad)
    engine = _flowcore.Engine()
    engine.begin_file()
    feed_fd = cast(Any, engine).feed_fd
    with path.open("rb") as fh:
        assert feed_fd(fh.fileno(), 0, len(bad), False) == len(good)
        assert engine.error == ("corrupt packet record: captured length 1073741824 exceeds"
                                " the limit 262144", len(good))
        # the file has ended
        assert feed_fd(fh.fileno(), len(good), len(bad) - len(good), True) == 0
        engine.begin_file()  # the next file reads normally
        assert feed_fd(fh.fileno(), 0, len(good), True) == len(good)
    assert engine.error is None
    engine.flush()
    assert sorted(r[4] for r in _take(engine)) == [5001, 5002]
    assert engine.stats()["packets"] == 4


SYSFS_FILE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


@pytest.mark.skipif(not SYSFS_FILE.is_file(), reason="needs a regular file that cannot be mapped")
def test_a_regular_file_that_cannot_be_mapped_is_read_as_a_stream() -> None:
    # sysfs files are regular and 4 KiB long, and refuse mmap: the reader falls back
    # to reading, and meets the bad magic number like any other non-capture
    reader = CaptureReader(strict=False)
    assert list(reader.read([SYSFS_FILE])) == []
    (err,) = reader.errors
    assert str(err) == f"{SYSFS_FILE} at byte 0: not a pcap or pcapng file (bad magic number)"
