"""Read + attribute + aggregate a large conn.log across 10,000 tenants (issue 5, point 7).

Generates (once, reused) a conn.log of ``--rows`` records over 7 days between 10,000 tenants
(each a /24 in 10.0.0.0/8) and 200,000 remote addresses (plus east-west and unattributed
traffic), an inventory of those tenants and a geo range file, then runs in child processes:

* ``egress``: :func:`egress.pipeline.run_windows` over the conn.log: the Zeek reader,
  attribution (with geo), and every window span; prints rows/s, CPU and peak RSS;
* ``duckdb``: DuckDB's CSV reader summing ``resp_ip_bytes`` per responder on the same
  file: a yardstick for reading alone (no attribution, no windows);
* ``windows`` (only with ``--only windows``): the window stage alone, over transfers
  generated once with the same distribution (``transfers-<rows>.feather``, remote ends
  filled in) and fed in 65,536-row batches; prints CPU per row of ``add`` and the wall and
  CPU time of ``result``.

Targets (printed, never asserted): >= 2 M records/s and peak RSS <= 4 GB, flat in input size
(run with two sizes, e.g. ``--rows 10000000`` then ``--rows 100000000``).

    python benchmarks/bench_pipeline.py --rows 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WORKDIR = Path("/tmp/egress-bench-pipeline")
TENANTS = 10_000
REMOTES = 200_000
T0 = 1_777_593_600  # 2026-05-01T00:00:00Z
DAYS = 7

FIELDS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service",
          "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig", "local_resp",
          "missed_bytes", "history", "orig_pkts", "orig_ip_bytes", "resp_pkts",
          "resp_ip_bytes", "tunnel_parents")
TYPES = ("time", "string", "addr", "port", "addr", "port", "enum", "string", "interval",
         "count", "count", "string", "bool", "bool", "count", "string", "count", "count",
         "count", "count", "set[string]")


def write_inventory(path: Path) -> None:
    lines = ["site: {name: bench, country: MY, networks: [10.0.0.0/8], "
             "ingest_stations: [10.255.255.1]}", "concern_countries: [CN]", "tenants:"]
    for i in range(TENANTS):
        lines.append(
            f"  - {{id: t-{i:05d}, name: T{i}, registered: 2026-04-{1 + i % 28:02d}, "
            f"country: MY, kyc: verified, payment: invoice, networks: "
            f"[{{cidr: 10.{i // 256}.{i % 256}.0/24, from: 2026-01-01}}]}}")
    path.write_text("\n".join(lines) + "\n")


def write_geo(path: Path) -> None:
    """DB-IP country layout: 1.0.0.0/8..99.0.0.0/8 alternate between four countries."""
    countries = ("CN", "US", "DE", "SG")
    rows = [f"{a}.0.0.0,{a}.255.255.255,{countries[a % 4]}" for a in range(1, 100)]
    path.write_text("\n".join(rows) + "\n")


def write_conn(path: Path, rows: int, *, seed: int = 5) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    header = ("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
              "#path\tconn\n#open\t2026-05-01-00-00-00\n#fields\t" + "\t".join(FIELDS)
              + "\n#types\t" + "\t".join(TYPES) + "\n")

    def s(values: Any) -> pa.Array:
        return pc.cast(pa.array(values), pa.string())

    def dotted(a: Any, b: Any, c: Any, d: Any) -> pa.Array:
        return pc.binary_join_element_wise(s(a), s(b), s(c), s(d), ".")

    block = 1_000_000
    with path.open("wb") as out:
        out.write(header.encode())
        for first in range(0, rows, block):
            n = min(block, rows - first)
            ts = T0 + (first + np.arange(n)) * (DAYS * 86400.0 / rows)
            tenant = rng.integers(0, TENANTS, n)
            local = dotted(np.full(n, 10), tenant // 256, tenant % 256, rng.integers(2, 250, n))
            kind = rng.choice(4, n, p=[0.45, 0.35, 0.12, 0.08])  # in, out, internal, outside
            remote_id = rng.integers(0, REMOTES, n)
            remote = dotted(1 + remote_id % 99, (remote_id // 99) % 256,
                            (remote_id // 25_344) % 256, 1 + remote_id % 253)
            peer = rng.integers(0, TENANTS, n)
            other = dotted(np.full(n, 10), peer // 256, peer % 256, rng.integers(2, 250, n))
            outside = dotted(np.full(n, 172), 16 + rng.integers(0, 16, n),
                             rng.integers(0, 256, n), rng.integers(1, 255, n))
            kind_a = pa.array(kind)
            orig = pc.choose(kind_a, remote, local, local, outside)
            resp = pc.choose(kind_a, local, remote, other, remote)
            big = rng.integers(1_000, 50_000_000, n)
            small = rng.integers(100, 200_000, n)
            pkts_o, pkts_r = big // 1400 + 1, small // 600 + 1
            ms = (micros := np.round(ts * 1e6).astype(np.int64)) % 1_000_000
            cols = {
                "ts": pc.binary_join_element_wise(
                    s(micros // 1_000_000), pc.utf8_lpad(s(ms), 6, "0"), "."),
                "uid": pc.binary_join_element_wise(pa.scalar("C"), s(first + np.arange(n)), ""),
                "id.orig_h": orig, "id.orig_p": s(rng.integers(1024, 65536, n)),
                "id.resp_h": resp, "id.resp_p": s(rng.choice([443, 22, 9000], n)),
                "proto": s(np.full(n, "tcp")), "service": s(np.full(n, "-")),
                "duration": s(np.round(rng.exponential(60.0, n), 6)),
                "orig_bytes": s(big), "resp_bytes": s(small), "conn_state": s(np.full(n, "SF")),
                "local_orig": s(np.full(n, "-")), "local_resp": s(np.full(n, "-")),
                "missed_bytes": s(np.zeros(n, dtype=np.int64)),
                "history": s(np.full(n, "ShADadFf")),
                "orig_pkts": s(pkts_o), "orig_ip_bytes": s(big + 52 * pkts_o),
                "resp_pkts": s(pkts_r), "resp_ip_bytes": s(small + 52 * pkts_r),
                "tunnel_parents": s(np.full(n, "(empty)")),
            }
            lines = pc.binary_join_element_wise(*(cols[f] for f in FIELDS), "\t")
            with_nl = pc.binary_join_element_wise(lines, pa.scalar(""), "\n")
            out.write(_text(with_nl))
            print(f"  generated {first + n:,} rows", file=sys.stderr, flush=True)
        out.write(b"#close\t2026-05-08-00-00-00\n")


def _text(lines: Any) -> bytes:
    """The concatenated bytes of a string array (its data buffer between its offsets)."""
    import numpy as np

    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1,
                            offset=lines.offset * 4)
    return bytes(lines.buffers()[2].to_pybytes()[int(offsets[0]):int(offsets[-1])])


def write_transfers(path: Path, rows: int, *, seed: int = 5) -> None:
    """Attributed transfers as the conn.log above would give (outside traffic dropped)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import feather

    from egress.transfers import TRANSFERS_SCHEMA

    rng = np.random.default_rng(seed)
    parts = []
    block = 1_000_000
    for first in range(0, rows, block):
        n = min(block, rows - first)
        start = np.round((T0 + (first + np.arange(n)) * (DAYS * 86400.0 / rows)) * 1e6)
        start = start.astype(np.int64)
        tenant = rng.integers(0, TENANTS, n)
        kind = rng.choice(4, n, p=[0.45, 0.35, 0.12, 0.08])  # in, out, internal, outside
        remote_id = rng.integers(0, REMOTES, n)
        big = rng.integers(1_000, 50_000_000, n).astype(np.uint64)
        small = rng.integers(100, 200_000, n).astype(np.uint64)
        duration = (np.round(rng.exponential(60.0, n), 6) * 1e6).astype(np.int64)
        keep = kind < 3
        internal = kind == 2
        octets = [1 + remote_id % 99, (remote_id // 99) % 256, (remote_id // 25_344) % 256,
                  1 + remote_id % 253]
        addr = pc.binary_join_element_wise(*(pc.cast(pa.array(o), pa.string()) for o in octets),
                                           ".")
        country = pa.array(np.array(["SG", "CN", "US", "DE"])[octets[0] % 4])
        remote_null = pa.array(internal)
        table = pa.table({
            "tenant": pc.binary_join_element_wise(
                "t-", pc.utf8_lpad(pc.cast(pa.array(tenant), pa.string()), 5, "0"), ""),
            "kind": pa.array(np.full(n, "network")),
            "start": pa.array(start, pa.timestamp("us", tz="UTC")),
            "end": pa.array(start + duration, pa.timestamp("us", tz="UTC")),
            "direction": pa.array(np.array(["inbound", "outbound", "internal", "x"])[kind]),
            "bytes_in": pa.array(np.where(kind == 1, small, big)),
            "bytes_out": pa.array(np.where(kind == 1, big, small)),
            "capacity_bytes": pa.nulls(n, pa.uint64()),
            "remote_addr": pc.if_else(remote_null, pa.scalar(None, pa.string()), addr),
            "remote_asn": pc.if_else(remote_null, pa.scalar(None, pa.int64()),
                                     pa.array(64_512 + remote_id % 5_000)),
            "remote_country": pc.if_else(remote_null, pa.scalar(None, pa.string()), country),
            "cross_border": pc.if_else(remote_null, pa.scalar(None, pa.bool_()),
                                       pa.scalar(True)),
            "quality": pa.array(rng.random(n) < 0.01),
            "where": pc.binary_join_element_wise(
                "conn.log:", pc.cast(pa.array(first + np.arange(n) + 9), pa.string()), ""),
            "ref": pc.binary_join_element_wise(
                "C", pc.cast(pa.array(first + np.arange(n)), pa.string()), ""),
        })
        parts.append(table.filter(pa.array(keep)).cast(TRANSFERS_SCHEMA))
    feather.write_feather(pa.concat_tables(parts), str(path), compression="uncompressed")


# ------------------------------------------------------------------ workers (child side)


def work_egress(conn: Path) -> dict[str, Any]:
    import pyarrow.compute as pc

    from egress.geo import load_geo
    from egress.inventory import load_inventory
    from egress.pipeline import RunOptions, run_windows
    from egress.windows import WindowParams

    inventory = load_inventory(conn.parent / "inventory.yaml")
    geo = load_geo([conn.parent / "geo.csv"])
    started = time.perf_counter()
    result = run_windows([conn], inventory, geo, RunOptions(windows=WindowParams(
        memory_limit="1GB", temp_directory=str(conn.parent / "spill"))))
    windows = result.tables.windows
    return {"rows": result.records.get("zeek", 0), "windows": windows.num_rows,
            "tenants": pc.count_distinct(windows.column("tenant")).as_py(),
            "unattributed": sum(result.attribution.unattributed.values()),
            "run_s": time.perf_counter() - started}


def work_duckdb(conn: Path) -> dict[str, Any]:
    import duckdb

    names = ", ".join(f"'{f}': 'VARCHAR'" for f in FIELDS)
    con = duckdb.connect()
    rows, responders = con.sql(f"""
        SELECT sum(n), count(*) FROM (
            SELECT "id.resp_h", count(*) AS n, sum(CAST(resp_ip_bytes AS UBIGINT)) AS b
            FROM read_csv('{conn}', delim='\t', header=false, comment='#', quote='',
                          escape='', columns={{{names}}}, auto_detect=false)
            GROUP BY 1)""").fetchall()[0]
    return {"rows": int(rows), "responders": int(responders)}


def work_windows(transfers: Path) -> dict[str, Any]:
    from pyarrow import feather

    from egress.windows import WindowAggregator, WindowParams

    table = feather.read_table(str(transfers), memory_map=True)
    aggregator = WindowAggregator(WindowParams(
        memory_limit="1GB", temp_directory=str(transfers.parent / "spill")))
    cpu, wall = time.process_time(), time.perf_counter()
    for batch in table.to_batches(max_chunksize=65_536):
        aggregator.add(batch)
    if hasattr(aggregator, "flush"):  # reduce what is gathered; counted with add
        aggregator.flush()
    add_cpu, add_wall = time.process_time() - cpu, time.perf_counter() - wall
    cpu, wall = time.process_time(), time.perf_counter()
    result = aggregator.result()
    return {"rows": table.num_rows, "add_cpu_us_per_row": add_cpu / table.num_rows * 1e6,
            "add_wall_s": add_wall, "result_wall_s": time.perf_counter() - wall,
            "result_cpu_s": time.process_time() - cpu, "windows": result.windows.num_rows,
            "countries": result.countries.num_rows, "evidence": result.evidence.num_rows,
            "run_s": add_wall + time.perf_counter() - wall}


WORKERS = {"egress": work_egress, "duckdb": work_duckdb, "windows": work_windows}
DEFAULT_WORKERS = ("egress", "duckdb")


def run_child(name: str, conn: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", name, str(conn)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out = proc.stdout.read() if proc.stdout else b""
    if status != 0:
        raise SystemExit(f"worker {name} failed with status {status}")
    result: dict[str, Any] = json.loads(out)
    result.update(wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime,
                  peak_rss_mb=usage.ru_maxrss / 1024)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "FILE"))
    parser.add_argument("--only", choices=sorted(WORKERS), action="append")
    args = parser.parse_args()
    if args.worker:
        name, path = args.worker
        print(json.dumps(WORKERS[name](Path(path))))
        return
    WORKDIR.mkdir(exist_ok=True)
    conn = WORKDIR / f"conn-{args.rows}.log"
    for name, writer in (("inventory.yaml", write_inventory), ("geo.csv", write_geo)):
        if not (WORKDIR / name).exists():
            writer(WORKDIR / name)
    workers = args.only or DEFAULT_WORKERS
    if set(workers) - {"windows"} and not conn.exists():
        print(f"generating {args.rows:,} rows into {conn}", file=sys.stderr)
        partial = conn.with_suffix(".partial")
        write_conn(partial, args.rows)
        partial.rename(conn)
    transfers = WORKDIR / f"transfers-{args.rows}.feather"
    if "windows" in workers and not transfers.exists():
        print(f"generating {args.rows:,} transfers into {transfers}", file=sys.stderr)
        write_transfers(transfers.with_suffix(".partial"), args.rows)
        transfers.with_suffix(".partial").rename(transfers)
    size = conn.stat().st_size if conn.exists() else 0
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; {args.rows:,} rows, {size / 1e9:.2f} GB, "
          f"{TENANTS:,} tenants")
    results = {name: run_child(name, transfers if name == "windows" else conn)
               for name in workers}
    for name, r in results.items():
        rate = r["rows"] / r["wall_s"]
        print(f"{name:8s} rows {r['rows']:>12,}  wall {r['wall_s']:7.1f} s  "
              f"cpu {r['cpu_s']:7.1f} s  {rate / 1e6:5.2f} M rows/s  "
              f"peak RSS {r['peak_rss_mb']:7.0f} MB  " + json.dumps(
                  {k: v for k, v in r.items()
                   if k not in ("rows", "wall_s", "cpu_s", "peak_rss_mb")}))
    if "egress" in results:
        r = results["egress"]
        rate = r["rows"] / r["wall_s"]
        print(f"target >= 2 M records/s: {'PASS' if rate >= 2e6 else 'MISS'} "
              f"({rate / 1e6:.2f} M/s)")
        print(f"target peak RSS <= 4 GB: {'PASS' if r['peak_rss_mb'] <= 4096 else 'MISS'} "
              f"({r['peak_rss_mb']:.0f} MB)")
        if "duckdb" in results:
            print(f"egress / duckdb read-only wall: "
                  f"{r['wall_s'] / results['duckdb']['wall_s']:.2f}x")


if __name__ == "__main__":
    main()
