"""Bad input to the capture reader: each fault gives an exact error or an exact counted skip.

Contract (issue "bad input"): an empty file, a truncated last record, a corrupt
record length, an unknown link type or a bad pcapng block give either a clear
:class:`~egress.errors.SourceError` or a counted :class:`~egress.records.Issue`,
both naming the file and the byte offset of the faulty record; flows read before
a fault are kept and reported; with ``strict=True`` the error is raised after
those flows were yielded.

Every capture is built here, so every expected offset is computed from the
layout written: a pcap file is a 24-byte header then records of a 16-byte header
plus the frame; a pcapng file is a 28-byte section header block, a 20-byte
interface description block, then blocks whose lengths are given below. All
frames are 52 bytes (Ethernet 14 + IPv4 20 + UDP 8 + 10 bytes of payload), so a
pcap record is 68 bytes and an enhanced packet block 84.

Each flow is a UDP exchange ``10.0.0.1:sport -> 10.0.0.2:9999`` and its reply,
so the flows are summarised as ``(orig_p, orig_pkts, resp_pkts)``.
"""

from __future__ import annotations

import gzip
import json
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import RawPcapWriter

from egress.cli import cli
from egress.errors import SourceError
from egress.records import Flow, Issue
from egress.sources.pcap import CHUNK_BYTES, CaptureReader, read_flows

T0 = 1_700_000_000  # capture start, seconds since the epoch
FRAME_LEN = 52
PCAP_HEADER = 24
PCAP_RECORD = 16 + FRAME_LEN  # 68
SHB_LEN = 28
IDB_LEN = 20
EPB_LEN = 32 + FRAME_LEN  # 84
FIRST_EPB = SHB_LEN + IDB_LEN  # 48
SERVER_PORT = 9999

FlowSummary = tuple[int, int, int]  # (orig_p, orig_pkts, resp_pkts)


# ----------------------------------------------------------------------------- building


def udp_frame(sport: int, *, reply: bool = False) -> bytes:
    """A 52-byte Ethernet/IPv4/UDP frame of the exchange on ``sport`` (or its reply)."""
    a, b = ("10.0.0.1", sport), ("10.0.0.2", SERVER_PORT)
    (src, s_port), (dst, d_port) = (b, a) if reply else (a, b)
    frame = bytes(
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        / IP(src=src, dst=dst)
        / UDP(sport=s_port, dport=d_port)
        / (b"x" * 10)
    )
    assert len(frame) == FRAME_LEN
    return frame


def exchanges(first_sport: int, count: int) -> list[bytes]:
    """Frames of ``count`` request/reply exchanges on ports ``first_sport``, +1, ..."""
    frames: list[bytes] = []
    for i in range(count):
        frames += [udp_frame(first_sport + i), udp_frame(first_sport + i, reply=True)]
    return frames


def arp_frame() -> bytes:
    """A non-IP frame (counted as ``non_ip``), padded to the common 52 bytes."""
    frame = bytes(Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") / ARP())
    return frame + b"\0" * (FRAME_LEN - len(frame))


def write_pcap(
    path: Path,
    frames: Sequence[bytes],
    *,
    linktype: int = 1,
    endianness: str = "<",
    nano: bool = False,
    snaplen: int = 65535,
    start_s: int = T0,
) -> Path:
    """Write a classic pcap with scapy; packet ``i`` is stamped ``start_s + i`` ms."""
    writer = RawPcapWriter(str(path), linktype=linktype, endianness=endianness, nano=nano,
                           snaplen=snaplen, sync=True)
    writer.write_header(None)  # RawPcapWriter writes it lazily only for Packet objects
    for i, frame in enumerate(frames):
        writer.write_packet(frame, sec=start_s, usec=i * (1_000_000 if nano else 1_000))
    writer.close()
    assert path.stat().st_size == PCAP_HEADER + sum(16 + len(f) for f in frames)
    return path


def pcap_record_offset(index: int) -> int:
    """Byte offset of record ``index`` in a pcap made of 52-byte frames."""
    return PCAP_HEADER + index * PCAP_RECORD


def set_u32(path: Path, offset: int, value: int, *, endianness: str = "<") -> None:
    """Overwrite a 4-byte field of the file in place."""
    data = bytearray(path.read_bytes())
    struct.pack_into(endianness + "I", data, offset, value)
    path.write_bytes(bytes(data))


def block(block_type: int, body: bytes, *, e: str = "<") -> bytes:
    """One pcapng block: type, total length, body padded to 32 bits, total length."""
    body += b"\0" * (-len(body) % 4)
    total = 12 + len(body)
    return struct.pack(e + "II", block_type, total) + body + struct.pack(e + "I", total)


def shb(*, e: str = "<") -> bytes:
    return block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), e=e)


