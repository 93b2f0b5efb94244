"""Write a :class:`~gen.capture.Capture` as file bytes: classic pcap, pcapng, or gzip of either.

Deterministic: gzip output carries no file name and mtime 0.
"""

from __future__ import annotations

import gzip
import io
import struct
from collections.abc import Sequence

from scapy.utils import RawPcapWriter

from .capture import DEFAULT_SNAPLEN, NS, US, Capture, Section


def pcap_bytes(cap: Capture) -> bytes:
    """Return a classic pcap file written with scapy's writer (records cut at the snaplen)."""
    buf = io.BytesIO()
    writer = RawPcapWriter(buf, linktype=cap.linktype, endianness=">" if cap.big_endian else "<",
                           nano=cap.nano, snaplen=cap.snaplen)
    writer.linktype = cap.linktype  # the constructor ignores a falsy linktype (DLT_NULL = 0)
    writer.write_header(None)
    for rec in cap.records:
        data = rec.data[: cap.snaplen]
        sec, frac = divmod(rec.ts_ns, NS)
        writer.write_packet(data, sec=sec, usec=frac if cap.nano else frac // US,
                            caplen=len(data), wirelen=rec.wire_len)
    writer.flush()
    return buf.getvalue()


def _block(end: str, btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    return struct.pack(f"{end}II", btype, 12 + len(body)) + body + struct.pack(
        f"{end}I", 12 + len(body))


def _options(end: str, opts: Sequence[tuple[int, bytes]]) -> bytes:
    out = b"".join(struct.pack(f"{end}HH", code, len(v)) + v + bytes(-len(v) % 4)
                   for code, v in opts)
    return out + struct.pack(f"{end}HH", 0, 0)


def pcapng_section(sec: Section) -> bytes:
    """Return one pcapng section: SHB, IDBs, then EPB/SPB/custom blocks in order."""
    end = ">" if sec.big_endian else "<"
    out = [_block(end, 0x0A0D0D0A, struct.pack(f"{end}IHHq", 0x1A2B3C4D, 1, 0, -1) + _options(
        end, [(4, b"egress pcaps/generate.py")]))]
    for itf in sec.interfaces:
        opts = [(2, itf.name.encode())] + ([] if itf.tsresol is None else
                                           [(9, bytes([itf.tsresol]))])
        out.append(_block(end, 1, struct.pack(f"{end}HHI", itf.linktype, 0, DEFAULT_SNAPLEN)
                          + _options(end, opts)))
    for rec in sec.records:
        if rec.block == "custom":
            out.append(_block(end, 0x00000BAD, rec.data))
        elif rec.block == "spb":
            out.append(_block(end, 3, struct.pack(f"{end}I", rec.wire_len) + rec.data))
        else:
            res = sec.interfaces[rec.ifid].tsresol or 6
            ts = rec.ts_ns // 10 ** (9 - res)
            out.append(_block(end, 6, struct.pack(f"{end}5I", rec.ifid, ts >> 32, ts & 0xFFFFFFFF,
                                                  len(rec.data), rec.wire_len) + rec.data))
    return b"".join(out)


def capture_bytes(cap: Capture) -> bytes:
    """Return the file contents of ``cap`` (gzip without name or mtime for ``.gz``)."""
    data = b"".join(map(pcapng_section, cap.sections)) if cap.sections else pcap_bytes(cap)
    return gzip.compress(data, compresslevel=6, mtime=0) if cap.name.endswith(".gz") else data
