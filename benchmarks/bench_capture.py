"""Time egress's capture reader against peers, on generated captures, in one run.

Each tool runs as its own child process over a capture in a warm page cache;
wall clock is timed around it, CPU time comes from ``os.wait4`` and peak RSS from
GNU time wrapped around the tool (see run_child). Slow
peers (dpkt, scapy, tshark) may run on a prefix of the capture and be
extrapolated linearly in bytes; the report says so. Targets are printed as
PASS/MISS lines, never asserted.

    python benchmarks/bench_capture.py              # 1 GB mixed, 1 GB small, 10 GB big
    python benchmarks/bench_capture.py --quick      # 0.1 GB, 0.1 GB, 1 GB: a smoke run

``--worker NAME FILE`` is the child side: it reads FILE with one tool and prints
one JSON line (packets, flows).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import mmap
import os
import platform
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GB = 10**9
MB = 10**6
BIG_FREE_BYTES = 25 * GB
GNU_TIME = Path("/usr/bin/time")
FlowKey = tuple[bytes, int, bytes, int, int]

# ------------------------------------------------------------------ workers (child side)


def _key(src: bytes, sport: int, dst: bytes, dport: int, proto: int) -> FlowKey:
    """Return a direction-free 5-tuple key."""
    if (src, sport) <= (dst, dport):
        return (src, sport, dst, dport, proto)
    return (dst, dport, src, sport, proto)


def _rss_mb() -> float:
    with Path("/proc/self/statm").open() as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB


def work_egress(path: Path) -> dict[str, Any]:
    """Read with egress's CaptureReader, consuming every flow record.

    Also samples the RSS at each tenth of the file read (before the final flush).
    """
    from egress.sources.pcap import CaptureReader

    curve: list[tuple[float, float]] = []

    def progress(_path: Path, done: int, total: int | None) -> None:
        while total and len(curve) < 10 and done / total >= (len(curve) + 1) / 10:
            curve.append(((len(curve) + 1) / 10, _rss_mb()))

    reader = CaptureReader(progress=progress)
    flows = interim = 0
    for flow in reader.read([path]):
        if flow.interim:
            interim += 1
        else:
            flows += 1
    stats = reader.stats
    return {"packets": stats.packets, "flows": flows, "interim": interim, "rss_curve": curve,
            "issues": {i.kind: i.count for i in stats.issues}}


def work_dpkt(path: Path) -> dict[str, Any]:
    """Parse Ethernet (802.1Q)/IPv4/TCP/UDP with dpkt; sum IP bytes per 5-tuple."""
    import dpkt

    flows: dict[FlowKey, int] = {}
    packets = bad = 0
    with path.open("rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            packets += 1
            try:
                ip = dpkt.ethernet.Ethernet(buf).data
            except (dpkt.UnpackError, struct.error):
                bad += 1
                continue
            if not isinstance(ip, dpkt.ip.IP):
                continue
            l4 = ip.data
            sport = dport = 0
            if isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP):
                sport, dport = l4.sport, l4.dport
            k = _key(ip.src, sport, ip.dst, dport, ip.p)
            flows[k] = flows.get(k, 0) + ip.len
    return {"packets": packets, "flows": len(flows), "bad": bad}


_U16 = struct.Struct("!H")
_IP4 = struct.Struct("!B1xH5xB2x4s4s")
_PORTS = struct.Struct("!HH")


def work_scapy(path: Path) -> dict[str, Any]:
    """Read records with scapy's RawPcapReader; parse headers with struct; sum per 5-tuple."""
    from scapy.utils import RawPcapReader

    flows: dict[FlowKey, int] = {}
    packets = 0
    for data, _meta in RawPcapReader(str(path)):
        packets += 1
        off = 14
        (etype,) = _U16.unpack_from(data, 12)
        while etype in (0x8100, 0x88A8) and len(data) >= off + 4:
            (etype,) = _U16.unpack_from(data, off + 2)
            off += 4
        if etype != 0x0800 or len(data) < off + 20:
            continue
        vhl, total, proto, src, dst = _IP4.unpack_from(data, off)
        l4 = off + (vhl & 15) * 4
        sport = dport = 0
        if proto in (6, 17) and len(data) >= l4 + 4:
            sport, dport = _PORTS.unpack_from(data, l4)
        k = _key(src, sport, dst, dport, proto)
        flows[k] = flows.get(k, 0) + total
    return {"packets": packets, "flows": len(flows)}