def idb(linktype: int = 1, *, e: str = "<") -> bytes:
    return block(1, struct.pack(e + "HHI", linktype, 0, 262144), e=e)


def epb(frame: bytes, index: int, *, ifid: int = 0, e: str = "<") -> bytes:
    """An enhanced packet block on ``ifid``, stamped ``T0 + index`` ms (microsecond units)."""
    ts = T0 * 1_000_000 + index * 1_000
    head = struct.pack(e + "IIIII", ifid, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame))
    return block(6, head + frame, e=e)


def pcapng(frames: Sequence[bytes], *, e: str = "<") -> list[bytes]:
    """The blocks of a one-interface Ethernet pcapng holding ``frames``."""
    return [shb(e=e), idb(e=e)] + [epb(f, i, e=e) for i, f in enumerate(frames)]


def epb_offset(index: int) -> int:
    """Byte offset of enhanced packet block ``index`` in a file built by :func:`pcapng`."""
    return FIRST_EPB + index * EPB_LEN


def gzip_prefix_then(data: bytes, cut: int, tail: bytes) -> bytes:
    """Gzip ``data[:cut]`` as complete deflate output, then append raw ``tail`` bytes.

    The full flush makes exactly ``data[:cut]`` decompressible, whatever follows.
    """
    co = zlib.compressobj(6, zlib.DEFLATED, 31)
    return co.compress(data[:cut]) + co.flush(zlib.Z_FULL_FLUSH) + tail


# ----------------------------------------------------------------------------- reading


def summary(flows: Iterable[Flow]) -> list[FlowSummary]:
    return sorted((f.orig_p, f.orig_pkts, f.resp_pkts) for f in flows if not f.interim)


def read_all(
    paths: Sequence[Path], *, chunk_bytes: int = CHUNK_BYTES
) -> tuple[CaptureReader, list[FlowSummary]]:
    reader = CaptureReader(strict=False, chunk_bytes=chunk_bytes)
    flows = summary(reader.read(paths))
    return reader, flows


def read_strict_until_error(paths: Sequence[Path]) -> tuple[list[FlowSummary], SourceError]:
    """Read with ``strict=True``; return the flows yielded before the error, and the error."""
    reader = CaptureReader(strict=True)
    yielded: list[Flow] = []
    with pytest.raises(SourceError) as info:
        for flow in reader.read(paths):  # keep what came before the raise
            yielded.append(flow)
    return summary(yielded), info.value


def errors_of(reader: CaptureReader) -> list[tuple[str, int | None, str]]:
    return [(str(e.path), e.offset, str(e)) for e in reader.errors]


def issues_of(reader: CaptureReader) -> set[tuple[str, str, int, int | None]]:
    """Counted issues without their detail text (checked separately where it matters)."""
    return {(i.path, i.kind, i.count, i.first_offset) for i in reader.stats.issues}


def unreadable(path: Path, offset: int | None, message: str) -> Issue:
    where = f"{path}" if offset is None else f"{path} at byte {offset}"
    return Issue(path=str(path), kind="unreadable", count=1, first_offset=offset,
                 detail=f"{where}: {message}")


