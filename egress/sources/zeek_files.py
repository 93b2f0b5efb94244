"""Finding, recognizing and opening Zeek log files.

Layout of a Zeek log directory (zeekctl / the supervisor's log archiver)::

    logs/
      conn.log  conn_long.log  ssl.log ...          live files being written
      current/conn.log ...                           (zeekctl's live directory)
      2024-05-01/conn.00:00:00-01:00:00.log.gz       rotated hourly archives
      2024-05-01/conn_long.00:00:00-01:00:00.log.gz
      2024-05-01/conn.2024-05-01-01-00-00.log.gz     (newer archiver naming)

:func:`log_files` lists the files of some log kinds in time order (see its
docstring for the exact order and why it is enough for long connections).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from egress.errors import SourceError
from egress.sources.zeek_json import first_object

LONG_CONN_LOGS = frozenset({"conn_long", "open_conn"})
"""Logs of connections still open when written (running totals): interim records."""

CONN_LOGS = frozenset({"conn"}) | LONG_CONN_LOGS
SSL_LOGS = frozenset({"ssl", "open_ssl"})
HTTP_LOGS = frozenset({"http", "open_http"})

GZIP_MAGIC = b"\x1f\x8b"
HEAD_BYTES = 64 * 1024

_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ARCHIVE = re.compile(
    r"^(?P<log>[A-Za-z0-9_-]+)\."
    r"(?:(?P<start>\d{2}:\d{2}:\d{2})-\d{2}:\d{2}:\d{2}"
    r"|(?P<stamp>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}))"
    r"\.log(?:\.gz)?$"
)
_LIVE = re.compile(r"^(?P<log>[A-Za-z0-9_-]+)\.log(?:\.gz)?$")


def log_name(path: Path) -> str:
    """The log a file name says it holds: ``conn.01:00:00-02:00:00.log.gz`` -> ``conn``."""
    return path.name.split(".", 1)[0]


def log_files(root: Path, logs: Iterable[str]) -> list[Path]:
    """Files of the given logs under a Zeek log directory, oldest first.

    Rotated archives (``YYYY-MM-DD/<log>.HH:MM:SS-HH:MM:SS.log[.gz]`` or
    ``<log>.YYYY-MM-DD-HH-MM-SS.log[.gz]``) sort by their interval's start;
    within one interval, long-connection logs (``conn_long``, ``open_conn``)
    come before ``conn``. Live files (``<log>.log`` in ``root`` or in
    ``root/current``) come last, long-connection logs first again.

    Why file order is enough: every interim record of a connection is written
    before its final conn.log record, so it lies in the same or an earlier
    interval; reading each interval's long-connection file before its conn file
    therefore meets every interim record before the final one. Rows are not
    merged across files, so batches never mix files.
    """
    wanted = frozenset(logs)
    keyed: list[tuple[tuple[str, str, int, str], Path]] = []

    def rank(log: str) -> int:
        return 0 if log in LONG_CONN_LOGS else 1

    def add_live(folder: Path) -> None:
        for path in folder.iterdir():
            m = _LIVE.match(path.name)
            if m and m["log"] in wanted and path.is_file():
                keyed.append((("9999-99-99", "99:99:99", rank(m["log"]), str(path)), path))

    for path in root.iterdir():
        if path.is_dir() and _DATE_DIR.match(path.name):
            for entry in path.iterdir():
                m = _ARCHIVE.match(entry.name)
                if m and m["log"] in wanted and entry.is_file():
                    start = m["start"] or m["stamp"][11:].replace("-", ":")
                    day = path.name if m["start"] else m["stamp"][:10]
                    keyed.append(((day, start, rank(m["log"]), entry.name), entry))
        elif path.is_file():
            m = _ARCHIVE.match(path.name)
            if m and m["stamp"] and m["log"] in wanted:
                keyed.append(((m["stamp"][:10], m["stamp"][11:].replace("-", ":"),
                               rank(m["log"]), path.name), path))
    add_live(root)
    if (root / "current").is_dir():
        add_live(root / "current")
    keyed.sort(key=lambda item: item[0])
    return [path for _, path in keyed]


class LogStream:
    """Bytes of a plain or gzip log; a broken gzip stream ends it instead of raising.

    Everything decodable before the break is returned first; :attr:`error`
    then says what broke (a truncated or corrupt member). Concatenated gzip
    members are read one after another.
    """

    def __init__(self, path: Path) -> None:
        try:
            self._raw: BinaryIO = path.open("rb")
        except OSError as exc:
            raise SourceError(f"cannot open Zeek log: {exc.strerror}", path=path) from exc
        self.error: str | None = None
        self._gzip = self._raw.read(2) == GZIP_MAGIC
        self._raw.seek(0)
        self._inflate = zlib.decompressobj(wbits=31)
        self._carry = b""
        self._started = False
        self._done = False

    def __enter__(self) -> LogStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.close()

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` with up to ``len(view)`` decoded bytes; 0 at the end or after a break."""
        if not self._gzip:
            try:
                return self._raw.readinto(view)  # type: ignore[attr-defined, no-any-return]
            except OSError as exc:
                self.error = f"read failed: {exc.strerror}"
                return 0
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def read(self, size: int) -> bytes:
        """Up to ``size`` decoded bytes; ``b""`` at the end or after a break."""
        if not self._gzip:
            try:
                return self._raw.read(size)
            except OSError as exc:
                self.error = f"read failed: {exc.strerror}"
                return b""
        parts: list[bytes] = []
        have = 0
        while have < size and not self._done:
            if self._inflate.unconsumed_tail:
                data = self._inflate.unconsumed_tail
            elif self._carry:
                data, self._carry = self._carry, b""
            else:
                data = self._raw.read(1 << 18)
                if not data:
                    if self._started and not self._inflate.eof:
                        self.error = "compressed data ends before the end of the gzip stream"
                    self._done = True
                    break
            self._started = True
            try:
                out = self._inflate.decompress(data, size - have)
            except zlib.error as exc:
                self.error = f"corrupt compressed data: {exc}"
                self._done = True
                break
            parts.append(out)
            have += len(out)
            if self._inflate.eof:  # end of one member: another may follow
                self._carry = self._inflate.unused_data
                self._inflate = zlib.decompressobj(wbits=31)
                self._started = False
                if self._carry and not self._carry.startswith(GZIP_MAGIC):
                    self._done = True  # trailing garbage after the last member: ignored
        return b"".join(parts)


