"""Packet captures (pcap, pcapng, gzip) to Zeek-compatible bidirectional flows.

The per-packet work runs in the compiled :mod:`egress._flowcore` engine; this
module opens files, streams them through the engine in fixed-size chunks (memory
stays flat in the capture size), and turns the engine's tuples into
:class:`~egress.records.Flow` records.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import os
import stat
import struct
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egress import _flowcore
from egress.errors import SourceError
from egress.records import Flow, Issue, ReadStats
from egress.sources.zeek_ports import (
    DEFAULT_TCP_SERVER_PORTS,
    DEFAULT_UDP_SERVER_PORTS,
    DNS_PORTS,
)

log = logging.getLogger(__name__)

_Batches = Generator[list[Flow], None, None]
"""The engine's output lists, as a file reader hands them on."""

CHUNK_BYTES = 8 * 1024 * 1024
# Records handed on per flush call: small batches let Python reuse the memory of
# the records already consumed instead of mapping (and the kernel zeroing) more.
FLUSH_BATCH = 4096
MAX_TIMEOUT_S = 10 * 365.25 * 86400

ProgressCallback = Callable[[Path, int, int | None], None]
"""Called as ``(path, bytes_read, bytes_total_or_None)`` after each chunk."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowOptions:
    """How packets are assembled into flows; the defaults are Zeek's."""

    tcp_timeout_s: float = 300.0
    udp_timeout_s: float = 60.0
    icmp_timeout_s: float = 60.0
    other_timeout_s: float = 60.0
    long_tcp_timeout_s: float = 3600.0
    close_delay_s: float = 5.0
    attempt_delay_s: float = 5.0
    interim_interval_s: float | None = None
    tcp_server_ports: frozenset[int] = field(default=DEFAULT_TCP_SERVER_PORTS)
    udp_server_ports: frozenset[int] = field(default=DEFAULT_UDP_SERVER_PORTS)
    dns_ports: frozenset[int] = field(default=DNS_PORTS)

    def __post_init__(self) -> None:
        for name in ("tcp_timeout_s", "udp_timeout_s", "icmp_timeout_s", "other_timeout_s",
                     "long_tcp_timeout_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT_S:
                raise ValueError(f"{name} must be positive and at most ten years")
        if self.close_delay_s < 0 or self.attempt_delay_s < 0:
            raise ValueError("close_delay_s and attempt_delay_s must not be negative")
        for ports in (self.tcp_server_ports, self.udp_server_ports, self.dns_ports):
            if any(not 0 <= p <= 65535 for p in ports):
                raise ValueError("ports must be between 0 and 65535")
        if self.interim_interval_s is not None and not (
                math.isfinite(self.interim_interval_s)
                and 0 < self.interim_interval_s <= MAX_TIMEOUT_S):
            raise ValueError("interim_interval_s must be positive and at most ten years")


def _port_array(ports: frozenset[int]) -> bytes:
    return struct.pack(f"={len(ports)}H", *sorted(ports))


_FLOW_FIELDS = tuple(f.name for f in dataclasses.fields(Flow))


def _open(path: Path) -> tuple[io.BufferedReader, bool]:
    """Open a capture; return the raw file and whether it is gzip-compressed."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise SourceError(f"cannot open capture: {exc.strerror}", path=path) from exc
    try:
        magic = raw.peek(2)[:2]  # without consuming: pipes cannot seek back
    except OSError as exc:
        raw.close()
        raise SourceError(f"cannot read capture: {exc.strerror}", path=path) from exc
    return raw, magic == b"\x1f\x8b"


class GzipFault(Exception):
    """The compressed stream ended early or is corrupt; what came before was delivered."""


def _gzip_error_text(exc: zlib.error) -> str:
    if "incorrect data check" in str(exc):
        return "cannot read compressed data: CRC check failed (the data is corrupt)"
    return f"cannot read compressed data: corrupt gzip data ({exc})"


def _salvage(decomp: Any, data: bytes, step: int = 4096, *, limit: int) -> Iterator[bytes]:
    """Decompress ``data`` in steps up to the fault, then raise :class:`GzipFault`.

    A failing step is redone byte by byte from a copy of the decompressor, so
    the output right up to the corrupt byte is kept.
    """
    for i in range(0, len(data), step):
        saved = decomp.copy()
        piece = data[i:i + step]
        try:
            while piece:
                out = decomp.decompress(piece, limit)
                if out:
                    yield out
                piece = decomp.unconsumed_tail
        except zlib.error as exc:
            if step > 1:
                yield from _salvage(saved, data[i:i + step], 1, limit=limit)
            raise GzipFault(_gzip_error_text(exc)) from exc
    raise GzipFault("cannot read compressed data: corrupt gzip data")


def gunzip_chunks(raw: io.BufferedReader, chunk_bytes: int) -> Iterator[bytes]:
    """Decompress a (multi-member) gzip stream incrementally.

    Unlike :class:`gzip.GzipFile`, every byte decompressed before a fault is
    yielded first; then :class:`GzipFault` is raised.
    """
    decomp = zlib.decompressobj(wbits=31)
    in_member = False  # bytes of the current member were seen and its end was not
    while True:
        data = raw.read(chunk_bytes)
        if not data:
            if in_member:
                raise GzipFault("cannot read compressed data: it ends before the end of the"
                                " gzip stream (truncated file)")
            return
        while data:
            in_member = True
            # the last 8 bytes go in separately: a member's trailer (CRC, size) is checked
            # when it arrives, and zlib then drops the output of that same call
            head, tail = (data[:-8], data[-8:]) if len(data) > 8 else (data, b"")
            saved = decomp.copy()
            pending = head
            while True:  # bounded output per call: a small file may inflate to gigabytes
                try:
                    out = decomp.decompress(pending, chunk_bytes)
                except zlib.error:
                    # zlib drops a failing call's output: redo it in small steps to keep it
                    yield from _salvage(saved, pending, limit=chunk_bytes)
                    raise AssertionError("unreachable: _salvage always raises") from None
                if out:
                    yield out
                pending = decomp.unconsumed_tail
                saved = decomp.copy()
                # a full output buffer may leave output owed with all input taken
                if decomp.eof or (not pending and len(out) < chunk_bytes):
                    break
            if not decomp.eof and tail:
                try:
                    out = decomp.decompress(tail, chunk_bytes)
                    while out:
                        yield out
                        out = decomp.decompress(decomp.unconsumed_tail, chunk_bytes)
                except zlib.error as exc:
                    raise GzipFault(_gzip_error_text(exc)) from exc
                tail = b""
            if not decomp.eof:
                break
            in_member = False
            data = decomp.unused_data + tail  # the next gzip member, if any
            decomp = zlib.decompressobj(wbits=31)
            if data and not data.startswith(b"\x1f\x8b"):
                return  # trailing garbage after the last member is ignored, as gzip does


class CaptureReader:
    """Stream captures through one flow table and yield flows as they end.

    Several paths are read in order as one continuous capture (a rotated set).
    A file that cannot be read further (bad header, corrupt record length, bad
    pcapng block, broken gzip) ends that file: flows read before the fault are
    kept, the fault is recorded in :attr:`stats` (and :attr:`errors`), and the
    next file is read. With ``strict=True`` the fault raises
    :class:`~egress.errors.SourceError` instead, after the flows read so far
    have been yielded.
    """

    def __init__(
        self,
        *,
        options: FlowOptions | None = None,
        progress: ProgressCallback | None = None,
        strict: bool = False,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self._options = options or FlowOptions()
        self._progress = progress
        self._strict = strict
        self._chunk = chunk_bytes
        self._issues: dict[tuple[str, str], Issue] = {}
        self.errors: list[SourceError] = []
        opts = self._options
        self._engine = _flowcore.Engine(
            tcp_timeout=opts.tcp_timeout_s,
            udp_timeout=opts.udp_timeout_s,
            icmp_timeout=opts.icmp_timeout_s,
            other_timeout=opts.other_timeout_s,
            long_tcp_timeout=opts.long_tcp_timeout_s,
            close_delay=opts.close_delay_s,
            attempt_delay=opts.attempt_delay_s,
            interim_interval=opts.interim_interval_s or 0.0,
            tcp_server_ports=_port_array(opts.tcp_server_ports),
            udp_server_ports=_port_array(opts.udp_server_ports),
            dns_ports=_port_array(opts.dns_ports),
            record_type=Flow,
            record_fields=_FLOW_FIELDS,
        )

    def read(self, paths: Iterable[Path | str]) -> Iterator[Flow]:
        """Yield the flows of ``paths`` (final and interim records) in end order."""
        # The file readers hand on the engine's lists whole: one generator between
        # the caller and each list, where nested ``yield from`` cost 4 per flow.
        for p in paths:
            path = Path(p)
            batches = self._read_file(path)
            try:
                for batch in batches:
                    yield from batch
            except SourceError as exc:
                if self._strict:
                    yield from self._flush()  # the flows read before the fault are kept
                    raise
                yield from self._drain()
                log.debug("%s", exc)
                self.errors.append(exc)
            finally:
                batches.close()
        yield from self._flush()

    def _flush(self) -> Iterator[Flow]:
        """End every open flow, handing them on in bounded batches."""
        done = False
        while not done:
            done = self._engine.flush(FLUSH_BATCH)
            yield from self._engine.take()

    def _drain(self) -> Iterator[Flow]:
        yield from self._engine.take()

    def _read_file(self, path: Path) -> _Batches:
        self._engine.begin_file()
        raw, compressed = _open(path)
        try:
            with raw:
                info = os.fstat(raw.fileno())
                total = info.st_size
                if not compressed and total > 0 and stat.S_ISREG(info.st_mode):
                    yield from self._read_mapped(path, raw, total)
                else:
                    yield from self._read_stream(path, raw, total, compressed=compressed)
        finally:
            self._note_issues(path)

    def _feed(self, view: memoryview, final: bool, path: Path) -> int:
        consumed = self._engine.feed(view, final)
        self._check_error(path)
        return consumed

    def _check_error(self, path: Path) -> None:
        err = self._engine.error
        if err is not None:
            raise SourceError(err[0], path=path, offset=err[1])

    def _read_mapped(self, path: Path, raw: io.BufferedReader, total: int) -> _Batches:
        """Feed an uncompressed file from the engine's own memory map: no copy.

        The engine maps the file; a helper thread of its own maps each window's
        pages ahead of the parser and drops the pages parsed, so the resident
        size stays flat however large the capture is. A file that cannot be
        mapped is read as a stream instead.
        """
        feed_fd = self._engine.feed_fd
        fd = raw.fileno()
        window = self._chunk
        pos = 0
        while pos < total:
            end = min(pos + window, total)
            final = end == total
            try:
                consumed = feed_fd(fd, pos, end - pos, final)
            except ValueError as exc:  # the file shrank since it was opened
                raise SourceError(f"cannot read capture: {exc}", path=path, offset=pos) from exc
            except OSError as exc:
                if pos:
                    raise SourceError(f"cannot read capture: {exc.strerror}", path=path,
                                      offset=pos) from exc
                yield from self._read_stream(path, raw, total, compressed=False)
                return
            self._check_error(path)
            if consumed == 0 and not final:
                window *= 2  # one record larger than the window
                continue
            pos += consumed
            yield self._engine.take()
            if self._progress is not None:
                self._progress(path, pos, total)
            if final:
                break

    def _read_stream(self, path: Path, raw: io.BufferedReader, total: int, *,
                     compressed: bool) -> _Batches:
        """Feed a gzip (or empty) file through a buffer that keeps only an unparsed tail.

        A gzip fault ends the file: everything decompressed before it is parsed
        first, then a :class:`SourceError` gives the uncompressed byte offset of
        the first record that could not be read.
        """
        chunks = (gunzip_chunks(raw, self._chunk) if compressed
                  else iter(lambda: raw.read(self._chunk), b""))
        pending = b""
        parsed = 0
        try:
            for chunk in chunks:
                data = pending + chunk if pending else chunk
                consumed = self._feed(memoryview(data), False, path)
                parsed += consumed
                pending = data[consumed:]
                yield self._engine.take()
                if self._progress is not None:
                    self._progress(path, raw.tell(), total)
        except GzipFault as exc:
            parsed += self._feed(memoryview(pending), True, path)
            yield self._engine.take()
            raise SourceError(str(exc), path=path, offset=parsed) from exc
        self._feed(memoryview(pending), True, path)
        yield self._engine.take()

    def _note_issues(self, path: Path) -> None:
        """Record the issues the engine counted in the file just read."""
        for kind, (count, first) in self._engine.stats()["issues"].items():
            key = (str(path), kind)
            old = self._issues.get(key)
            self._issues[key] = Issue(
                path=str(path), kind=kind, count=(old.count if old else 0) + count,
                first_offset=old.first_offset if old else first,
            )

    @property
    def stats(self) -> ReadStats:
        """Totals so far, with per-file issues and unreadable files."""
        s = self._engine.stats()
        issues = list(self._issues.values())
        issues.extend(
            Issue(path=str(e.path), kind="unreadable", count=1, first_offset=e.offset,
                  detail=str(e))
            for e in self.errors
        )
        return ReadStats(
            packets=s["packets"], captured_bytes=s["captured_bytes"],
            ip_packets=s["ip_packets"], ip_bytes=s["ip_bytes"], flows=s["flows"],
            interim_records=s["interim_records"], issues=tuple(issues),
        )


def read_flows(
    paths: Iterable[Path | str], *, options: FlowOptions | None = None, strict: bool = True
) -> list[Flow]:
    """Read whole captures into a list of final flows (for small inputs and tests)."""
    reader = CaptureReader(options=options, strict=strict)
    return [f for f in reader.read(paths) if not f.interim]