class AnyStr(str):
    """Compares equal to any string that fully matches this regular expression."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(str(self), other) is not None

    def __hash__(self) -> int:
        return str.__hash__(self)


def ok(sports: Iterable[int]) -> list[FlowSummary]:
    """Complete exchanges: one request and one reply each."""
    return [(p, 1, 1) for p in sports]


# ----------------------------------------------------------------------------- unstartable files


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"", "empty file", id="empty"),
        pytest.param(b"\xd4\xc3\xb2", "file too short for a capture header", id="3-bytes"),
        pytest.param(b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00",
                     "file too short for a pcap header", id="cut-pcap-header"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n",
                     "not a pcap or pcapng file (bad magic number)", id="bad-magic"),
    ],
)
def test_unstartable_file_is_a_source_error_at_byte_0(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    reader, flows = read_all([path])
    assert flows == []
    assert reader.stats.packets == 0
    assert errors_of(reader) == [(str(path), 0, f"{path} at byte 0: {message}")]
    assert reader.stats.issues == (unreadable(path, 0, message),)
    with pytest.raises(SourceError, match=rf"bad\.pcap at byte 0: {re.escape(message)}$"):
        read_flows([path])


def test_empty_gzip_member_is_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap.gz"
    path.write_bytes(gzip.compress(b"", mtime=0))
    reader, _ = read_all([path])
    assert errors_of(reader) == [(str(path), 0, f"{path} at byte 0: empty file")]


def test_bad_pcapng_byte_order_magic(tmp_path: Path) -> None:
    blocks = pcapng(exchanges(30000, 1))
    head = bytearray(blocks[0])
    struct.pack_into("<I", head, 8, 0x11223344)
    blocks[0] = bytes(head)
    path = tmp_path / "bom.pcapng"
    path.write_bytes(b"".join(blocks))
    reader, flows = read_all([path])
    message = "bad pcapng section header (byte-order magic)"
    assert (flows, reader.stats.packets) == ([], 0)
    assert errors_of(reader) == [(str(path), 0, f"{path} at byte 0: {message}")]


def test_missing_file_is_a_source_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "missing.pcap"
    reader, flows = read_all([path])
    assert flows == []
    assert errors_of(reader) == [
        (str(path), None, f"{path}: cannot open capture: No such file or directory")
    ]


# ----------------------------------------------------------------------------- classic pcap


@pytest.mark.parametrize("nano", [False, True], ids=["usec", "nsec"])
@pytest.mark.parametrize("endianness", ["<", ">"], ids=["le", "be"])
@pytest.mark.parametrize("kept", [0, 7, 16, 16 + 30], ids=lambda n: f"cut-after-{n}")
def test_truncated_last_record_is_counted_and_complete_packets_kept(
    tmp_path: Path, kept: int, endianness: str, nano: bool
) -> None:
    """Three exchanges; the file ends ``kept`` bytes into the last record (the 3rd reply)."""
    path = write_pcap(tmp_path / "cut.pcap", exchanges(30000, 3), endianness=endianness,
                      nano=nano)
    cut_record = pcap_record_offset(5)
    path.write_bytes(path.read_bytes()[: cut_record + kept])
    reader, flows = read_all([path])
    assert flows == [*ok([30000, 30001]), (30002, 1, 0)]
    assert reader.errors == []
    assert reader.stats.packets == 5
    if kept == 0:  # the cut fell between records: nothing is truncated
        assert reader.stats.issues == ()
    else:
        assert issues_of(reader) == {(str(path), "truncated_record", 1, cut_record)}
    assert summary(read_flows([path])) == flows  # a counted skip, not an error


@pytest.mark.parametrize("chunk_bytes", [CHUNK_BYTES, 100], ids=["default-chunk", "small-chunk"])
@pytest.mark.parametrize("endianness", ["<", ">"], ids=["le", "be"])
def test_corrupt_record_length_ends_the_file_and_keeps_what_came_before(
    tmp_path: Path, endianness: str, chunk_bytes: int
) -> None:
    """Three exchanges; record 3 (the reply of the second) claims 2 GiB."""
    path = write_pcap(tmp_path / "corrupt.pcap", exchanges(30000, 3), endianness=endianness)
    bad = pcap_record_offset(3)  # the reply of the second exchange
    set_u32(path, bad + 8, 0x7FFFFFFF, endianness=endianness)
    reader, flows = read_all([path], chunk_bytes=chunk_bytes)
    message = "corrupt packet record: captured length 2147483647 exceeds the limit 262144"
    assert {
        "flows": flows,
        "packets": reader.stats.packets,
        "errors": errors_of(reader),
        "issues": issues_of(reader),
    } == {
        "flows": [(30000, 1, 1), (30001, 1, 0)],
        "packets": 3,
        "errors": [(str(path), bad, f"{path} at byte {bad}: {message}")],
        "issues": {(str(path), "bad_record_length", 1, bad), (str(path), "unreadable", 1, bad)},
    }


@pytest.mark.parametrize(
    ("snaplen", "limit"),
    [
        pytest.param(65535, 262_144, id="small-snaplen-256-kib"),
        pytest.param(400_000, 400_000, id="snaplen"),
        pytest.param(0xFFFFFFFF, 64 * 1024 * 1024, id="huge-snaplen-64-mib"),
    ],
)
def test_record_length_limit(tmp_path: Path, snaplen: int, limit: int) -> None:
    """The limit is the snaplen, at least 256 KiB and at most 64 MiB: one byte more is corrupt."""
    path = write_pcap(tmp_path / "big.pcap", exchanges(30000, 2), snaplen=snaplen)
    bad = pcap_record_offset(2)
    set_u32(path, bad + 8, limit + 1)
    reader, flows = read_all([path])
    message = f"corrupt packet record: captured length {limit + 1} exceeds the limit {limit}"
    assert {"flows": flows, "errors": errors_of(reader)} == {
        "flows": ok([30000]),
        "errors": [(str(path), bad, f"{path} at byte {bad}: {message}")],
    }


def test_record_length_within_limit_but_past_the_end_is_a_truncated_record(
    tmp_path: Path,
) -> None:
    """A plausible length that runs past the end of the file reads as a cut last record."""
    path = write_pcap(tmp_path / "long.pcap", exchanges(30000, 3))
    bad = pcap_record_offset(3)
    set_u32(path, bad + 8, 200_000)
    reader, flows = read_all([path])
    assert flows == [(30000, 1, 1), (30001, 1, 0)]
    assert reader.errors == []
    assert reader.stats.packets == 3
    assert issues_of(reader) == {(str(path), "truncated_record", 1, bad)}


def test_unknown_link_type_counts_every_packet(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "user0.pcap", exchanges(30000, 2), linktype=147)
    reader, flows = read_all([path])
    assert flows == []
    assert reader.errors == []
    assert (reader.stats.packets, reader.stats.ip_packets) == (4, 0)
    assert issues_of(reader) == {(str(path), "unknown_link_type", 4, pcap_record_offset(0))}


def test_issue_offsets_are_per_file(tmp_path: Path) -> None:
    """Each file's issue names that file's first faulty record, not an earlier file's.

    (pcapng, whose record offsets are right in the first chunk too, so that only the
    per-file bookkeeping is tested here.)
    """
    first, second = tmp_path / "a.pcapng", tmp_path / "b.pcapng"
    frames = exchanges(30000, 2)
    first.write_bytes(b"".join([shb(), idb(147)] + [epb(f, i) for i, f in enumerate(frames)]))
    second.write_bytes(b"".join([shb(), idb(147), epb(frames[0], 10)]))
    reader, _ = read_all([first, second])
    assert issues_of(reader) == {
        (str(first), "unknown_link_type", 4, epb_offset(0)),
        (str(second), "unknown_link_type", 1, epb_offset(0)),
    }


# ----------------------------------------------------------------------------- pcapng


@pytest.mark.parametrize("e", ["<", ">"], ids=["le", "be"])
@pytest.mark.parametrize(
    ("field_at", "value", "message"),
    [
        pytest.param(4, 13, "bad pcapng block: total length 13 (type 0x00000006)",
                     id="length-not-multiple-of-4"),
        pytest.param(4, 8, "bad pcapng block: total length 8 (type 0x00000006)",
                     id="length-below-12"),
        pytest.param(4, 0x7FFFFFFC, "bad pcapng block: total length 2147483644 (type 0x00000006)",
                     id="length-over-64-mib"),
        pytest.param(EPB_LEN - 4, EPB_LEN + 4, "bad pcapng block: trailing length does not match",
                     id="trailing-length"),
    ],
)
def test_bad_pcapng_block_ends_the_file_and_keeps_what_came_before(
    tmp_path: Path, e: str, field_at: int, value: int, message: str
) -> None:
    """Two exchanges; the block of the second request is broken."""
    blocks = pcapng(exchanges(30000, 2), e=e)
    broken = bytearray(blocks[4])
    struct.pack_into(e + "I", broken, field_at, value)
    blocks[4] = bytes(broken)
    path = tmp_path / "bad-block.pcapng"
    path.write_bytes(b"".join(blocks))
    bad = epb_offset(2)
    reader, flows = read_all([path])
    assert {
        "flows": flows,
        "packets": reader.stats.packets,
        "errors": errors_of(reader),
        "issues": issues_of(reader),
    } == {
        "flows": ok([30000]),
        "packets": 2,
        "errors": [(str(path), bad, f"{path} at byte {bad}: {message}")],
        "issues": {(str(path), "bad_block", 1, bad), (str(path), "unreadable", 1, bad)},
    }


def test_truncated_pcapng_counts_the_cut_block(tmp_path: Path) -> None:
    data = b"".join(pcapng(exchanges(30000, 2)))
    path = tmp_path / "cut.pcapng"
    path.write_bytes(data[: epb_offset(3) + 40])
    reader, flows = read_all([path])
    assert flows == [(30000, 1, 1), (30001, 1, 0)]
    assert reader.errors == []
    assert issues_of(reader) == {(str(path), "truncated_record", 1, epb_offset(3))}


def test_unknown_pcapng_block_is_skipped_and_counted(tmp_path: Path) -> None:
    blocks = pcapng(exchanges(30000, 2))
    blocks.insert(4, block(0x00000BAD, b"not a packet"))  # after the first exchange
    path = tmp_path / "unknown-block.pcapng"
    path.write_bytes(b"".join(blocks))
    reader, flows = read_all([path])
    assert flows == ok([30000, 30001])
    assert reader.errors == []
    assert reader.stats.packets == 4
    assert issues_of(reader) == {(str(path), "unknown_block_skipped", 1, epb_offset(2))}


@pytest.mark.parametrize("ifid", [1, 255, 65536])
def test_packet_on_undefined_interface_is_counted(tmp_path: Path, ifid: int) -> None:
    frames = exchanges(30000, 2)
    blocks = pcapng(frames)
    blocks[3] = epb(frames[1], 1, ifid=ifid)  # the first reply
    path = tmp_path / "no-interface.pcapng"
    path.write_bytes(b"".join(blocks))
    reader, flows = read_all([path])
    assert flows == [(30000, 1, 0), (30001, 1, 1)]
    assert reader.errors == []
    assert reader.stats.packets == 3
    assert issues_of(reader) == {(str(path), "packet_without_interface", 1, epb_offset(1))}


def test_new_section_forgets_the_interfaces_of_the_previous_one(tmp_path: Path) -> None:
    """Interface ids are per section: a packet on interface 0 of a second section that has
    not described it yet is counted, not read with the first section's interface."""
    req0, rep0, req1, rep1 = exchanges(30000, 2)
    blocks = [shb(), idb(), epb(req0, 0), shb(), epb(rep0, 1), idb(), epb(req1, 2),
              epb(rep1, 3)]
    path = tmp_path / "two-sections.pcapng"
    path.write_bytes(b"".join(blocks))
    second_section = FIRST_EPB + EPB_LEN
    reader, flows = read_all([path])
    assert flows == [(30000, 1, 0), (30001, 1, 1)]
    assert reader.errors == []
    assert issues_of(reader) == {
        (str(path), "packet_without_interface", 1, second_section + SHB_LEN)
    }


