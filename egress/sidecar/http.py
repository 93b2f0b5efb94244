"""``/healthz`` and Prometheus ``/metrics`` on a loopback address (standard library only).

:class:`Metrics` holds the counters and gauges the service updates (under a lock; the
server runs in its own thread) and renders the text exposition format (version 0.0.4).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

_HELP = {
    "egress_sidecar_records_total": ("counter", "Records read, per input."),
    "egress_sidecar_input_lag_seconds": (
        "gauge", "Seconds since the input was last read to its end (all complete lines)."),
    "egress_sidecar_malformed_lines": (
        "gauge", "Lines the readers counted as issues, per input (whole-file inputs: as "
                 "last read)."),
    "egress_sidecar_unattributed_total": (
        "counter", "Records attributed to no tenant since the process started, per input."),
    "egress_sidecar_alerts_total": ("counter", "Alerts spooled by this process, per severity."),
    "egress_sidecar_webhook_requests_total": (
        "counter", "Webhook requests answered, per input and HTTP status."),
    "egress_sidecar_spool_depth": ("gauge", "Alerts held in the spool."),
    "egress_sidecar_transfers": ("gauge", "Transfers retained for the windows."),
    "egress_sidecar_ticks_total": ("counter", "Ticks completed."),
    "egress_sidecar_tick_errors_total": ("counter", "Ticks that failed."),
    "egress_sidecar_last_tick_seconds": ("gauge", "Duration of the last tick."),
    "egress_sidecar_last_tick_timestamp_seconds": ("gauge", "When the last tick completed."),
}


@dataclass(slots=True)
class Metrics:
    """The sidecar's counters and gauges; methods are thread-safe."""

    clock: Callable[[], float] = time.time
    records: Counter[str] = field(default_factory=Counter)
    caught_up_at: dict[str, float] = field(default_factory=dict)
    malformed: dict[str, int] = field(default_factory=dict)
    unattributed: Counter[str] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)
    webhook: Counter[tuple[str, int]] = field(default_factory=Counter)
    spool_depth: int = 0
    transfers: int = 0
    ticks: int = 0
    tick_errors: int = 0
    last_tick_s: float = 0.0
    last_tick_at: float | None = None
    started_at: float = field(default_factory=time.time)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        now = self.clock()
        with self.lock:
            samples: dict[str, list[tuple[str, float]]] = {
                "egress_sidecar_records_total": _by("input", self.records),
                "egress_sidecar_input_lag_seconds": [
                    (f'input="{_esc(k)}"', max(0.0, now - v))
                    for k, v in sorted(self.caught_up_at.items())],
                "egress_sidecar_malformed_lines": _by("input", self.malformed),
                "egress_sidecar_unattributed_total": _by("input", self.unattributed),
                "egress_sidecar_alerts_total": _by("severity", self.alerts),
                "egress_sidecar_webhook_requests_total": [
                    (f'input="{_esc(k)}",status="{code}"', float(v))
                    for (k, code), v in sorted(self.webhook.items())],
                "egress_sidecar_spool_depth": [("", self.spool_depth)],
                "egress_sidecar_transfers": [("", self.transfers)],
                "egress_sidecar_ticks_total": [("", self.ticks)],
                "egress_sidecar_tick_errors_total": [("", self.tick_errors)],
                "egress_sidecar_last_tick_seconds": [("", self.last_tick_s)],
                "egress_sidecar_last_tick_timestamp_seconds": [("", self.last_tick_at or 0.0)],
            }
        lines: list[str] = []
        for name, values in samples.items():
            kind, text = _HELP[name]
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            lines += [f"{name}{{{labels}}} {_num(v)}" if labels else f"{name} {_num(v)}"
                      for labels, v in values]
        return "\n".join(lines) + "\n"

    def health(self, *, stale_after_s: float) -> tuple[bool, dict[str, object]]:
        """Whether a tick completed within ``stale_after_s`` (or the process is younger)."""
        now = self.clock()
        with self.lock:
            since = self.last_tick_at if self.last_tick_at is not None else self.started_at
            age = now - since
            body: dict[str, object] = {"ticks": self.ticks, "tick_errors": self.tick_errors,
                                       "seconds_since_last_tick": round(age, 3)}
        ok = age <= stale_after_s
        body["status"] = "ok" if ok else "stale"
        return ok, body


def _by(label: str, values: dict[str, int] | Counter[str]) -> list[tuple[str, float]]:
    return [(f'{label}="{_esc(k)}"', float(v)) for k, v in sorted(values.items())]


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def bind(host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A threading HTTP server bound to ``host:port`` (IPv4 or IPv6), daemon threads."""
    server_class = _Server6 if ":" in host else ThreadingHTTPServer
    server = server_class((host, port), handler)
    server.daemon_threads = True
    return server


class BackgroundServer:
    """An HTTP server bound to ``host:port`` (see :func:`bind`), served by a daemon thread
    named ``name`` once :meth:`start` is called."""

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler], *,
                 name: str) -> None:
        self._server = bind(host, port, handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name=name,
                                        daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        """The host and port bound (the port the system chose when 0 was asked)."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving (if started) and release the socket."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


class MetricsServer(BackgroundServer):
    """Serves ``/healthz`` and ``/metrics`` of ``metrics`` in a daemon thread."""

    def __init__(self, metrics: Metrics, host: str, port: int, *, stale_after_s: float) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    owner._reply(self, 200, metrics.render(),
                                 "text/plain; version=0.0.4; charset=utf-8")
                elif self.path == "/healthz":
                    ok, body = metrics.health(stale_after_s=stale_after_s)
                    owner._reply(self, 200 if ok else 503, json.dumps(body) + "\n",
                                 "application/json")
                else:
                    owner._reply(self, 404, "not found\n", "text/plain")

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http: " + format, *args)

        super().__init__(host, port, Handler, name="egress-sidecar-http")

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: str, kind: str) -> None:
        data = body.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