def read_head(path: Path, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` decoded bytes of a log (fewer if it is short or broken)."""
    with LogStream(path) as stream:
        return stream.read(size)


def detect_format(head: bytes) -> str | None:
    """``tsv`` or ``json`` from a log's first bytes; ``None`` if neither."""
    for line in head.split(b"\n"):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(b"#separator"):
            return "tsv"
        if stripped.startswith(b"#"):
            continue  # btest banner or comment before the header
        if stripped.startswith(b"{"):
            return "json"
        return None
    return None


_JSON_HINTS: tuple[tuple[str, frozenset[str]], ...] = (
    ("conn", frozenset({"conn_state", "orig_ip_bytes", "resp_ip_bytes", "history"})),
    ("ssl", frozenset({"server_name", "cipher", "established", "cert_chain_fuids", "resumed"})),
    ("http", frozenset({"method", "trans_depth", "status_code", "request_body_len"})),
    ("dns", frozenset({"query", "qtype", "qtype_name", "rcode", "trans_id"})),
    ("x509", frozenset({"certificate.version", "certificate.serial", "fingerprint"})),
    ("files", frozenset({"fuid", "seen_bytes", "total_bytes", "mime_type"})),
    ("notice", frozenset({"note", "msg", "actions"})),
    ("weird", frozenset({"name", "addl", "notice", "peer"})),
    ("dhcp", frozenset({"msg_types", "assigned_addr", "lease_time"})),
)


_BASE_LOG = {"conn_long": "conn", "open_conn": "conn", "open_ssl": "ssl", "open_http": "http"}


def _kind_from_keys(keys: set[str], file_log: str) -> str | None:
    """Tell a log from its field names, trusting the file name unless the fields disagree."""
    hints = dict(_JSON_HINTS)
    scores = {kind: len(keys & h) for kind, h in hints.items()}
    best_kind = max(scores, key=lambda k: scores[k])
    best = scores[best_kind]
    base = _BASE_LOG.get(file_log, file_log)
    if base in hints and scores[base] > 0:
        return file_log
    if re.fullmatch(r"[a-z0-9_]+", file_log) and base not in hints and best < 2 and "ts" in keys:
        return file_log  # a log egress has no hints for (smtp, software, ...)
    return best_kind if best > 0 else None


def detect_log(path: Path, head: bytes | None = None) -> str | None:
    """Which Zeek log ``path`` holds, from its ``#path`` or JSON keys; ``None`` if not Zeek."""
    head = read_head(path) if head is None else head
    fmt = detect_format(head)
    if fmt == "tsv":
        fields: list[str] = []
        sep = "\t"
        for line in head.split(b"\n"):
            text = line.decode("utf-8", "replace").rstrip("\r")
            if text.startswith("#separator"):
                value = text[len("#separator"):].strip(" \t")
                sep = re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), value)
                sep = sep or "\t"
            elif text.startswith("#path"):
                return text[len("#path"):].lstrip(sep + " ") or None
            elif text.startswith("#fields"):
                fields = text.split(sep)[1:]
            elif text and not text.startswith("#"):
                break
        if not fields:
            return None
        return _kind_from_keys(set(fields), log_name(path))
    if fmt == "json":
        first = next(line for line in head.split(b"\n") if line.strip())
        obj = first_object(first)
        if obj is None:
            return None
        if isinstance(obj.get("_path"), str):
            return str(obj["_path"])
        if "ts" not in obj:
            return None
        return _kind_from_keys(set(obj), log_name(path))
    return None
