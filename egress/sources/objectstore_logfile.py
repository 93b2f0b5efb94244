"""Object-store log files: the shared vocabulary, the volume rule and the reader shape.

The three object-store log readers (:mod:`~egress.sources.objectstore_s3`,
:mod:`~egress.sources.objectstore_minio`, :mod:`~egress.sources.objectstore_ceph`) share
this module: it names the stores and the normalized operations, holds the rule that
decides how much volume a request added to the store, builds request records, and
reads a log file with a per-format line parser, counting per-line parse failures as
:class:`~egress.records.Issue` values. Opening (plain or gzip), line streaming and
issue counting are :mod:`egress.sources.logfile`'s.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from egress.records import Issue, ObjectStoreRequest, Provenance
from egress.sources.logfile import (
    CHUNK_BYTES,
    PARTIAL_LAST_LINE,
    BlockSource,
    IssueTally,
    LineBlock,
    Truncation,
)

STORE_S3 = "s3"
STORE_MINIO = "minio"
STORE_CEPH = "ceph-rgw"

PUT_OBJECT = "put_object"
PUT_PART = "put_part"
COMPLETE_MULTIPART = "complete_multipart"
COPY_OBJECT = "copy_object"
GET_OBJECT = "get_object"
DELETE_OBJECT = "delete_object"
OTHER = "other"

VOLUME_OPERATIONS = frozenset({PUT_OBJECT, PUT_PART, COPY_OBJECT})
"""Normalized operations whose successful requests add their size to the store."""

UPLOAD_SIZE_UNKNOWN = "upload_size_unknown"
OVERSIZED_LINE = "oversized_line"

MAX_LINE_BYTES = 16 << 20
"""A longer line is skipped (and counted), so memory stays bounded on binary input."""
SNIFF_BYTES = 64 * 1024
SNIFF_LINES = 50
_LABEL = "object-store log"


_REQUEST_FIELDS = ("time", "store", "operation", "raw_operation", "bucket", "key", "status",
                   "bytes_in", "object_size_bytes", "remote_addr", "requester", "user_agent",
                   "request_id", "provenance")
_PROVENANCE_FIELDS = ("path", "line", "offset")
if (tuple(f.name for f in fields(ObjectStoreRequest)) != _REQUEST_FIELDS
        or tuple(f.name for f in fields(Provenance)) != _PROVENANCE_FIELDS):
    raise ImportError("egress.records changed: update new_request() in " + __name__)

_new = object.__new__
(_set_time, _set_store, _set_operation, _set_raw_operation, _set_bucket, _set_key, _set_status,
 _set_bytes_in, _set_object_size, _set_remote_addr, _set_requester, _set_user_agent,
 _set_request_id, _set_provenance) = (getattr(ObjectStoreRequest, n).__set__
                                      for n in _REQUEST_FIELDS)
_set_path, _set_line, _set_offset = (getattr(Provenance, n).__set__ for n in _PROVENANCE_FIELDS)


def new_request(time: datetime, store: str, operation: str, raw_operation: str,
                bucket: str | None, key: str | None, status: int | None, bytes_in: int,
                object_size_bytes: int | None, remote_addr: str | None, requester: str | None,
                user_agent: str | None, request_id: str | None, path: str,
                line: int | None) -> ObjectStoreRequest:
    """Build an :class:`ObjectStoreRequest` with its :class:`Provenance` (path, line).

    Equal to calling the two constructors, three times faster: it fills the slots
    of the frozen dataclasses directly instead of through their generated
    ``__init__`` (which goes through ``object.__setattr__`` once per field), and
    constructing records is most of the cost of reading a log line. The field
    lists are checked against :mod:`egress.records` at import.
    """
    prov = _new(Provenance)
    _set_path(prov, path)
    _set_line(prov, line)
    _set_offset(prov, None)
    rec = _new(ObjectStoreRequest)
    _set_time(rec, time)
    _set_store(rec, store)
    _set_operation(rec, operation)
    _set_raw_operation(rec, raw_operation)
    _set_bucket(rec, bucket)
    _set_key(rec, key)
    _set_status(rec, status)
    _set_bytes_in(rec, bytes_in)
    _set_object_size(rec, object_size_bytes)
    _set_remote_addr(rec, remote_addr)
    _set_requester(rec, requester)
    _set_user_agent(rec, user_agent)
    _set_request_id(rec, request_id)
    _set_provenance(rec, prov)
    return rec


class MalformedLine(ValueError):
    """A line (or entry) that is not a record of the format being read; carries the reason.

    ``position`` is the character offset in the text where decoding failed, when known.
    """

    def __init__(self, reason: str, *, position: int | None = None) -> None:
        super().__init__(reason)
        self.position = position


LineParser = Callable[[str, str, int], Sequence[ObjectStoreRequest]]
"""Parse one line: ``(text, path, line_number) -> records``; raises :class:`MalformedLine`."""


def volume_bytes(operation: str, status: int | None, size: int | None) -> int:
    """Return the bytes a request added to the store (``bytes_in``).

    The size of a put, part or copy counts unless the request failed (HTTP status
    400 or above); an unknown status is taken as success, as the logs only omit it
    for requests that were answered normally. Everything else adds 0, including a
    multipart completion, whose parts were already counted.
    """
    if operation not in VOLUME_OPERATIONS or size is None:
        return 0
    if status is not None and status >= 400:
        return 0
    return size


def parse_iso_time(text: str) -> datetime:
    """Parse an ISO 8601 / RFC 3339 time as tz-aware UTC; a time without offset is UTC.

    Fractions finer than microseconds (MinIO writes nanoseconds) are truncated.
    Raises :class:`MalformedLine` when the text is not such a time.
    """
    try:
        value = datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise MalformedLine(f"bad time {text!r}") from exc
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def entry_time(entry: Mapping[str, Any]) -> datetime:
    """Return the ``time`` of a decoded JSON log entry (see :func:`parse_iso_time`).

    Raises :class:`MalformedLine` when the entry has no ``time`` string or it is
    not an ISO 8601 time.
    """
    stamp = entry.get("time")
    if not isinstance(stamp, str):
        raise MalformedLine("no time")
    return parse_iso_time(stamp)


def none_if_blank(value: object) -> str | None:
    """Return ``value`` if it is a non-empty string other than ``-``, else ``None``."""
    if isinstance(value, str) and value and value != "-":
        return value
    return None


def int_or_none(value: object) -> int | None:
    """Return ``value`` as a non-negative int (JSON number or digit string), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def json_values(text: str, start: int = 0) -> Iterator[tuple[int, Any]]:
    """Yield ``(position, value)`` for each JSON value in ``text[start:]``.

    Whitespace, commas and square brackets between values are skipped, so one
    object per line, several objects on one line (``}{``), a JSON array of objects
    and the never-closed array a Ceph ops-log socket streams all yield their
    objects. Raises :class:`MalformedLine` (with ``position``) at the first text
    that is not JSON, after the values before it were yielded.
    """
    decoder = json.JSONDecoder()
    pos, end = start, len(text)
    while True:
        while pos < end and text[pos] in " \t\r\n,[]":
            pos += 1
        if pos >= end:
            return
        try:
            value, stop = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise MalformedLine(f"not JSON: {exc.msg} (character {exc.pos + 1})",
                                position=exc.pos) from exc
        yield pos, value
        pos = stop


