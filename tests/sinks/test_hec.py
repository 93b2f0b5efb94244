"""Splunk HEC against a local HTTPS server that answers as HEC documents."""

from __future__ import annotations

import gzip
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from egress.errors import EventsRejected, SinkMisconfigured, SinkUnavailable
from egress.sinks.alert import Alert
from egress.sinks.delivery import Backoff, Delivery
from egress.sinks.hec import HecTransport, read_token
from egress.sinks.spool import Spool
from egress.sinks.syslog import tls_context
from tests.sinks.conftest import Certs

TOKEN = "00000000-0000-4000-8000-000000000001"
INVALID = {"text": "Invalid data format", "code": 6}


class FakeHec:
    """HEC's answers: 503/429 when scripted, 403 for a wrong token, 400 with the number
    of the first event whose ``event`` has ``"bad": true`` (the events before it are
    indexed, as HEC does), else 200; acks turn true after ``ack_after`` polls."""

    def __init__(self) -> None:
        self.indexed: list[str] = []
        self.busy: list[int] = []  # statuses to answer first, one per request
        self.requests = 0
        self.encodings: set[str] = set()
        self.ack_enabled = False
        self.ack_after = 0
        self.polls = 0
        self.channels: set[str] = set()
        self._next_ack = 0
        self.lock = threading.Lock()

    def collect(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests += 1
            if headers.get("Authorization") != f"Splunk {TOKEN}":
                return 403, {"text": "Invalid token", "code": 4}
            if self.busy:
                status = self.busy.pop(0)
                return status, {"text": "Server is busy", "code": 9}
            self.encodings.add(headers.get("Content-Encoding", "identity"))
            if headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            decoder = json.JSONDecoder()
            text, pos, n = body.decode(), 0, 0
            while pos < len(text):
                event, end = decoder.raw_decode(text, pos)
                pos = end + 1
                if event["event"].get("bad"):
                    return 400, {**INVALID, "invalid-event-number": n}
                self.indexed.append(event["event"]["id"])
                n += 1
            if self.ack_enabled:
                self.channels.add(headers["X-Splunk-Request-Channel"])
                self._next_ack += 1
                return 200, {"text": "Success", "code": 0, "ackId": self._next_ack - 1}
            return 200, {"text": "Success", "code": 0}

    def ack(self, body: bytes) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.polls += 1
            acks = json.loads(body)["acks"]
            return 200, {"acks": {str(a): self.polls > self.ack_after for a in acks}}


@pytest.fixture
def hec(certs: Certs) -> Iterator[tuple[FakeHec, int]]:
    fake = FakeHec()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path.startswith("/services/collector/ack"):
                status, answer = fake.ack(body)
            elif self.path == "/services/collector":
                status, answer = fake.collect(self.headers, body)
            else:
                status, answer = 404, {"text": "The requested URL was not found", "code": 404}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


def _alert(i: int, *, bad: bool = False) -> Alert:
    payload = {"id": f"e{i:05d}", "rule": "EGR-001"} | ({"bad": True} if bad else {})
    return Alert(event_id=f"e{i:05d}", payload=json.dumps(payload).encode(), format="ecs",
                 time_s=1772366400.0 + i)


def _transport(port: int, certs: Certs, *, token: str = TOKEN, **options: Any) -> HecTransport:
    return HecTransport(f"https://127.0.0.1:{port}/services/collector", token=token,
                        context=tls_context(ca_file=certs.ca), **options)


def test_no_event_lost_through_busy_and_partial_batches(
        tmp_path: Path, hec: tuple[FakeHec, int], certs: Certs) -> None:
    fake, port = hec
    bad = {5, 6, 250, 299, 999}
    fake.busy = [503, 429]
    with Spool(tmp_path / "s.db") as spool:
        spool.enqueue(_alert(i, bad=i in bad) for i in range(1000))
        transport = _transport(port, certs)
        sleeps: list[float] = []
        stats = Delivery(spool, "hec", transport, format="ecs", batch_size=100,
                         backoff=Backoff(base_s=0.001, cap_s=0.01),
                         sleep=sleeps.append).drain()
        transport.close()
        dead = spool.dead_letters()
        assert spool.stats().rows == 0
    good = [f"e{i:05d}" for i in range(1000) if i not in bad]
    assert fake.indexed == good  # each once: resent from the event after the refused one
    assert dead == [("hec", f"e{i:05d}", "HEC 400 code 6: Invalid data format")
                    for i in sorted(bad)]
    assert (stats.delivered, stats.rejected, stats.retries, len(sleeps)) == (995, 5, 2, 2)
    # 10 batches + 2 busy answers + 3 resends (after 5, 6 and 250: 299 and 999 end theirs)
    assert fake.requests == 15
    assert fake.encodings == {"gzip"}


def test_resend_from_the_failed_event(hec: tuple[FakeHec, int], certs: Certs) -> None:
    fake, port = hec
    transport = _transport(port, certs, compress=False)
    with pytest.raises(EventsRejected, match="2 events refused") as caught:
        transport.send([_alert(0), _alert(1, bad=True), _alert(2), _alert(3, bad=True)])
    transport.close()
    assert caught.value.rejected == {1: "HEC 400 code 6: Invalid data format",
                                     3: "HEC 400 code 6: Invalid data format"}
    assert fake.indexed == ["e00000", "e00002"]
    assert fake.encodings == {"identity"}


def test_forbidden_is_a_configuration_error(
        tmp_path: Path, hec: tuple[FakeHec, int], certs: Certs) -> None:
    fake, port = hec
    with Spool(tmp_path / "s.db") as spool:
        spool.enqueue([_alert(1)])
        transport = _transport(port, certs, token="wrong")
        with pytest.raises(SinkMisconfigured, match="HEC 403 code 4: Invalid token"):
            Delivery(spool, "hec", transport, format="ecs").drain()
        transport.close()
        assert spool.stats().pending == {"hec": 1}
    assert fake.indexed == []


def test_busy_is_unavailable(hec: tuple[FakeHec, int], certs: Certs) -> None:
    fake, port = hec
    fake.busy = [503]
    transport = _transport(port, certs)
    with pytest.raises(SinkUnavailable, match="HEC 503 code 9: Server is busy"):
        transport.send([_alert(1)])
    transport.close()


def test_wrong_path_is_a_configuration_error(hec: tuple[FakeHec, int], certs: Certs) -> None:
    _, port = hec
    transport = HecTransport(f"https://127.0.0.1:{port}/collector", token=TOKEN,
                             context=tls_context(ca_file=certs.ca))
    with pytest.raises(SinkMisconfigured, match="HEC 404"):
        transport.send([_alert(1)])
    transport.close()


def test_indexer_acknowledgement(hec: tuple[FakeHec, int], certs: Certs) -> None:
    fake, port = hec
    fake.ack_enabled = True
    fake.ack_after = 2
    naps: list[float] = []
    transport = _transport(port, certs, ack=True, ack_poll_s=0.25, sleep=naps.append)
    transport.send([_alert(1), _alert(2)])
    assert (fake.polls, naps) == (3, [0.25, 0.25])
    assert fake.channels == {transport.channel}
    fake.ack_after = 10**9
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    late = _transport(port, certs, ack=True, ack_timeout_s=3, clock=clock, sleep=naps.append)
    with pytest.raises(SinkUnavailable, match="ack 1 not confirmed within 3 s"):
        late.send([_alert(3)])
    transport.close()
    late.close()


def test_envelope_wraps_other_formats_and_keeps_hec_ones(certs: Certs) -> None:
    transport = HecTransport("https://h:8088/services/collector", token=TOKEN, host="sensor",
                             index="security")
    wrapped = transport._envelope(_alert(1))
    assert json.loads(wrapped) == {"time": 1772366401.0, "host": "sensor", "source": "egress",
                                   "sourcetype": "egress:ecs", "index": "security",
                                   "event": {"id": "e00001", "rule": "EGR-001"}}
    cef = Alert(event_id="c", payload=b"CEF:0|x\n", format="cef", time_s=0.0)
    assert json.loads(transport._envelope(cef))["event"] == "CEF:0|x"
    own = Alert(event_id="h", payload=b'{"event":{"id":"h"}}\n', format="hec", time_s=0.0)
    assert transport._envelope(own) == b'{"event":{"id":"h"}}'


def test_unreachable_is_unavailable(certs: Certs) -> None:
    from tests.sinks.conftest import free_port

    transport = _transport(free_port(), certs)
    with pytest.raises(SinkUnavailable, match="Connection refused"):
        transport.send([_alert(1)])


def test_token_sources(tmp_path: Path) -> None:
    assert read_token(env="T", file=None, environ={"T": " tok \n"}) == "tok"
    path = tmp_path / "token"
    path.write_text("file-token\nignored\n")
    assert read_token(env=None, file=str(path)) == "file-token"
    path.write_text("\n")
    with pytest.raises(ValueError, match=f"the HEC token file {path} is empty"):
        read_token(env=None, file=str(path))
    with pytest.raises(ValueError, match="variable T is not set"):
        read_token(env="T", file=None, environ={})
    with pytest.raises(ValueError, match="must be https"):
        HecTransport("http://h/services/collector", token=TOKEN)