def work_numpy(path: Path) -> dict[str, Any]:
    """Walk record headers in a Python loop, then parse and aggregate columns with numpy."""
    import numpy as np

    data = np.memmap(path, dtype=np.uint8, mode="r")
    buf = memoryview(data)  # type: ignore[arg-type]
    rec = struct.Struct("<8xI4x")
    starts: list[int] = []
    off, end = 24, len(data)
    while off + 16 <= end:
        (incl,) = rec.unpack_from(buf, off)
        if off + 16 + incl > end:
            break
        starts.append(off + 16)
        off += 16 + incl
    o = np.array(starts, dtype=np.int64)

    def u16(at: Any) -> Any:
        return data[at].astype(np.int64) << 8 | data[at + 1]

    etype = u16(o + 12)
    l3 = o + 14
    tagged = etype == 0x8100
    l3[tagged] += 4
    etype[tagged] = u16(l3[tagged] - 2)
    v4 = etype == 0x0800
    l3 = l3[v4]
    proto = data[l3 + 9].astype(np.int64)
    l4 = l3 + (data[l3] & 15).astype(np.int64) * 4
    src = data[l3[:, None] + np.arange(12, 16)].view(">u4")[:, 0].astype(np.int64)
    dst = data[l3[:, None] + np.arange(16, 20)].view(">u4")[:, 0].astype(np.int64)
    ports = (proto == 6) | (proto == 17)
    sport = np.where(ports, u16(l4), 0)
    dport = np.where(ports, u16(l4 + 2), 0)
    a, b = src << 16 | sport, dst << 16 | dport
    ends, ends_idx = np.unique(np.concatenate([a, b]), return_inverse=True)
    ia, ib = ends_idx[: len(a)], ends_idx[len(a):]
    pair = np.minimum(ia, ib) * len(ends) + np.maximum(ia, ib)  # < 2**63 for < 3e9 ends
    _keys, flow = np.unique(pair << 8 | proto, return_inverse=True)
    volume = np.bincount(flow, weights=u16(l3 + 2))
    return {"packets": len(o), "flows": len(volume)}


WORKERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "egress": work_egress, "dpkt": work_dpkt, "scapy": work_scapy, "numpy": work_numpy,
}

# ------------------------------------------------------------------ tools (parent side)

_TSHARK_CONV = re.compile(r"<->\s+\S+\s+[\d,]+\s+[\d,]+\s+\S+\s+[\d,]+\s+[\d,]+\s+\S+\s+([\d,]+)\s")


def _parse_json(stdout: str) -> dict[str, Any]:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def _parse_tshark(stdout: str) -> dict[str, Any]:
    frames = [int(m.group(1).replace(",", "")) for m in _TSHARK_CONV.finditer(stdout)]
    return {"flows": len(frames), "tcp_packets": sum(frames)}