_CHILD = """
import json, sys
from egress.sources.pcap import CaptureReader
reader = CaptureReader(strict=False)
flows = sorted((f.orig_p, f.orig_pkts, f.resp_pkts) for f in reader.read([sys.argv[1]]))
print(json.dumps({"flows": flows, "packets": reader.stats.packets,
                  "issues": [[i.kind, i.count, i.first_offset] for i in reader.stats.issues]}))
"""


@pytest.mark.parametrize("ifid", [0x7FFFFFFF, 0x80000000, 0xFFFFFFFF])
def test_packet_on_huge_interface_id_is_counted_not_a_crash(tmp_path: Path, ifid: int) -> None:
    """An interface id of 2**31 or more must not index the interface table (read in a child:
    an out-of-bounds read would kill the test run)."""
    frames = exchanges(30000, 2)
    blocks = pcapng(frames)
    blocks[3] = epb(frames[1], 1, ifid=ifid)
    path = tmp_path / "huge-ifid.pcapng"
    path.write_bytes(b"".join(blocks))
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) == {
        "flows": [[30000, 1, 0], [30001, 1, 1]],
        "packets": 3,
        "issues": [["packet_without_interface", 1, epb_offset(1)]],
    }


# ----------------------------------------------------------------------------- gzip


GZIP_FAULT = "cannot read compressed data: "


