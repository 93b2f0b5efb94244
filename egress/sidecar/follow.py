"""Follow growing log files: new complete lines since a durable mark, across rotation.

A :class:`FileMark` says where a file was left: its identity (``st_dev``, ``st_ino``), the
bytes and complete lines consumed, its first bytes (to tell a reused inode or a rewrite
from growth) and, for Zeek TSV logs, its header lines (put before each later chunk so the
Zeek reader parses it as it parses the whole file). :meth:`Follower.poll` compares the
marks with what is on disk and returns the new data as :class:`Chunk` s together with the
marks to keep *once the chunks are stored*; the caller commits both at once
(:mod:`egress.sidecar.state`), so a crash re-reads a chunk instead of losing or doubling it.

Rotation:

* a new file in a followed directory is read from its start;
* a file renamed (the same identity under another name, e.g. into a Zeek archive
  directory) is followed on from its mark;
* a file shorter than its mark, or whose first bytes changed, was truncated or rewritten:
  it is read again from its start (counted in :attr:`PollResult.truncations`);
* a gzip file is read once, in full, when it decompresses completely (one still being
  written is left for a later poll). When its Zeek header (``#path`` and ``#open``) is
  that of a plain file already followed (Zeek's archiver compresses the rotated
  ``conn.log`` into ``conn.<interval>.log.gz``), only what the plain file had not yet
  given is read.

Only complete lines are returned (the rest waits for its newline), except the unterminated
last line of a complete gzip file. In *whole-file* mode (logs whose readers correlate lines:
drive kernel logs, copy logs) a chunk only says that the file changed and ends with a
complete line: the caller reads the whole file again. A whole file that got shorter or
whose first bytes changed starts a new *generation*: the caller keeps what it read from
the earlier content (a ``copytruncate`` rotation must not erase drives already seen).
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

log = logging.getLogger(__name__)

HEAD_BYTES = 256
MAX_CHUNK_BYTES = 64 * 1024 * 1024
"""Most bytes read from one file per poll (the rest waits for the next poll)."""
MAX_GONE = 256
"""Marks of vanished Zeek files kept to match their gzip archives."""
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True, kw_only=True)
class FileMark:
    """Where a followed file was left (module doc). ``offset`` counts bytes of the
    decompressed stream for gzip files; ``gone``: the file vanished (kept for its archive)."""

    dev: int
    ino: int
    path: str
    offset: int = 0
    lines: int = 0
    head: bytes = b""
    header: bytes = b""
    size: int = 0
    mtime_ns: int = 0
    done: bool = False
    gone: bool = False
    generation: int = 0
    """Whole-file mode: how often the file was truncated or rewritten (new content)."""

    @property
    def identity(self) -> str:
        """``dev:ino``, the key of the mark."""
        return f"{self.dev}:{self.ino}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """New data of one file: ``data`` holds complete lines starting at line ``first_line``
    (1-based) of ``path``; ``header`` is to be put before it (empty when ``data`` starts
    the file). ``whole``: read the whole file again (whole-file mode; ``data`` is empty)."""

    path: Path
    identity: str
    data: bytes
    first_line: int
    header: bytes = b""
    whole: bool = False
    generation: int = 0
    """Whole-file mode: the mark's generation (a new one: the old content is gone)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PollResult:
    """What one poll found; ``marks`` replaces the old marks once the chunks are stored."""

    chunks: tuple[Chunk, ...]
    marks: dict[str, FileMark]
    truncations: int = 0
    waiting: int = 0
    """Files with data not returned yet: a gzip still being written, or more than
    :data:`MAX_CHUNK_BYTES` left."""


