"""Connections as Zeek writes them: TCP accounting, conn.log and conn_long.log text.

A :class:`Conn` is one connection with the payload each side sent. Packet and IP byte
counts follow from it the way a capture of a 1500-byte-MTU path would show them: data
segments of 1448 payload bytes with 52 bytes of IP and TCP headers (timestamps on), one
delayed ACK for every two segments received, SYN/SYN-ACK of 60 bytes, FIN and handshake
ACKs of 52. Long connections also get interim records (Corelight's ``conn_long.log``):
running totals every :data:`~scenegen.plan.LONG_CONN_INTERVAL_S` seconds of their life.
"""

from __future__ import annotations

import base64
import hashlib
import random
import struct
import time
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import ip_address

from scenegen.plan import LONG_CONN_INTERVAL_S

MSS = 1448
HDR = 52
SYN = 60
UDP_HDR = 28
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

FIELDS: tuple[tuple[str, str], ...] = (
    ("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
    ("id.resp_h", "addr"), ("id.resp_p", "port"), ("proto", "enum"), ("service", "string"),
    ("duration", "interval"), ("orig_bytes", "count"), ("resp_bytes", "count"),
    ("conn_state", "string"), ("local_orig", "bool"), ("local_resp", "bool"),
    ("missed_bytes", "count"), ("history", "string"), ("orig_pkts", "count"),
    ("orig_ip_bytes", "count"), ("resp_pkts", "count"), ("resp_ip_bytes", "count"),
    ("tunnel_parents", "set[string]"), ("ip_proto", "count"), ("community_id", "string"),
)
"""Zeek's conn.log columns (Zeek 6/7) plus ``community_id`` from its community-id policy."""


@dataclass(frozen=True, slots=True)
class Totals:
    """Running totals of a connection, as conn.log fields."""

    orig_bytes: int
    resp_bytes: int
    orig_pkts: int
    orig_ip_bytes: int
    resp_pkts: int
    resp_ip_bytes: int


def tcp_totals(orig_payload: int, resp_payload: int, *, closed: bool) -> Totals:
    """Packets and IP bytes of a TCP connection that carried these payloads."""
    seg_o = -(-orig_payload // MSS)
    seg_r = -(-resp_payload // MSS)
    ack_o = -(-seg_r // 2)  # delayed ACKs the originator sends for what it received
    ack_r = -(-seg_o // 2)
    fin = 1 if closed else 0
    orig_pkts = 2 + seg_o + ack_o + fin  # SYN, handshake ACK, data, ACKs, FIN
    resp_pkts = 1 + seg_r + ack_r + fin  # SYN-ACK, data, ACKs, FIN
    orig_ip = SYN + HDR + seg_o * HDR + orig_payload + ack_o * HDR + fin * HDR
    resp_ip = SYN + seg_r * HDR + resp_payload + ack_r * HDR + fin * HDR
    return Totals(orig_payload, resp_payload, orig_pkts, orig_ip, resp_pkts, resp_ip)


def udp_totals(orig_payload: int, resp_payload: int) -> Totals:
    """One datagram each way (a DNS or NTP exchange)."""
    return Totals(orig_payload, resp_payload, 1, UDP_HDR + orig_payload, 1,
                  UDP_HDR + resp_payload)


def new_uid(rng: random.Random) -> str:
    """A Zeek connection uid: ``C`` and 17 base-62 characters."""
    return "C" + "".join(rng.choice(_B62) for _ in range(17))


def community_id(orig_h: str, orig_p: int, resp_h: str, resp_p: int, proto: int) -> str:
    """Community ID v1 (seed 0) of a TCP or UDP flow."""
    src, dst = ip_address(orig_h).packed, ip_address(resp_h).packed
    sport, dport = orig_p, resp_p
    if (src, sport) > (dst, dport):
        src, dst, sport, dport = dst, src, dport, sport
    data = struct.pack("!H", 0) + src + dst + struct.pack("!BBHH", proto, 0, sport, dport)
    return "1:" + base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()


def micros(moment: datetime) -> int:
    """Microseconds since the epoch."""
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def seconds_text(us: int) -> str:
    """Microseconds as Zeek's ``%.6f`` seconds."""
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


@dataclass(slots=True, kw_only=True)
class Conn:
    """One connection and what the scenario knows about it.

    ``tenant`` is the tenant the inventory makes it belong to (``None`` for site
    infrastructure); ``remote_is_orig`` says which end is outside the site.
    ``interim_payloads`` are the payloads (orig, resp) at each interim record.
    """

    start_us: int
    duration_us: int
    uid: str
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    proto: str
    service: str | None
    orig_payload: int
    resp_payload: int
    tenant: str | None
    remote_is_orig: bool
    remote_country: str | None
    story: str
    interim_payloads: list[tuple[int, int]] = field(default_factory=list)

    @property
    def end_us(self) -> int:
        """When the connection ended (Zeek's ``ts + duration``)."""
        return self.start_us + self.duration_us

    @property
    def remote(self) -> str:
        """The outside end's address."""
        return self.orig_h if self.remote_is_orig else self.resp_h

    def totals(self) -> Totals:
        """Final totals."""
        if self.proto == "udp":
            return udp_totals(self.orig_payload, self.resp_payload)
        return tcp_totals(self.orig_payload, self.resp_payload, closed=True)

    def bytes_in_out(self) -> tuple[int, int]:
        """IP bytes the remote sent to the tenant and the tenant sent to the remote."""
        t = self.totals()
        if self.remote_is_orig:
            return t.orig_ip_bytes, t.resp_ip_bytes
        return t.resp_ip_bytes, t.orig_ip_bytes

    def plan_interim(self, rng: random.Random) -> None:
        """Give a connection longer than the interval its interim payloads (varying rate)."""
        steps = (self.duration_us - 1) // (LONG_CONN_INTERVAL_S * 1_000_000)
        if steps <= 0:
            return
        # Weight per 6-hour slice (the last one partial): the rate wanders by +-30 %.
        slice_us = LONG_CONN_INTERVAL_S * 1_000_000
        weights = [rng.uniform(0.7, 1.3) * slice_us for _ in range(steps)]
        weights.append(rng.uniform(0.7, 1.3) * (self.duration_us - steps * slice_us))
        whole = sum(weights)
        done = 0.0
        for w in weights[:-1]:
            done += w
            share = done / whole
            self.interim_payloads.append((int(self.orig_payload * share),
                                          int(self.resp_payload * share)))

    def interim_lines(self) -> list[tuple[int, str]]:
        """conn_long.log lines as (log time in us, text)."""
        out = []
        for k, (o, r) in enumerate(self.interim_payloads, 1):
            elapsed = k * LONG_CONN_INTERVAL_S * 1_000_000
            totals = tcp_totals(o, r, closed=False)
            out.append((self.start_us + elapsed,
                        self._line(elapsed, totals, state="S1", history="ShADad")))
        return out

    def final_line(self) -> str:
        """The conn.log line."""
        if self.proto == "udp":
            return self._line(self.duration_us, self.totals(), state="SF", history="Dd")
        return self._line(self.duration_us, self.totals(), state="SF", history="ShADadFf")

    def _line(self, elapsed_us: int, t: Totals, *, state: str, history: str) -> str:
        proto_no = 17 if self.proto == "udp" else 6
        local_orig = "F" if self.remote_is_orig else "T"
        local_resp = "T" if self.remote_is_orig else "F"
        cells = (
            seconds_text(self.start_us), self.uid, self.orig_h, str(self.orig_p), self.resp_h,
            str(self.resp_p), self.proto, self.service or "-", seconds_text(elapsed_us),
            str(t.orig_bytes), str(t.resp_bytes), state, local_orig, local_resp, "0", history,
            str(t.orig_pkts), str(t.orig_ip_bytes), str(t.resp_pkts), str(t.resp_ip_bytes),
            "-", str(proto_no),
            community_id(self.orig_h, self.orig_p, self.resp_h, self.resp_p, proto_no),
        )
        return "\t".join(cells) + "\n"


def _zeek_time(us: int) -> str:
    return time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(us // 1_000_000))


def header(path: str, opened_us: int) -> str:
    """Zeek's TSV header block."""
    names = "\t".join(name for name, _ in FIELDS)
    types = "\t".join(kind for _, kind in FIELDS)
    return ("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
            f"#path\t{path}\n#open\t{_zeek_time(opened_us)}\n#fields\t{names}\n"
            f"#types\t{types}\n")


def footer(closed_us: int) -> str:
    """The ``#close`` line."""
    return f"#close\t{_zeek_time(closed_us)}\n"


def conn_log(conns: list[Conn], opened_us: int, closed_us: int) -> str:
    """conn.log: final records in the order Zeek writes them (by end time)."""
    ordered = sorted(conns, key=lambda c: (c.end_us, c.uid))
    return (header("conn", opened_us) + "".join(c.final_line() for c in ordered)
            + footer(closed_us))


def conn_long_log(conns: list[Conn], opened_us: int, closed_us: int) -> str:
    """conn_long.log: interim records of open connections, in the order written."""
    lines = sorted((when, c.uid, text) for c in conns for when, text in c.interim_lines())
    return (header("conn_long", opened_us) + "".join(text for _, _, text in lines)
            + footer(closed_us))
