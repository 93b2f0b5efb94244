"""Fuzzing the capture reader with mutated captures: only SourceError may ever escape.

Seeds are small valid captures built with scapy: classic pcap little- and big-endian,
microsecond and nanosecond, raw IP; pcapng in both byte orders with two interfaces (one
with a nanosecond timestamp resolution), a simple packet block, a name resolution block
and an unknown block; a gzip member. Their frames carry TCP, UDP, ICMP, IPv6 with
extension headers, 802.1Q, QinQ, MPLS, PPPoE, VXLAN, Geneve, Teredo, GRE (also nested,
with IP-in-IP and 6in4), IPv4 and IPv6 fragments, and ARP.

* ``mutants``: a seed whose layout fields (record and block lengths, trailing lengths,
  interface ids, link types, the byte-order magic) are set to boundary values, then
  bytes flipped, set, inserted, deleted or cut off anywhere.
* ``frame_captures``: pcaps of seed frames (or random bytes) on every link type the
  engine knows and one it does not, edited inside the frames, with timestamps that may
  go backwards.

Reading any of them with ``strict=False`` must raise nothing (a fault is a SourceError in
``errors``); with ``strict=True`` nothing but that same SourceError. The results must
also keep the invariants of :func:`invariant_problems`, and not depend on the chunk size.

Each example is read in a child process (see :class:`Checker`) so that a crash of the
compiled engine fails the one example, and Hypothesis shrinks it, instead of killing
the test run. Settings are derandomized (the same examples on every run); a longer
campaign over the same strategies is run outside the suite.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import select
import signal
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.contrib.geneve import GENEVE
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    fragment6,
)
from scapy.layers.l2 import ARP, GRE, Dot1AD, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet

from egress.errors import SourceError
from egress.records import Flow, ReadStats
from egress.sources.pcap import CaptureReader

T0_US = 1_700_000_000_000_000
CHILD_TIMEOUT_S = 30.0
PROTOS = frozenset({"tcp", "udp", "icmp", "unknown_transport"})
BOUNDARY_U32 = (0, 1, 4, 11, 12, 13, 15, 16, 28, 32, 0xFF, 0xFFFF, 0x10000, 262_144, 262_145,
                64 * 1024 * 1024, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFC, 0xFFFFFFFF)


# ----------------------------------------------------------------------------- seeds


@dataclass(frozen=True, slots=True)
class Field:
    """A length-like field of a seed: where it is and how it is encoded."""

    kind: str  # what the field holds: "caplen", "block_len", "ifid", ...
    offset: int
    fmt: str  # struct format with byte order, e.g. "<I" or ">H"


@dataclass(frozen=True, slots=True)
class Seed:
    name: str
    data: bytes
    fields: tuple[Field, ...]


def _mac(i: int) -> str:
    return f"02:00:00:00:00:{i:02x}"


def _eth(l3: Packet, a: int = 1, b: int = 2) -> Packet:
    return Ether(src=_mac(a), dst=_mac(b)) / l3


def _l3_packets() -> list[Packet]:
    """IP datagrams of a small mixed conversation (no link layer)."""
    c, s = "10.1.0.1", "10.1.0.2"
    c6, s6 = "2001:db8::1", "2001:db8::2"
    return [
        IP(src=c, dst=s) / TCP(sport=40000, dport=443, flags="S", seq=1000),
        IP(src=s, dst=c) / TCP(sport=443, dport=40000, flags="SA", seq=5000, ack=1001),
        IP(src=c, dst=s) / TCP(sport=40000, dport=443, flags="A", seq=1001, ack=5001),
        IP(src=c, dst=s) / TCP(sport=40000, dport=443, flags="PA", seq=1001, ack=5001)
        / (b"q" * 40),
        IP(src=s, dst=c) / TCP(sport=443, dport=40000, flags="FA", seq=5001, ack=1041),
        IP(src=c, dst=s) / TCP(sport=40000, dport=443, flags="FA", seq=1041, ack=5002),
        IP(src=c, dst=s) / UDP(sport=40001, dport=53) / (b"\x12\x34" + b"\0" * 10),
        IP(src=s, dst=c) / UDP(sport=53, dport=40001) / (b"\x12\x34\x81\x80" + b"\0" * 8),
        IP(src=c, dst=s) / ICMP(type=8, id=7, seq=1) / b"ping",
        IP(src=s, dst=c) / ICMP(type=0, id=7, seq=1) / b"ping",
        IPv6(src=c6, dst=s6) / UDP(sport=40002, dport=123) / (b"\x23" + b"\0" * 47),
        IPv6(src=c6, dst=s6) / TCP(sport=40003, dport=22, flags="S"),
        IPv6(src=s6, dst=c6) / TCP(sport=22, dport=40003, flags="RA"),
    ]


def _frames() -> list[bytes]:
    """Ethernet frames: the conversation plus tags, overlays, tunnels, fragments and ARP."""
    frames = [bytes(_eth(p)) for p in _l3_packets()]
    inner = IP(src="192.168.5.1", dst="192.168.5.2") / TCP(sport=40004, dport=80, flags="S")
    udp = UDP(sport=40005, dport=9999) / b"payload"
    v6 = IPv6(src="2001:db8::1", dst="2001:db8::2")
    frames += [
        bytes(_eth(Dot1Q(vlan=42) / IP(src="10.2.0.1", dst="10.2.0.2") / udp)),
        bytes(_eth(Dot1AD(vlan=100) / Dot1Q(vlan=200) / IP(src="10.2.1.1", dst="10.2.1.2") / udp)),
        bytes(_eth(MPLS(label=17, s=0) / MPLS(label=18, s=1)
                   / IP(src="10.2.2.1", dst="10.2.2.2") / udp)),
        bytes(_eth(PPPoE(sessionid=7) / PPP(proto=0x0021)
                   / IP(src="10.2.3.1", dst="10.2.3.2") / udp)),
        bytes(_eth(IP(src="172.16.0.1", dst="172.16.0.2")
                   / UDP(sport=50000, dport=4789, chksum=0) / VXLAN(flags=0x08, vni=4242)
                   / _eth(inner, 3, 4))),
        bytes(_eth(IP(src="172.16.2.1", dst="172.16.2.2")
                   / UDP(sport=50001, dport=6081) / GENEVE(vni=77, proto=0x6558)
                   / _eth(inner, 5, 6))),
        bytes(_eth(IP(src="172.16.3.1", dst="172.16.3.2") / UDP(sport=50002, dport=3544)
                   / IPv6(src="2001::1", dst="2001:db8::9") / UDP(sport=40008, dport=9999)
                   / b"teredo")),
        bytes(_eth(IP(src="172.16.1.1", dst="172.16.1.2") / GRE(proto=0x0800)
                   / IP(src="192.168.6.1", dst="192.168.6.2") / udp)),
        bytes(_eth(IP(src="172.16.4.1", dst="172.16.4.2") / GRE(proto=0x0800)
                   / IP(src="172.16.5.1", dst="172.16.5.2") / GRE(proto=0x0800)
                   / IP(src="172.16.6.1", dst="172.16.6.2") / IP(src="172.16.7.1", dst="172.16.7.2")
                   / IPv6(src="2001:db8::7", dst="2001:db8::8") / udp)),
        bytes(_eth(v6 / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting() / udp)),
        bytes(_eth(ARP(psrc="10.1.0.1", pdst="10.1.0.2"))),
    ]
    split: Callable[..., list[Packet]] = fragment  # scapy's helpers are unannotated
    big = IP(src="10.3.0.1", dst="10.3.0.2", id=99) / UDP(sport=40007, dport=9999) / (b"f" * 120)
    frames += [bytes(_eth(f)) for f in split(big, fragsize=48)]
    split6: Callable[..., list[Packet]] = fragment6
    big6 = v6 / IPv6ExtHdrFragment(id=5) / UDP(sport=40009, dport=9999) / (b"g" * 200)
    frames += [bytes(_eth(f)) for f in split6(big6, 120)]
    return frames


def _pcap(frames: list[bytes], *, e: str, nano: bool, linktype: int,
          seconds: list[int] | None = None) -> Seed:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = bytearray(struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype))
    fields = [Field("snaplen", 16, e + "I"), Field("linktype", 20, e + "I")]
    for i, frame in enumerate(frames):
        at = len(out)
        frac = i * (1000 if nano else 1)
        sec = 1_700_000_000 + (i // 4 if seconds is None else seconds[i])
        out += struct.pack(e + "IIII", sec, frac, len(frame), len(frame))
        out += frame
        fields += [Field("caplen", at + 8, e + "I"), Field("wirelen", at + 12, e + "I")]
    kind = f"{'be' if e == '>' else 'le'}-{'ns' if nano else 'us'}-lt{linktype}"
    return Seed(f"pcap-{kind}", bytes(out), tuple(fields))


def _pcapng(frames: list[bytes], raw_ip: list[bytes], *, e: str) -> Seed:
    out = bytearray()
    fields: list[Field] = []

    def block(btype: int, body: bytes) -> int:
        body += b"\0" * (-len(body) % 4)
        total = 12 + len(body)
        at = len(out)
        out.extend(struct.pack(e + "II", btype, total) + body + struct.pack(e + "I", total))
        fields.extend([Field("block_len", at + 4, e + "I"),
                       Field("trailing_len", at + total - 4, e + "I")])
        return at

    shb = block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    fields.append(Field("byte_order_magic", shb + 8, e + "I"))
    tsresol_ns = struct.pack(e + "HHB3x", 9, 1, 9) + struct.pack(e + "HH", 0, 0)
    for linktype, options in ((1, tsresol_ns), (101, b"")):
        at = block(1, struct.pack(e + "HHI", linktype, 0, 262_144) + options)
        fields.append(Field("linktype", at + 8, e + "H"))
    for i, frame in enumerate(frames):
        ts = T0_US * 1000 + i * 1_000_000  # nanoseconds on interface 0
        at = block(6, struct.pack(e + "IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame),
                                  len(frame)) + frame)
        fields += [Field("ifid", at + 8, e + "I"), Field("caplen", at + 20, e + "I"),
                   Field("wirelen", at + 24, e + "I")]
    for i, packet in enumerate(raw_ip):
        ts = T0_US + 30_000_000 + i * 1000  # microseconds on interface 1
        at = block(6, struct.pack(e + "IIIII", 1, ts >> 32, ts & 0xFFFFFFFF, len(packet),
                                  len(packet)) + packet)
        fields += [Field("ifid", at + 8, e + "I"), Field("caplen", at + 20, e + "I")]
    at = block(3, struct.pack(e + "I", len(frames[0])) + frames[0])  # simple packet block
    fields.append(Field("wirelen", at + 8, e + "I"))
    block(4, struct.pack(e + "HH", 1, 12) + bytes([10, 1, 0, 1]) + b"srv1\0\0\0\0"
          + struct.pack(e + "HH", 0, 0))  # name resolution block
    block(0x00000BAD, b"unknown block type")
    return Seed(f"pcapng-{'be' if e == '>' else 'le'}", bytes(out), tuple(fields))


@cache
def seed_frames() -> tuple[bytes, ...]:
    return tuple(_frames())


@cache
def seeds() -> tuple[Seed, ...]:
    frames = list(seed_frames())
    raw_ip = [bytes(p) for p in _l3_packets()[6:11]]
    le = _pcap(frames, e="<", nano=False, linktype=1)
    return (
        le,
        _pcap(frames, e=">", nano=True, linktype=1),
        _pcap(raw_ip, e="<", nano=False, linktype=101),
        _pcapng(frames, raw_ip, e="<"),
        _pcapng(frames, raw_ip, e=">"),
        Seed("pcap-gzip", gzip.compress(le.data, mtime=0), ()),
    )


seeds()  # built now: scapy draws from the global random module, which strategies must not


# ----------------------------------------------------------------------------- mutations


@dataclass(frozen=True, slots=True)
class Mutant:
    """Mutated bytes; ``seed`` and ``steps`` (with their values) are enough to rebuild them."""

    seed: str
    data: bytes
    steps: tuple[str, ...]

    @property
    def gzipped(self) -> bool:
        return self.data[:2] == b"\x1f\x8b"

    def __repr__(self) -> str:
        return f"Mutant(seed={self.seed!r}, steps={self.steps!r}, size={len(self.data)})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # Hypothesis's printer
        printer.text(repr(self))


# In-place edits keep the framing the field edits aimed at, so they come more often than the
# edits that shift or cut the rest of the file.
BYTE_OPS = ("flip", "flip", "set", "set", "u32", "u32", "insert", "delete", "truncate")


def _fit(value: int, fmt: str) -> int:
    return value & (0xFFFF if fmt.endswith("H") else 0xFFFFFFFF)


@st.composite
def mutants(draw: st.DrawFn, *, plain_only: bool = False) -> Mutant:
    """A seed with its named fields set to boundary values, then random byte edits."""
    pool = [s for s in seeds() if not plain_only or s.name != "pcap-gzip"]
    seed = draw(st.sampled_from(pool))
    data = bytearray(seed.data)
    steps: list[str] = []
    if seed.fields:
        kinds = sorted({f.kind for f in seed.fields})  # rare kinds as likely as common ones
        for _ in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(kinds))
            f = draw(st.sampled_from([f for f in seed.fields if f.kind == kind]))
            old = struct.unpack_from(f.fmt, data, f.offset)[0]
            new = _fit(draw(st.one_of(
                st.sampled_from(BOUNDARY_U32),
                st.integers(old - 16, old + 16),
                st.integers(0, 0xFFFFFFFF),
            )), f.fmt)
            struct.pack_into(f.fmt, data, f.offset, new)
            steps.append(f"{f.kind}@{f.offset}:{old}->{new}")
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(BYTE_OPS))
        at = draw(st.integers(0, 1 << 16)) % (len(data) + 1)
        if op == "flip" and at < len(data):
            mask = draw(st.integers(1, 255))
            data[at] ^= mask
            steps.append(f"flip@{at}^{mask:#04x}")
        elif op == "set" and at < len(data):
            data[at] = draw(st.integers(0, 255))
            steps.append(f"set@{at}={data[at]:#04x}")
        elif op == "u32" and at + 4 <= len(data):
            value = draw(st.sampled_from(BOUNDARY_U32))
            data[at:at + 4] = struct.pack("<I", value)
            steps.append(f"u32le@{at}={value:#x}")
        elif op == "insert":
            extra = draw(st.binary(min_size=1, max_size=24))
            data[at:at] = extra
            steps.append(f"insert@{at}:{extra.hex()}")
        elif op == "delete":
            count = draw(st.integers(1, 64))
            del data[at:at + count]
            steps.append(f"delete@{at}+{count}")
        elif op == "truncate":
            del data[at:]
            steps.append(f"truncate@{at}")
    return Mutant(seed.name, bytes(data), tuple(steps))


LINK_TYPES = (1, 0, 108, 101, 12, 14, 228, 229, 113, 276, 147)


def _on_link(linktype: int, ether_frame: bytes) -> bytes:
    """Re-frame an Ethernet frame for ``linktype`` (its payload under that link's header)."""
    ethertype, payload = ether_frame[12:14], ether_frame[14:]
    if linktype == 0:
        return struct.pack("<I", 30 if payload[:1] == b"\x60" else 2) + payload
    if linktype == 108:
        return struct.pack(">I", 24 if payload[:1] == b"\x60" else 2) + payload
    if linktype == 113:
        return struct.pack(">HHH", 0, 1, 6) + ether_frame[6:12] + b"\0\0" + ethertype + payload
    if linktype == 276:
        return ethertype + struct.pack(">HIHBB", 0, 2, 1, 0, 6) + ether_frame[6:12] + b"\0\0" \
            + payload
    if linktype in (1, 147):
        return ether_frame
    return payload  # raw IP


@st.composite
def frame_captures(draw: st.DrawFn) -> Mutant:
    """A pcap of seed frames (or random bytes) on any link type, edited inside the frames,
    with timestamps that jump forwards and backwards (flow timers, connection reuse)."""
    linktype = draw(st.sampled_from(LINK_TYPES))
    frames: list[bytes] = []
    steps: list[str] = [f"linktype={linktype}"]
    for n in range(draw(st.integers(1, 10))):
        if draw(st.integers(0, 9)) == 0:
            frames.append(draw(st.binary(max_size=160)))
            steps.append(f"#{n}=random:{frames[-1].hex()}")
            continue
        index = draw(st.integers(0, len(seed_frames()) - 1))
        frame = bytearray(_on_link(linktype, seed_frames()[index]))
        steps.append(f"#{n}=frame{index}")
        for _ in range(draw(st.integers(0, 3))):
            at = draw(st.integers(0, 1 << 10)) % (len(frame) + 1)
            op = draw(st.sampled_from(("flip", "set", "cut")))
            if op == "cut":
                del frame[at:]
            elif at < len(frame):
                value = draw(st.integers(0, 255))
                frame[at] = value if op == "set" else frame[at] ^ value
            steps.append(f"#{n}:{op}@{at}")
        frames.append(bytes(frame))
    seconds = draw(st.lists(st.integers(0, 4000), min_size=len(frames), max_size=len(frames)))
    steps.append(f"seconds={seconds}")
    seed = _pcap(frames, e="<", nano=False, linktype=linktype, seconds=sorted(seconds)
                 if draw(st.booleans()) else seconds)
    return Mutant(f"frames-lt{linktype}", seed.data, tuple(steps))


# ----------------------------------------------------------------------------- isolation


# The checks run in a long-lived child process that loads this module once and forks a
# worker to serve requests: a crash of the compiled engine kills the worker, not pytest,
# and the next worker is one fork away. Requests and answers are one JSON line each on
# the child's stdin and stdout.
_SERVER = """
import importlib.util, json, os, signal, sys
spec = importlib.util.spec_from_file_location("_pcap_fuzz_checks", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
while True:
    worker = os.fork()
    if worker == 0:
        for line in sys.stdin:
            sys.stdout.write(json.dumps(module.run_check(json.loads(line))) + "\\n")
            sys.stdout.flush()
        os._exit(0)
    _, status = os.waitpid(worker, 0)
    if not os.WIFSIGNALED(status):
        break
    name = signal.Signals(os.WTERMSIG(status)).name
    sys.stdout.write(json.dumps(["crash: the reader crashed the process: " + name]) + "\\n")
    sys.stdout.flush()
"""


class Checker:
    """Run checks in a child process; a crash or hang of the child is reported as a problem."""

    def __init__(self, *, timeout_s: float = CHILD_TIMEOUT_S) -> None:
        self._timeout_s = timeout_s
        self._proc: subprocess.Popen[bytes] | None = None

    def check(self, request: dict[str, Any]) -> list[str]:
        if self._proc is None:
            self._proc = subprocess.Popen([sys.executable, "-c", _SERVER, __file__],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          start_new_session=True)
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        with contextlib.suppress(BrokenPipeError):  # a dead child: reading gives end-of-file
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
        answer = bytearray()
        deadline = time.monotonic() + self._timeout_s
        fd = proc.stdout.fileno()
        while not answer.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.close(kill=True)
                return [f"crash: the reader did not finish within {self._timeout_s:.0f} s"]
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                code = self.close()
                if code < 0:
                    return [f"crash: the reader crashed the process: {signal.Signals(-code).name}"]
                return [f"crash: the checking process exited with status {code}"]
            answer += chunk
        problems: list[str] = json.loads(answer)
        return problems

    def close(self, *, kill: bool = False) -> int:
        """Stop the child; return its exit status (negative: the signal that ended it)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return 0
        assert proc.stdin is not None and proc.stdout is not None
        if kill:  # the server and its worker
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
        proc.stdout.close()
        return code


# ----------------------------------------------------------------------------- checks


@dataclass(frozen=True, slots=True)
class Outcome:
    flows: tuple[Flow, ...]
    stats: ReadStats
    errors: tuple[tuple[str, int | None], ...]


def read(path: Path, *, strict: bool, chunk_bytes: int | None = None) -> Outcome:
    reader = (CaptureReader(strict=strict) if chunk_bytes is None
              else CaptureReader(strict=strict, chunk_bytes=chunk_bytes))
    flows = tuple(reader.read([path]))
    return Outcome(flows, reader.stats, tuple((str(e), e.offset) for e in reader.errors))


def _flow_problems(flow: Flow) -> Iterator[str]:
    if flow.orig_pkts < 0 or flow.resp_pkts < 0 or flow.orig_pkts + flow.resp_pkts < 1:
        yield f"packet counts {flow.orig_pkts}/{flow.resp_pkts}"
    if min(flow.orig_ip_bytes, flow.resp_ip_bytes, flow.orig_bytes, flow.resp_bytes) < 0:
        yield "negative byte count"
    if flow.duration_s < 0:
        yield f"negative duration {flow.duration_s}"
    if not (0 <= flow.orig_p <= 0xFFFF and 0 <= flow.resp_p <= 0xFFFF):
        yield f"port out of range {flow.orig_p}/{flow.resp_p}"
    if flow.proto not in PROTOS or not 0 <= flow.ip_proto <= 255:
        yield f"protocol {flow.proto}/{flow.ip_proto}"
    if flow.start.tzinfo is None:
        yield "naive start time"


def invariant_problems(path: Path, size: int, gzipped: bool) -> list[str]:
    """Read ``path`` both ways; list every broken promise (empty: all kept)."""
    try:
        lax = read(path, strict=False)
    except BaseException:
        return ["escape: strict=False let an exception escape:\n" + traceback.format_exc()]
    problems: list[str] = []
    final = [f for f in lax.flows if not f.interim]
    stats = lax.stats
    for flow in final:
        problems += [f"invariant: flow {flow.uid}: {p}" for p in _flow_problems(flow)]
    if len({f.uid for f in final}) != len(final):
        problems.append("uid: two final flows share a uid")
    if stats.flows != len(final):
        problems.append(f"invariant: stats.flows {stats.flows} != {len(final)} final flows yielded")
    if min(stats.packets, stats.ip_packets, stats.captured_bytes, stats.ip_bytes) < 0:
        problems.append(f"invariant: negative totals {stats}")
    if sum(f.orig_pkts + f.resp_pkts for f in final) > stats.ip_packets:
        problems.append("invariant: flows hold more packets than the IP packets decoded")
    if not gzipped and stats.captured_bytes > size:
        problems.append(f"invariant: captured_bytes {stats.captured_bytes} > file size {size}")
    if len(lax.errors) > 1:
        problems.append(f"invariant: one file, several errors: {lax.errors}")
    for message, offset in lax.errors:
        where = f"{path}" if offset is None else f"{path} at byte {offset}"
        if not message.startswith(where + ": "):
            problems.append(f"invariant: error does not name file and offset: {message!r}")
        if offset is not None and not (0 <= offset <= size or gzipped):  # <=: empty file
            problems.append(f"invariant: error offset {offset} outside the file ({size} bytes)")
    for issue in stats.issues:
        if issue.path != str(path) or issue.count < 1:
            problems.append(f"invariant: bad issue {issue}")
        if issue.first_offset is not None and not (0 <= issue.first_offset <= size or gzipped):
            problems.append(f"invariant: issue offset outside the file ({size} bytes): {issue}")
    if any(i.kind == "unreadable" for i in stats.issues) != bool(lax.errors):
        problems.append("invariant: an unreadable issue without an error, or the reverse")
    try:
        again = read(path, strict=False)
    except BaseException:
        return [*problems, "escape: second read raised:\n" + traceback.format_exc()]
    if again != lax:
        problems.append("invariant: two reads of the same bytes differ")
    try:
        strict = read(path, strict=True)
    except SourceError as exc:
        if [(str(exc), exc.offset)] != list(lax.errors):
            problems.append(f"invariant: strict raised {exc!r}, lax recorded {lax.errors}")
    except BaseException:
        problems.append("escape: strict=True raised something else than SourceError:\n"
                        + traceback.format_exc())
    else:
        if lax.errors:
            problems.append(f"invariant: strict did not raise; lax recorded {lax.errors}")
        elif strict.flows != lax.flows or strict.stats != lax.stats:
            problems.append("invariant: strict and lax reads of a readable file differ")
    return problems


def chunking_problems(path: Path, chunk_bytes: int) -> list[str]:
    """Reading in small chunks must give what one big chunk gives."""
    try:
        whole = read(path, strict=False)
        pieces = read(path, strict=False, chunk_bytes=chunk_bytes)
    except BaseException:
        return ["escape: a read let an exception escape:\n" + traceback.format_exc()]
    problems = []
    if pieces.flows != whole.flows:
        problems.append(f"chunking: flows differ with chunk_bytes={chunk_bytes}")
    if pieces.stats != whole.stats:
        problems.append(f"chunking: stats differ with chunk_bytes={chunk_bytes}:\n"
                        f"  default: {whole.stats}\n  chunked: {pieces.stats}")
    if pieces.errors != whole.errors:
        problems.append(f"chunking: errors differ with chunk_bytes={chunk_bytes}:\n"
                        f"  default: {whole.errors}\n  chunked: {pieces.errors}")
    return problems


def run_check(request: dict[str, Any]) -> list[str]:
    """Serve one request of :class:`Checker` (this runs in the child)."""
    try:
        path = Path(request["path"])
        if request["check"] == "chunks":
            return chunking_problems(path, request["chunk_bytes"])
        return invariant_problems(path, request["size"], request["gzipped"])
    except BaseException:
        return ["escape: the check itself failed:\n" + traceback.format_exc()]


def invariants_request(path: Path, mutant: Mutant) -> dict[str, Any]:
    return {"check": "invariants", "path": str(path), "size": len(mutant.data),
            "gzipped": mutant.gzipped}


# ----------------------------------------------------------------------------- tests


FUZZ = settings(max_examples=500, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def assert_clean(problems: list[str], mutant: Mutant) -> None:
    """One assertion per kind of problem: Hypothesis shrinks and reports each kind on its own,
    so a frequent minor kind is less likely to hide a rare crash."""
    def kind(name: str) -> list[str]:
        return [p for p in problems if p.startswith(name + ": ")]

    assert kind("crash") == [], mutant
    assert kind("escape") == [], mutant
    assert kind("invariant") == [], mutant
    assert kind("chunking") == [], mutant
    assert kind("uid") == [], mutant
    assert problems == [], mutant


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def checker() -> Iterator[Checker]:
    isolated = Checker()
    yield isolated
    isolated.close()


def test_seeds_are_valid_captures(workdir: Path) -> None:
    """The unmutated seeds read cleanly, so mutations start from real captures."""
    for seed in seeds():
        path = workdir / seed.name
        path.write_bytes(seed.data)
        outcome = read(path, strict=True)
        assert outcome.errors == (), seed.name
        assert outcome.stats.packets > 0, seed.name
        assert {i.kind for i in outcome.stats.issues} <= {"non_ip", "unknown_block_skipped"}, (
            seed.name, outcome.stats.issues)


@FUZZ
@given(mutant=mutants())
def test_mutated_capture_raises_nothing_but_source_error(
    workdir: Path, checker: Checker, mutant: Mutant
) -> None:
    path = workdir / "mutant.cap"
    path.write_bytes(mutant.data)
    assert_clean(checker.check(invariants_request(path, mutant)), mutant)


@FUZZ
@given(mutant=frame_captures())
def test_mutated_frames_on_every_link_type_raise_nothing(
    workdir: Path, checker: Checker, mutant: Mutant
) -> None:
    path = workdir / "frames.pcap"
    path.write_bytes(mutant.data)
    assert_clean(checker.check(invariants_request(path, mutant)), mutant)


@FUZZ
@given(mutant=mutants(plain_only=True), chunk_bytes=st.sampled_from([16, 100, 4096]))
def test_mutated_capture_reads_the_same_in_any_chunk_size(
    workdir: Path, checker: Checker, mutant: Mutant, chunk_bytes: int
) -> None:
    path = workdir / "mutant-chunks.cap"
    path.write_bytes(mutant.data)
    request = {"check": "chunks", "path": str(path), "chunk_bytes": chunk_bytes}
    assert_clean(checker.check(request), mutant)
