"""Sidecar throughput, alert latency and memory over a live replay (issue 8, point 6).

A writer (this process) appends Zeek conn.log lines to a live ``conn.log`` at a fixed rate
(``--rate`` lines/s, in slices every 0.1 s) for ``--seconds``, while ``egress sidecar``
follows the directory in a child process (file sink, metrics on 127.0.0.1). Log time runs
``--accel`` times faster than the wall clock, so a one-minute run spans hours of windows.
Background lines go to ``--tenants`` tenants (a /24 each) from 50,000 remote addresses and
stay far below every shipped signature's thresholds. Halfway through, one line gives tenant
``t-00000`` 60 TB in one second: the alert latency is the time from that line's write to
the alert line in the sink file.

Printed: lines written and read by the sidecar (its ``egress_sidecar_records_total``), the
rate it kept (lines read / seconds from the first write until it had read them all), its
largest lag behind the writer, the alert latency, its tick times, its CPU time and its RSS
sampled over the run (flat memory: compare the quarters). The peer, in the same run:
``egress analyze`` over the finished file (the same work in one batch). Nothing is
asserted; the targets (>= 200,000 records/s, latency < 2 s, flat memory) are printed
beside the figures.

    python benchmarks/bench_sidecar.py --rate 200000 --seconds 60
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REPO = Path(__file__).resolve().parents[1]
HEADER = (
    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
    "#open\t2026-05-01-00-00-00\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\t"
    "proto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\t"
    "missed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n"
    "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\t"
    "bool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\n")
T0 = 1_777_593_600.0  # 2026-05-01T00:00:00Z
SLICE_S = 0.1
TRIGGER = "t-00000"


def write_inventory(path: Path, tenants: int) -> None:
    lines = ["site: {name: bench, country: MY, networks: [10.0.0.0/8]}",
             "concern_countries: [CN]", "tenants:"]
    for i in range(tenants):
        lines.append(
            f"  - {{id: t-{i:05d}, name: T{i}, registered: 2026-01-{1 + i % 28:02d}, "
            f"country: MY, kyc: verified, payment: invoice, networks: "
            f"[{{cidr: 10.{i // 256}.{i % 256}.0/24, from: 2026-01-01}}]}}")
    path.write_text("\n".join(lines) + "\n")


def write_geo(path: Path) -> None:
    countries = ("CN", "US", "DE", "SG")
    path.write_text("\n".join(f"{a}.0.0.0,{a}.255.255.255,{countries[a % 4]}"
                              for a in range(1, 100)) + "\n")


def background(rng: np.random.Generator, n: int, first_uid: int,
               tenants: int) -> tuple[pa.Array, pa.Array]:
    """``n`` ordinary connections (inbound or outbound): each line's start as an offset
    (seconds, <= 0) from the moment it is written, and the text after its ``ts`` field."""
    tenant = rng.integers(0, tenants, n)
    host = rng.integers(2, 250, n)
    remote = rng.integers(0, 50_000, n)
    inbound = rng.random(n) < 0.6
    size = rng.integers(1_000, 50_000_000, n)
    small = rng.integers(100, 100_000, n)
    duration = np.round(rng.exponential(20.0, n), 6)
    rests = []
    for i in range(n):
        local = f"10.{tenant[i] // 256}.{tenant[i] % 256}.{host[i]}"
        r = int(remote[i])
        far = f"{1 + r % 99}.{(r // 99) % 256}.{(r // 25_344) % 256}.{1 + r % 253}"
        orig, resp = (far, local) if inbound[i] else (local, far)
        big, little = int(size[i]), int(small[i])
        op, rp = big // 1400 + 1, little // 600 + 1
        rests.append(f"C{first_uid + i}\t{orig}\t40000\t{resp}\t443\ttcp\t-\t{duration[i]:.6f}"
                     f"\t{big}\t{little}\tSF\t-\t-\t0\tShADadFf\t{op}\t{big + 52 * op}\t{rp}"
                     f"\t{little + 52 * rp}\t(empty)\n")
    return pa.array(-duration), pa.array(rests, pa.string())


def lines_at(offsets: pa.Array, rests: pa.Array, log_ts: float) -> bytes:
    """The lines of one slice with their ``ts`` set from ``log_ts``."""
    ts = pc.cast(pc.round(pc.add(offsets, log_ts), 6), pa.string())
    text = pc.binary_join_element_wise(ts, rests, "\t")
    offsets_buf = np.frombuffer(text.buffers()[1], np.int32, len(text) + 1, text.offset * 4)
    data: bytes = text.buffers()[2].to_pybytes()
    return data[int(offsets_buf[0]):int(offsets_buf[-1])]


def trigger_line(log_ts: float) -> bytes:
    size = 60 * 10**12
    return (f"{log_ts - 1:.6f}\tCtrigger\t1.2.3.4\t40000\t10.0.0.7\t443\ttcp\t-\t1.000000\t"
            f"{size}\t1000\tSF\t-\t-\t0\tShADadFf\t{size // 1400}\t{size + size // 1400 * 52}"
            f"\t10\t1520\t(empty)\n").encode()


def rss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match[1]) / 1024 if match else 0.0


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        body = answer.read().decode()
    values = [float(m[1]) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", body, re.M)]
    return sum(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=200_000, help="lines per second offered")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to write")
    parser.add_argument("--tenants", type=int, default=1_000)
    parser.add_argument("--accel", type=float, default=600.0, help="log seconds per second")
    parser.add_argument("--interval", type=float, default=0.25, help="sidecar tick interval")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="egress-bench-sidecar-"))
    (work / "zeek").mkdir()
    write_inventory(work / "inventory.yaml", args.tenants)
    write_geo(work / "geo.csv")
    alerts = work / "alerts.log"
    (work / "sidecar.yaml").write_text("\n".join([
        f"inventory: {work / 'inventory.yaml'}", f"geo: [{work / 'geo.csv'}]",
        "inputs:", f"  - {{name: zeek, kind: zeek, path: {work / 'zeek'}}}",
        f"sinks: ['file://{alerts}?format=ecs']", f"state_directory: {work / 'state'}",
        f"interval_s: {args.interval}", "listen: 127.0.0.1:0", "retention_days: 7",
        "windows: {memory_limit: 2GB}", ""]))
    conn = work / "zeek" / "conn.log"
    conn.write_bytes(HEADER.encode())

    rng = np.random.default_rng(8)
    per_slice = max(1, round(args.rate * SLICE_S))
    slices = int(args.seconds / SLICE_S)
    print(f"pre-generating {slices} slices of {per_slice:,} lines ...", file=sys.stderr)
    texts = [background(rng, per_slice, k * per_slice, args.tenants)
             for k in range(min(slices, 20))]  # reused with later times (new uids not needed:
    # Zeek uids only join enrichment logs, and each line is a final conn record)

    process = subprocess.Popen(
        [sys.executable, "-c", "from egress.cli_sidecar import sidecar_command; "
         "sidecar_command()", "--config", str(work / "sidecar.yaml")],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE, text=True)
    port_box: list[int] = []

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if m := re.search(r"serving /healthz and /metrics on 127\.0\.0\.1:(\d+)", line):
                port_box.append(int(m[1]))
            elif "Traceback" in line or "error" in line.lower():
                print("sidecar:", line.rstrip(), file=sys.stderr)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.time() + 60
    while not port_box and time.time() < deadline:
        time.sleep(0.05)
    if not port_box:
        process.kill()
        sys.exit("the sidecar did not start")
    port = port_box[0]
    time.sleep(1.0)  # first (empty) tick

    written = 0
    lag_max = 0.0
    samples: list[tuple[float, float, float]] = []  # (t, rss MB, read lines)
    trigger_at: float | None = None
    alert_at: float | None = None
    started = time.perf_counter()
    cpu0 = cpu_s(process.pid)
    with conn.open("ab") as fh:
        for k in range(slices):
            due = started + k * SLICE_S
            if (pause := due - time.perf_counter()) > 0:
                time.sleep(pause)
            log_ts = T0 + (time.perf_counter() - started) * args.accel
            text = lines_at(*texts[k % len(texts)], log_ts)
            fh.write(text)
            written += per_slice
            if k == slices // 2:
                fh.write(trigger_line(log_ts))
                written += 1
                fh.flush()
                trigger_at = time.perf_counter()
            fh.flush()
            if k % 5 == 0:
                read = metric(port, "egress_sidecar_records_total")
                lag_max = max(lag_max, written - read)
                samples.append((time.perf_counter() - started, rss_mb(process.pid), read))
            if trigger_at is not None and alert_at is None and alerts.exists() \
                    and TRIGGER.encode() in alerts.read_bytes():
                alert_at = time.perf_counter()
    write_end = time.perf_counter() - started
    read = metric(port, "egress_sidecar_records_total")
    while read < written and time.perf_counter() - started < write_end + 600:
        time.sleep(0.1)
        read = metric(port, "egress_sidecar_records_total")
        samples.append((time.perf_counter() - started, rss_mb(process.pid), read))
        if alert_at is None and alerts.exists() and TRIGGER.encode() in alerts.read_bytes():
            alert_at = time.perf_counter()
    caught_up = time.perf_counter() - started
    while alert_at is None and time.perf_counter() - started < caught_up + 30:
        if alerts.exists() and TRIGGER.encode() in alerts.read_bytes():
            alert_at = time.perf_counter()
        time.sleep(0.05)
    sidecar_cpu = cpu_s(process.pid) - cpu0
    last_tick = metric(port, "egress_sidecar_last_tick_seconds")
    ticks_total = metric(port, "egress_sidecar_ticks_total")
    process.terminate()
    process.wait(timeout=120)

    peer_started = time.perf_counter()
    peer = subprocess.run(
        [sys.executable, "-c", "from egress.cli import main; main()", "analyze",
         "--inventory", str(work / "inventory.yaml"), "--geo", str(work / "geo.csv"),
         "--format", "json", str(conn)], check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    peer_s = time.perf_counter() - peer_started

    print(f"\nsidecar replay, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
          f"{args.tenants:,} tenants, log time x{args.accel:g}, tick every {args.interval} s")
    print(f"  written           {written:>12,} lines in {write_end:.1f} s "
          f"({written / write_end:,.0f}/s offered)")
    print(f"  read by sidecar   {int(read):>12,} lines; all read {caught_up:.1f} s after the "
          f"first write -> {read / caught_up:,.0f} records/s kept (target >= 200,000)")
    print(f"  largest lag       {int(lag_max):>12,} lines behind the writer "
          f"({lag_max / max(args.rate, 1):.2f} s of input)")
    latency = None if alert_at is None or trigger_at is None else alert_at - trigger_at
    print("  alert latency     " + ("no alert" if latency is None else f"{latency:.2f} s")
          + " (target < 2 s)")
    print(f"  sidecar CPU       {sidecar_cpu:.1f} s ({read / max(sidecar_cpu, 1e-9):,.0f} "
          f"records per CPU second); {int(ticks_total)} ticks, last {last_tick:.2f} s")
    quarter = [s for s in samples if s[1] > 0]
    if quarter:
        marks = [quarter[min(len(quarter) - 1, len(quarter) * q // 4)] for q in (1, 2, 3, 4)]
        print("  RSS               " + ", ".join(
            f"{m[1]:,.0f} MB at {m[0]:.0f} s" for m in marks) +
            f"; peak sampled {max(s[1] for s in quarter):,.0f} MB")
    rows = re.search(r"(\d[\d,]*) records", peer.stderr)
    print(f"  peer: egress analyze over the finished file: {peer_s:.1f} s "
          f"({written / peer_s:,.0f} records/s), exit {peer.returncode}"
          + (f", {rows[1]} records" if rows else ""))
    if peer.returncode not in (0, 1):
        print(peer.stderr[-2000:], file=sys.stderr)
    if args.keep:
        print(f"  work directory kept: {work}")
    else:
        import shutil
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
