"""Syslog over TCP to a local rsyslogd, end to end through the spool, next to two peers.

Runs, each against a fresh rsyslogd (imtcp, octet counting, Direct queue, omfile):

- ``egress``: enqueue N formatted alerts in the spool (SQLite, WAL, synchronous=FULL),
  drain them with :class:`~egress.sinks.delivery.Delivery` over
  :class:`~egress.sinks.syslog.TcpTransport`, until rsyslogd has written all N lines;
- ``raw socket``: the same RFC 5424 frames, built ahead, sent with one ``sendall`` and no
  spool (what the network and rsyslogd allow);
- ``logger``: util-linux ``logger --tcp --octet-count --rfc5424`` reading N lines on stdin.

Prints alerts/s (wall), the CPU seconds of this process and of rsyslogd, and the ratios.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from egress.findings import Finding
from egress.formats.findings_json import finding_json_line
from egress.sinks.alert import Alert
from egress.sinks.delivery import Delivery
from egress.sinks.spool import Spool
from egress.sinks.syslog import MessageBuilder, TcpTransport, octet_counted

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def alerts(n: int) -> list[Alert]:
    """``n`` alerts in egress's JSON line form (about 600 bytes each)."""
    out = []
    for i in range(n):
        finding = Finding(
            id=f"finding-{i:08d}", signature_id="EGR-001", signature_version=1,
            title="Bulk arrival", severity="high", signature_severity="medium", risk_score=72,
            risk_factors=(), attack=("T1105",), tenant="t-42", tenant_name="Example AI",
            direction="in", span="24h", window_start=T0, window_end=T0,
            message=f"tenant t-42 received 2.1 TB from 3 countries in 24 h ({i})",
            metrics=(), facts=(), steps=(), countries=(), transfers=(), dedup_key=f"k{i}",
            suppressed=0)
        out.append(Alert(event_id=finding.id, payload=finding_json_line(finding).encode(),
                         format="json", severity="high", time_s=T0.timestamp() + i))
    return out


class Rsyslogd:
    """A foreground rsyslogd with one imtcp input on 127.0.0.1 writing raw lines to a file."""

    def __init__(self, workdir: Path, binary: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.out = workdir / "received.log"
        config = workdir / "rsyslog.conf"
        config.write_text(f"""
global(workDirectory="{workdir}" maxMessageSize="64k")
main_queue(queue.type="Direct")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="out") {{ action(type="omfile" file="{self.out}" template="raw") }}
input(type="imtcp" address="127.0.0.1" port="{self.port}" ruleset="out")
""")
        self.proc = subprocess.Popen([binary, "-n", "-f", str(config), "-i",
                                      str(workdir / "pid")], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("rsyslogd did not start") from None
                time.sleep(0.02)
        self._seen = 0
        self._offset = 0

    def wait_lines(self, n: int, timeout_s: float = 120.0) -> int:
        """Wait until ``n`` lines were written; returns the lines seen."""
        deadline = time.monotonic() + timeout_s
        while self._seen < n and time.monotonic() < deadline:
            if self.out.exists():
                with self.out.open("rb") as f:
                    f.seek(self._offset)
                    chunk = f.read()
                self._offset += len(chunk)
                self._seen += chunk.count(b"\n")
            if self._seen < n:
                time.sleep(0.005)
        return self._seen

    def stop_cpu_s(self) -> float:
        """Stop it; its user+system CPU seconds (from the children's rusage)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(name: str, n: int, workdir: Path, binary: str,
            run: Callable[[int], None]) -> tuple[str, float, float, float, int]:
    """(name, wall s, sender CPU s, rsyslogd CPU s, lines received) of one run; the
    sender's CPU includes its child processes (logger)."""
    daemon = Rsyslogd(workdir / name.split(maxsplit=1)[0], binary)
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    run(daemon.port)
    seen = daemon.wait_lines(n)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu += (children.ru_utime - children0.ru_utime) + (children.ru_stime - children0.ru_stime)
    return name, wall, cpu, daemon.stop_cpu_s(), seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    binary = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    if not os.path.exists(binary):
        sys.exit("bench_delivery: rsyslogd is not installed (apt-get install rsyslog)")
    n = args.alerts
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="egress-bench-delivery-"))
    batch = alerts(n)
    payload_bytes = sum(len(a.payload) for a in batch)
    builder = MessageBuilder(hostname="bench")
    results = []
    phases: dict[str, float] = {}

    def egress_run(port: int) -> None:
        t = time.perf_counter()
        for old in workdir.glob("spool.db*"):
            old.unlink()
        with Spool(workdir / "spool.db") as spool:
            spool.register("syslog", format="json")
            for i in range(0, n, 10_000):
                spool.enqueue(batch[i:i + 10_000])
            phases["enqueue"] = time.perf_counter() - t
            transport = TcpTransport("127.0.0.1", port, builder=builder)
            t = time.perf_counter()
            stats = Delivery(spool, "syslog", transport, format="json",
                             batch_size=args.batch_size).drain()
            transport.close()
            phases["drain"] = time.perf_counter() - t
            assert stats.delivered == n

    frames = b"".join(octet_counted(builder.message(a)) for a in batch)

    def raw_run(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(frames)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(4096):
                pass

    lines = b"".join(a.payload for a in batch)

    def logger_run(port: int) -> None:
        subprocess.run(["logger", "--tcp", "--octet-count", "--rfc5424", "-n", "127.0.0.1",
                        "-P", str(port), "-t", "egress"], input=lines, check=True)

    results.append(measure("egress (spool + tcp)", n, workdir, binary, egress_run))
    results.append(measure("raw socket, no spool", n, workdir, binary, raw_run))
    if shutil.which("logger"):
        results.append(measure("logger --tcp", n, workdir, binary, logger_run))
    print(f"{n:,} alerts of {payload_bytes / n:.0f} bytes on average "
          f"(batch {args.batch_size}); rsyslogd {binary}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"egress phases: enqueue {phases['enqueue']:.2f} s "
          f"({n / phases['enqueue']:,.0f}/s), drain + send {phases['drain']:.2f} s")
    print(f"{'run':<22}{'alerts/s':>10}{'wall s':>8}{'sender CPU s':>14}"
          f"{'alerts/CPU s':>14}{'rsyslogd CPU s':>16}{'received':>10}")
    for name, wall, cpu, rs_cpu, seen in results:
        print(f"{name:<22}{n / wall:>10,.0f}{wall:>8.2f}{cpu:>14.2f}{n / max(cpu, 1e-9):>14,.0f}"
              f"{rs_cpu:>16.2f}{seen:>10,}")
    base_wall, base_cpu = results[0][1], results[0][2]
    for name, wall, cpu, _, _ in results[1:]:
        print(f"egress / {name}: {base_wall / wall:.2f}x the wall time, "
              f"{base_cpu / max(cpu, 1e-9):.1f}x the sender CPU")


if __name__ == "__main__":
    main()