def _parse_nothing(stdout: str) -> dict[str, Any]:
    return {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Tool:
    """A peer: how to run it on a file, how to read its output, what it measures."""

    name: str
    argv: Callable[[Path], list[str]]
    parse: Callable[[str], dict[str, Any]]
    slow: bool  # run once, on a prefix when --peer-sample-mb is set
    measures: str


def _worker_argv(name: str) -> Callable[[Path], list[str]]:
    return lambda path: [sys.executable, str(Path(__file__).resolve()), "--worker", name,
                         str(path)]


TOOLS: dict[str, Tool] = {t.name: t for t in (
    Tool(name="egress", argv=_worker_argv("egress"), parse=_parse_json, slow=False,
         measures="CaptureReader().read(): Zeek-style flows, tunnels, TCP state, records"),
    Tool(name="tcpdump", argv=lambda p: ["tcpdump", "-r", str(p), "-w", "/dev/null"],
         parse=_parse_nothing, slow=False,
         measures="libpcap read loop, writes records to /dev/null; no parsing"),
    Tool(name="numpy", argv=_worker_argv("numpy"), parse=_parse_json, slow=False,
         measures="Python loop over record headers + numpy parse, np.unique per 5-tuple"),
    Tool(name="scapy", argv=_worker_argv("scapy"), parse=_parse_json, slow=True,
         measures="scapy RawPcapReader + struct parse, dict of IP bytes per 5-tuple"),
    Tool(name="dpkt", argv=_worker_argv("dpkt"), parse=_parse_json, slow=True,
         measures="dpkt pcap.Reader + Ethernet/IP/TCP/UDP objects, dict per 5-tuple"),
    Tool(name="tshark", argv=lambda p: ["tshark", "-q", "-z", "conv,tcp", "-r", str(p)],
         parse=_parse_tshark, slow=True,
         measures="full Wireshark dissection, TCP conversation table"),
)}
BIG_TOOLS = ("egress", "tcpdump")


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One child process: wall and CPU seconds, peak RSS, exit code, stdout."""

    wall_s: float
    cpu_s: float
    peak_rss_bytes: int
    exit_code: int
    stdout: str
    stderr_tail: str


def run_child(argv: Sequence[str], *, timeout_s: float) -> Run:
    """Run ``argv`` with stdin closed and measure it; kill it at the timeout.

    Wall clock is measured here; CPU time comes from ``os.wait4``. Linux's
    ``ru_maxrss`` of a child starts at its parent's high-water mark (fork copies
    it, exec keeps it), so the peak RSS comes from GNU time, a small process that
    forks the tool and reads the tool's own ``wait4``. Without /usr/bin/time it
    falls back to this process's ``wait4``, which overstates small tools.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out, err, usage_file = (Path(tmp) / n for n in ("out", "err", "rusage"))
        full = [*argv]
        if GNU_TIME.exists():
            full = [str(GNU_TIME), "-f", "%M", "-o", str(usage_file), "--", *argv]
        with out.open("wb") as o, err.open("wb") as e:
            t0 = time.perf_counter()
            proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                                    cwd=HERE.parent, start_new_session=True)
            timer = threading.Timer(timeout_s, os.killpg, (proc.pid, signal.SIGKILL))
            timer.start()
            _pid, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        peak_kb = usage.ru_maxrss
        if usage_file.exists():
            lines = usage_file.read_text().split()
            peak_kb = int(lines[-1]) if lines and lines[-1].isdigit() else peak_kb
        stderr = err.read_text(errors="replace").strip().splitlines()
        return Run(wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime,
                   peak_rss_bytes=peak_kb * 1024, exit_code=proc.returncode,
                   stdout=out.read_text(errors="replace"), stderr_tail=" | ".join(stderr[-2:]))


# ------------------------------------------------------------------ captures


@dataclass(frozen=True, slots=True, kw_only=True)
class Capture:
    """A capture file and what is known of it without any tool under test."""

    name: str
    path: Path
    size_bytes: int
    packets: int  # as written by the generator (or counted in the prefix)


def _size_tag(size_gb: float) -> str:
    return f"{size_gb:g}GB"


def ensure_capture(workdir: Path, kind: str, size_gb: float) -> Capture | None:
    """Generate ``kind`` at ``size_gb`` into ``workdir`` unless it is there; None if no disk."""
    path = workdir / f"{kind}-{_size_tag(size_gb)}.pcap"
    meta = path.with_name(path.name + ".json")
    source = hashlib.sha256((HERE / "gen_capture.py").read_bytes()).hexdigest()
    if meta.exists() and json.loads(meta.read_text()).get("generator_sha256") != source:
        print(f"note: {path.name} was made by another version of gen_capture.py: remaking it")
        for stale in workdir.glob(f"{path.stem}*"):
            stale.unlink()
    if not (path.exists() and meta.exists()):
        need = max(size_gb * GB * 1.1, BIG_FREE_BYTES if kind == "big" else 0)
        free = shutil.disk_usage(workdir).free
        if free < need:
            print(f"note: skipping {kind} ({size_gb:g} GB): {free / GB:.1f} GB free in "
                  f"{workdir}, want {need / GB:.1f} GB")
            return None
        print(f"generating {path} ...", flush=True)
        subprocess.run([sys.executable, str(HERE / "gen_capture.py"), "--kind", kind,
                        "--out", str(path), "--size-gb", str(size_gb)], check=True)
    info = json.loads(meta.read_text())
    return Capture(name=kind, path=path, size_bytes=path.stat().st_size,
                   packets=int(info["packets"]))


