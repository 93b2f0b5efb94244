"""Shared pieces of the sink tests: alerts, test certificates and a real rsyslog daemon."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from egress.findings import Finding
from egress.formats.findings_json import finding_json_line
from egress.sinks.alert import Alert

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def sample_finding(i: int) -> Finding:
    """A small finding whose id is ``f"finding-{i:06d}"``."""
    return Finding(
        id=f"finding-{i:06d}", signature_id="EGR-001", signature_version=1,
        title="Bulk arrival", severity=("low", "medium", "high", "critical")[i % 4],
        signature_severity="medium", risk_score=40, risk_factors=(), attack=("T1105",),
        tenant="t-42", tenant_name="Example AI", direction="in", span="24h",
        window_start=T0, window_end=T0, message=f"tenant t-42 received 2.1 TB ({i})",
        metrics=(), facts=(), steps=(), countries=(), transfers=(), dedup_key=f"k{i}",
        suppressed=0)


def make_alerts(n: int, *, start: int = 0, format: str = "json") -> list[Alert]:
    """``n`` alerts whose payloads are egress's JSON finding lines."""
    out = []
    for i in range(start, start + n):
        finding = sample_finding(i)
        out.append(Alert(event_id=finding.id, payload=finding_json_line(finding).encode(),
                         format=format, severity=finding.severity,
                         time_s=T0.timestamp() + i))
    return out


@dataclass(frozen=True, slots=True)
class Certs:
    """A test CA, a server certificate for 127.0.0.1/localhost and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(d: Path, name: str, cn: str, ext: str) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    (d / f"{name}.ext").write_text(ext + "\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
             cwd=d)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """Certificates made by ``openssl`` for this run (skips when openssl is missing)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    d = tmp_path_factory.mktemp("certs")
    for ca in ("ca", "other"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", f"{ca}.key",
                 "-out", f"{ca}.pem", "-days", "2", "-subj", f"/CN=egress test {ca}", cwd=d)
    _issue(d, "server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1")
    _issue(d, "client", "egress-client", "extendedKeyUsage=clientAuth")
    return Certs(ca=d / "ca.pem", server_cert=d / "server.pem", server_key=d / "server.key",
                 client_cert=d / "client.pem", client_key=d / "client.key",
                 other_ca=d / "other.pem")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


RSYSLOGD = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd"
                                        if os.path.exists("/usr/sbin/rsyslogd") else None)


class Rsyslog:
    """A real rsyslogd in the foreground: plain TCP, TLS (gtls, client certificate
    required when ``mutual``) and UDP inputs on 127.0.0.1, every message's raw text
    written as one line to :attr:`out`."""

    def __init__(self, d: Path, certs: Certs, *, mutual: bool = False) -> None:
        assert RSYSLOGD is not None
        self.dir = d
        self.out = d / "received.log"
        self.tcp_port = free_port()
        self.tls_port = free_port()
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.config = d / "rsyslog.conf"
        auth = "x509/certvalid" if mutual else "anon"
        self.config.write_text(f"""
global(workDirectory="{d}" maxMessageSize="64k"
       defaultNetstreamDriverCAFile="{certs.ca}"
       defaultNetstreamDriverCertFile="{certs.server_cert}"
       defaultNetstreamDriverKeyFile="{certs.server_key}")
# Direct: an input thread writes each message before reading the next, so nothing read
# is held in a memory queue when rsyslog stops.
main_queue(queue.type="Direct")
module(load="imtcp" maxSessions="50")
module(load="imudp")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="out") {{ action(type="omfile" file="{self.out}" template="raw") }}
input(type="imtcp" address="127.0.0.1" port="{self.tcp_port}" ruleset="out")
input(type="imtcp" address="127.0.0.1" port="{self.tls_port}" ruleset="out"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="{auth}")
input(type="imudp" address="127.0.0.1" port="{self.udp_port}" ruleset="out")
""")
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start rsyslogd and wait until both stream ports accept connections."""
        pidfile = self.dir / f"rsyslogd.{self.starts}.pid"
        with (self.dir / f"rsyslogd.{self.starts}.err").open("wb") as err:
            self.proc = subprocess.Popen([str(RSYSLOGD), "-n", "-f", str(self.config),
                                          "-i", str(pidfile)], stdout=err, stderr=err)
        self.starts += 1
        deadline = time.monotonic() + 10
        for port in (self.tcp_port, self.tls_port):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"rsyslogd exited: {self.errors()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"rsyslogd not listening: {self.errors()}") from None
                    time.sleep(0.02)

    def stop(self, *, wait: bool = True) -> None:
        """SIGTERM; with ``wait``, until it has exited."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if wait:
                self.proc.wait(timeout=20)

    def wait_stopped(self) -> None:
        """Wait for a stopping rsyslogd to exit."""
        if self.proc is not None:
            self.proc.wait(timeout=20)

    def errors(self) -> str:
        """What rsyslogd wrote on stderr so far."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.dir.glob("*.err")))

    def lines(self) -> list[str]:
        """The received messages (raw), one per line."""
        if not self.out.exists():
            return []
        return self.out.read_text(encoding="utf-8").splitlines()

    def wait_lines(self, n: int, timeout_s: float = 10.0) -> list[str]:
        """The received lines once there are at least ``n`` (or at the timeout)."""
        deadline = time.monotonic() + timeout_s
        while True:
            lines = self.lines()
            if len(lines) >= n or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)


@pytest.fixture
def rsyslog(tmp_path: Path, certs: Certs) -> Iterator[Rsyslog]:
    """A started rsyslogd (skips when rsyslogd is not installed)."""
    if RSYSLOGD is None:
        pytest.skip("rsyslogd is not installed (.ci/run installs the rsyslog package)")
    d = tmp_path / "rsyslog"
    d.mkdir()
    daemon = Rsyslog(d, certs)
    daemon.start()
    yield daemon
    daemon.stop()