def json_line_objects(text: str) -> list[Any]:
    """Decode a JSON-lines line into its values (usually one object).

    Fast path: the line is one JSON value, optionally wrapped as an element of a
    streamed array (leading ``[``, trailing ``,`` or ``]``). Otherwise falls back to
    :func:`json_values`. Raises :class:`MalformedLine`.
    """
    body = text.strip()
    if body[:1] == "[":
        body = body[1:]
    body = body.rstrip(",] \t")
    if not body:
        return []
    try:
        return [json.loads(body)]
    except ValueError:
        return [value for _, value in json_values(text)]


def new_tally() -> IssueTally:
    """An issue tally whose details start ``first at line N: ``, as object-store issues do."""
    return IssueTally(line_prefix="first at line ")


def iter_blocks(path: Path, tally: IssueTally | None = None, *,
                limit: int | None = None) -> Iterator[LineBlock]:
    """Stream ``path`` as blocks of whole lines, in bounded memory.

    A file whose last line has no newline ends with a block whose ``terminated``
    is false. A gzip stream that breaks off (truncated or corrupt) ends the file:
    every line decompressed before the fault is yielded, and the fault is counted
    in ``tally`` (``truncated_gzip`` / ``corrupt_gzip``). A line longer than
    :data:`MAX_LINE_BYTES` is skipped and counted as ``oversized_line``. ``limit``
    stops after that many decoded bytes (for sniffing). Raises
    :class:`~egress.errors.SourceError` only if the file cannot be opened.
    """
    spath = str(path)

    def on_fault(fault: Truncation) -> None:
        if tally is not None:
            tally.add(spath, fault.kind, offset=source.decoded_bytes, line=fault.line,
                      detail=f"compressed data ends or breaks here ({fault.detail}); "
                             "the lines before it were read")

    def on_oversized(offset: int, line: int) -> None:
        if tally is not None:
            tally.add(spath, OVERSIZED_LINE, offset=offset, line=line,
                      detail=f"line longer than {MAX_LINE_BYTES} bytes skipped")

    source = BlockSource(path, label=_LABEL, chunk_bytes=CHUNK_BYTES,
                         max_line_bytes=MAX_LINE_BYTES, limit=limit, on_fault=on_fault,
                         on_oversized=on_oversized)
    return iter(source)