def _cut(path: Path, max_bytes: int) -> tuple[int, int]:
    """Return (end offset, packets) of the whole records in the first ``max_bytes`` of a pcap."""
    rec = struct.Struct("<8xI4x")
    off, packets = 24, 0
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
        while off + 16 <= max_bytes:
            (incl,) = rec.unpack_from(m, off)
            if off + 16 + incl > max_bytes:
                break
            off += 16 + incl
            packets += 1
    return off, packets


def ensure_prefix(cap: Capture, max_bytes: int) -> Capture:
    """Return a capture of the whole records in the first ``max_bytes`` of ``cap``."""
    if max_bytes <= 0 or cap.size_bytes <= max_bytes:
        return cap
    path = cap.path.with_name(f"{cap.path.stem}.prefix-{max_bytes // MB}MB.pcap")
    meta = path.with_name(path.name + ".json")
    if not (path.exists() and meta.exists()):
        end, packets = _cut(cap.path, max_bytes)
        with cap.path.open("rb") as src, path.open("wb") as dst:
            left = end
            while left:
                left -= os.copy_file_range(src.fileno(), dst.fileno(), left)
        meta.write_text(json.dumps({"packets": packets, "source": str(cap.path)}) + "\n")
    info = json.loads(meta.read_text())
    return Capture(name=cap.name, path=path, size_bytes=path.stat().st_size,
                   packets=int(info["packets"]))


def warm(path: Path) -> float:
    """Read ``path`` once so that it sits in the page cache; return the seconds it took."""
    t0 = time.perf_counter()
    buf = bytearray(1024 * 1024)
    with path.open("rb", buffering=0) as fh:
        while fh.readinto(buf):
            pass
    return time.perf_counter() - t0


# ------------------------------------------------------------------ measuring


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """A tool's best run on a capture, extrapolated to the whole capture when sampled."""

    tool: str
    capture: Capture   # the whole capture
    read: Capture      # what the tool read: the capture or a prefix of it
    runs: int
    wall_s: float      # best wall clock on ``read``
    startup_s: float   # best wall clock on a capture with no packets
    cpu_s: float
    peak_rss_bytes: int
    report: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def sampled(self) -> bool:
        return self.read.path != self.capture.path

    @property
    def seconds(self) -> float:
        """Seconds for the whole capture: when sampled, startup plus the prefix's
        remaining time scaled linearly in bytes."""
        scale = self.capture.size_bytes / self.read.size_bytes
        return self.startup_s + max(0.0, self.wall_s - self.startup_s) * scale

    @property
    def gb_per_s(self) -> float:
        return self.capture.size_bytes / self.seconds / GB

    @property
    def mpackets_per_s(self) -> float:
        return self.read.packets * self.capture.size_bytes / self.read.size_bytes \
            / self.seconds / 1e6


def measure(tool: Tool, cap: Capture, read: Capture, *, repeat: int, timeout_s: float,
            empty: Path) -> Result:
    """Run ``tool`` on ``read`` ``repeat`` times; keep the fastest run and the peak RSS.

    The tool's startup is timed (best of 3) on ``empty``, a capture with no packets.
    """
    startup = min(run_child(tool.argv(empty), timeout_s=timeout_s).wall_s for _ in range(3))
    runs = [run_child(tool.argv(read.path), timeout_s=timeout_s) for _ in range(repeat)]
    best = min(runs, key=lambda r: r.wall_s)
    failed = [r for r in runs if r.exit_code != 0]
    error = None
    if failed:
        error = f"exit {failed[0].exit_code}: {failed[0].stderr_tail or 'no stderr'}"
    report = tool.parse(best.stdout) if not failed else {}
    if tool.name == "tcpdump" and not failed:
        count = run_child(["tcpdump", "--count", "-r", str(read.path)], timeout_s=timeout_s)
        m = re.search(r"(\d+) packets?", count.stdout + count.stderr_tail)
        if m:
            report["packets"] = int(m.group(1))
    return Result(tool=tool.name, capture=cap, read=read, runs=repeat, wall_s=best.wall_s,
                  startup_s=startup, cpu_s=best.cpu_s,
                  peak_rss_bytes=max(r.peak_rss_bytes for r in runs), report=report, error=error)


