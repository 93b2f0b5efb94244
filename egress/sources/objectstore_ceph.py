"""Ceph RADOS Gateway ops-log entries to :class:`~egress.records.ObjectStoreRequest` records.

RGW writes one JSON object per request (``rgw_format_ops_log_entry``): ``bucket``,
``object`` (newer releases), ``time`` (UTC) and ``time_local``, ``remote_addr``,
``user``, ``operation`` (the RGW op name: ``put_obj``, ``get_obj``, ``copy_obj``,
``complete_multipart``...), ``uri`` (``"PUT /bucket/key?partNumber=1&uploadId=...
HTTP/1.1"``), ``http_status`` (a string), ``error_code``, ``bytes_sent``,
``bytes_received``, ``object_size``, ``total_time``, ``user_agent``, ``referrer``,
and in newer releases ``trans_id``, ``authentication_type``, ``access_key_id``,
``temp_url``. Fields a release does not write are ``None`` here.

Two forms are read, both line by line:

* the ops-log file (``rgw_ops_log_file_path``): one object per line, though under
  load RGW has written several objects on one line (``}{``, fixed by ceph/ceph
  pull request 68881), which are all read;
* a capture of the ops-log socket (``rgw_ops_log_socket_path``): a JSON array
  opened with ``[`` on connect, one object per line each followed by ``,``, and
  never closed while RGW runs.

Volume: ``put_obj`` is an object upload, or a part upload when its URI has
``partNumber`` and ``uploadId`` (RGW logs an upload-part-copy the same way, and
it is counted once, as a part); ``post_obj`` is a browser form upload;
``copy_obj`` a copy. Their ``object_size`` is the volume. ``remote_addr`` may be
a forwarded list (``rgw_remote_addr_param``); its first address, the client's,
is kept. The user ``anonymous`` (unauthenticated requests) is ``requester`` None.
Old releases logged the HTTP method as the operation (``PUT``); such entries are
``other``, as the method alone does not say what was put.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from egress.records import ObjectStoreRequest
from egress.sources.objectstore_logfile import (
    COMPLETE_MULTIPART,
    COPY_OBJECT,
    DELETE_OBJECT,
    GET_OBJECT,
    OTHER,
    PUT_OBJECT,
    PUT_PART,
    STORE_CEPH,
    LogFileReader,
    MalformedLine,
    entry_time,
    int_or_none,
    json_line_objects,
    new_request,
    none_if_blank,
    volume_bytes,
)

MALFORMED_CEPH_LINE = "malformed_ceph_line"

CEPH_OPERATIONS: dict[str, str] = {
    "put_obj": PUT_OBJECT,
    "post_obj": PUT_OBJECT,
    "complete_multipart": COMPLETE_MULTIPART,
    "copy_obj": COPY_OBJECT,
    "get_obj": GET_OBJECT,
    "delete_obj": DELETE_OBJECT,
    "multi_object_delete": DELETE_OBJECT,
}
"""RGW op names to normalized operations; any other name is ``other``."""


def looks_like_ceph_entry(value: object) -> bool:
    """Whether a decoded JSON value is an RGW ops-log entry (for format detection)."""
    return (isinstance(value, dict) and "operation" in value and "bucket" in value
            and ("http_status" in value or "uri" in value))


def _method_and_params(uri: str) -> tuple[str, set[str]]:
    """Split ``"PUT /b/k?partNumber=1&uploadId=x HTTP/1.1"`` into method and query names."""
    method, _, rest = uri.partition(" ")
    target = rest.partition(" ")[0]
    query = target.partition("?")[2]
    return method, {p.partition("=")[0] for p in query.split("&")} if query else set()


def _operation(raw_op: str, uri: str) -> str:
    operation = CEPH_OPERATIONS.get(raw_op, OTHER)
    if operation == PUT_OBJECT and raw_op == "put_obj":
        params = _method_and_params(uri)[1]
        if "partNumber" in params and "uploadId" in params:
            return PUT_PART
    elif operation == GET_OBJECT and uri.startswith("HEAD "):
        return OTHER
    return operation


def _requester(entry: Mapping[str, Any]) -> str | None:
    key = none_if_blank(entry.get("access_key_id"))
    if key is not None:
        return key
    user = none_if_blank(entry.get("user"))
    return None if user == "anonymous" else user


def ceph_request(entry: object, path: str, line: int | None) -> ObjectStoreRequest:
    """Normalize one decoded ops-log entry.

    Raises :class:`~egress.sources.objectstore_logfile.MalformedLine` when the value
    is not an ops-log entry (no ``operation``, no valid ``time``).
    """
    if not isinstance(entry, dict):
        raise MalformedLine("not a JSON object")
    raw_op = entry.get("operation")
    if not isinstance(raw_op, str) or not raw_op:
        raise MalformedLine("no operation: not a Ceph RGW ops-log entry")
    when = entry_time(entry)
    uri = entry.get("uri")
    operation = _operation(raw_op, uri if isinstance(uri, str) else "")
    status = int_or_none(entry.get("http_status"))
    size = int_or_none(entry.get("object_size"))
    remote = none_if_blank(entry.get("remote_addr"))
    if remote is not None and "," in remote:
        remote = remote.partition(",")[0].strip() or None
    return new_request(
        when, STORE_CEPH, operation, raw_op, none_if_blank(entry.get("bucket")),
        none_if_blank(entry.get("object")), status, volume_bytes(operation, status, size), size,
        remote, _requester(entry), none_if_blank(entry.get("user_agent")),
        none_if_blank(entry.get("trans_id")), path, line)


class CephOpsLogReader(LogFileReader):
    """Read Ceph RGW ops logs (file or socket capture, plain or gzip) into records.

    Lines that are not ops-log entries are counted as ``malformed_ceph_line``.
    """

    store = STORE_CEPH
    malformed_kind = MALFORMED_CEPH_LINE

    def parse_line(self, text: str, path: str, line: int) -> Sequence[ObjectStoreRequest]:
        """Parse one line (one entry, or several written together); raises ``MalformedLine``."""
        return [ceph_request(value, path, line) for value in json_line_objects(text)]