def test_truncated_gzip_keeps_the_records_before_the_cut(tmp_path: Path) -> None:
    """The compressed stream ends 30 bytes into record 3 (2nd reply): records 0-2 are read.

    The offset of the error is where reading stopped in the capture (decompressed)
    stream, the unit of every other offset reported for a gzip capture: record 3.
    """
    raw = write_pcap(tmp_path / "plain.pcap", exchanges(30000, 3)).read_bytes()
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(gzip_prefix_then(raw, pcap_record_offset(3) + 30, b""))
    reader, flows = read_all([path])
    stop = pcap_record_offset(3)
    assert {
        "flows": flows,
        "packets": reader.stats.packets,
        "errors": [(str(e.path), e.offset, str(e).startswith(f"{path} at byte {stop}: "
                                                             + GZIP_FAULT))
                   for e in reader.errors],
    } == {
        "flows": [(30000, 1, 1), (30001, 1, 0)],
        "packets": 3,
        "errors": [(str(path), stop, True)],
    }


def test_corrupt_gzip_keeps_the_records_before_the_corruption(tmp_path: Path) -> None:
    """After two records' worth of good deflate data comes an invalid block type."""
    raw = write_pcap(tmp_path / "plain.pcap", exchanges(30000, 3)).read_bytes()
    path = tmp_path / "corrupt.pcap.gz"
    path.write_bytes(gzip_prefix_then(raw, pcap_record_offset(2), b"\xff" * 32))
    reader, flows = read_all([path])
    stop = pcap_record_offset(2)
    assert {
        "flows": flows,
        "packets": reader.stats.packets,
        "errors": [(str(e.path), e.offset, str(e).startswith(f"{path} at byte {stop}: "
                                                             + GZIP_FAULT))
                   for e in reader.errors],
    } == {
        "flows": ok([30000]),
        "packets": 2,
        "errors": [(str(path), stop, True)],
    }
    with pytest.raises(SourceError, match=rf"corrupt\.pcap\.gz at byte {stop}: {GZIP_FAULT}"):
        read_flows([path])