def bench_capture(cap: Capture, tools: Sequence[Tool], *, repeat: int, sample_bytes: int,
                  timeout_s: float, empty: Path) -> list[Result]:
    """Measure every tool on ``cap`` (slow ones once, on a prefix when sampling)."""
    prefix = ensure_prefix(cap, sample_bytes) if any(t.slow for t in tools) else cap
    print(f"\n== {cap.name}: {cap.path} ({cap.size_bytes / GB:.3f} GB, {cap.packets:,} packets)"
          f"; warm read {warm(cap.path):.2f} s", flush=True)
    if prefix is not cap:
        warm(prefix.path)
    results = []
    for tool in tools:
        read = prefix if tool.slow else cap
        r = measure(tool, cap, read, repeat=1 if tool.slow else repeat, timeout_s=timeout_s,
                    empty=empty)
        print(f"   {tool.name:<8} {r.wall_s:8.2f} s on {read.size_bytes / MB:,.0f} MB "
              f"{'(error: ' + r.error + ')' if r.error else ''}", flush=True)
        results.append(r)
    if prefix is not cap and "egress" in {t.name for t in tools}:
        check = measure(TOOLS["egress"], prefix, prefix, repeat=1, timeout_s=timeout_s,
                        empty=empty)
        results.append(Result(tool="egress@prefix", capture=prefix, read=prefix, runs=1,
                              wall_s=check.wall_s, startup_s=check.startup_s, cpu_s=check.cpu_s,
                              peak_rss_bytes=check.peak_rss_bytes, report=check.report,
                              error=check.error))
    return results


# ------------------------------------------------------------------ report


def _fmt_int(v: object) -> str:
    return f"{v:,}" if isinstance(v, int) else "-"


def table(results: Sequence[Result]) -> str:
    """Render one capture's results as a fixed-width table."""
    ref = next((r for r in results if r.tool == "egress" and r.error is None), None)
    head = (f"{'tool':<14}{'seconds':>9}{'GB/s':>8}{'Mpkt/s':>8}{'start s':>8}{'CPU s':>8}"
            f"{'peak RSS MB':>12}"
            f"{'time/egress':>12}{'packets':>13}{'flows':>10}  note")
    lines = [head, "-" * len(head)]
    for r in results:
        note = []
        if r.sampled:
            note.append(f"extrapolated from {r.wall_s:.2f} s on a {r.read.size_bytes / MB:,.0f}"
                        f" MB prefix ({r.read.packets:,} packets)")
        elif r.runs > 1:
            note.append(f"best of {r.runs}")
        if r.tool == "egress@prefix":
            note.append("count check on the prefix")
        if r.tool == "tshark":
            note.append("packets = TCP frames, flows = TCP conversations")
        if r.error:
            note.append(f"ERROR {r.error}")
        ratio = f"{r.seconds / ref.seconds:.2f}x" if ref and r.tool != "egress@prefix" else "-"
        flows = r.report.get("flows")
        lines.append(
            f"{r.tool:<14}{r.seconds:>9.2f}{r.gb_per_s:>8.2f}{r.mpackets_per_s:>8.2f}"
            f"{r.startup_s:>8.2f}{r.cpu_s:>8.2f}{r.peak_rss_bytes / MB:>12.0f}{ratio:>12}"
            f"{_fmt_int(r.report.get('packets', r.report.get('tcp_packets'))):>13}"
            f"{_fmt_int(flows):>10}  {'; '.join(note)}")
    return "\n".join(lines)


def rss_curve(results: Sequence[Result]) -> str:
    """Describe egress's RSS while it read the capture, and its peak at the end."""
    eg = next((r for r in results if r.tool == "egress" and r.error is None), None)
    if eg is None or not eg.report.get("rss_curve"):
        return ""
    points = " ".join(f"{f:.0%}:{mb:.0f}" for f, mb in eg.report["rss_curve"])
    return (f"egress RSS MB by position read: {points}; peak incl. final flush "
            f"{eg.peak_rss_bytes / MB:.0f}")


