"""Line-oriented log files (plain or gzip) read as numbered lines, with where they were cut short.

Every text-log source (kernel logs, udev monitor dumps, copy-tool logs, object-store
access and audit logs) shares this reader. It opens a file as gzip by its magic
bytes (not its name), streams it in fixed-size chunks (memory stays flat in the
file size) and splits it into whole lines, each with its 1-based number and the
byte offset where it starts in the decoded (decompressed) text. A gzip stream cut
short or corrupt ends the file without raising: every line decoded before the
fault is kept and the fault is reported. :class:`IssueTally` counts problems per
file and kind with the first position of each.

Two views of the same stream: :class:`BlockSource` yields blocks of lines (the
fast path for per-record parsers), :class:`LineSource` yields one :class:`Line`
at a time and keeps a half-written last line out.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from egress.errors import SourceError
from egress.records import Issue

CHUNK_BYTES = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"

TRUNCATED_GZIP = "truncated_gzip"
CORRUPT_GZIP = "corrupt_gzip"
PARTIAL_LAST_LINE = "partial_last_line"


@dataclass(frozen=True, slots=True)
class Line:
    """One complete line: 1-based ``number``, decoded-stream byte ``offset``, ``text`` sans EOL."""

    number: int
    offset: int
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Truncation:
    """Where and how a log file ended before its last line was complete.

    ``kind`` is ``truncated_gzip`` (the compressed stream stops before its end
    marker), ``corrupt_gzip`` (undecodable compressed data) or
    ``partial_last_line`` (the text ends without a newline). ``offset`` is the
    decoded-stream byte offset of the first byte not turned into a line;
    ``line`` is the number that line would have had.
    """

    kind: str
    offset: int
    line: int
    detail: str


def open_log(path: Path, *, label: str = "log") -> tuple[io.BufferedIOBase, io.BufferedIOBase]:
    """Open ``path``; return ``(decoded stream, raw file)``, gunzipping by magic.

    Raises :class:`~egress.errors.SourceError` (``cannot open {label}: ...`` or
    ``cannot read {label}: ...``) when the file cannot be opened or its first
    bytes cannot be read.
    """
    try:
        raw: io.BufferedIOBase = path.open("rb")
    except OSError as exc:
        raise SourceError(f"cannot open {label}: {exc.strerror or exc}", path=path) from exc
    try:
        magic = raw.read(2)
        raw.seek(0)
    except OSError as exc:
        raw.close()
        raise SourceError(f"cannot read {label}: {exc.strerror or exc}", path=path) from exc
    if magic == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    return raw, raw


def read_head(path: Path, max_bytes: int = 64 * 1024) -> bytes:
    """Return up to ``max_bytes`` of the decoded start of ``path`` (for format detection).

    A damaged gzip stream gives what could be decoded. Raises
    :class:`~egress.errors.SourceError` when the file cannot be opened.
    """
    fh, raw = open_log(path)
    with raw, fh:
        out = bytearray()
        try:
            while len(out) < max_bytes:
                chunk = fh.read1(max_bytes - len(out))
                if not chunk:
                    break
                out += chunk
        except (OSError, EOFError, zlib.error):
            pass
        return bytes(out)


@dataclass(frozen=True, slots=True)
class LineBlock:
    """Consecutive decoded lines of a log file, with where they start."""

    first_line: int
    """1-based number of ``texts[0]``."""
    first_offset: int
    """Byte offset of ``texts[0]`` in the decoded (gunzipped) file."""
    texts: list[str]
    """The lines, without newline or trailing ``\\r``; UTF-8, undecodable bytes replaced."""
    raw: list[bytes] | None
    """The undecoded lines, kept only when their lengths differ from the texts'."""
    terminated: bool
    """Whether the last line ended with a newline (false for a half-written last line)."""

    def offset_of(self, index: int) -> int:
        """Byte offset of ``texts[index]``."""
        return self.first_offset + sum(len(x) + 1 for x in self._undecoded()[:index])

    def lines(self) -> Iterator[Line]:
        """Each line of the block as a :class:`Line`."""
        offset = self.first_offset
        for number, (text, undecoded) in enumerate(zip(self.texts, self._undecoded(),
                                                        strict=True), self.first_line):
            yield Line(number, offset, text)
            offset += len(undecoded) + 1

    def _undecoded(self) -> Sequence[str | bytes]:
        return self.raw if self.raw is not None else self.texts


def _block(data: bytes, first_line: int, first_offset: int, terminated: bool) -> LineBlock:
    if data.isascii() and b"\r" not in data:
        return LineBlock(first_line, first_offset, data.decode("ascii").split("\n"), None,
                         terminated)
    raw = data.split(b"\n")
    texts = [(x[:-1] if x[-1:] == b"\r" else x).decode("utf-8", "replace") for x in raw]
    return LineBlock(first_line, first_offset, texts, raw, terminated)


