"""Syslog transports: RFC 5424 messages over UDP (RFC 5426), TCP with octet counting
(RFC 6587) and TLS (RFC 5425).

Each alert is one message::

    <PRI>1 TIMESTAMP HOSTNAME egress PROCID MSGID [egress@32473 id="EVENT-ID"] PAYLOAD

PRI is ``facility * 8`` plus the syslog severity of the alert's severity
(:data:`SYSLOG_SEVERITY`); TIMESTAMP is the alert's time in UTC with microseconds; MSGID
is the payload's format name. The payload is sent as is (no BOM), without trailing
newlines.

Plain syslog has no application acknowledgement: ``sendall`` returning means the bytes are
in a kernel buffer, and a receiver that stops discards what it had not read yet. Two
measures make delivery at least once anyway (duplicates carry the same id):

- :meth:`TcpTransport.flush` half-closes the connection and waits for the receiver to
  close its side, which it does only after reading everything; the delivery loop
  acknowledges alerts in the spool only after such a confirmation;
- the transport keeps the last ``replay_bytes`` bytes sent since the last confirmation
  and sends them again first on a new connection whenever the old one was found closed
  or broken, so a receiver restart costs no spool round trip.

A receiver that holds read data in a memory queue and loses it on shutdown is beyond what
syslog can detect (give rsyslog a disk-assisted or Direct queue).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import ssl
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from egress.errors import EventsRejected, SinkUnavailable
from egress.sinks.alert import Alert

log = logging.getLogger(__name__)

#: Egress severity -> syslog severity (RFC 5424 table 2).
SYSLOG_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "informational": 6}

#: The structured-data id of egress's element (32473 is the documentation enterprise number).
SD_ID = "egress@32473"

FACILITIES = {"kern": 0, "user": 1, "daemon": 3, "auth": 4, "syslog": 5, "authpriv": 10,
              "audit": 13, "local0": 16, "local1": 17, "local2": 18, "local3": 19,
              "local4": 20, "local5": 21, "local6": 22, "local7": 23}


def sd_escape(value: str) -> str:
    """A PARAM-VALUE with ``\\``, ``"`` and ``]`` escaped (RFC 5424 section 6.3.3)."""
    if "\\" not in value and '"' not in value and "]" not in value:
        return value
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_field(value: str, limit: int) -> str:
    text = "".join(c if 33 <= ord(c) <= 126 else "_" for c in value)[:limit]
    return text or "-"


_DAYS: dict[int, str] = {}


def timestamp(time_s: float) -> str:
    """``time_s`` (Unix seconds) as an RFC 5424 TIMESTAMP in UTC with microseconds."""
    seconds, micros = divmod(round(time_s * 1_000_000), 1_000_000)
    day, rem = divmod(seconds, 86_400)
    date = _DAYS.get(day)
    if date is None:
        if len(_DAYS) > 4096:
            _DAYS.clear()
        date = _DAYS[day] = time.strftime("%Y-%m-%d", time.gmtime(day * 86_400))
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    return f"{date}T{hours:02d}:{minutes:02d}:{secs:02d}.{micros:06d}Z"


