"""Zeek logs (TSV or JSON, plain or gzip, files or rotated directories) to columnar batches.

:class:`ZeekLogReader` streams conn.log and the long-connection logs
(``conn_long``, ``open_conn``) into :class:`pyarrow.RecordBatch` es with
:data:`egress.columns.CONN_SCHEMA`: typed, normalized (unset is null), each row
with its line and each batch with its file (see :mod:`egress.columns`). Memory
stays flat in the file size: files are read in chunks of ``chunk_bytes``, a
few chunks at a time are parsed on a small thread pool (pyarrow releases the
GIL), and batches are yielded in file order.

Formats are told from content, never from the file name: a TSV log starts
with Zeek's ``#separator`` header (after an optional btest banner), a JSON log
with ``{``. btest baselines mask ``ts`` as ``XXXXXXXXXX.XXXXXX``: such rows are
kept with a null ``ts`` and counted as ``masked_ts`` issues.

Bad input is counted, not raised (:attr:`ZeekLogReader.stats`): malformed lines
(``wrong_column_count``, ``bad_value``, ``bad_address``, ``bad_json``,
``blank_line``), a half-written last line (``partial_last_line``, dropped: the
next read of the live file will see it whole; a JSON line that parses is
complete and kept), a truncated gzip file (``truncated_gzip``: every complete
line before the break is kept), data lines before any ``#fields`` (``no_header``), a
header block of another log inside the file (``other_log``), an empty file
(``empty_file``). Each issue names the file, counts the lines
and gives the first line number (``first_offset``) and a few more
(``detail``). A file that is not a Zeek log at all, or holds another log than
asked for, raises :class:`~egress.errors.SourceError` naming it, after the
batches of the files before it were yielded.

Long connections: see :mod:`egress.sources.zeek_longconn` for the increments
(``delta_*``), the bounded per-uid state and the ordering assumption. Explicit
file arguments are read in the order given; directories are expanded with
:func:`egress.sources.zeek_files.log_files` (time order, long-connection logs
before conn.log of the same interval).

Enrichment: :meth:`ZeekLogReader.read_enrichment` / :func:`read_enrichment` read
ssl and http logs into a per-uid :class:`Enrichment`, which
:func:`attach_enrichment` joins to conn batches (see
:mod:`egress.sources.zeek_enrich` for what bounds its memory).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from egress.columns import (
    CONN_SCHEMA,
    DELTA_COLUMNS,
    META_FORMAT,
    META_LOG,
    META_PATH,
    TOTAL_COLUMNS,
)
from egress.errors import SourceError
from egress.records import Issue
from egress.sources import zeek_json, zeek_tsv
from egress.sources.zeek_enrich import (
    Enrichment,
    EnrichmentIndex,
    HttpRequest,
    attach_enrichment,
    collect_enrichment,
)
from egress.sources.zeek_fields import (
    CONN_SPEC,
    HTTP_SPEC,
    SSL_SPEC,
    LogSpec,
    ParsedRows,
    empty_rows,
    finish_rows,
)
from egress.sources.zeek_files import (
    CONN_LOGS,
    HTTP_LOGS,
    LONG_CONN_LOGS,
    SSL_LOGS,
    LogStream,
    detect_format,
    detect_log,
    log_files,
    read_head,
)
from egress.sources.zeek_longconn import LongConnTracker
from egress.sources.zeek_scan import count_lines

log = logging.getLogger(__name__)

__all__ = [
    "Enrichment",
    "EnrichmentIndex",
    "HttpRequest",
    "ZeekLogReader",
    "ZeekReadStats",
    "attach_enrichment",
    "detect_zeek_log",
    "read_enrichment",
]

CHUNK_BYTES = 8 * 1024 * 1024
#: Chunks read and parsed ahead of the one whose rows are being taken: the parsing goes on
#: while the consumer is held up (by a reduction it waits for, say), at a chunk and its
#: columns of memory each (about 20 MB for conn logs).
READ_AHEAD = 8
_NOT_LINES = frozenset({"masked_ts", "empty_file", "truncated_gzip", "enrichment_uids_dropped"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ZeekReadStats:
    """Totals of one reader so far.

    ``rows`` counts rows yielded (``interim_rows`` of them interim records);
    ``long_conn_states_expired`` counts open long connections whose state was
    dropped after ``long_conn_state_ttl_s`` without an update, and
    ``long_conn_states_open`` those still waiting for their final record.
    """

    rows: int = 0
    files: int = 0
    interim_rows: int = 0
    long_conn_states_expired: int = 0
    long_conn_states_open: int = 0
    totals_decreased: int = 0
    issues: tuple[Issue, ...] = field(default_factory=tuple)

    @property
    def skipped(self) -> int:
        """Number of lines that could not be used.

        Rows with a masked timestamp are kept, so they do not count; nor do the
        per-file issues (``empty_file``, ``truncated_gzip``) and dropped enrichment.
        """
        return sum(i.count for i in self.issues if i.kind not in _NOT_LINES)


@dataclass(slots=True)
class _IssueTally:
    count: int = 0
    lines: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Job:
    """One unit of parsing: ``buf[start:end]`` of complete lines."""

    buf: bytearray
    start: int
    end: int
    first_line: int
    n_lines: int
    header: zeek_tsv.TsvHeader | None  # None for JSON
    log: str


class ZeekLogReader:
    """Stream Zeek logs into typed Arrow record batches (see the module docstring)."""

    def __init__(self, *, batch_rows: int = 65536, long_conn_state_ttl_s: float = 86400.0,
                 chunk_bytes: int = CHUNK_BYTES, workers: int | None = None,
                 columns: Sequence[str] | None = None, read_ahead: int = READ_AHEAD) -> None:
        """Set up a reader; nothing is read until a ``read_*`` method is iterated.

        ``batch_rows`` caps the rows of a yielded batch; ``chunk_bytes`` is the
        unit of reading and parsing (memory is a few chunks, whatever the file
        size); ``workers`` parse chunks in parallel (default: up to 2 CPUs), at most
        ``read_ahead`` (at least ``workers``) ahead of the chunk being yielded.
        ``columns`` narrows conn batches to those :data:`~egress.columns.CONN_SCHEMA`
        columns (plus ``line``): the rest are not even parsed, except what the
        long-connection accounting needs (``uid``, ``ts``, ``duration_s``, totals).
        """
        if batch_rows <= 0:
            raise ValueError("batch_rows must be positive")
        if chunk_bytes < 1024:
            raise ValueError("chunk_bytes must be at least 1024")
        self._batch_rows = batch_rows
        self._chunk_bytes = chunk_bytes
        self._workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        if self._workers < 1:
            raise ValueError("workers must be at least 1")
        if read_ahead < 1:
            raise ValueError("read_ahead must be at least 1")
        self._read_ahead = max(read_ahead, self._workers)
        self._tracker = LongConnTracker(ttl_s=long_conn_state_ttl_s)
        self._conn_spec = CONN_SPEC
        self._conn_schema = CONN_SCHEMA
        if columns is not None:
            unknown = sorted(set(columns) - set(CONN_SCHEMA.names))
            if unknown:
                raise ValueError(f"not conn columns: {', '.join(unknown)}")
            keep = {*columns, "line"}
            self._conn_schema = pa.schema([f for f in CONN_SCHEMA if f.name in keep])
            needed = keep | {"uid", "ts", "duration_s", "interim", *TOTAL_COLUMNS}
            self._conn_spec = CONN_SPEC.project(needed)
        self._issues: dict[tuple[str, str], _IssueTally] = {}
        self._rows = 0
        self._files = 0
        self._interim = 0

    # ------------------------------------------------------------------ public API

    def read_conn(self, paths: Iterable[Path | str]) -> Iterator[pa.RecordBatch]:
        """Yield :data:`~egress.columns.CONN_SCHEMA` batches of conn and long-connection logs.

        ``paths`` are files (read in the order given) or Zeek log directories.
        Raises :class:`~egress.errors.SourceError` for a file that cannot be
        opened, is not a Zeek log, or is not a conn/conn_long/open_conn log.
        """
        for path in self._expand(paths, CONN_LOGS):
            yield from self._read_file(path, self._conn_spec, CONN_LOGS, self._conn_schema)

    def read_log(self, paths: Iterable[Path | str], spec: LogSpec,
                 logs: frozenset[str]) -> Iterator[pa.RecordBatch]:
        """Yield batches of ``spec.schema`` from files holding one of ``logs``."""
        for path in self._expand(paths, logs):
            yield from self._read_file(path, spec, logs, spec.schema)

    def read_enrichment(self, paths: Iterable[Path | str], *,
                        since: pa.TimestampScalar | None = None,
                        until: pa.TimestampScalar | None = None,
                        max_uids: int | None = None) -> dict[str, Enrichment]:
        """Per-uid enrichment from ssl/open_ssl and http/open_http logs.

        Only records with ``since <= ts < until`` are used (when given), so a
        caller can bound memory to the window being processed: the result is a
        dict keyed by uid, about 200 bytes per connection. With ``max_uids``,
        uids beyond that many are not added and are counted as
        ``enrichment_uids_dropped`` issues.
        """
        files = list(self._expand(paths, SSL_LOGS | HTTP_LOGS))
        ssl = [p for p in files if self._log_of(p) in SSL_LOGS]
        http = [p for p in files if p not in ssl]

        def windows(spec: LogSpec, logs: frozenset[str], group: list[Path]) -> Iterator[
                pa.RecordBatch]:
            for batch in self.read_log(group, spec, logs):
                yield _time_window(batch, since, until)

        result, dropped = collect_enrichment(
            windows(SSL_SPEC, SSL_LOGS, ssl), windows(HTTP_SPEC, HTTP_LOGS, http),
            max_uids=max_uids)
        if dropped:
            self._note("enrichment", "enrichment_uids_dropped", dropped, [])
        return result

    @property
    def stats(self) -> ZeekReadStats:
        """Totals so far, with per-file issues."""
        issues = tuple(
            Issue(path=path, kind=kind, count=t.count,
                  first_offset=t.lines[0] if t.lines else None,
                  detail=("lines " + ", ".join(map(str, t.lines))) if t.lines else "")
            for (path, kind), t in self._issues.items()
        )
        return ZeekReadStats(
            rows=self._rows, files=self._files, interim_rows=self._interim,
            long_conn_states_expired=self._tracker.expired,
            long_conn_states_open=self._tracker.open_states,
            totals_decreased=self._tracker.decreased, issues=issues,
        )

    # ------------------------------------------------------------------ files

    def _expand(self, paths: Iterable[Path | str], logs: frozenset[str]) -> Iterator[Path]:
        for p in paths:
            path = Path(p)
            if path.is_dir():
                yield from log_files(path, logs)
            else:
                yield path

    def _log_of(self, path: Path) -> str | None:
        try:
            return detect_log(path)
        except SourceError:
            return None

    def _read_file(self, path: Path, spec: LogSpec, logs: frozenset[str],
                   out_schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        head = read_head(path)
        self._files += 1
        if not head:
            self._note(str(path), "empty_file", 1, [])
            return
        fmt = detect_format(head)
        kind = detect_log(path, head) if fmt is not None else None
        if fmt is None or kind is None:
            raise SourceError("not a Zeek log (no #separator header, no JSON object)", path=path)
        if kind not in logs:
            raise SourceError(f"holds the Zeek {kind!r} log, expected one of "
                              f"{', '.join(sorted(logs))}", path=path)
        meta = {META_PATH: str(path).encode(), META_LOG: kind.encode(),
                META_FORMAT: fmt.encode()}
        schema = out_schema.with_metadata(meta)
        parse: Callable[[_Job], ParsedRows]
        if fmt == "tsv":
            def parse(job: _Job) -> ParsedRows:
                assert job.header is not None
                if job.header.path is not None and job.header.path not in logs:
                    # A block of another log inside this file (concatenated logs).
                    rows = empty_rows()
                    rows.note("other_log",
                              list(range(job.first_line, job.first_line + job.n_lines)))
                    return finish_rows(rows, spec, {})
                return zeek_tsv.parse_segment(job.buf, job.start, job.end, job.first_line,
                                              job.n_lines, job.header, spec)
        else:
            def parse(job: _Job) -> ParsedRows:
                return zeek_json.parse_chunk(job.buf, job.start, job.end, job.first_line,
                                             job.n_lines, spec)
        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            pending: deque[tuple[_Job, Future[ParsedRows]]] = deque()
            free: list[bytearray] = []

            def finish_one() -> Iterator[pa.RecordBatch]:
                done_job, fut = pending.popleft()
                rows = fut.result()
                if not any(job.buf is done_job.buf for job, _ in pending):
                    free.append(done_job.buf)  # parsed columns never point into it
                yield from self._emit(path, done_job, rows, schema, spec)

            try:
                for job in self._jobs(path, fmt, kind, free):
                    pending.append((job, pool.submit(parse, job)))
                    while len(pending) > self._read_ahead:
                        yield from finish_one()
                while pending:
                    yield from finish_one()
            finally:
                for _, fut in pending:
                    fut.cancel()

    def _jobs(self, path: Path, fmt: str, kind: str,
              free: list[bytearray]) -> Iterator[_Job]:
        """Cut a file into jobs of complete lines; note partial and truncated tails.

        Chunk buffers come from ``free`` when the caller has returned one (no
        fresh allocation, no page faults per chunk) and are never changed while
        a job holds them.
        """
        header = zeek_tsv.TsvHeader()
        line = 1
        rest = b""
        size = self._chunk_bytes
        with LogStream(path) as stream:
            while True:
                buf = free.pop() if free and len(free[-1]) >= size else bytearray(size)
                buf[: len(rest)] = rest
                got = stream.readinto(memoryview(buf)[len(rest):])
                if got == 0:
                    break
                filled = len(rest) + got
                cut = buf.rfind(b"\n", 0, filled) + 1
                if cut == 0:  # one line longer than the buffer: grow it
                    rest = bytes(buf[:filled])
                    size = max(size, filled) * 2
                    continue
                rest = bytes(buf[cut:filled])
                if fmt == "json":
                    count = count_lines(buf, 0, cut)
                    yield _Job(buf, 0, cut, line, count, None, kind)
                    line += count
                    continue
                pos = 0
                while pos < cut:
                    if buf[pos] == 0x23:  # '#': a header directive or comment line
                        eol = buf.index(b"\n", pos)
                        header = header.feed(bytes(buf[pos:eol]))
                        pos = eol + 1
                        line += 1
                        continue
                    end = _next_directive(buf, pos, cut)
                    count = count_lines(buf, pos, end)
                    yield _Job(buf, pos, end, line, count, header, kind)
                    line += count
                    pos = end
            truncated = stream.error
        if truncated is not None:
            log.debug("%s: %s", path, truncated)
            self._note(str(path), "truncated_gzip", 1, [line])
        elif rest.strip():
            if fmt == "json":
                # A JSON line that parses is complete even without its newline.
                yield _Job(bytearray(rest + b"\n"), 0, len(rest) + 1, line, 1, None, "partial")
            else:
                self._note(str(path), "partial_last_line", 1, [line])

    def _emit(self, path: Path, job: _Job, rows: ParsedRows, schema: pa.Schema,
              spec: LogSpec) -> Iterator[pa.RecordBatch]:
        for kind, (count, lines) in rows.issues.items():
            partial = job.log == "partial" and kind == "bad_json"
            self._note(str(path), "partial_last_line" if partial else kind, count, lines)
        n = rows.num_rows
        if not n:
            return
        cols = rows.columns
        # Buffers, not pa.array()/pa.scalar(): those import pandas (0.2 s) on first use.
        numbers = np.ascontiguousarray(rows.lines, dtype=np.int64)
        cols["line"] = pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(numbers)])
        if spec.name == "conn":
            log_kind = job.header.path if job.header is not None and job.header.path else None
            long_log = (log_kind or schema.metadata[META_LOG].decode()) in LONG_CONN_LOGS
            interim = _constant_bools(n, long_log)
            if not long_log and cols["interim"].null_count < n:
                given = cols["interim"]
                interim = pc.if_else(pc.is_valid(given), given, interim)
            cols["interim"] = interim
            deltas, since = self._tracker.increments(cols, interim)
            for name, delta in zip(DELTA_COLUMNS, deltas, strict=True):
                cols[name] = delta
            cols["delta_since"] = since
            self._interim += int(pc.sum(interim.cast(pa.int64())).as_py() or 0)
        batch = pa.RecordBatch.from_arrays([cols[f.name] for f in schema], schema=schema)
        self._rows += n
        for start in range(0, n, self._batch_rows):
            yield batch.slice(start, self._batch_rows)

    def _note(self, path: str, kind: str, count: int, lines: list[int]) -> None:
        tally = self._issues.setdefault((path, kind), _IssueTally())
        tally.count += count
        tally.lines.extend(lines[: max(0, 5 - len(tally.lines))])


def _constant_bools(n: int, value: bool) -> pa.Array:
    bits = np.full((n + 7) // 8, 0xFF if value else 0, dtype=np.uint8)
    return pa.Array.from_buffers(pa.bool_(), n, [None, pa.py_buffer(bits)])


def _next_directive(buf: bytearray, pos: int, cut: int) -> int:
    """Offset of the next line starting with ``#`` in ``buf[pos:cut]``, else ``cut``.

    Searches for the rare ``#`` (memchr speed) rather than for ``\\n#``.
    """
    at = buf.find(b"#", pos, cut)
    while at >= 0 and buf[at - 1] != 0x0A:
        at = buf.find(b"#", at + 1, cut)
    return cut if at < 0 else at


def _time_window(batch: pa.RecordBatch, since: pa.TimestampScalar | None,
                 until: pa.TimestampScalar | None) -> pa.RecordBatch:
    if since is None and until is None:
        return batch
    ts = batch.column("ts")
    keep = pa.array([True] * batch.num_rows)
    if since is not None:
        keep = pc.and_(keep, pc.greater_equal(ts, since))
    if until is not None:
        keep = pc.and_(keep, pc.less(ts, until))
    return batch.filter(pc.fill_null(keep, False))


def detect_zeek_log(path: Path | str) -> str | None:
    """Which Zeek log a file holds (``conn``, ``conn_long``, ``ssl``, ``http``, ...).

    Told from the TSV ``#path`` (or ``#fields``), or from a JSON log's
    ``_path`` or keys (the file name tells ``conn`` from ``conn_long`` and
    ``open_conn``, whose keys are the same). ``None`` if it is not a Zeek log.
    Raises :class:`~egress.errors.SourceError` if the file cannot be opened.
    """
    return detect_log(Path(path))


def read_enrichment(paths: Iterable[Path | str], *, since: pa.TimestampScalar | None = None,
                    until: pa.TimestampScalar | None = None,
                    max_uids: int | None = None) -> dict[str, Enrichment]:
    """Per-uid enrichment (SNI, HTTP requests) from ssl and http logs or directories.

    See :meth:`ZeekLogReader.read_enrichment`; use a reader to see the issues.
    """
    return ZeekLogReader().read_enrichment(paths, since=since, until=until, max_uids=max_uids)
