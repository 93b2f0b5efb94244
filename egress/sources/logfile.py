"""Line-oriented log files (plain or gzip) read as numbered lines, with where they were cut short.

Text-log sources (kernel logs, udev monitor dumps, copy-tool logs) share this
reader: it streams a file in fixed-size chunks (memory stays flat in the file
size), yields each complete line with its 1-based number and the byte offset
where it starts in the decoded (decompressed) text, and records a
:class:`Truncation` instead of raising when the file ends badly: a gzip stream
cut short or corrupt, or a last line with no newline. Lines read before the
fault are always yielded; a last line without its newline is not (it may be cut
mid-value), but its position is reported.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from egress.errors import SourceError
from egress.records import Issue

CHUNK_BYTES = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


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


def _open(path: Path) -> tuple[io.BufferedIOBase, io.BufferedIOBase]:
    """Open ``path``; return (decoded stream, raw file)."""
    try:
        raw: io.BufferedIOBase = path.open("rb")
    except OSError as exc:
        raise SourceError(f"cannot open log: {exc.strerror}", path=path) from exc
    try:
        magic = raw.read(2)
        raw.seek(0)
    except OSError as exc:
        raw.close()
        raise SourceError(f"cannot read log: {exc.strerror}", path=path) from exc
    if magic == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    return raw, raw


def read_head(path: Path, max_bytes: int = 64 * 1024) -> bytes:
    """Return up to ``max_bytes`` of the decoded start of ``path`` (for format detection).

    A damaged gzip stream gives what could be decoded. Raises
    :class:`~egress.errors.SourceError` when the file cannot be opened.
    """
    fh, raw = _open(path)
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


class LineSource:
    """Iterate over the complete lines of one log file.

    After iteration, :attr:`truncation` says whether (and where) the file ended
    before a complete last line. Raises :class:`~egress.errors.SourceError` only
    when the file cannot be opened. Text is decoded as UTF-8 with undecodable
    bytes replaced; a trailing ``\\r`` is dropped.
    """

    def __init__(self, path: Path, *, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.path = path
        self._chunk = chunk_bytes
        self.truncation: Truncation | None = None

    def __iter__(self) -> Iterator[Line]:
        fh, raw = _open(self.path)
        with raw, fh:
            yield from self._lines(fh)

    def _lines(self, fh: io.BufferedIOBase) -> Iterator[Line]:
        carry = b""
        offset = 0  # decoded offset of carry[0]
        number = 0
        fault: tuple[str, str] | None = None
        while True:
            try:
                chunk = fh.read1(self._chunk)
            except EOFError as exc:
                fault = ("truncated_gzip", str(exc))
                break
            except (OSError, zlib.error) as exc:
                fault = ("corrupt_gzip", str(exc))
                break
            if not chunk:
                break
            buf = carry + chunk if carry else chunk
            start = 0
            while True:
                end = buf.find(b"\n", start)
                if end < 0:
                    break
                number += 1
                raw_line = buf[start:end]
                if raw_line.endswith(b"\r"):
                    raw_line = raw_line[:-1]
                yield Line(number, offset + start, raw_line.decode("utf-8", "replace"))
                start = end + 1
            carry = buf[start:]
            offset += start
        if fault is not None:
            kind, detail = fault
            self.truncation = Truncation(kind=kind, offset=offset, line=number + 1,
                                         detail=detail)
        elif carry:
            excerpt = carry[:80].decode("utf-8", "replace")
            self.truncation = Truncation(kind="partial_last_line", offset=offset,
                                         line=number + 1, detail=f"no newline after {excerpt!r}")


class IssueTally:
    """Counted problems per (file, kind), keeping the first position and detail of each."""

    def __init__(self) -> None:
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
        where = f"line {line}: " if line is not None else ""
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