class MessageBuilder:
    """Builds RFC 5424 messages; ``hostname`` defaults to this host's name, ``procid``
    to this process's id."""

    def __init__(self, *, facility: int = 16, hostname: str | None = None,
                 app_name: str = "egress", procid: str | None = None) -> None:
        if not 0 <= facility <= 23:
            raise ValueError(f"syslog facility {facility} is not within 0-23")
        self.facility = facility
        self.hostname = _header_field(hostname or socket.gethostname(), 255)
        self.app_name = _header_field(app_name, 48)
        self.procid = _header_field(procid or str(os.getpid()), 128)
        self._middle = f" {self.hostname} {self.app_name} {self.procid} "
        self._msgids: dict[str, str] = {}

    def message(self, alert: Alert) -> bytes:
        """The RFC 5424 message of ``alert`` (without framing)."""
        return self._head(alert) + self._payload(alert)

    def _head(self, alert: Alert) -> bytes:
        pri = self.facility * 8 + SYSLOG_SEVERITY.get(alert.severity, 4)
        msgid = self._msgids.get(alert.format)
        if msgid is None:
            msgid = self._msgids[alert.format] = _header_field(alert.format, 32)
        return (f"<{pri}>1 {timestamp(alert.time_s)}{self._middle}{msgid} "
                f'[{SD_ID} id="{sd_escape(alert.event_id)}"] ').encode()

    @staticmethod
    def _payload(alert: Alert) -> bytes:
        payload = alert.payload
        if payload.endswith((b"\n", b"\r")):
            payload = payload.rstrip(b"\r\n")
        return payload

    def frames(self, batch: Sequence[Alert]) -> bytes:
        """The batch's messages, each octet-counted (RFC 6587 section 3.4.1), joined."""
        out = []
        head, body = self._head, self._payload
        for alert in batch:
            h, p = head(alert), body(alert)
            out.append(b"%d %b%b" % (len(h) + len(p), h, p))
        return b"".join(out)


def octet_counted(message: bytes) -> bytes:
    """``message`` framed for a stream: ``LENGTH SP MESSAGE`` (RFC 6587 section 3.4.1)."""
    return b"%d %b" % (len(message), message)