def _get(results: Sequence[Result], capture: str, tool: str) -> Result | None:
    return next((r for r in results if r.capture.name == capture and r.tool == tool
                 and r.error is None), None)


def _line(ok: bool | None, text: str) -> str:
    return f"  {'n/a ' if ok is None else 'PASS' if ok else 'MISS'}  {text}"


def targets(results: Sequence[Result]) -> list[str]:
    """Return the PASS/MISS lines of the issue's targets."""
    out = []
    mixed, small = _get(results, "mixed", "egress"), _get(results, "small", "egress")
    out.append(_line(None if mixed is None else mixed.gb_per_s >= 1.5,
                     f"mixed: egress >= 1.5 GB/s: "
                     f"{f'{mixed.gb_per_s:.2f} GB/s' if mixed else 'not measured'}"))
    out.append(_line(None if small is None else small.mpackets_per_s >= 5.0,
                     f"small: egress >= 5 M packets/s: "
                     f"{f'{small.mpackets_per_s:.2f} Mpkt/s' if small else 'not measured'}"))
    for name in ("mixed", "small", "big"):
        eg, td, dp = (_get(results, name, t) for t in ("egress", "tcpdump", "dpkt"))
        if eg and td:
            out.append(_line(eg.seconds <= td.seconds,
                             f"{name}: egress at or beyond tcpdump's read loop: "
                             f"{eg.seconds:.2f} s vs {td.seconds:.2f} s"))
        if eg and dp:
            out.append(_line(dp.seconds / eg.seconds >= 30,
                             f"{name}: >= 30x dpkt: {dp.seconds / eg.seconds:.1f}x"
                             f"{' (dpkt extrapolated)' if dp.sampled else ''}"))
    big = _get(results, "big", "egress")
    if big:
        out.append(_line(big.peak_rss_bytes <= 500 * MB,
                         f"memory: egress peak RSS <= 500 MB on the "
                         f"{big.capture.size_bytes / GB:.1f} GB capture: "
                         f"{big.peak_rss_bytes / MB:.0f} MB"))
        curve = dict(big.report.get("rss_curve", []))
        half, full = curve.get(0.5), curve.get(1.0)
        if half and full:
            # Open flows (the table) stop growing once the capture is longer than the
            # flow timeouts (UDP: 60 s, ~6 GB of the mixed model), not before.
            long_enough = big.capture.size_bytes >= 6 * GB
            out.append(_line(full <= 1.1 * half if long_enough else None,
                             f"memory flat: egress RSS while reading the big capture: "
                             f"{half:.0f} MB at 50%, {full:.0f} MB at 100% (flat = within 10%"
                             f"{'' if long_enough else '; needs >= 6 GB, past the timeouts'})"))
        if mixed:
            out.append(f"        peak RSS {mixed.peak_rss_bytes / MB:.0f} MB on "
                       f"{mixed.capture.size_bytes / GB:.1f} GB mixed vs "
                       f"{big.peak_rss_bytes / MB:.0f} MB on {big.capture.size_bytes / GB:.1f}"
                       f" GB big ({big.peak_rss_bytes / mixed.peak_rss_bytes:.2f}x)")
    else:
        out.append(_line(None, "memory on the big capture: not measured"))
    return out


def cross_checks(results: Sequence[Result]) -> list[str]:
    """Compare packet counts: generator vs each tool that reads the same bytes."""
    out = []
    groups: dict[Path, list[Result]] = {}
    for r in results:
        groups.setdefault(r.read.path, []).append(r)
    for path, rs in groups.items():
        expected = rs[0].read.packets
        counts = {r.tool: r.report["packets"] for r in rs if "packets" in r.report}
        ok = all(v == expected for v in counts.values())
        shown = ", ".join(f"{k} {v:,}" for k, v in counts.items())
        out.append(f"  {'OK      ' if ok else 'MISMATCH'}  {path.name}: generator "
                   f"{expected:,}; {shown}")
        issues = [r.report.get("issues") for r in rs if r.report.get("issues")]
        if issues:
            out.append(f"            egress issues: {issues[0]}")
    return out


