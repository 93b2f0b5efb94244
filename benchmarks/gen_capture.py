"""Write large synthetic pcap captures, fast and deterministically, for the benchmark.

Packets are planned as numpy columns (one row per packet) from per-connection
scripts, sorted by time and rendered in bulk: headers are filled as numpy
structured arrays whose field layout is the wire layout, then scattered into a
buffer pre-filled with pseudo-random payload bytes. There is no Python code per
packet, so a gigabyte takes seconds.

Kinds (sizes in decimal GB, 1 GB = 10**9 bytes of file):

* ``mixed``: a data-center mix at ~100 MB/s of capture (a few thousand concurrent
  TCP connections): bulk uploads in 1448-byte and 8948-byte (jumbo) segments with
  their delayed ACKs, many short HTTPS/HTTP connections with handshakes, FINs, a
  few resets and rejected SYNs, DNS, ICMP echo; 12% of connections VLAN-tagged and
  8% VXLAN-encapsulated. Mean frame ~780 bytes (~1.26 M packets per GB).
* ``small``: 60-104 byte frames: small-message TCP (RPC requests, responses and
  their ACKs), small UDP datagrams (telemetry, NTP, DNS) and ICMP echo;
  ~10.6 M packets per GB.
* ``big``: the mixed model at ``--size-gb`` (default 10), for the memory check.

A capture is a window on steady traffic: connections start from as long before
it as the longest one lasts (a minute: idle HTTPS keep-alives), so it begins and
ends in the middle of connections (no SYN, no FIN), like a real capture. A file
is at least its target size, by less than 16 MB. IPv4 header and ICMP checksums
are right; TCP and UDP checksums are zero (UDP: "none"; no benchmarked tool
checks TCP's by default).
Next to the capture, ``PATH.json`` records the packet count, the connections
started inside the window per kind, the seed and the SHA-256 of this file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Packets = npt.NDArray[np.void]

GB = 10**9
BASE_EPOCH_S = 1_709_251_200  # 2024-03-01T00:00:00Z
DEFAULT_SEED = 20240301
RENDER_PACKETS = 65_536
EPOCH_BYTES = 16e6
MIN_FRAME = 60
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
TCP, UDP, ICMP = 0, 1, 2
PLAIN, VLAN, VXLAN = 0, 1, 2
_IP_PROTO = (6, 17, 1)

# One row per packet, in generation order; rendered into wire bytes by render().
PACKET = np.dtype([
    ("t", "<f8"), ("l4", "u1"), ("encap", "u1"), ("flags", "u1"), ("ttl", "u1"),
    ("src", "<u4"), ("dst", "<u4"), ("sport", "<u2"), ("dport", "<u2"),
    ("seq", "<u4"), ("ack", "<u4"), ("payload", "<u2"), ("ip_id", "<u2"), ("win", "<u2"),
    ("tag", "<u4"), ("vsrc", "<u4"), ("vdst", "<u4"), ("vport", "<u2"),
])


# ------------------------------------------------------------------ wire layouts

def _eth(p: str) -> list[tuple[str, str]]:
    return [(p + "dst_hi", ">u2"), (p + "dst_lo", ">u4"), (p + "src_hi", ">u2"),
            (p + "src_lo", ">u4")]


def _ip(p: str) -> list[tuple[str, str]]:
    return [(p + "vhl", "u1"), (p + "tos", "u1"), (p + "len", ">u2"), (p + "id", ">u2"),
            (p + "frag", ">u2"), (p + "ttl", "u1"), (p + "proto", "u1"), (p + "sum", ">u2"),
            (p + "src", ">u4"), (p + "dst", ">u4")]


_REC = [("ts_sec", "<u4"), ("ts_usec", "<u4"), ("incl_len", "<u4"), ("orig_len", "<u4")]
_L4: dict[int, list[tuple[str, str]]] = {
    TCP: [("sport", ">u2"), ("dport", ">u2"), ("seq", ">u4"), ("ack", ">u4"), ("off", "u1"),
          ("flags", "u1"), ("win", ">u2"), ("l4sum", ">u2"), ("urg", ">u2"),
          ("opt_nop", ">u2"), ("opt_ts", ">u2"), ("tsval", ">u4"), ("tsecr", ">u4")],
    UDP: [("sport", ">u2"), ("dport", ">u2"), ("ulen", ">u2"), ("l4sum", ">u2")],
    ICMP: [("itype", "u1"), ("icode", "u1"), ("l4sum", ">u2"), ("sport", ">u2"),
           ("seq", ">u2")],
}
_L2: dict[int, list[tuple[str, str]]] = {
    PLAIN: [*_eth(""), ("type", ">u2")],
    VLAN: [*_eth(""), ("tpid", ">u2"), ("tci", ">u2"), ("type", ">u2")],
    VXLAN: [*_eth("o_"), ("o_type", ">u2"), *_ip("o_"), ("o_sport", ">u2"), ("o_dport", ">u2"),
            ("o_ulen", ">u2"), ("o_usum", ">u2"), ("vx_flags", ">u4"), ("vx_vni", ">u4"),
            *_eth(""), ("type", ">u2")],
}
LAYOUTS: dict[tuple[int, int], np.dtype[np.void]] = {
    (l4, encap): np.dtype([*_REC, *_L2[encap], *_ip("ip_"), *_L4[l4]])
    for l4 in _L4 for encap in _L2
}
HEADER_BYTES = np.zeros(9, np.int64)  # pcap record header + frame headers, by l4 * 3 + encap
for (_l4, _encap), _dt in LAYOUTS.items():
    HEADER_BYTES[_l4 * 3 + _encap] = _dt.itemsize
L4_HEADER_BYTES = np.array([32, 8, 8])
_PATTERN = np.random.default_rng(1).integers(0, 256, 1 << 22, dtype=np.uint8)


def _ip_checksums(rows: U8, offset: int) -> npt.NDArray[np.uint16]:
    """Return the IPv4 header checksums of the 20-byte headers at ``offset`` in each row."""
    words = np.ascontiguousarray(rows[:, offset:offset + 20]).view(">u2").astype(np.uint32)
    s = words.sum(axis=1, dtype=np.uint32)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    out: npt.NDArray[np.uint16] = (~s & 0xFFFF).astype(np.uint16)
    return out


def _headers(p: Packets, l4: int, encap: int, frame: I64, pad: I64) -> U8:
    """Fill the wire headers of packets ``p`` (one layout) and return them as byte rows.

    ``frame`` is each frame's length, ``pad`` its Ethernet padding after the IP packet.
    """
    dt = LAYOUTS[(l4, encap)]
    h = np.zeros(len(p), dt)
    us = np.int64(BASE_EPOCH_S) * 1_000_000 + np.rint(p["t"] * 1e6).astype(np.int64)
    h["ts_sec"], h["ts_usec"] = us // 1_000_000, us % 1_000_000
    h["incl_len"] = h["orig_len"] = frame
    inner = frame - (50 if encap == VXLAN else 0)  # the frame inside the VXLAN header
    l2 = 18 if encap == VLAN else 14
    h["dst_hi"] = h["src_hi"] = 0x0200
    h["dst_lo"], h["src_lo"], h["type"] = p["dst"], p["src"], 0x0800
    if encap == VLAN:
        h["tpid"], h["tci"] = 0x8100, p["tag"]
    if encap == VXLAN:
        h["o_dst_hi"] = h["o_src_hi"] = 0x0200
        h["o_dst_lo"], h["o_src_lo"], h["o_type"] = p["vdst"], p["vsrc"], 0x0800
        h["o_vhl"], h["o_len"], h["o_id"], h["o_ttl"], h["o_proto"] = 0x45, inner + 36, \
            p["ip_id"] ^ 0x5A5A, 64, 17
        h["o_src"], h["o_dst"] = p["vsrc"], p["vdst"]
        h["o_sport"], h["o_dport"], h["o_ulen"] = p["vport"], 4789, inner + 16
        h["vx_flags"], h["vx_vni"] = 0x08000000, p["tag"].astype(np.uint32) << 8
    h["ip_vhl"], h["ip_len"], h["ip_id"] = 0x45, inner - l2 - pad, p["ip_id"]
    h["ip_frag"] = 0x4000 if l4 == TCP else 0
    h["ip_ttl"], h["ip_proto"], h["ip_src"], h["ip_dst"] = p["ttl"], _IP_PROTO[l4], p["src"], \
        p["dst"]
    h["sport"] = p["sport"]
    if l4 == TCP:
        ms = (p["t"] * 1000).astype(np.int64)
        h["dport"], h["seq"], h["ack"], h["off"] = p["dport"], p["seq"], p["ack"], 0x80
        h["flags"], h["win"], h["opt_nop"], h["opt_ts"] = p["flags"], p["win"], 0x0101, 0x080A
        h["tsval"] = (ms + p["src"].astype(np.int64) * 7919) & 0xFFFFFFFF
        h["tsecr"] = np.where(p["flags"] == SYN, 0,
                              (ms - 1 + p["dst"].astype(np.int64) * 7919) & 0xFFFFFFFF)
    elif l4 == UDP:
        h["dport"], h["ulen"] = p["dport"], 8 + p["payload"]
    else:
        h["itype"], h["seq"] = p["flags"], p["seq"] & 0xFFFF
    rows = h.view(np.uint8).reshape(len(p), dt.itemsize)
    h["ip_sum"] = _ip_checksums(rows, dt.fields["ip_vhl"][1])  # type: ignore[index]
    if encap == VXLAN:
        h["o_sum"] = _ip_checksums(rows, dt.fields["o_vhl"][1])  # type: ignore[index]
    return rows


def render(p: Packets) -> U8:
    """Return the pcap records (record headers and frames) of time-ordered packets ``p``."""
    code = p["l4"].astype(np.int64) * 3 + p["encap"]
    head = HEADER_BYTES[code]
    body = p["payload"].astype(np.int64)
    l2 = np.where(p["encap"] == VLAN, 18, 14) + np.where(p["encap"] == VXLAN, 50, 0)
    pad = np.maximum(0, MIN_FRAME - (l2 + 20 + L4_HEADER_BYTES[p["l4"]] + body))
    rec = head + body + pad
    ends = np.cumsum(rec)
    starts = ends - rec
    total = int(ends[-1]) if len(rec) else 0
    buf = np.empty(total, np.uint8)
    for i in range(0, total, len(_PATTERN)):
        n = min(len(_PATTERN), total - i)
        buf[i:i + n] = _PATTERN[:n]
    for c in np.unique(code):
        sel = np.flatnonzero(code == c)
        rows = _headers(p[sel], int(c) // 3, int(c) % 3, rec[sel] - 16, pad[sel])
        buf[starts[sel, None] + np.arange(rows.shape[1])] = rows
    icmp = np.flatnonzero(p["l4"] == ICMP)
    if len(icmp):
        _icmp_checksums(buf, starts[icmp] + head[icmp] - 8, 8 + body[icmp])
    return buf


def _icmp_checksums(buf: U8, at: I64, length: I64) -> None:
    """Write the checksums of the ICMP messages of ``length`` bytes at offsets ``at``."""
    width = int(length.max() + 1) // 2 * 2
    cols = np.arange(width)
    msg = np.where(cols < length[:, None], buf[np.minimum(at[:, None] + cols, len(buf) - 1)], 0)
    words = msg[:, 0::2].astype(np.uint32) << 8 | msg[:, 1::2]
    s = words.sum(axis=1, dtype=np.uint32)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    s = ~s & 0xFFFF
    buf[at + 2], buf[at + 3] = s >> 8, s & 0xFF


# ------------------------------------------------------------------ connection scripts

@dataclass(frozen=True, slots=True, kw_only=True)
class Script:
    """The packets of one connection: direction (0 = client to server), flags, payload
    size range, and time = ``rtt * r + span * s`` after the connection starts."""

    l4: int
    dirs: I64
    flags: I64
    lo: I64
    hi: I64
    r: F64
    s: F64
    aux: I64  # ICMP echo sequence numbers

    def mean_bytes(self) -> float:
        """Return the expected file bytes of one connection without encapsulation."""
        frame = 34 + L4_HEADER_BYTES[self.l4] + (self.lo + self.hi) / 2
        return float(np.sum(np.maximum(frame, MIN_FRAME) + 16))

    def payload_bytes(self) -> float:
        """Return the expected transport payload of one connection, both directions."""
        return float(np.sum((self.lo + self.hi) / 2))


@dataclass(slots=True)
class ScriptBuilder:
    """Build a Script step by step, as seen by a tap next to the client."""

    l4: int = TCP
    rows: list[tuple[int, int, int, int, float, float, int]] = field(default_factory=list)
    r: float = 0.0
    s: float = 0.0
    last: int = -1

    def add(self, d: int, flags: int, lo: int, hi: int, r: float, aux: int = 0) -> None:
        self.rows.append((d, flags, lo, hi, r, self.s, aux))

    def turn(self, d: int) -> float:
        """Advance the clock when the direction changes: a reply takes one round trip."""
        if self.last >= 0 and d != self.last:
            self.r += 1.0 if d == 1 else 0.05
        self.last = d
        return self.r

    def handshake(self) -> None:
        self.add(0, SYN, 0, 0, 0.0)
        self.add(1, SYN | ACK, 0, 0, 1.0)
        self.add(0, ACK, 0, 0, 1.02)
        self.r, self.last = 1.02, 0

    def msg(self, d: int, lo: int, hi: int, *, full: int = 0, seg: int = 1448,
            acked: bool = True, s_to: float | None = None) -> None:
        """Send ``full`` full segments then one of lo..hi bytes; the peer ACKs every
        second segment. With ``s_to`` the segments spread over the span until then."""
        r = self.turn(d)
        s0 = self.s
        ack_r = r + (1.0 if d == 0 else 0.01)
        for i in range(full + 1):
            if s_to is not None:
                self.s = s0 + (s_to - s0) * i / (full + 1)
            last = i == full
            self.add(d, PSH | ACK if last else ACK, lo if last else seg, hi if last else seg, r)
            if acked and (i % 2 == 1 or last):
                self.add(1 - d, ACK, 0, 0, ack_r)
        if s_to is not None:
            self.s = s_to
        if acked and d == 0:
            self.r, self.last = ack_r, 1

    def dgram(self, d: int, lo: int, hi: int, *, flags: int = 0, aux: int = 0) -> None:
        self.add(d, flags, lo, hi, self.turn(d), aux)

    def close(self) -> None:
        r = self.turn(0)
        self.add(0, FIN | ACK, 0, 0, r)
        self.add(1, FIN | ACK, 0, 0, r + 1.0)
        self.add(0, ACK, 0, 0, r + 1.01)

    def build(self) -> Script:
        cols = list(zip(*self.rows, strict=True))
        i64 = [np.array(c, np.int64) for c in (cols[0], cols[1], cols[2], cols[3], cols[6])]
        return Script(l4=self.l4, dirs=i64[0], flags=i64[1], lo=i64[2], hi=i64[3], aux=i64[4],
                      r=np.array(cols[4], np.float64), s=np.array(cols[5], np.float64))


def web(requests: int, response_segments: int, *, tls: bool, end: str = "fin") -> Script:
    """An HTTP(S) connection: handshake, TLS setup, request/response pairs, FIN or RST."""
    b = ScriptBuilder()
    b.handshake()
    if end == "rejected":
        b.rows[1:] = [(1, RST | ACK, 0, 0, 1.0, 0.0, 0)]
        return b.build()
    if tls:
        b.msg(0, 230, 600)                    # ClientHello
        b.msg(1, 200, 1400, full=2)           # ServerHello .. Certificate
        b.msg(0, 64, 130, acked=False)        # key exchange, Finished
        b.msg(1, 50, 300)                     # session tickets
    for i in range(requests):
        b.s = i / requests
        b.msg(0, 150, 900, acked=False)
        b.msg(1, 100, 1448, full=response_segments)
    b.s = 1.0
    if end == "rst":
        b.add(0, RST | ACK, 0, 0, b.turn(0))
    else:
        b.close()
    return b.build()


def upload(segments: int, seg: int) -> Script:
    """A bulk upload (HTTP PUT-like): header, ``segments`` data segments, reply, FIN."""
    b = ScriptBuilder()
    b.handshake()
    b.msg(0, 250, 450, acked=False)
    b.msg(0, seg // 2, seg, full=segments - 1, seg=seg, s_to=1.0)
    b.msg(1, 150, 400)
    b.close()
    return b.build()


def rpc(calls: int) -> Script:
    """A long-lived small-message TCP connection: request, response, ACK."""
    b = ScriptBuilder()
    b.handshake()
    for i in range(calls):
        b.s = i / calls
        b.msg(0, 1, 34, acked=False)
        b.msg(1, 1, 34)
    b.s = 1.0
    b.close()
    return b.build()


def datagrams(pattern: tuple[tuple[int, int, int], ...], repeat: int = 1) -> Script:
    """UDP exchanges of ``(direction, lo, hi)`` datagrams, repeated over the span."""
    b = ScriptBuilder(l4=UDP)
    for i in range(repeat):
        b.s = i / repeat
        for d, lo, hi in pattern:
            b.dgram(d, lo, hi)
    return b.build()


def ping(count: int, *, answered: bool = True) -> Script:
    """ICMP echo requests (type 8) one second apart, with or without replies (type 0)."""
    b = ScriptBuilder(l4=ICMP)
    for i in range(count):
        b.s = float(i)
        b.dgram(0, 56, 56, flags=8, aux=i + 1)
        if answered:
            b.dgram(1, 56, 56, aux=i + 1)
    return b.build()


# ------------------------------------------------------------------ traffic models

def _ip4(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


@dataclass(frozen=True, slots=True, kw_only=True)
class Kind:
    """One class of connections and its share of the capture's bytes."""

    name: str
    share: float
    scripts: tuple[Script, ...]
    weights: tuple[float, ...]
    clients: tuple[str, int]  # first address, number of hosts
    servers: tuple[str, int]
    ports: tuple[int, ...]
    rtt_s: tuple[float, float] = (1e-4, 0.05)
    span_s: tuple[float, float] = (0.05, 10.0)
    rate_bps: tuple[float, float] | None = None  # span = payload / rate when set

    def mean_bytes(self, overhead: float) -> float:
        w = np.array(self.weights) / sum(self.weights)
        return float(sum(wi * (s.mean_bytes() + overhead * len(s.dirs))
                         for wi, s in zip(w, self.scripts, strict=True)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Model:
    """A traffic mix: kinds, capture rate and overlay shares (per connection)."""

    kinds: tuple[Kind, ...]
    bytes_per_s: float
    vlan: float
    vxlan: float

    @property
    def warmup_s(self) -> float:
        """Connections start this long before the capture, so it opens in steady state."""
        return max(max_duration_s(k) for k in self.kinds)


def mixed_model() -> Model:
    https = tuple(web(r, m, tls=True) for r in (1, 2, 5) for m in (1, 4, 16))
    http = tuple(web(r, m, tls=False) for r in (1, 3) for m in (0, 3, 12))
    edge = (web(1, 1, tls=True, end="rst"), web(1, 1, tls=True, end="rejected"))
    web_w = (0.2, 0.12, 0.04, 0.14, 0.1, 0.03, 0.12, 0.08, 0.02, 0.02, 0.03)
    return Model(bytes_per_s=100e6, vlan=0.12, vxlan=0.08, kinds=(
        Kind(name="upload-1500", share=0.50,
             scripts=tuple(upload(n, 1448) for n in (48, 192, 768, 3072)),
             weights=(0.4, 0.3, 0.2, 0.1), clients=("198.18.0.1", 8192),
             servers=("10.20.0.1", 256), ports=(443, 443, 9000, 22),
             rate_bps=(2e6, 200e6), span_s=(0.05, 8.0)),
        Kind(name="upload-jumbo", share=0.20,
             scripts=tuple(upload(n, 8948) for n in (32, 128, 512)),
             weights=(0.5, 0.35, 0.15), clients=("10.30.0.1", 512),
             servers=("10.20.0.1", 256), ports=(2049, 9000, 443),
             rtt_s=(5e-5, 1e-3), rate_bps=(50e6, 2e9), span_s=(0.01, 8.0)),
        Kind(name="https", share=0.20, scripts=https + edge, weights=web_w,
             clients=("10.1.0.1", 4096), servers=("172.16.0.1", 2048), ports=(443,),
             span_s=(0.05, 60.0)),
        Kind(name="http", share=0.05, scripts=http, weights=(0.3, 0.25, 0.05, 0.2, 0.15, 0.05),
             clients=("10.1.0.1", 4096), servers=("172.17.0.1", 512), ports=(80, 8080),
             span_s=(0.05, 30.0)),
        Kind(name="dns", share=0.04, clients=("10.1.0.1", 4096), servers=("10.255.0.2", 2),
             ports=(53,), span_s=(0.001, 0.01), weights=(0.75, 0.2, 0.05), scripts=(
                 datagrams(((0, 28, 60), (1, 60, 250))),
                 datagrams(((0, 28, 60), (0, 28, 60), (1, 60, 250), (1, 60, 250))),
                 datagrams(((0, 28, 60),)))),
        Kind(name="icmp", share=0.01, clients=("10.1.0.1", 4096), servers=("172.16.0.1", 2048),
             ports=(0,), span_s=(1.0, 1.0), weights=(0.5, 0.4, 0.1),
             scripts=(ping(1), ping(4), ping(3, answered=False))),
    ))


def small_model() -> Model:
    return Model(bytes_per_s=110e6, vlan=0.10, vxlan=0.0, kinds=(
        Kind(name="rpc", share=0.72, scripts=tuple(rpc(n) for n in (50, 200, 800)),
             weights=(0.5, 0.35, 0.15), clients=("10.1.0.1", 4096),
             servers=("10.40.0.1", 64), ports=(6379, 11211, 2379), span_s=(0.5, 8.0)),
        Kind(name="telemetry", share=0.16, clients=("10.1.0.1", 4096),
             servers=("10.41.0.1", 8), ports=(8125, 514), span_s=(1.0, 8.0),
             weights=(0.6, 0.4),
             scripts=(datagrams(((0, 18, 58),), 20), datagrams(((0, 18, 58),), 100))),
        Kind(name="ntp-dns", share=0.10, clients=("10.1.0.1", 4096),
             servers=("10.255.0.2", 2), ports=(123, 53), span_s=(0.001, 0.01),
             weights=(0.5, 0.5),
             scripts=(datagrams(((0, 48, 48), (1, 48, 48))),
                      datagrams(((0, 18, 45), (1, 30, 58))))),
        Kind(name="icmp", share=0.02, clients=("10.1.0.1", 4096), servers=("10.40.0.1", 64),
             ports=(0,), span_s=(1.0, 1.0), weights=(1.0,), scripts=(ping(4),)),
    ))


MODELS = {"mixed": mixed_model, "small": small_model, "big": mixed_model}
DEFAULT_SIZE_GB = {"mixed": 1.0, "small": 1.0, "big": 10.0}


# ------------------------------------------------------------------ expansion

def _loguniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> F64:
    return np.exp(rng.uniform(np.log(lo), np.log(hi), n))


def timing(script: Script, kind: Kind, n: int,
           rng: np.random.Generator) -> tuple[F64, F64, F64]:
    """Draw (round-trip time, span, duration) in seconds for ``n`` connections."""
    rtt = _loguniform(rng, *kind.rtt_s, n)
    if kind.rate_bps is not None:
        rate = _loguniform(rng, *kind.rate_bps, n)
        span = np.clip(script.payload_bytes() * 8 / rate, *kind.span_s)
    else:
        span = _loguniform(rng, *kind.span_s, n)
    duration = rtt * script.r.max() + span * script.s.max() + len(script.dirs) * 1.5e-6
    return rtt, span, duration


def expand(script: Script, kind: Kind, model: Model, start: F64, rtt: F64, span: F64,
           rng: np.random.Generator) -> Packets:
    """Return the packets of one connection per entry of ``start``, ``rtt`` and ``span``
    (seconds), unsorted."""
    n, k = len(start), len(script.dirs)
    fwd = (script.dirs == 0)[None, :]

    def pick(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return np.where(fwd, a[:, None], b[:, None])

    cli = _ip4(kind.clients[0]) + rng.integers(0, kind.clients[1], n)
    srv = _ip4(kind.servers[0]) + rng.integers(0, kind.servers[1], n)
    cport = rng.integers(32768, 61000, n)
    sport = rng.choice(np.array(kind.ports, np.int64), n)
    p = np.zeros((n, k), PACKET)
    p["t"] = start[:, None] + rtt[:, None] * script.r + span[:, None] * script.s \
        + np.arange(k) * 1.5e-6
    pay = rng.integers(script.lo, script.hi + 1, (n, k)) if np.any(script.lo != script.hi) \
        else np.broadcast_to(script.lo, (n, k))
    p["payload"], p["l4"], p["flags"] = pay, script.l4, script.flags
    p["src"], p["dst"] = pick(cli, srv), pick(srv, cli)
    p["ttl"] = pick(np.full(n, 64), 64 - rng.integers(1, 12, n))
    p["win"] = rng.integers(256, 8192, n)[:, None]
    p["ip_id"] = (rng.integers(0, 65536, n)[:, None] + np.arange(k)) & 0xFFFF
    if script.l4 == ICMP:
        p["sport"] = p["dport"] = cport[:, None] & 0xFFFF
        p["seq"] = script.aux
    else:
        p["sport"], p["dport"] = pick(cport, sport), pick(sport, cport)
    if script.l4 == TCP:
        used = pay + ((script.flags & (SYN | FIN)) != 0)
        mine = np.where(fwd, used, 0)
        theirs = used - mine
        sent_c = np.cumsum(mine, axis=1) - mine     # client bytes before this step
        sent_s = np.cumsum(theirs, axis=1) - theirs
        isn = rng.integers(0, 2**32, (n, 2))
        seq = np.where(fwd, isn[:, :1] + sent_c, isn[:, 1:] + sent_s)
        ack = np.where(fwd, isn[:, 1:] + sent_s, isn[:, :1] + sent_c)
        p["seq"] = seq & 0xFFFFFFFF
        p["ack"] = np.where((script.flags & ACK) != 0, ack & 0xFFFFFFFF, 0)
    u = rng.random(n)
    encap = np.where(u < model.vlan, VLAN, np.where(u < model.vlan + model.vxlan, VXLAN, PLAIN))
    tag = np.where(encap == VLAN, rng.choice([100, 200, 300, 3001], n),
                   5000 + rng.integers(0, 64, n))
    va, vb = (_ip4("10.200.0.1") + rng.integers(0, 32, n) for _ in range(2))
    p["encap"], p["tag"] = encap[:, None], np.where(encap == PLAIN, 0, tag)[:, None]
    p["vsrc"], p["vdst"] = pick(va, vb), pick(vb, va)
    p["vport"] = rng.integers(49152, 65536, n)[:, None]
    return p.reshape(-1)


def max_duration_s(kind: Kind) -> float:
    """Return an upper bound of the duration of a connection of ``kind``, in seconds."""
    return max(kind.rtt_s[1] * float(sc.r.max()) + kind.span_s[1] * float(sc.s.max())
               + len(sc.dirs) * 1.5e-6 for sc in kind.scripts)


def sessions(model: Model, t0: float, t1: float,
             rng: np.random.Generator, counts: dict[str, int]) -> Iterator[Packets]:
    """Yield the packets of the connections that start in [t0, t1), unsorted.

    In the warm-up (before time 0) connections that end before time 0 are dropped
    unexpanded.
    """
    overhead = model.vlan * 4 + model.vxlan * 50
    for kind in model.kinds:
        if t1 + max_duration_s(kind) < 0:
            continue
        rate = kind.share * model.bytes_per_s / kind.mean_bytes(overhead)
        n = int(rng.poisson(rate * (t1 - t0)))
        w = np.array(kind.weights) / sum(kind.weights)
        which = rng.choice(len(kind.scripts), n, p=w)
        start = rng.uniform(t0, t1, n)
        for i, script in enumerate(kind.scripts):
            sel = start[which == i]
            rtt, span, duration = timing(script, kind, len(sel), rng)
            live = sel + duration >= 0
            if np.any(live):
                if t0 >= 0:
                    counts[kind.name] = counts.get(kind.name, 0) + len(sel)
                yield expand(script, kind, model, sel[live], rtt[live], span[live], rng)


# ------------------------------------------------------------------ writing

@dataclass(slots=True)
class Written:
    """What generate() wrote."""

    packets: int = 0
    bytes: int = 24
    connections: dict[str, int] = field(default_factory=dict)


def _emit(fh: BinaryIO, p: Packets, out: Written) -> None:
    for i in range(0, len(p), RENDER_PACKETS):
        buf = render(p[i:i + RENDER_PACKETS])
        fh.write(buf.data)
        out.bytes += len(buf)
    out.packets += len(p)


def _bucket(p: Packets, width: float, buckets: dict[int, list[Packets]]) -> None:
    """File packets ``p`` (all at time >= 0) under the epoch each falls in."""
    if not len(p):
        return
    epoch = (p["t"] // width).astype(np.int64)
    order = np.argsort(epoch, kind="stable")
    p, epoch = p[order], epoch[order]
    cuts = np.flatnonzero(np.diff(epoch)) + 1
    for part, e in zip(np.split(p, cuts), epoch[np.r_[0, cuts]], strict=True):
        buckets.setdefault(int(e), []).append(part)


def generate(model: Model, fh: BinaryIO, *, target_bytes: int, seed: int) -> Written:
    """Write a pcap of at least ``target_bytes`` (a little more) from ``model`` to ``fh``.

    Connections start (Poisson) from ``-warmup_s`` on, in epochs of ~16 MB of
    traffic; their packets are filed under the epoch they fall in, and each epoch
    is sorted and written once no later connection can add to it. Like a real
    capture window on steady traffic, the file starts and ends in the middle of
    long connections.
    """
    rng = np.random.default_rng(seed)
    fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    out = Written()
    width = EPOCH_BYTES / model.bytes_per_s
    buckets: dict[int, list[Packets]] = {}
    epoch = -int(np.ceil(model.warmup_s / width))
    while out.bytes < target_bytes:
        t0 = epoch * width
        new = [b[b["t"] >= 0] for b in sessions(model, t0, t0 + width, rng, out.connections)]
        if new:
            _bucket(np.concatenate(new), width, buckets)
        if epoch >= 0 and epoch in buckets:
            p = np.concatenate(buckets.pop(epoch))
            _emit(fh, p[np.argsort(p["t"], kind="stable")], out)
        epoch += 1
    return out


def source_sha256() -> str:
    """Return the SHA-256 of this generator's source: captures are stale when it changes."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--kind", choices=sorted(MODELS), required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--size-gb", type=float, default=None,
                    help="target file size in decimal GB (default: mixed 1, small 1, big 10)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = ap.parse_args(argv)
    size_gb = args.size_gb if args.size_gb is not None else DEFAULT_SIZE_GB[args.kind]
    target = int(size_gb * GB)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(args.out.parent).free
    if free < target * 1.1:
        print(f"not enough disk: {free / GB:.1f} GB free, need {target * 1.1 / GB:.1f} GB",
              file=sys.stderr)
        return 2
    part = args.out.with_name(args.out.name + ".part")
    t0 = time.perf_counter()
    with part.open("wb") as fh:
        out = generate(MODELS[args.kind](), fh, target_bytes=target, seed=args.seed)
    part.replace(args.out)
    seconds = time.perf_counter() - t0
    meta = {"kind": args.kind, "seed": args.seed, "generator_sha256": source_sha256(),
            "target_bytes": target, "bytes": out.bytes,
            "packets": out.packets, "connections_started": out.connections,
            "seconds": seconds}
    args.out.with_name(args.out.name + ".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{args.out}: {out.bytes / GB:.3f} GB, {out.packets:,} packets "
          f"({out.bytes / max(out.packets, 1):.0f} B/record), "
          f"{sum(out.connections.values()):,} connections started, {seconds:.1f} s "
          f"({out.bytes / GB / seconds:.2f} GB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