def sniff_lines(path: Path, tally: IssueTally | None = None) -> list[str]:
    """Return up to the first :data:`SNIFF_LINES` non-blank lines, for format detection.

    Reads at most :data:`SNIFF_BYTES` decoded bytes; a line cut off by that limit is
    left out unless it is the only one. A gzip fault ends the sample and is counted
    in ``tally``. Raises :class:`~egress.errors.SourceError` if the file cannot be
    opened.
    """
    lines: list[str] = []
    for block in iter_blocks(path, tally, limit=SNIFF_BYTES):
        texts = block.texts if block.terminated or not lines else block.texts[:-1]
        lines.extend(t for t in texts if t and not t.isspace())
        if len(lines) >= SNIFF_LINES:
            break
    return lines[:SNIFF_LINES]


def flag_unknown_size(record: ObjectStoreRequest, tally: IssueTally) -> None:
    """Count a successful upload or copy whose size the log does not give."""
    if (record.object_size_bytes is None and record.bytes_in == 0
            and record.operation in VOLUME_OPERATIONS
            and (record.status is None or record.status < 400)):
        prov = record.provenance
        tally.add(prov.path, UPLOAD_SIZE_UNKNOWN, offset=prov.offset, line=prov.line,
                  detail=f"{record.raw_operation} succeeded but the log gives no size; "
                         "counted as 0 bytes")


def read_log_file(path: Path, *, parse: LineParser, malformed_kind: str,
                  tally: IssueTally) -> Iterator[ObjectStoreRequest]:
    """Yield the records of one log file, counting bad lines in ``tally``.

    Blank lines are skipped. A line ``parse`` rejects is counted as
    ``malformed_kind``; a rejected last line without a newline (a file still being
    written, or cut off by a truncated gzip stream) is counted as
    ``partial_last_line`` instead. Raises :class:`~egress.errors.SourceError` only
    if the file cannot be opened.
    """
    spath = str(path)
    for block in iter_blocks(path, tally):
        last = len(block.texts) - 1
        lineno = block.first_line
        for index, text in enumerate(block.texts):
            try:
                records = parse(text, spath, lineno + index)
            except MalformedLine as exc:
                if not text or text.isspace():
                    continue
                kind = malformed_kind if block.terminated or index != last else PARTIAL_LAST_LINE
                tally.add(spath, kind, offset=block.offset_of(index), line=lineno + index,
                          detail=str(exc))
                continue
            for record in records:
                if record.bytes_in == 0:
                    flag_unknown_size(record, tally)
                yield record


class LogFileReader(ABC):
    """Read log files of one object-store format into :class:`ObjectStoreRequest` records.

    The shape every object-store reader shares: :meth:`read` streams records in
    file and line order, in bounded memory; :attr:`issues` lists what could not be
    used (counted per file and kind, with the first position), complete once the
    iterator is exhausted. Unreadable files raise
    :class:`~egress.errors.SourceError`; bad content never does.
    """

    store: ClassVar[str]
    malformed_kind: ClassVar[str]

    def __init__(self) -> None:
        self._tally = new_tally()

    @abstractmethod
    def parse_line(self, text: str, path: str, line: int) -> Sequence[ObjectStoreRequest]:
        """Parse one line of this format; raises :class:`MalformedLine`."""

    def read(self, paths: Iterable[Path | str]) -> Iterator[ObjectStoreRequest]:
        """Yield the records of ``paths``, file by file, in line order."""
        for p in paths:
            yield from read_log_file(Path(p), parse=self.parse_line,
                                     malformed_kind=self.malformed_kind, tally=self._tally)

    @property
    def issues(self) -> list[Issue]:
        """Problems found so far: malformed lines, partial last lines, gzip faults."""
        return list(self._tally.issues)
