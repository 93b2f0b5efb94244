"""Syslog: exact RFC 5424 messages, framing, and delivery to a real rsyslogd through an outage."""

from __future__ import annotations

import json
import re
import socket
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from egress.errors import EventsRejected, SinkUnavailable
from egress.sinks.alert import Alert
from egress.sinks.delivery import Backoff, Delivery
from egress.sinks.spool import Spool
from egress.sinks.syslog import (
    SYSLOG_SEVERITY,
    MessageBuilder,
    TcpTransport,
    UdpTransport,
    octet_counted,
    sd_escape,
    timestamp,
    tls_context,
)
from tests.sinks.conftest import Certs, Rsyslog, free_port, make_alerts

RFC5424 = re.compile(
    r'<(?P<pri>\d{1,3})>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (?P<host>[!-~]{1,255}) '
    r'(?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) (?P<msgid>[!-~]{1,32}) '
    r'\[egress@32473 id="(?P<id>(?:[^"\\\]]|\\["\\\]])*)"\] (?P<msg>.*)')


def parse(line: str) -> tuple[int, str, dict[str, object]]:
    """PRI, event id (unescaped) and the JSON payload of one received message."""
    m = RFC5424.fullmatch(line)
    assert m is not None, f"not an RFC 5424 message of egress: {line[:200]!r}"
    event_id = re.sub(r"\\(.)", r"\1", m["id"])
    return int(m["pri"]), event_id, json.loads(m["msg"])


def test_message_is_exact_rfc5424() -> None:
    builder = MessageBuilder(facility=16, hostname="sensor-1", procid="77")
    alert = Alert(event_id='a"b\\c]d', payload=b'CEF:0|egress|x\n', format="cef",
                  severity="critical", time_s=1772366400.25)
    assert builder.message(alert) == (
        b'<130>1 2026-03-01T12:00:00.250000Z sensor-1 egress 77 cef '
        b'[egress@32473 id="a\\"b\\\\c\\]d"] CEF:0|egress|x')
    assert octet_counted(b"<1>1 x") == b"6 <1>1 x"
    assert sd_escape('"\\]') == '\\"\\\\\\]'


@pytest.mark.parametrize(("severity", "pri"), [("critical", 2), ("high", 3), ("medium", 4),
                                               ("low", 5), ("informational", 6)])
def test_pri_follows_severity(severity: str, pri: int) -> None:
    alert = Alert(event_id="i", payload=b"x", format="ecs", severity=severity, time_s=0.0)
    head = MessageBuilder(facility=10, hostname="h", procid="1").message(alert)
    assert head.startswith(f"<{80 + pri}>1 1970-01-01T00:00:00.000000Z h egress 1 ecs ".encode())


def test_timestamp_rounds_to_the_microsecond() -> None:
    assert timestamp(0.0) == "1970-01-01T00:00:00.000000Z"
    assert timestamp(1772366399.9999996) == "2026-03-01T12:00:00.000000Z"
    assert timestamp(1772366400.123456) == "2026-03-01T12:00:00.123456Z"


def test_facility_is_checked() -> None:
    with pytest.raises(ValueError, match="facility 24 is not within 0-23"):
        MessageBuilder(facility=24)


def test_udp_one_datagram_per_message_and_oversize_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(2)
        builder = MessageBuilder(hostname="h", procid="1")
        transport = UdpTransport("127.0.0.1", server.getsockname()[1], builder=builder,
                                 max_datagram=600)
        alerts = make_alerts(3)
        big = Alert(event_id="big", payload=b"x" * 700, format="json", time_s=0.0)
        with pytest.raises(EventsRejected, match="1 alerts too large for UDP") as caught:
            transport.send([alerts[0], big, alerts[1], alerts[2]])
        assert caught.value.rejected == {
            1: "syslog message of 775 bytes exceeds the UDP limit of 600 bytes"}
        received = [server.recv(65535) for _ in range(3)]
        transport.close()
    assert received == [builder.message(a) for a in alerts]


def test_tcp_unreachable_is_unavailable() -> None:
    transport = TcpTransport("127.0.0.1", free_port(), timeout_s=2)
    with pytest.raises(SinkUnavailable, match=r"syslog\+tcp://127.0.0.1:\d+: cannot connect"):
        transport.send(make_alerts(1))


def test_tls_refuses_a_server_of_another_ca(rsyslog: Rsyslog, certs: Certs) -> None:
    transport = TcpTransport("127.0.0.1", rsyslog.tls_port,
                             tls=tls_context(ca_file=certs.other_ca), timeout_s=5)
    with pytest.raises(SinkUnavailable, match="server certificate refused"):
        transport.send(make_alerts(1))