def test_gzip_with_bad_checksum_is_a_source_error(tmp_path: Path) -> None:
    """A member whose CRC does not match is reported as such (not as, say, an empty file)."""
    raw = write_pcap(tmp_path / "plain.pcap", exchanges(30000, 2)).read_bytes()
    packed = bytearray(gzip.compress(raw, mtime=0))
    packed[-8] ^= 0xFF  # CRC32 of the member
    path = tmp_path / "crc.pcap.gz"
    path.write_bytes(bytes(packed))
    reader, _ = read_all([path])
    assert [str(e) for e in reader.errors] == [
        AnyStr(rf"{re.escape(str(path))}( at byte \d+)?: {GZIP_FAULT}CRC check failed .*")
    ]


def test_gzip_fault_keeps_the_issues_counted_before_it(tmp_path: Path) -> None:
    """A non-IP frame before the corruption is still reported as an issue of that file."""
    raw = write_pcap(tmp_path / "plain.pcap", [arp_frame(), *exchanges(30000, 2)]).read_bytes()
    path = tmp_path / "arp.pcap.gz"
    path.write_bytes(gzip_prefix_then(raw, pcap_record_offset(3), b"\xff" * 32))
    reader, _ = read_all([path])
    assert (str(path), "non_ip", 1, pcap_record_offset(0)) in issues_of(reader)


def test_valid_gzip_reads_like_the_plain_file(tmp_path: Path) -> None:
    plain = write_pcap(tmp_path / "plain.pcap", exchanges(30000, 3))
    packed = tmp_path / "plain.pcap.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    reader, flows = read_all([packed])
    assert (flows, reader.stats.packets, reader.errors) == (ok([30000, 30001, 30002]), 6, [])


# ----------------------------------------------------------------------------- several files


def three_files(tmp_path: Path) -> tuple[Path, Path, Path, int]:
    """Good, corrupt (record 3 claims 2 GiB), good; ports 30000+, 31000+, 32000+."""
    first = write_pcap(tmp_path / "1.pcap", exchanges(30000, 2))
    second = write_pcap(tmp_path / "2.pcap", exchanges(31000, 3), start_s=T0 + 10)
    bad = pcap_record_offset(3)
    set_u32(second, bad + 8, 0x7FFFFFFF)
    third = write_pcap(tmp_path / "3.pcap", exchanges(32000, 2), start_s=T0 + 20)
    return first, second, third, bad