class BlockSource:
    """Iterate over one log file as blocks of whole lines, in bounded memory.

    A file whose last line has no newline ends with a block whose ``terminated``
    is false. A gzip stream that breaks off (truncated or corrupt) ends the file:
    every line decompressed before the fault is yielded, then the bytes after the
    last newline (if any) as an unterminated block. ``on_fault`` is called with
    the fault (a ``truncated_gzip`` / ``corrupt_gzip`` :class:`Truncation` whose
    detail is the decompressor's message) before that last block, and it is kept
    in :attr:`fault`; :attr:`decoded_bytes` is how far decoding got. A line
    longer than ``max_line_bytes`` (``None``: no limit) is skipped and reported
    to ``on_oversized(offset, line)``. ``limit`` stops after that many decoded
    bytes (for sniffing). Raises :class:`~egress.errors.SourceError` only if the
    file cannot be opened.
    """

    def __init__(self, path: Path, *, label: str = "log", chunk_bytes: int = CHUNK_BYTES,
                 max_line_bytes: int | None = None, limit: int | None = None,
                 on_fault: Callable[[Truncation], None] | None = None,
                 on_oversized: Callable[[int, int], None] | None = None) -> None:
        self.path = path
        self._label = label
        self._chunk = chunk_bytes
        self._max_line = max_line_bytes
        self._limit = limit
        self._on_fault = on_fault
        self._on_oversized = on_oversized
        self.fault: Truncation | None = None
        self.decoded_bytes = 0

    def __iter__(self) -> Iterator[LineBlock]:
        stream, raw = open_log(self.path, label=self._label)
        with raw, stream:
            yield from self._blocks(stream)

    def _blocks(self, stream: io.BufferedIOBase) -> Iterator[LineBlock]:
        limit, max_line = self._limit, self._max_line
        lineno = offset = done = skipped = 0
        skipping = False
        pending = b""
        while limit is None or done < limit:
            try:
                # read1 makes one underlying read, so every byte decompressed before a
                # fault has been returned by an earlier call when the fault is raised.
                chunk = stream.read1(self._chunk if limit is None else limit - done)
            except (EOFError, OSError, zlib.error) as exc:
                kind = TRUNCATED_GZIP if isinstance(exc, EOFError) else CORRUPT_GZIP
                self.fault = Truncation(kind=kind, offset=offset, line=lineno + 1,
                                        detail=str(exc))
                if self._on_fault is not None:
                    self._on_fault(self.fault)
                break
            if not chunk:
                break
            done += len(chunk)
            self.decoded_bytes = done
            if skipping:
                first = chunk.find(b"\n")
                if first < 0:
                    skipped += len(chunk)
                    continue
                lineno += 1
                offset += skipped + first + 1
                skipping, skipped = False, 0
                chunk = chunk[first + 1:]
            cut = chunk.rfind(b"\n")
            if cut < 0:
                pending += chunk
                if max_line is not None and len(pending) > max_line:
                    if self._on_oversized is not None:
                        self._on_oversized(offset, lineno + 1)
                    skipping, skipped, pending = True, len(pending), b""
                continue
            data = pending + chunk[:cut] if pending else chunk[:cut]
            pending = chunk[cut + 1:]
            yield _block(data, lineno + 1, offset, True)
            lineno += data.count(b"\n") + 1
            offset += len(data) + 1
        if pending:
            yield _block(pending, lineno + 1, offset, False)


class LineSource:
    """Iterate over the complete lines of one log file.

    After iteration, :attr:`truncation` says whether (and where) the file ended
    before a complete last line: a gzip fault, or a last line without a newline,
    which is not yielded (it may be cut mid-value). Raises
    :class:`~egress.errors.SourceError` only when the file cannot be opened.
    Text is decoded as UTF-8 with undecodable bytes replaced; a trailing ``\\r``
    is dropped.
    """

    def __init__(self, path: Path, *, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.path = path
        self._chunk = chunk_bytes
        self.truncation: Truncation | None = None

    def __iter__(self) -> Iterator[Line]:
        blocks = BlockSource(self.path, chunk_bytes=self._chunk)
        for block in blocks:
            if block.terminated:
                yield from block.lines()
            elif blocks.fault is None:
                head = block.raw[0] if block.raw is not None else block.texts[0].encode()
                excerpt = head[:80].decode("utf-8", "replace")
                self.truncation = Truncation(
                    kind=PARTIAL_LAST_LINE, offset=block.first_offset, line=block.first_line,
                    detail=f"no newline after {excerpt!r}")
        if blocks.fault is not None:
            self.truncation = blocks.fault


class IssueTally:
    """Counted problems per (file, kind), keeping the first position and detail of each.

    ``line_prefix`` starts the detail of an issue with a line number (``line
    12: ...`` by default).
    """

    def __init__(self, *, line_prefix: str = "line ") -> None:
        self._line_prefix = line_prefix
        self._issues: dict[tuple[str, str], Issue] = {}

    def add(self, path: Path | str, kind: str, *, offset: int | None = None,
            line: int | None = None, detail: str = "", count: int = 1) -> None:
        """Count ``count`` occurrences of ``kind`` in ``path``; the first sets position and detail.

        ``offset`` is a decoded-stream byte offset; ``line`` (1-based) is put
        at the front of the detail, since :class:`~egress.records.Issue` has
        no line field.
        """
        key = (str(path), kind)
        old = self._issues.get(key)
        if old is not None:
            self._issues[key] = replace(old, count=old.count + count)
            return
        where = f"{self._line_prefix}{line}: " if line is not None else ""
        self._issues[key] = Issue(path=str(path), kind=kind, count=count,
                                  first_offset=offset, detail=where + detail)

    def add_truncation(self, path: Path | str, truncation: Truncation) -> None:
        """Count the way ``path`` ended early (see :class:`Truncation`)."""
        self.add(path, truncation.kind, offset=truncation.offset, line=truncation.line,
                 detail=truncation.detail)

    @property
    def issues(self) -> tuple[Issue, ...]:
        """Every counted issue, in the order each kind was first seen."""
        return tuple(self._issues.values())