def test_tls_checks_the_host_name(rsyslog: Rsyslog, certs: Certs) -> None:
    transport = TcpTransport("127.0.0.1", rsyslog.tls_port, server_hostname="siem.example",
                             tls=tls_context(ca_file=certs.ca), timeout_s=5)
    with pytest.raises(SinkUnavailable, match="Hostname mismatch"):
        transport.send(make_alerts(1))


def test_udp_to_rsyslog(rsyslog: Rsyslog) -> None:
    transport = UdpTransport("127.0.0.1", rsyslog.udp_port)
    transport.send(make_alerts(50))
    transport.close()
    lines = rsyslog.wait_lines(50)
    assert sorted(parse(line)[1] for line in lines) == [f"finding-{i:06d}" for i in range(50)]


def test_tls_with_client_certificate(tmp_path: Path, certs: Certs) -> None:
    from tests.sinks.conftest import RSYSLOGD

    if RSYSLOGD is None:
        pytest.skip("rsyslogd is not installed (.ci/run installs the rsyslog package)")
    daemon = Rsyslog(tmp_path, certs, mutual=True)
    daemon.start()
    try:
        anonymous = TcpTransport("127.0.0.1", daemon.tls_port, timeout_s=5,
                                 tls=tls_context(ca_file=certs.ca))
        deadline = time.monotonic() + 10
        with pytest.raises(SinkUnavailable):  # refused at the handshake or at the next send
            while time.monotonic() < deadline:
                anonymous.send(make_alerts(1, start=999))
                time.sleep(0.02)
        anonymous.close()
        context = tls_context(ca_file=certs.ca, cert_file=certs.client_cert,
                              key_file=certs.client_key)
        transport = TcpTransport("127.0.0.1", daemon.tls_port, tls=context, timeout_s=5)
        transport.send(make_alerts(20))
        transport.flush()
        lines = daemon.wait_lines(20)
    finally:
        daemon.stop()
    assert sorted(parse(line)[1] for line in lines) == [f"finding-{i:06d}" for i in range(20)]


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_no_alert_lost_when_rsyslog_restarts_mid_stream(
        tmp_path: Path, rsyslog: Rsyslog, certs: Certs, tls: bool) -> None:
    total = 10_000
    with Spool(tmp_path / "spool.db") as spool:
        spool.enqueue(make_alerts(total))
        port = rsyslog.tls_port if tls else rsyslog.tcp_port
        transport = TcpTransport("127.0.0.1", port, timeout_s=5,
                                 tls=tls_context(ca_file=certs.ca) if tls else None)
        sleeps: list[float] = []

        def sleep(delay: float) -> None:
            # The receiver comes back after the sender has noticed the outage twice.
            sleeps.append(delay)
            if len(sleeps) == 2:
                rsyslog.wait_stopped()
                rsyslog.start()
            time.sleep(delay)

        class StopMidStream:
            """The transport under test; rsyslog is stopped right after its 12th batch."""

            sends = 0

            def send(self, batch: Sequence[Alert]) -> None:
                transport.send(batch)
                self.sends += 1
                if self.sends == 12:  # whatever rsyslog has not read yet is lost to it
                    rsyslog.stop(wait=False)

            def flush(self) -> None:
                transport.flush()

            def close(self) -> None:
                transport.close()

        delivery = Delivery(spool, "syslog", StopMidStream(), format="json", batch_size=250,
                            backoff=Backoff(base_s=0.02, cap_s=0.2, give_up_s=60), sleep=sleep)
        stats = delivery.drain()
        transport.close()
        assert spool.stats().rows == 0
    assert stats.delivered == total
    assert stats.rejected == 0
    assert rsyslog.starts == 2
    assert stats.retries >= 2
    lines = rsyslog.wait_lines(total)
    ids: Counter[str] = Counter()
    whole: list[str] = []
    cut: list[str] = []
    for line in lines:
        try:
            pri, event_id, payload = parse(line)
            assert payload["id"] == event_id  # the frame held exactly one whole alert
        except (AssertionError, ValueError):
            # rsyslog submits the incomplete frame it holds when it stops ("Incomplete
            # frame at end of stream"); the whole message comes again with the replay.
            cut.append(line)
            continue
        whole.append(line)
        assert pri == 16 * 8 + SYSLOG_SEVERITY[str(payload["severity"])]
        ids[event_id] += 1
    assert len(cut) <= 1, cut
    assert all(any(w.startswith(c) for w in whole) for c in cut)
    assert set(ids) == {f"finding-{i:06d}" for i in range(total)}
    duplicates = sum(ids.values()) - total
    print(f"{'tls' if tls else 'tcp'}: {total} alerts, {len(lines)} received, {len(ids)} "
          f"distinct, {duplicates} duplicates, {len(cut)} cut, {stats.retries} retries, "
          f"{transport.replayed_bytes} bytes replayed, {transport.connections} connections")
