"""MinIO audit log entries to :class:`~egress.records.ObjectStoreRequest` records.

MinIO sends one JSON document per request to its audit targets (``version`` "1";
``time`` in RFC 3339 with nanoseconds; ``api.name``/``bucket``/``object``/
``statusCode``/``rx``/``tx``; ``remotehost``; ``requestID``; ``userAgent``;
``requestHeader``; since 2023 a top-level ``accessKey``). Two forms are read:

* files with one entry per line (what a webhook receiver or log shipper writes),
  via :class:`MinioAuditLogReader`;
* the body of an audit webhook POST, via :func:`parse_minio_webhook_body`: one
  entry, or with ``batch_size`` > 1 several entries one per line (MinIO encodes
  each with a JSON encoder, which ends it with a newline); a JSON array is
  accepted too. The ``{}`` MinIO posts to check that the endpoint is up yields
  nothing.

Requester: ``accessKey``; for older releases, which do not log it, the access
key of ``requestClaims``, else the one the request was signed with (the
``Credential=`` of a SigV4 ``Authorization`` header or presigned URL, or the key
of a SigV2 one). Object size of an upload: ``X-Amz-Decoded-Content-Length`` (the
payload of an aws-chunked upload), else ``Content-Length`` of a plain upload; a
part copy's size comes from ``X-Amz-Copy-Source-Range``. When the headers do not
give it, ``api.rx`` (request body bytes received) is the volume and
``object_size_bytes`` stays ``None``; MinIO does not log a whole-object copy's
size, which is then counted as an ``upload_size_unknown`` issue.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from egress.records import Issue, ObjectStoreRequest
from egress.sources.objectstore_logfile import (
    COMPLETE_MULTIPART,
    COPY_OBJECT,
    DELETE_OBJECT,
    GET_OBJECT,
    OTHER,
    PUT_OBJECT,
    PUT_PART,
    STORE_MINIO,
    VOLUME_OPERATIONS,
    LogFileReader,
    MalformedLine,
    entry_time,
    flag_unknown_size,
    int_or_none,
    json_line_objects,
    json_values,
    new_request,
    new_tally,
    none_if_blank,
    volume_bytes,
)

MALFORMED_MINIO_LINE = "malformed_minio_line"
MALFORMED_MINIO_ENTRY = "malformed_minio_entry"

MINIO_OPERATIONS: dict[str, str] = {
    "PutObject": PUT_OBJECT,
    "PostPolicyBucket": PUT_OBJECT,
    "PutObjectExtract": PUT_OBJECT,
    "PutObjectPart": PUT_PART,
    "CompleteMultipartUpload": COMPLETE_MULTIPART,
    "CopyObject": COPY_OBJECT,
    "CopyObjectPart": COPY_OBJECT,
    "GetObject": GET_OBJECT,
    "DeleteObject": DELETE_OBJECT,
    "DeleteMultipleObjects": DELETE_OBJECT,
}
"""MinIO API names to normalized operations; any other name is ``other``."""

_SIZE_FROM_LENGTH = frozenset({"PutObject", "PutObjectPart", "PutObjectExtract"})
_SIGV4_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_SIGV2_KEY = re.compile(r"AWS ([^:\s]+):")
_COPY_RANGE = re.compile(r"bytes=(\d+)-(\d+)")


def looks_like_minio_entry(value: object) -> bool:
    """Whether a decoded JSON value is a MinIO audit entry (for format detection)."""
    return isinstance(value, dict) and isinstance(value.get("api"), dict) and "time" in value


def _lower_keys(headers: object) -> dict[str, str]:
    if not isinstance(headers, dict):
        return {}
    return {str(k).lower(): v for k, v in headers.items() if isinstance(v, str)}


def _requester(entry: Mapping[str, Any]) -> str | None:
    key = none_if_blank(entry.get("accessKey"))
    if key is not None:
        return key
    claims = entry.get("requestClaims")
    if isinstance(claims, dict):
        key = none_if_blank(claims.get("accessKey"))
        if key is not None:
            return key
    auth = _lower_keys(entry.get("requestHeader")).get("authorization", "")
    m = _SIGV4_CREDENTIAL.search(auth) or _SIGV2_KEY.match(auth)
    if m is not None:
        return m.group(1)
    query = entry.get("requestQuery")
    if isinstance(query, dict):
        credential = query.get("X-Amz-Credential")
        if isinstance(credential, str) and "/" in credential:
            return credential.partition("/")[0] or None
        return none_if_blank(query.get("AWSAccessKeyId"))
    return None


def _upload_size(entry: Mapping[str, Any], name: str) -> int | None:
    headers = _lower_keys(entry.get("requestHeader"))
    if name in _SIZE_FROM_LENGTH:
        decoded = int_or_none(headers.get("x-amz-decoded-content-length"))
        if decoded is not None:
            return decoded
        if not headers.get("x-amz-content-sha256", "").startswith("STREAMING-"):
            return int_or_none(headers.get("content-length"))
        return None
    if name == "CopyObjectPart":
        m = _COPY_RANGE.fullmatch(headers.get("x-amz-copy-source-range", "").strip())
        if m is not None and int(m.group(2)) >= int(m.group(1)):
            return int(m.group(2)) - int(m.group(1)) + 1
    return None


def minio_request(entry: object, path: str, line: int | None) -> ObjectStoreRequest | None:
    """Normalize one decoded audit entry; ``None`` for the empty ``{}`` endpoint probe.

    Raises :class:`~egress.sources.objectstore_logfile.MalformedLine` when the value
    is not an audit entry (no ``api.name``, no valid ``time``).
    """
    if not isinstance(entry, dict):
        raise MalformedLine("not a JSON object")
    if not entry:
        return None
    api = entry.get("api")
    if not isinstance(api, dict):
        raise MalformedLine("no api object: not a MinIO audit entry")
    raw_name = api.get("name")
    if not isinstance(raw_name, str) or not raw_name:
        raise MalformedLine("no api.name")
    when = entry_time(entry)
    name = raw_name.removeprefix("s3.")
    operation = MINIO_OPERATIONS.get(name, OTHER)
    status = int_or_none(api.get("statusCode"))
    size = None
    counted = None
    if operation in VOLUME_OPERATIONS:
        size = _upload_size(entry, name)
        counted = size if size is not None else int_or_none(api.get("rx"))
    return new_request(
        when, STORE_MINIO, operation, raw_name, none_if_blank(api.get("bucket")),
        none_if_blank(api.get("object")), status, volume_bytes(operation, status, counted),
        size, none_if_blank(entry.get("remotehost")), _requester(entry),
        none_if_blank(entry.get("userAgent")), none_if_blank(entry.get("requestID")), path,
        line)


class MinioAuditLogReader(LogFileReader):
    """Read MinIO audit logs (one JSON entry per line, plain or gzip) into records.

    Lines that are not audit entries are counted as ``malformed_minio_line``.
    """

    store = STORE_MINIO
    malformed_kind = MALFORMED_MINIO_LINE

    def parse_line(self, text: str, path: str, line: int) -> Sequence[ObjectStoreRequest]:
        """Parse one line (normally one entry); raises ``MalformedLine``."""
        records = []
        for value in json_line_objects(text):
            record = minio_request(value, path, line)
            if record is not None:
                records.append(record)
        return records


def parse_minio_webhook_body(body: bytes, *,
                             source: str) -> tuple[list[ObjectStoreRequest], list[Issue]]:
    """Parse the body of a MinIO audit webhook POST into records and issues.

    ``source`` names where the body came from (for example ``webhook:10.0.0.5``);
    it is the provenance path, and the provenance line is the line of the body
    where an entry starts. Entries that are not audit entries are counted as
    ``malformed_minio_entry``; text that is not JSON is counted the same way and
    skipped up to the next line, so one bad entry in a batch does not lose the
    others. Never raises for bad content.
    """
    tally = new_tally()
    records: list[ObjectStoreRequest] = []
    text = body.decode("utf-8", "replace")
    resume = 0
    seen_pos, seen_line = 0, 1

    def line_at(pos: int) -> int:
        nonlocal seen_pos, seen_line
        seen_line += text.count("\n", seen_pos, pos)
        seen_pos = pos
        return seen_line

    while resume < len(text):
        try:
            for start, value in json_values(text, resume):
                lineno = line_at(start)
                try:
                    record = minio_request(value, source, lineno)
                except MalformedLine as exc:
                    tally.add(source, MALFORMED_MINIO_ENTRY, offset=None, line=lineno,
                              detail=str(exc))
                    continue
                if record is not None:
                    if record.bytes_in == 0:
                        flag_unknown_size(record, tally)
                    records.append(record)
            break
        except MalformedLine as exc:
            bad = exc.position if exc.position is not None else resume
            tally.add(source, MALFORMED_MINIO_ENTRY, offset=None, line=line_at(bad),
                      detail=str(exc))
            newline = text.find("\n", bad)
            resume = len(text) if newline < 0 else newline + 1
    return records, list(tally.issues)
