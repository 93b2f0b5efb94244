"""Object-store access logs (S3, MinIO, Ceph RGW) to normalized request records.

Each supported log becomes a stream of :class:`~egress.records.ObjectStoreRequest`
records with the same meaning whatever the store: ``operation`` normalized
(``put_object``, ``put_part``, ``complete_multipart``, ``copy_object``,
``get_object``, ``delete_object``, ``other``), times in UTC, ``None`` for what a
log does not say, and ``bytes_in`` the volume a request added to the store: the
size of a successful upload, part or copy; 0 for a failed request (status 400 or
above), a read, and a multipart completion (its parts were counted).

Every reader has the same shape
(:class:`~egress.sources.objectstore_logfile.LogFileReader`): ``read(paths)`` streams
records file by file in line order, in bounded memory; ``issues`` then lists what
could not be used, counted per file and kind with the first place (``first_offset``
is the byte offset in the decoded file; ``detail`` starts with the line number).
Files may be gzip (detected by magic). Bad content is never fatal: malformed lines
(``malformed_s3_line``, ``malformed_minio_line``, ``malformed_ceph_line``), a
half-written last line (``partial_last_line``), a truncated or corrupt gzip stream
(``truncated_gzip``, ``corrupt_gzip``; the lines before it are kept), a line over
16 MiB (``oversized_line``) and a successful upload whose size the log does not
give (``upload_size_unknown``) are counted. :class:`~egress.errors.SourceError` is
raised only for a file that cannot be opened, or (by :class:`ObjectStoreLogReader`)
whose content is none of the supported formats.

Readers: :class:`S3AccessLogReader` (S3 server access logs, detected as ``s3``),
:class:`MinioAuditLogReader` (MinIO audit logs, ``minio``), :class:`CephOpsLogReader`
(Ceph RGW ops logs, ``ceph-rgw``), and :class:`ObjectStoreLogReader`, which detects
the format of each file with :func:`detect_objectstore_log`. MinIO audit webhook
bodies are parsed with :func:`parse_minio_webhook_body`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from egress.errors import SourceError
from egress.records import Issue, ObjectStoreRequest
from egress.sources.objectstore_ceph import CephOpsLogReader, looks_like_ceph_entry
from egress.sources.objectstore_logfile import (
    STORE_CEPH,
    STORE_MINIO,
    STORE_S3,
    LogFileReader,
    MalformedLine,
    json_line_objects,
    new_tally,
    read_log_file,
    sniff_lines,
)
from egress.sources.objectstore_minio import (
    MinioAuditLogReader,
    looks_like_minio_entry,
    parse_minio_webhook_body,
)
from egress.sources.objectstore_s3 import S3AccessLogReader, looks_like_s3_line

__all__ = [
    "FORMATS",
    "CephOpsLogReader",
    "LogFileReader",
    "MinioAuditLogReader",
    "ObjectStoreLogReader",
    "S3AccessLogReader",
    "detect_objectstore_log",
    "parse_minio_webhook_body",
]

log = logging.getLogger(__name__)

FORMATS = (STORE_S3, STORE_MINIO, STORE_CEPH)
"""The names :func:`detect_objectstore_log` returns, also each record's ``store``."""


def _classify(text: str) -> str | None:
    if looks_like_s3_line(text):
        return STORE_S3
    if "{" not in text:
        return None
    try:
        values = json_line_objects(text)
    except MalformedLine:
        return None
    for value in values:
        if looks_like_minio_entry(value):
            return STORE_MINIO
        if looks_like_ceph_entry(value):
            return STORE_CEPH
    return None


def _sniff(path: Path) -> tuple[str | None, list[str], list[Issue]]:
    tally = new_tally()
    lines = sniff_lines(path, tally)
    for text in lines:
        fmt = _classify(text)
        if fmt is not None:
            return fmt, lines, list(tally.issues)
    return None, lines, list(tally.issues)


def detect_objectstore_log(path: Path | str) -> str | None:
    """Return the format of an object-store log from its content, or ``None``.

    Looks at the first lines (up to 50, within the first 64 KiB, gunzipped if the
    file is gzip) and returns the format of the first one that is a record:
    ``"s3"``, ``"minio"`` or ``"ceph-rgw"``. ``None`` for an empty file or one
    whose first lines are none of these. Raises
    :class:`~egress.errors.SourceError` if the file cannot be opened.
    """
    return _sniff(Path(path))[0]


class ObjectStoreLogReader:
    """Read object-store logs of any supported format, detecting each file's format.

    Same shape as the per-format readers: :meth:`read` streams records, and
    :attr:`issues` counts what could not be used; :attr:`formats` tells which
    format each file was read as. All files are sniffed before the first record
    is yielded, so a file of an unknown format fails the read up front.
    """

    def __init__(self) -> None:
        self._tally = new_tally()
        self._readers: dict[str, LogFileReader] = {
            STORE_S3: S3AccessLogReader(),
            STORE_MINIO: MinioAuditLogReader(),
            STORE_CEPH: CephOpsLogReader(),
        }
        self._formats: dict[str, str] = {}

    def read(self, paths: Iterable[Path | str]) -> Iterator[ObjectStoreRequest]:
        """Yield the records of ``paths``, file by file, in line order.

        An empty file yields nothing. Raises :class:`~egress.errors.SourceError`,
        before yielding anything, for a file that cannot be opened or whose first
        lines are none of the supported formats.
        """
        plan: list[tuple[Path, str]] = []
        for p in paths:
            path = Path(p)
            fmt, lines, faults = _sniff(path)
            if fmt is None:
                if not lines and faults:
                    raise SourceError(f"cannot read object-store log ({faults[0].kind}): "
                                      "no line could be decompressed", path=path)
                if not lines:
                    log.debug("%s: empty object-store log", path)
                    continue
                hint = (" (radosgw-admin log show output is not read; use the ops-log "
                        "file or socket)" if any('"log_entries"' in t for t in lines) else "")
                raise SourceError("not an S3 server access log, MinIO audit log or Ceph RGW "
                                  "ops log" + hint, path=path)
            plan.append((path, fmt))
        return self._read_planned(plan)

    def _read_planned(self, plan: list[tuple[Path, str]]) -> Iterator[ObjectStoreRequest]:
        for path, fmt in plan:
            self._formats[str(path)] = fmt
            reader = self._readers[fmt]
            yield from read_log_file(path, parse=reader.parse_line,
                                     malformed_kind=reader.malformed_kind, tally=self._tally)

    @property
    def formats(self) -> dict[str, str]:
        """The format each file read so far was detected as, by path."""
        return dict(self._formats)

    @property
    def issues(self) -> list[Issue]:
        """Problems found so far, per file and kind, with the first place of each."""
        return list(self._tally.issues)
