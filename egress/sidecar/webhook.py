"""MinIO's audit webhook: an HTTP endpoint that stores each accepted entry before answering.

MinIO POSTs its audit entries (one per request, or ``batch_size`` of them one per line) to
``http://HOST:PORT/minio/audit`` with the header ``Authorization: <auth_token>``, the
token exactly as configured in MinIO (so configure ``auth_token="Bearer <token>"``; the
bare ``<token>`` is accepted too). Answers:

* 200 ``{"accepted": n}``: the body's entries are written to a file in the input's folder
  of the state directory and fsynced *before* the answer; MinIO's ``{}`` probe is
  accepted with n = 0. ``HEAD`` (MinIO's check that the target is up) gets 200 and no body.
* 401: no or a wrong token. 404: another path. 411/413: no length, or over
  ``max_body_bytes``. 400 ``{"error": ..., "malformed": k, "entries": n}``: the body
  holds k values that are not JSON or not audit entries (checked with
  :func:`~egress.sources.objectstore.parse_minio_webhook_body`); nothing of that body is
  stored, so a retry cannot double the good entries.

Each accepted entry becomes one line (compact JSON of the same value), so the files are
MinIO audit logs that the sidecar follows as it follows any log (new complete lines
since the checkpoint; :mod:`egress.sidecar.follow`) and reads with the MinIO audit reader:
records equal those of the same entries in a log file, citing ``audit-NNNNNN.jsonl:line``.
Delivery is at least once: an entry stored just before the process dies is stored
again when MinIO sends it again, since MinIO saw no answer.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import BinaryIO

from egress.records import Issue, ObjectStoreRequest, Provenance
from egress.sidecar.config import MinioWebhookConfig, listen_address
from egress.sidecar.follow import Chunk
from egress.sidecar.http import BackgroundServer
from egress.sidecar.state import sync_directory
from egress.sources.objectstore import MinioAuditLogReader, parse_minio_webhook_body
from egress.sources.objectstore_logfile import MalformedLine, json_values
from egress.sources.objectstore_minio import MALFORMED_MINIO_ENTRY

log = logging.getLogger(__name__)

_FILE = re.compile(r"^audit-(\d{6,})\.jsonl$")


def entry_lines(body: bytes) -> tuple[list[bytes], int, int]:
    """The audit entries of a webhook body as lines to store, the number of values, and
    the number of malformed ones (not JSON, or not audit entries). ``{}`` gives no line."""
    records, issues = parse_minio_webhook_body(body, source="webhook")
    malformed = sum(i.count for i in issues if i.kind == MALFORMED_MINIO_ENTRY)
    if malformed:
        return [], len(records) + malformed, malformed
    lines: list[bytes] = []
    values = 0
    try:
        for _, value in json_values(body.decode("utf-8", "replace")):
            values += 1
            if isinstance(value, dict) and value:
                lines.append(json.dumps(value, separators=(",", ":")).encode() + b"\n")
    except MalformedLine:  # pragma: no cover - the parser above found none
        return [], values + 1, 1
    return lines, values, 0


def chunk_records(chunk: Chunk, scratch: Path) -> tuple[list[ObjectStoreRequest], list[Issue]]:
    """The records of a chunk of a stored file, read with the MinIO audit log reader and
    citing the stored file and its line numbers."""
    scratch_file = scratch / chunk.path.name
    scratch_file.write_bytes(chunk.data)
    reader = MinioAuditLogReader()
    shift = chunk.first_line - 1
    try:
        records = [dataclasses.replace(r, provenance=Provenance(
            path=str(chunk.path), line=None if r.provenance.line is None
            else r.provenance.line + shift)) for r in reader.read([scratch_file])]
    finally:
        scratch_file.unlink(missing_ok=True)
    return records, reader.issues


class AuditStore:
    """The files of accepted entries: ``audit-NNNNNN.jsonl``, appended and fsynced; a new
    file once the current one holds ``rotate_bytes``. Thread-safe."""

    def __init__(self, folder: Path, *, rotate_bytes: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._rotate = rotate_bytes
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._written = self._synced = 0  # appends made, appends known to be on disk
        files = self.files()
        self._number = int(_FILE.match(files[-1].name)[1]) if files else 1  # type: ignore[index]
        self._fh: BinaryIO | None = None
        self._repair()

    def files(self) -> list[Path]:
        """The files, oldest first."""
        found = [p for p in self.folder.iterdir() if _FILE.match(p.name)]
        return sorted(found, key=lambda p: int(_FILE.match(p.name)[1]))  # type: ignore[index]

    @property
    def current(self) -> Path:
        """The file being appended to."""
        return self.folder / f"audit-{self._number:06d}.jsonl"

    def _repair(self) -> None:
        """Cut a half-written last line (never acknowledged: MinIO sends it again)."""
        path = self.current
        if not path.exists():
            return
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            log.info("%s: dropping %d bytes of an entry never acknowledged", path,
                     len(data) - keep)
            with path.open("r+b") as fh:
                fh.truncate(keep)
                os.fsync(fh.fileno())

    def append(self, lines: list[bytes]) -> None:
        """Append ``lines`` and return once they are on disk (the caller answers 200 after).

        Concurrent requests share an fsync (group commit): each waits until an fsync that
        began after its write has finished.
        """
        if not lines:
            return
        data = b"".join(lines)
        with self._lock:
            fh = self._fh
            if fh is not None and fh.tell() >= self._rotate:
                os.fsync(fh.fileno())  # what the old file holds is durable before it closes
                fh.close()
                fh = self._fh = None
                self._synced = self._written
                self._number += 1
            if fh is None:
                created = not self.current.exists()
                fh = self._fh = self.current.open("ab")
                if created:  # the file's name must survive a crash as well
                    sync_directory(self.folder)
            fh.write(data)
            fh.flush()
            self._written += 1
            mine = self._written
        with self._sync_lock:
            if self._synced >= mine:
                return  # an fsync that began after this write covered it
            with self._lock:  # the file being appended to now holds every later write
                target = self._written
                fd = None if self._fh is None else os.dup(self._fh.fileno())
            if fd is not None:  # None: closed, and fsynced when it was
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self._synced = max(self._synced, target)

    def discard(self, done: Callable[[Path], bool]) -> None:
        """Remove the files before the current one for which ``done`` (read to the end and
        committed) holds."""
        with self._lock:
            current = self.current
        for path in self.files():
            if path != current and done(path):
                log.debug("%s: read and committed; removed", path)
                path.unlink(missing_ok=True)

    def close(self) -> None:
        """fsync and close the current file."""
        with self._lock:
            if self._fh is not None:
                os.fsync(self._fh.fileno())
                self._fh.close()
                self._fh = None
                self._synced = self._written


class WebhookServer(BackgroundServer):
    """The HTTP endpoint of one ``minio_webhook`` input (module doc), in a daemon thread.

    ``count(status)`` is called for every answer (the metrics).
    """

    def __init__(self, spec: MinioWebhookConfig, store: AuditStore, token: str, *,
                 count: Callable[[int], None] = lambda status: None) -> None:
        accepted = (f"Bearer {token}".encode(), token.encode())
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_HEAD(self) -> None:
                owner._answer(self, 200 if self._path() == spec.url_path else 404, None)

            def do_GET(self) -> None:
                owner._answer(self, 405 if self._path() == spec.url_path else 404,
                              {"error": "POST audit entries here"})

            def do_POST(self) -> None:
                try:
                    self._post()
                except Exception:  # a bug here must not kill the endpoint, nor leak a trace
                    log.exception("%s: a request failed", spec.name)
                    owner._answer(self, 500, {"error": "internal error (see the log)"},
                                  close=True)

            def _post(self) -> None:
                if self._path() != spec.url_path:
                    owner._answer(self, 404, {"error": "not found"}, close=True)
                    return
                given = self.headers.get("Authorization", "").strip().encode()
                if not any(hmac.compare_digest(given, a) for a in accepted):
                    owner._answer(self, 401, {"error": "missing or wrong token"}, close=True)
                    return
                length_text = self.headers.get("Content-Length")
                if length_text is None or not length_text.strip().isdigit():
                    owner._answer(self, 411, {"error": "Content-Length required"}, close=True)
                    return
                length = int(length_text)
                if length > spec.max_body_bytes:
                    owner._answer(self, 413, {"error": f"body over {spec.max_body_bytes} "
                                                       "bytes"}, close=True)
                    return
                body = self.rfile.read(length)
                if len(body) != length:
                    owner._answer(self, 400, {"error": "body shorter than Content-Length"},
                                  close=True)
                    return
                lines, entries, malformed = entry_lines(body)
                if malformed:
                    log.warning("%s: rejected a body with %d malformed value(s) of %d",
                                spec.name, malformed, entries)
                    owner._answer(self, 400, {"error": "not MinIO audit entries",
                                              "malformed": malformed, "entries": entries})
                    return
                try:
                    store.append(lines)
                except OSError as exc:
                    log.error("%s: cannot store audit entries: %s", spec.name, exc)
                    owner._answer(self, 503, {"error": "cannot store the entries now"})
                    return
                owner._answer(self, 200, {"accepted": len(lines)})

            def _path(self) -> str:
                return self.path.split("?", 1)[0]

            def log_message(self, format: str, *args: object) -> None:
                log.debug("webhook: " + format, *args)

        self._count = count
        host, port = listen_address(spec.listen, loopback=not spec.allow_remote)
        super().__init__(host, port, Handler, name=f"egress-{spec.name}-webhook")

    def _answer(self, handler: BaseHTTPRequestHandler, status: int,
                body: dict[str, object] | None, *, close: bool = False) -> None:
        data = b"" if body is None else json.dumps(body).encode() + b"\n"
        self._count(status)  # before the answer: a client reading the metrics then sees it
        handler.send_response(status)
        if status == 401:
            handler.send_header("WWW-Authenticate", "Bearer")
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        if close:  # the body was not read: the connection cannot carry another request
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)