def test_corrupt_middle_file_keeps_the_flows_of_all_three(tmp_path: Path) -> None:
    first, second, third, bad = three_files(tmp_path)
    reader, flows = read_all([first, second, third])
    message = "corrupt packet record: captured length 2147483647 exceeds the limit 262144"
    assert {
        "flows": flows,
        "packets": reader.stats.packets,
        "flows_counted": reader.stats.flows,
        "errors": errors_of(reader),
        "issues": issues_of(reader),
    } == {
        "flows": [*ok([30000, 30001]), (31000, 1, 1), (31001, 1, 0), *ok([32000, 32001])],
        "packets": 4 + 3 + 4,
        "flows_counted": 6,
        "errors": [(str(second), bad, f"{second} at byte {bad}: {message}")],
        "issues": {(str(second), "bad_record_length", 1, bad),
                   (str(second), "unreadable", 1, bad)},
    }


def test_strict_raises_after_yielding_the_flows_read_before_the_fault(tmp_path: Path) -> None:
    """Strict mode stops at the corrupt file, having yielded the flows of the first file and
    those of the corrupt file read before its fault; the third file is not read."""
    first, second, third, bad = three_files(tmp_path)
    flows, error = read_strict_until_error([first, second, third])
    assert {
        "flows": flows,
        "error": (error.path, error.offset, str(error).startswith(f"{second} at byte {bad}: ")),
    } == {
        "flows": [*ok([30000, 30001]), (31000, 1, 1), (31001, 1, 0)],
        "error": (second, bad, True),
    }


def test_strict_single_file_yields_its_flows_before_raising(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "corrupt.pcap", exchanges(30000, 3))
    bad = pcap_record_offset(4)
    set_u32(path, bad + 8, 0xFFFFFFFF)
    flows, error = read_strict_until_error([path])
    assert {"flows": flows, "error": (error.path, error.offset)} == {
        "flows": ok([30000, 30001]),
        "error": (path, bad),
    }


def test_read_flows_raises_for_a_corrupt_file(tmp_path: Path) -> None:
    _, second, _, bad = three_files(tmp_path)
    with pytest.raises(SourceError, match=rf"2\.pcap at byte {bad}: corrupt packet record"):
        read_flows([second])


# ----------------------------------------------------------------------------- command line


def test_cli_corrupt_file_exits_1_with_file_and_offset_and_keeps_flows(tmp_path: Path) -> None:
    first, second, third, bad = three_files(tmp_path)
    result = CliRunner().invoke(
        cli, ["flows", "--format", "json", str(first), str(second), str(third)]
    )
    assert (result.exit_code, type(result.exception)) == (1, SystemExit)
    assert "Traceback" not in result.output
    ports = sorted(json.loads(line)["id.orig_p"] for line in result.stdout.splitlines())
    assert ports == [30000, 30001, 31000, 31001, 32000, 32001]
    assert f"bad_record_length 1 in {second} (first at byte {bad})" in result.stderr
    assert result.stderr.endswith(
        f"egress: error: {second} at byte {bad}: corrupt packet record: "
        "captured length 2147483647 exceeds the limit 262144\n"
    )


def test_cli_empty_file_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    result = CliRunner().invoke(cli, ["flows", "--quiet", "--format", "json", str(path)])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"egress: error: {path} at byte 0: empty file\n"


def test_console_script_strict_exits_1_without_traceback(tmp_path: Path) -> None:
    """``egress flows --strict`` (the console script, in a child process): the error is one
    line on stderr, the flows read before the fault are on stdout."""
    path = write_pcap(tmp_path / "corrupt.pcap", exchanges(30000, 3))
    bad = pcap_record_offset(4)
    set_u32(path, bad + 8, 0xFFFFFFFF)
    done = subprocess.run(
        [sys.executable, "-c", "from egress.cli import main; main()",
         "flows", "--strict", "--quiet", "--format", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    ports = sorted(json.loads(line)["id.orig_p"] for line in done.stdout.splitlines())
    assert {"exit": done.returncode, "stderr": done.stderr, "ports": ports} == {
        "exit": 1,
        "stderr": f"egress: error: {path} at byte {bad}: corrupt packet record: "
        "captured length 4294967295 exceeds the limit 262144\n",
        "ports": [30000, 30001],
    }