def egress_fingerprint() -> str:
    """Identify the egress build without importing it: a hash of its sources and engine."""
    spec = importlib.util.find_spec("egress")
    if spec is None or not spec.submodule_search_locations:
        return "egress not found"
    root = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(p for p in root.rglob("*") if p.suffix in (".py", ".so", ".c") and p.is_file())
    digest = hashlib.sha256()
    for p in files:
        digest.update(p.read_bytes())
    newest = max((p.stat().st_mtime for p in files), default=0.0)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(newest))
    return f"egress {root}: sha256 {digest.hexdigest()[:12]}, newest file {stamp}"


def machine() -> str:
    """Describe the machine and the tool versions."""
    cpu = "?"
    with Path("/proc/cpuinfo").open() as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB
    versions = []
    for argv in (["tcpdump", "--version"], ["tshark", "--version"]):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
            versions.append(out.splitlines()[0] if out else f"{argv[0]} ?")
        except OSError:
            versions.append(f"{argv[0]} missing")
    mods = []
    for mod in ("numpy", "dpkt", "scapy"):
        try:
            mods.append(f"{mod} {metadata.version(mod)}")
        except metadata.PackageNotFoundError:
            mods.append(f"{mod} missing")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"machine: {cpu}, {os.cpu_count()} cores, {mem:.1f} GB RAM, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}\n"
            f"tools:   {'; '.join(versions)}; {', '.join(mods)}\n"
            f"{egress_fingerprint()}\n"
            f"load average at start: {load}")


# ------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/egress-bench"),
                    help="where captures are generated and reused (default %(default)s)")
    ap.add_argument("--quick", action="store_true",
                    help="0.1 GB mixed and small captures, 1 GB big: a smoke run")
    ap.add_argument("--skip-big", action="store_true", help="skip the memory run")
    ap.add_argument("--peer-sample-mb", type=int, default=200,
                    help="run dpkt, scapy and tshark on this prefix and extrapolate "
                         "(0: whole capture; default %(default)s)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of egress, tcpdump and numpy; the fastest counts")
    ap.add_argument("--tools", default=",".join(TOOLS),
                    help="comma-separated subset of: " + ", ".join(TOOLS))
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per child run")
    ap.add_argument("--worker", nargs=2, metavar=("NAME", "FILE"), help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        name, path = args.worker
        print(json.dumps(WORKERS[name](Path(path))))
        return 0
    tools = [TOOLS[t] for t in args.tools.split(",") if t]
    sizes = {"mixed": 0.1, "small": 0.1, "big": 1.0} if args.quick else \
        {"mixed": 1.0, "small": 1.0, "big": 10.0}
    if args.skip_big:
        del sizes["big"]
    args.workdir.mkdir(parents=True, exist_ok=True)
    empty = args.workdir / "empty.pcap"
    empty.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    start_load = os.getloadavg()[0]
    start_build = egress_fingerprint()
    print(machine())
    for t in tools:
        print(f"  {t.name:<8} {t.measures}")
    results: list[Result] = []
    for kind, size_gb in sizes.items():
        cap = ensure_capture(args.workdir, kind, size_gb)
        if cap is None:
            continue
        chosen = [t for t in tools if kind != "big" or t.name in BIG_TOOLS]
        rs = bench_capture(cap, chosen, repeat=args.repeat, timeout_s=args.timeout,
                           sample_bytes=args.peer_sample_mb * MB, empty=empty)
        print(table(rs))
        print(rss_curve(rs))
        results.extend(rs)
    if egress_fingerprint() != start_build:
        print(f"\nWARNING: egress changed during the run; now {egress_fingerprint()}")
    load = os.getloadavg()
    print(f"\nload average at end: {', '.join(f'{x:.2f}' for x in load)}")
    cores = os.cpu_count() or 1
    if start_load > cores / 2 or load[0] > cores:  # this run alone keeps about one core busy
        print("note: other processes were busy during the run: wall clocks are pessimistic;"
              " the CPU s column is less sensitive to that")
    print("\ntargets (printed, not asserted):")
    print("\n".join(targets(results)))
    print("\npacket counts (each tool on the bytes it read):")
    print("\n".join(cross_checks(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