class Follower:
    """Follows the files ``list_files()`` returns, in that order (module doc)."""

    def __init__(self, list_files: Callable[[], Sequence[Path]], *, whole_file: bool = False,
                 max_chunk_bytes: int = MAX_CHUNK_BYTES) -> None:
        if max_chunk_bytes < 1:
            raise ValueError("max_chunk_bytes must be positive")
        self._list = list_files
        self._whole = whole_file
        self._max = max_chunk_bytes

    def poll(self, marks: Mapping[str, FileMark]) -> PollResult:
        """New chunks of every file since ``marks``, and the marks after them.

        ``marks`` is not changed. Files that cannot be read now (vanished between listing
        and opening, permission denied) are skipped with a log line and tried again later.
        """
        old = dict(marks)
        new: dict[str, FileMark] = {}
        chunks: list[Chunk] = []
        truncations = waiting = 0
        for path in self._list():
            try:
                st = path.stat()
            except OSError as exc:
                log.warning("%s: cannot stat: %s", path, exc.strerror)
                continue
            identity = f"{st.st_dev}:{st.st_ino}"
            if identity in new:  # the same file listed twice (a hard link)
                continue
            mark = old.pop(identity, None)
            fresh = FileMark(dev=st.st_dev, ino=st.st_ino, path=str(path))
            mark = fresh if mark is None else replace(mark, path=str(path), gone=False)
            try:
                if self._whole:
                    chunk, mark = self._whole_file(path, mark, st)
                elif _is_gzip(path):
                    chunk, mark, wait = self._gzip(path, mark, old)
                    waiting += wait
                else:
                    chunk, mark, cut, more = self._plain(path, mark, fresh)
                    truncations += cut
                    waiting += more
            except OSError as exc:
                log.warning("%s: cannot read: %s", path, exc.strerror or exc)
                if identity in marks:
                    new[identity] = marks[identity]
                continue
            new[identity] = mark
            if chunk is not None:
                chunks.append(chunk)
        # Vanished Zeek files are remembered for their gzip archives, a bounded number.
        gone = [replace(m, gone=True) for m in old.values() if m.header and not m.done]
        for mark in gone[-MAX_GONE:]:
            new[mark.identity] = mark
        return PollResult(chunks=tuple(chunks), marks=new, truncations=truncations,
                          waiting=waiting)

    def _plain(self, path: Path, mark: FileMark,
               fresh: FileMark) -> tuple[Chunk | None, FileMark, int, int]:
        cut = 0
        with path.open("rb") as fh:
            st = os.fstat(fh.fileno())
            if f"{st.st_dev}:{st.st_ino}" != mark.identity:
                return None, mark, 0, 1  # replaced between stat and open: next poll
            if mark.offset:
                head = fh.read(len(mark.head))
                if st.st_size < mark.offset or head != mark.head:
                    log.info("%s: truncated or rewritten; reading it again from the start",
                             path)
                    mark, cut = fresh, 1
            if st.st_size <= mark.offset:
                return None, replace(mark, size=st.st_size, mtime_ns=st.st_mtime_ns), cut, 0
            fh.seek(mark.offset)
            data = fh.read(self._max)
        end = data.rfind(b"\n") + 1
        more = int(mark.offset + len(data) < st.st_size)
        if end == 0:
            return None, mark, cut, more
        data = data[:end]
        updated = replace(
            mark, offset=mark.offset + end, lines=mark.lines + data.count(b"\n"),
            size=st.st_size, mtime_ns=st.st_mtime_ns,
            head=mark.head if len(mark.head) >= HEAD_BYTES or mark.offset else data[:HEAD_BYTES],
            header=mark.header if mark.offset else _header(data))
        chunk = Chunk(path=path, identity=mark.identity, data=data, first_line=mark.lines + 1,
                      header=mark.header if mark.offset else b"")
        return chunk, updated, cut, more

    def _gzip(self, path: Path, mark: FileMark,
              others: dict[str, FileMark]) -> tuple[Chunk | None, FileMark, int]:
        if mark.done:
            return None, mark, 0
        try:
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            log.debug("%s: not complete yet: %s", path, exc)
            return None, mark, 1
        header = _header(data)
        start = lines = 0
        before = _same_log(header, others)
        if before is not None:  # the archive of a file followed while it was live
            others.pop(before.identity)
            start, lines = before.offset, before.lines
            log.info("%s: archive of %s; %d bytes already read", path, before.path, start)
        done = replace(mark, done=True, offset=len(data), lines=lines + data.count(b"\n"),
                       header=header, head=data[:HEAD_BYTES])
        rest = data[start:]
        if not rest:
            return None, done, 0
        return (Chunk(path=path, identity=mark.identity, data=rest, first_line=lines + 1,
                      header=header if start else b""), done, 0)

    def _whole_file(self, path: Path, mark: FileMark,
                    st: os.stat_result) -> tuple[Chunk | None, FileMark]:
        if mark.size == st.st_size and mark.mtime_ns == st.st_mtime_ns and mark.done:
            return None, mark
        if _is_gzip(path):
            try:
                with gzip.open(path, "rb") as fh:
                    while fh.read(1 << 20):
                        pass
            except (EOFError, zlib.error, gzip.BadGzipFile):
                return None, mark
        head = b""
        if st.st_size:
            with path.open("rb") as fh:
                head = fh.read(HEAD_BYTES)
                fh.seek(st.st_size - 1)
                if not _is_gzip(path) and fh.read(1) != b"\n":
                    return None, mark  # a line is being written: wait for it
        generation = mark.generation
        if mark.done and (st.st_size < mark.size or head[:len(mark.head)] != mark.head):
            generation += 1  # truncated or rewritten: what was read before stays counted
        updated = replace(mark, size=st.st_size, mtime_ns=st.st_mtime_ns, done=True,
                          offset=st.st_size, head=head, generation=generation)
        return (Chunk(path=path, identity=mark.identity, data=b"", first_line=1, whole=True,
                      generation=generation), updated)


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def _header(data: bytes) -> bytes:
    """The leading ``#`` lines of a file's start (a Zeek TSV header), else empty."""
    end = 0
    while data.startswith(b"#", end):
        eol = data.find(b"\n", end)
        if eol < 0:
            break
        end = eol + 1
    return data[:end]


def _zeek_key(header: bytes) -> tuple[bytes, ...] | None:
    keep = tuple(line for line in header.split(b"\n")
                 if line.startswith((b"#path", b"#open")))
    return keep if len(keep) == 2 else None


def _same_log(header: bytes, marks: Mapping[str, FileMark]) -> FileMark | None:
    """A plain file followed before whose Zeek ``#path`` and ``#open`` match ``header``."""
    key = _zeek_key(header)
    if key is None:
        return None
    for mark in marks.values():
        if not mark.done and mark.header and _zeek_key(mark.header) == key:
            return mark
    return None
