"""Splunk HTTP Event Collector over HTTPS (standard library ``http.client``).

A batch is one POST of concatenated JSON envelopes (gzip-compressed by default) with
``Authorization: Splunk <token>``. Alerts in a ``hec*`` format are envelopes already; any
other payload is wrapped (``event`` is the parsed JSON when the payload is JSON, else its
text). Answers, as HEC documents them:

- 200: delivered; with indexer acknowledgement, the ``ackId`` is polled at
  ``/services/collector/ack`` until true (:class:`SinkUnavailable` after ``ack_timeout_s``:
  the batch is sent again, at least once);
- 400 with ``invalid-event-number`` N: the events before N were accepted, N is refused
  (kept as a dead letter with HEC's text) and the batch is sent again from N + 1;
  400 without it: the rest of the batch is refused; 400 codes 10 and 14 (channel, ack
  disabled) are configuration errors;
- 401, 403 (token), 404 (wrong path), 413 (batch too large):
  :class:`SinkMisconfigured`; 429, 5xx and connection failures: :class:`SinkUnavailable`.
"""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import os
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from egress.errors import EventsRejected, SinkMisconfigured, SinkRejected, SinkUnavailable
from egress.sinks.alert import Alert

log = logging.getLogger(__name__)

_CONFIG_CODES = frozenset({10, 14})  # data channel missing / invalid, ACK disabled


class HecTransport:
    """Sends batches to the HEC endpoint ``url`` (``https://host:8088/services/collector``).

    ``context`` verifies the server (default: the system's CAs); ``connection`` makes the
    HTTP connection (for tests or proxies). ``clock``/``sleep`` pace the ack polling.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str,
        context: ssl.SSLContext | None = None,
        compress: bool = True,
        ack: bool = False,
        ack_timeout_s: float = 60.0,
        ack_poll_s: float = 0.5,
        timeout_s: float = 30.0,
        index: str | None = None,
        source: str = "egress",
        host: str | None = None,
        connection: Callable[[], http.client.HTTPConnection] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"HEC url must be https://host[:port]/path, not {url!r}")
        if not token:
            raise ValueError("HEC token is empty")
        self.url = url
        self.path = parts.path or "/services/collector"
        self._token = token
        self.compress = compress
        self.ack = ack
        self.ack_timeout_s = ack_timeout_s
        self.ack_poll_s = ack_poll_s
        self.index = index
        self.source = source
        self.host = host or socket.gethostname()
        self.channel = str(uuid.uuid4())
        self.requests = 0
        hostname, port = parts.hostname, parts.port or 8088
        self._connect = connection or (lambda: http.client.HTTPSConnection(
            hostname, port, timeout=timeout_s, context=context))
        self._conn: http.client.HTTPConnection | None = None
        self._clock = clock
        self._sleep = sleep

    def _envelope(self, alert: Alert) -> bytes:
        if alert.format.startswith("hec"):
            return alert.payload.strip()
        text = alert.payload.decode("utf-8", "replace").strip()
        try:
            event: Any = json.loads(text)
        except ValueError:
            event = text
        envelope: dict[str, Any] = {"time": round(alert.time_s, 6), "host": self.host,
                                    "source": self.source,
                                    "sourcetype": f"egress:{alert.format}", "event": event}
        if self.index is not None:
            envelope["index"] = self.index
        return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()

    def _request(self, path: str, body: bytes, *,
                 compress: bool) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Splunk {self._token}",
                   "Content-Type": "application/json",
                   "X-Splunk-Request-Channel": self.channel}
        if compress:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        try:
            if self._conn is None:
                self._conn = self._connect()
            self._conn.request("POST", path, body=body, headers=headers)
            response = self._conn.getresponse()
            raw = response.read()
            self.requests += 1
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise SinkUnavailable(f"{self.url}: {exc}") from exc
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = {"text": raw[:200].decode("utf-8", "replace")}
        return response.status, answer if isinstance(answer, dict) else {"text": str(answer)}

    def send(self, batch: Sequence[Alert]) -> None:
        """Post the batch; see the module doc for how each answer is handled."""
        envelopes = [self._envelope(a) for a in batch]
        rejected: dict[int, str] = {}
        start = 0
        while start < len(envelopes):
            status, answer = self._request(self.path, b"\n".join(envelopes[start:]),
                                           compress=self.compress)
            text = f"HEC {status} code {answer.get('code')}: {answer.get('text')}"
            if status == 200:
                if self.ack and "ackId" in answer:
                    self._await_ack(int(answer["ackId"]))
                break
            if status == 400 and answer.get("code") in _CONFIG_CODES:
                raise SinkMisconfigured(f"{self.url}: {text}")
            if status == 400 and "invalid-event-number" in answer:
                failed = start + int(answer["invalid-event-number"])
                if not start <= failed < len(envelopes):
                    raise SinkUnavailable(f"{self.url}: {text} (event number out of range)")
                rejected[failed] = text
                start = failed + 1
                continue
            if status == 400:
                if start == 0:
                    raise SinkRejected(f"{self.url}: {text}")
                rejected.update((i, text) for i in range(start, len(envelopes)))
                break
            if status in (401, 403, 404, 413):
                raise SinkMisconfigured(f"{self.url}: {text}")
            raise SinkUnavailable(f"{self.url}: {text}")
        if rejected:
            raise EventsRejected(f"{self.url}: {len(rejected)} events refused",
                                 rejected=rejected)

    def _await_ack(self, ack_id: int) -> None:
        deadline = self._clock() + self.ack_timeout_s
        body = json.dumps({"acks": [ack_id]}).encode()
        path = f"/services/collector/ack?channel={self.channel}"
        while True:
            status, answer = self._request(path, body, compress=False)
            if status != 200:
                raise SinkUnavailable(f"{self.url}: ack poll answered {status}: "
                                      f"{answer.get('text')}")
            acks = answer.get("acks")
            if isinstance(acks, dict) and acks.get(str(ack_id)) is True:
                return
            if self._clock() >= deadline:
                raise SinkUnavailable(f"{self.url}: ack {ack_id} not confirmed within "
                                      f"{self.ack_timeout_s:g} s; the batch will be resent")
            self._sleep(self.ack_poll_s)

    def flush(self) -> None:
        """Nothing to wait for: HEC answered (and acknowledged) every batch sent."""

    def close(self) -> None:
        """Close the connection (a new one is made by the next :meth:`send`)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()


def read_token(*, env: str | None, file: str | None,
               environ: dict[str, str] | None = None) -> str:
    """The HEC token from environment variable ``env`` or the first line of ``file``.

    Raises ``ValueError`` when neither gives a non-empty token.
    """
    if file is not None:
        try:
            with open(file, encoding="utf-8") as handle:
                token = handle.readline().strip()
        except OSError as exc:
            raise ValueError(f"cannot read the HEC token file {file}: {exc}") from exc
        if not token:
            raise ValueError(f"the HEC token file {file} is empty")
        return token
    name = env or "EGRESS_HEC_TOKEN"
    token = (os.environ if environ is None else environ).get(name, "").strip()
    if not token:
        raise ValueError(f"the HEC token environment variable {name} is not set")
    return token
