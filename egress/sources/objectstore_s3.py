"""Amazon S3 server access logs to :class:`~egress.records.ObjectStoreRequest` records.

The format (AWS, "Amazon S3 server access log format"): one request per line,
space-separated fields, ``"..."`` around Request-URI, Referer and User-Agent,
``[06/Feb/2019:00:00:38 +0000]`` around the time, ``-`` for any value that is
unknown or does not apply::

    Bucket-Owner Bucket [Time] Remote-IP Requester Request-ID Operation Key
    "Request-URI" HTTP-status Error-Code Bytes-Sent Object-Size Total-Time
    Turn-Around-Time "Referer" "User-Agent" Version-Id Host-Id Signature-Version
    Cipher-Suite Authentication-Type Host-Header TLS-version Access-Point-ARN ...

AWS adds fields at the end from time to time and asks parsers to accept trailing
fields they do not know; everything after User-Agent is optional here. One
compiled regular expression parses a line.

Volume: the Object Size of a successful ``REST.PUT.OBJECT``, ``REST.POST.OBJECT``
(browser form upload), ``REST.PUT.PART``, ``REST.COPY.OBJECT`` or
``REST.COPY.PART``. A copy is logged twice, as the PUT side (``REST.COPY.OBJECT``,
in the destination bucket) and the GET side (``REST.COPY.OBJECT_GET``, in the
source bucket); only the PUT side counts, and the GET side is ``other``. A
multipart completion (``REST.POST.UPLOAD``) logs the whole object's size, which
its parts already counted, so it adds 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

from egress.records import ObjectStoreRequest
from egress.sources.objectstore_logfile import (
    COMPLETE_MULTIPART,
    COPY_OBJECT,
    DELETE_OBJECT,
    GET_OBJECT,
    OTHER,
    PUT_OBJECT,
    PUT_PART,
    STORE_S3,
    LogFileReader,
    MalformedLine,
    new_request,
    volume_bytes,
)

MALFORMED_S3_LINE = "malformed_s3_line"

S3_OPERATIONS: dict[str, str] = {
    "REST.PUT.OBJECT": PUT_OBJECT,
    "REST.POST.OBJECT": PUT_OBJECT,
    "SOAP.PutObject": PUT_OBJECT,
    "SOAP.PutObjectInline": PUT_OBJECT,
    "REST.PUT.PART": PUT_PART,
    "REST.POST.UPLOAD": COMPLETE_MULTIPART,
    "REST.COPY.OBJECT": COPY_OBJECT,
    "REST.COPY.PART": COPY_OBJECT,
    "SOAP.CopyObject": COPY_OBJECT,
    "REST.COPY.OBJECT_GET": OTHER,
    "REST.COPY.PART_GET": OTHER,
    "REST.GET.OBJECT": GET_OBJECT,
    "WEBSITE.GET.OBJECT": GET_OBJECT,
    "SOAP.GetObject": GET_OBJECT,
    "SOAP.GetObjectExtended": GET_OBJECT,
    "REST.DELETE.OBJECT": DELETE_OBJECT,
    "BATCH.DELETE.OBJECT": DELETE_OBJECT,
    "SOAP.DeleteObject": DELETE_OBJECT,
}
"""S3 operation names to normalized operations; any other name is ``other``."""

S3_LINE = re.compile(
    r"\S+ (\S+) \[([^\]]+)\] (\S+) (\S+) (\S+) (\S+) (\S+) "  # owner bucket [time] ip who id op key
    r'(?:"[^"]*"|-) (\d{3}|-) \S+ (?:\d+|-) (\d+|-) \S+ \S+ '  # "uri" status error sent size ms ms
    r'(?:"[^"]*"|-) (?:"(.*?)"|-)'  # "referer" "user agent"
    r"(?: .*)?"  # version id, host id, signature version, ... and fields AWS adds later
)
"""One S3 access-log line (``fullmatch``); groups: bucket, time, remote IP, requester,
request id, operation, key, status, object size, user agent."""

_MONTHS = {name: i for i, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_TIME_CACHE_MAX = 4096


def parse_s3_time(text: str) -> datetime:
    """Parse ``06/Feb/2019:00:00:38 +0000`` (strftime ``%d/%b/%Y:%H:%M:%S %z``) as UTC.

    Raises :class:`~egress.sources.objectstore_logfile.MalformedLine` otherwise.
    """
    try:
        if len(text) != 26 or text[2] != "/" or text[6] != "/" or text[20] != " ":
            raise ValueError(text)
        value = datetime(int(text[7:11]), _MONTHS[text[3:6]], int(text[0:2]),
                         int(text[12:14]), int(text[15:17]), int(text[18:20]), tzinfo=UTC)
        zone = text[21:]
        if zone != "+0000":
            if zone[0] not in "+-":
                raise ValueError(zone)
            shift = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
            value = value - shift if zone[0] == "+" else value + shift
    except (KeyError, ValueError) as exc:
        raise MalformedLine(f"bad time [{text}]") from exc
    return value


class S3AccessLogReader(LogFileReader):
    """Read Amazon S3 server access logs (plain or gzip) into normalized records.

    ``requester`` is the Requester field (canonical user ID or IAM ARN), ``None``
    for unauthenticated requests; ``key`` is percent-decoded (S3 logs it
    URL-encoded); ``object_size_bytes`` is Object Size as logged (also for failed
    requests); ``bytes_in`` follows the module's volume rule. Lines that do not
    parse are counted as ``malformed_s3_line``.
    """

    store = STORE_S3
    malformed_kind = MALFORMED_S3_LINE

    def __init__(self) -> None:
        super().__init__()
        self._times: dict[str, datetime] = {}

    def parse_line(self, text: str, path: str, line: int) -> Sequence[ObjectStoreRequest]:
        """Parse one access-log line; raises ``MalformedLine`` if it is not one."""
        m = S3_LINE.fullmatch(text)
        if m is None:
            raise MalformedLine("not an S3 server access log line")
        bucket, stamp, remote, requester, request_id, raw_op, key, status_s, size_s, agent = (
            m.groups())
        when = self._times.get(stamp)
        if when is None:
            when = parse_s3_time(stamp)
            if len(self._times) >= _TIME_CACHE_MAX:
                self._times.clear()
            self._times[stamp] = when
        status = None if status_s == "-" else int(status_s)
        size = None if size_s == "-" else int(size_s)
        operation = S3_OPERATIONS.get(raw_op, OTHER)
        if key == "-":
            key = None
        elif "%" in key:
            key = unquote(key)
        return (new_request(
            when, STORE_S3, operation, raw_op, None if bucket == "-" else bucket, key, status,
            volume_bytes(operation, status, size), size, None if remote == "-" else remote,
            None if requester == "-" else requester,
            None if agent is None or agent in ("", "-") else agent,
            None if request_id == "-" else request_id, path, line),)


def looks_like_s3_line(text: str) -> bool:
    """Whether ``text`` is an S3 server access log line (for format detection)."""
    return S3_LINE.fullmatch(text) is not None