def tls_context(*, ca_file: Path | str, cert_file: Path | str | None = None,
                key_file: Path | str | None = None) -> ssl.SSLContext:
    """A client context that verifies the server against ``ca_file`` and its host name,
    presenting ``cert_file``/``key_file`` when given. Raises ``OSError`` or
    ``ssl.SSLError`` when a file cannot be read."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), None if key_file is None else str(key_file))
    return context


class UdpTransport:
    """One datagram per message (RFC 5426); a message over ``max_datagram`` bytes is
    refused (a truncated alert is worse than a counted one)."""

    def __init__(self, host: str, port: int, *, builder: MessageBuilder | None = None,
                 max_datagram: int = 8192) -> None:
        self.address = (host, port)
        self.builder = builder or MessageBuilder()
        self.max_datagram = max_datagram
        self._sock: socket.socket | None = None

    def send(self, batch: Sequence[Alert]) -> None:
        """Send each alert as one datagram."""
        rejected: dict[int, str] = {}
        try:
            if self._sock is None:
                family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
                self._sock = socket.socket(family, socket.SOCK_DGRAM)
                self._sock.connect(self.address)
            for i, alert in enumerate(batch):
                message = self.builder.message(alert)
                if len(message) > self.max_datagram:
                    rejected[i] = (f"syslog message of {len(message)} bytes exceeds the UDP "
                                   f"limit of {self.max_datagram} bytes")
                    continue
                self._sock.send(message)
        except OSError as exc:
            self.close()
            raise SinkUnavailable(f"udp {self.address[0]}:{self.address[1]}: {exc}") from exc
        if rejected:
            raise EventsRejected(f"{len(rejected)} alerts too large for UDP", rejected=rejected)

    def flush(self) -> None:
        """Nothing to wait for: UDP confirms nothing."""

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            sock, self._sock = self._sock, None
            sock.close()


class TcpTransport:
    """RFC 5424 over TCP with octet counting, or over TLS when ``tls`` is given.

    Connects on first use and again after any failure; see the module doc for the replay
    of the last ``replay_bytes`` bytes after a lost connection.
    """

    def __init__(self, host: str, port: int, *, tls: ssl.SSLContext | None = None,
                 server_hostname: str | None = None, builder: MessageBuilder | None = None,
                 timeout_s: float = 10.0, replay_bytes: int = 32 << 20) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.server_hostname = server_hostname or host
        self.builder = builder or MessageBuilder()
        self.timeout_s = timeout_s
        self.replay_bytes = replay_bytes
        self.connections = 0
        self.replayed_bytes = 0
        self._sock: socket.socket | None = None
        self._window: deque[bytes] = deque()
        self._window_bytes = 0

    @property
    def _where(self) -> str:
        return f"syslog{'+tls' if self.tls else '+tcp'}://{self.host}:{self.port}"

    def _connect(self) -> socket.socket:
        try:
            raw = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except OSError as exc:
            raise SinkUnavailable(f"{self._where}: cannot connect: {exc}") from exc
        sock = raw
        if self.tls is not None:
            sock = self.tls.wrap_socket(raw, server_hostname=self.server_hostname,
                                        do_handshake_on_connect=False)
            try:
                sock.do_handshake()
            except ssl.SSLCertVerificationError as exc:
                sock.close()
                raise SinkUnavailable(f"{self._where}: server certificate refused: "
                                      f"{exc.verify_message}") from exc
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                raise SinkUnavailable(f"{self._where}: TLS handshake failed: {exc}") from exc
        self.connections += 1
        return sock

    def _alive(self, sock: socket.socket) -> bool:
        """Whether the receiver has not closed the connection (it never sends data)."""
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return True
        sock.setblocking(False)
        try:
            # TLS 1.3 session tickets make the socket readable: they read as "want read".
            return bool(sock.recv(4096))
        except (ssl.SSLWantReadError, BlockingIOError):
            return True
        except (OSError, ssl.SSLError):
            return False
        finally:
            sock.settimeout(self.timeout_s)

    def send(self, batch: Sequence[Alert]) -> None:
        """Send the batch, first replaying the window when the connection was lost."""
        frames = self.builder.frames(batch)
        if self._sock is not None and not self._alive(self._sock):
            log.warning("%s: connection closed by the receiver; reconnecting", self._where)
            self._drop()
        data = frames
        if self._sock is None:
            self._sock = self._connect()
            if self._window:
                data = b"".join(self._window) + frames
                self.replayed_bytes += self._window_bytes
        try:
            self._sock.sendall(data)
        except (OSError, ssl.SSLError) as exc:
            self._drop()
            raise SinkUnavailable(f"{self._where}: send failed: {exc}") from exc
        self._window.append(frames)
        self._window_bytes += len(frames)
        while self._window and self._window_bytes - len(self._window[0]) >= self.replay_bytes:
            self._window_bytes -= len(self._window.popleft())

    def _drop(self) -> None:
        if self._sock is not None:
            sock, self._sock = self._sock, None
            sock.close()

    def _finish(self, sock: socket.socket) -> bool:
        """Half-close and read to the end: True when the receiver closed after reading
        everything (end of stream), False when it reset the connection or timed out.
        Always closes ``sock``."""
        try:
            sock.settimeout(min(self.timeout_s, 5.0))
            if isinstance(sock, ssl.SSLSocket):
                try:
                    sock = sock.unwrap()
                except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                    return True  # closed without close_notify, after reading all we sent
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(4096):
                pass
            return True
        except (OSError, ssl.SSLError) as exc:
            log.warning("%s: the receiver did not confirm the end of the stream: %s",
                        self._where, exc)
            return False
        finally:
            sock.close()

    def flush(self) -> None:
        """Make sure the receiver has read everything sent since the last flush.

        Closes the connection gracefully (a receiver reads to the end before it closes its
        side); when it was lost or reset instead, reconnects and sends the replay window
        again, then raises :class:`SinkUnavailable` so the caller retries the flush.
        """
        if self._sock is None and not self._window:
            return
        if self._sock is None:
            self._sock = self._connect()
            try:
                self._sock.sendall(b"".join(self._window))
                self.replayed_bytes += self._window_bytes
            except (OSError, ssl.SSLError) as exc:
                self._drop()
                raise SinkUnavailable(f"{self._where}: replay failed: {exc}") from exc
        sock, self._sock = self._sock, None
        if not self._finish(sock):
            raise SinkUnavailable(f"{self._where}: the receiver did not confirm the end of "
                                  "the stream; the last data will be sent again")
        self._window.clear()
        self._window_bytes = 0

    def close(self) -> None:
        """Close, confirming the end of the stream once (a warning is logged when the
        receiver does not confirm; call :meth:`flush` first to retry)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            self._finish(sock)
        self._window.clear()
        self._window_bytes = 0
