"""Time egress's Zeek log reader against peers, on a generated conn.log, in one run.

Generates a 5 M-row conn.log (TSV) and the same rows as Zeek JSON into a work
directory (reused if present), then runs each tool in its own child process:
wall clock, CPU time and peak RSS come from ``os.wait4`` on that child.

Workers:

* ``egress-tsv`` / ``egress-json``: rows into typed ``CONN_SCHEMA`` record batches;
* ``egress-tsv-sum`` / ``egress-json-sum``: resp_ip_bytes increments summed per
  responder (Arrow group-by per batch, partial sums merged), reading only the
  columns that needs (``columns=``), as the peers below do;
* ``zat`` / ``zat-usecols``: zat's ``LogToDataFrame`` (pandas), then the same sum;
* ``split``: a plain Python ``str.split`` loop doing the sum;
* ``duckdb-*`` / ``polars-*``: their CSV / NDJSON readers doing the sum (if installed).

Every tool is reported in rows per wall-clock second and per CPU-second (user +
system, all threads): on a shared machine the second is the steadier figure.
Targets are printed as PASS/MISS lines, never asserted.

    python benchmarks/bench_zeek.py                 # 5 M rows
    python benchmarks/bench_zeek.py --rows 500000   # a quicker run
    python benchmarks/bench_zeek.py --instructions 200000   # instructions per row (valgrind)

``--instructions N`` runs the egress workers under ``valgrind --tool=callgrind`` on
the first 1,000 and the first N rows of the files and prints the difference per
row: a figure that, unlike time, other jobs on the machine do not change.

``--worker NAME FILE`` is the child side: it prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from egress.formats.zeek_conn import STANDARD_CONN_FIELDS

HERE = Path(__file__).resolve().parent
WORKDIR = Path("/tmp/egress-bench-zeek")

CONN_FIELDS = tuple(name for name, _ in STANDARD_CONN_FIELDS)
CONN_TYPES = tuple(kind for _, kind in STANDARD_CONN_FIELDS)

# ------------------------------------------------------------------ generation


def generate(rows: int, tsv: Path, jsonl: Path, *, seed: int = 7) -> None:
    """Write ``rows`` realistic conn.log rows as TSV and as Zeek JSON (same rows)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    block = 500_000
    header = (
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
        "#path\tconn\n#open\t2024-05-01-00-00-00\n"
        "#fields\t" + "\t".join(CONN_FIELDS) + "\n#types\t" + "\t".join(CONN_TYPES) + "\n"
    )
    with tsv.open("wb") as ft, jsonl.open("wb") as fj:
        ft.write(header.encode())
        t0 = 1_714_521_600.0
        for first in range(0, rows, block):
            n = min(block, rows - first)
            ts = t0 + (first + np.arange(n)) * (86400.0 / rows) + rng.random(n) * 0.5
            kind = rng.choice(3, n, p=[0.72, 0.18, 0.10])  # 0 tcp SF, 1 tcp S0/REJ, 2 udp dns
            v6 = rng.random(n) < 0.05

            def s(values: Any) -> pa.Array:
                return pc.cast(pa.array(values), pa.string())

            def nulls_where(arr: pa.Array, mask: Any) -> pa.Array:
                return pc.if_else(pa.array(mask), pa.scalar(None, arr.type), arr)

            def ipv4(a: Any, b: Any, c: Any, d: Any) -> pa.Array:
                return pc.binary_join_element_wise(s(a), s(b), s(c), s(d), ".")

            orig4 = ipv4(np.full(n, 10), rng.integers(0, 4, n), rng.integers(0, 256, n),
                         rng.integers(1, 255, n))
            # Responders come from a pool of 20,000 servers (IPv6: 2,000), as in real traffic.
            server = rng.integers(0, 20_000, n)
            resp4 = ipv4(1 + server % 223, (server * 7) % 256, (server * 13) % 256,
                         1 + (server * 31) % 254)
            orig6 = pc.binary_join_element_wise(pa.scalar("fd00::"), s(rng.integers(1, 65535, n)),
                                                "")
            resp6 = pc.binary_join_element_wise(pa.scalar("2001:db8::"),
                                                s(1 + server % 2_000), "")
            cols: dict[str, pa.Array] = {}
            cols["ts"] = _fixed6(ts)
            cols["uid"] = pc.binary_join_element_wise(
                pa.scalar("C"), s(rng.integers(10**16, 10**17, n)), "")
            cols["id.orig_h"] = pc.if_else(pa.array(v6), orig6, orig4)
            cols["id.orig_p"] = s(rng.integers(1024, 65536, n))
            cols["id.resp_h"] = pc.if_else(pa.array(v6), resp6, resp4)
            cols["id.resp_p"] = s(np.where(kind == 2, 53, rng.choice([443, 80, 22, 8443], n)))
            cols["proto"] = s(np.where(kind == 2, "udp", "tcp"))
            service = np.where(kind == 2, "dns", rng.choice(["ssl", "http", "-"], n))
            cols["service"] = nulls_where(s(service), (service == "-") | (kind == 1))
            no_size = kind == 1
            cols["duration"] = nulls_where(s(np.round(rng.exponential(20.0, n), 6)), no_size)
            ob = rng.integers(0, 2_000_000, n)
            rb = rng.integers(0, 200_000_000, n)
            cols["orig_bytes"] = nulls_where(s(ob), no_size)
            cols["resp_bytes"] = nulls_where(s(rb), no_size)
            cols["conn_state"] = s(np.where(kind == 1, rng.choice(["S0", "REJ"], n), "SF"))
            cols["local_orig"] = s(np.full(n, "T"))
            cols["local_resp"] = s(np.where(rng.random(n) < 0.1, "T", "F"))
            cols["missed_bytes"] = s(np.zeros(n, dtype=np.int64))
            cols["history"] = s(np.where(kind == 0, "ShADadFf", np.where(kind == 1, "S", "Dd")))
            op = rng.integers(1, 2000, n)
            rp = np.where(kind == 1, 0, rng.integers(1, 150_000, n))
            cols["orig_pkts"] = s(op)
            cols["orig_ip_bytes"] = s(np.where(no_size, op * 60, ob + op * 52))
            cols["resp_pkts"] = s(rp)
            cols["resp_ip_bytes"] = s(np.where(no_size, 0, rb + rp * 52))
            cols["tunnel_parents"] = pa.nulls(n, pa.string())
            cols["ip_proto"] = s(np.where(kind == 2, 17, 6))
            tsv_cols = [pc.fill_null(cols[f], "-") for f in CONN_FIELDS]
            tsv_lines = pc.binary_join_element_wise(*tsv_cols, "\t")
            ft.write(_joined(tsv_lines))
            quoted = {"uid", "id.orig_h", "id.resp_h", "proto", "service", "conn_state",
                      "history"}
            parts = []
            for f in CONN_FIELDS:
                col = cols[f]
                if f in ("local_orig", "local_resp"):
                    col = pc.if_else(pc.equal(col, "T"), "true", "false")
                if f in quoted:
                    col = pc.binary_join_element_wise(pa.scalar('"'), col, pa.scalar('"'), "")
                parts.append(pc.binary_join_element_wise(pa.scalar(f'"{f}":'), col, ""))
            body = pc.binary_join_element_wise(*parts, ",", null_handling="skip")
            json_lines = pc.binary_join_element_wise(pa.scalar("{"), body, pa.scalar("}"), "")
            fj.write(_joined(json_lines))
        ft.write(b"#close\t2024-05-02-00-00-00\n")


def _fixed6(ts: Any) -> Any:
    """Epoch seconds as Zeek's "%.6f" text, vectorized."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    micros = np.round(ts * 1e6).astype(np.int64)
    secs = pc.cast(pa.array(micros // 1_000_000), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(micros % 1_000_000), pa.string()), 6, "0")
    return pc.binary_join_element_wise(secs, frac, ".")


def _joined(lines: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.compute as pc

    with_nl = pc.binary_join_element_wise(lines, pa.scalar(""), "\n")
    return b"".join(with_nl.to_pylist()) if with_nl.offset else _data(with_nl)


def _data(arr: Any) -> bytes:
    import numpy as np

    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1)
    data: bytes = arr.buffers()[2].to_pybytes()
    return data[int(offsets[0]):int(offsets[-1])]


# ------------------------------------------------------------------ workers (child side)


def _egress(path: Path, *, sums: bool) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    from egress.sources.zeek import ZeekLogReader

    # The sum reads only the columns it needs (as the peers do), and counts increments.
    reader = ZeekLogReader(columns=["resp_h", "delta_resp_ip_bytes"] if sums else None)
    rows = 0
    total: pa.Table | None = None
    partials: list[pa.Table] = []

    def merge(tables: list[pa.Table]) -> pa.Table:
        return pa.concat_tables(tables).group_by("resp_h").aggregate(
            [("delta_resp_ip_bytes", "sum")]).rename_columns(["resp_h", "delta_resp_ip_bytes"])

    for batch in reader.read_conn([path]):
        rows += batch.num_rows
        if sums:
            partials.append(merge([pa.Table.from_batches([batch.select(
                ["resp_h", "delta_resp_ip_bytes"])])]))
            if len(partials) == 16:  # merge as we go: memory bounded by responders
                total = merge(partials if total is None else [total, *partials])
                partials = []
    out: dict[str, Any] = {"rows": rows, "issues": {i.kind: i.count for i in reader.stats.issues}}
    if sums:
        if partials or total is None:
            total = merge(partials if total is None else [total, *partials])
        out["responders"] = total.num_rows
        out["total"] = int(pc.sum(total.column("delta_resp_ip_bytes")).as_py())
    return out


def work_egress_tsv(path: Path) -> dict[str, Any]:
    """egress: rows into typed batches."""
    return _egress(path, sums=False)


def work_egress_tsv_sum(path: Path) -> dict[str, Any]:
    """egress: typed batches plus the per-responder sum."""
    return _egress(path, sums=True)


def work_zat(path: Path, usecols: bool = False) -> dict[str, Any]:
    """zat's LogToDataFrame (pandas), then the per-responder sum."""
    from zat.log_to_dataframe import LogToDataFrame

    cols = ["id.resp_h", "resp_ip_bytes"] if usecols else None
    df = LogToDataFrame().create_dataframe(str(path), usecols=cols)
    sums = df.groupby("id.resp_h", observed=True)["resp_ip_bytes"].sum()
    return {"rows": len(df), "responders": len(sums), "total": int(sums.sum())}


def work_zat_usecols(path: Path) -> dict[str, Any]:
    """zat with usecols (only the two columns the sum needs)."""
    return work_zat(path, usecols=True)


def work_split(path: Path) -> dict[str, Any]:
    """Plain Python: split each line, sum resp_ip_bytes per responder."""
    sums: dict[str, int] = {}
    rows = 0
    resp = CONN_FIELDS.index("id.resp_h")
    size = CONN_FIELDS.index("resp_ip_bytes")
    with path.open() as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            parts = line.rstrip("\n").split("\t")
            rows += 1
            if parts[size] != "-":
                sums[parts[resp]] = sums.get(parts[resp], 0) + int(parts[size])
    return {"rows": rows, "responders": len(sums), "total": sum(sums.values())}


def work_duckdb_tsv(path: Path) -> dict[str, Any]:
    """DuckDB's CSV reader: sum per responder."""
    import duckdb

    con = duckdb.connect()
    names = ", ".join(f"'{f}'" for f in CONN_FIELDS)
    rel = con.sql(
        f"select \"id.resp_h\", sum(resp_ip_bytes), count(*) "
        f"from read_csv('{path}', delim='\t', header=false, quote='', escape='', "
        f"comment='#', nullstr='-', names=[{names}], "
        f"types={{'resp_ip_bytes': 'UBIGINT'}}) group by 1")
    rows = rel.fetchall()
    return {"rows": sum(r[2] for r in rows), "responders": len(rows),
            "total": sum(int(r[1] or 0) for r in rows)}


def work_polars_tsv(path: Path) -> dict[str, Any]:
    """polars' CSV reader: sum per responder."""
    import polars as pl

    lf = pl.scan_csv(path, separator="\t", comment_prefix="#", has_header=False,
                     new_columns=list(CONN_FIELDS), null_values="-", quote_char=None,
                     schema_overrides={"resp_ip_bytes": pl.UInt64})
    out = lf.group_by("id.resp_h").agg(pl.col("resp_ip_bytes").sum(), pl.len()).collect()
    return {"rows": int(out["len"].sum()), "responders": out.height,
            "total": int(out["resp_ip_bytes"].sum())}


def work_duckdb_json(path: Path) -> dict[str, Any]:
    """DuckDB's NDJSON reader: sum per responder."""
    import duckdb

    con = duckdb.connect()
    rows = con.sql(
        f"select \"id.resp_h\", sum(resp_ip_bytes), count(*) from read_ndjson('{path}', "
        f"columns={{'id.resp_h': 'VARCHAR', 'resp_ip_bytes': 'UBIGINT'}}) group by 1").fetchall()
    return {"rows": sum(r[2] for r in rows), "responders": len(rows),
            "total": sum(int(r[1] or 0) for r in rows)}


def work_polars_json(path: Path) -> dict[str, Any]:
    """polars' NDJSON reader: sum per responder."""
    import polars as pl

    out = (pl.scan_ndjson(path).group_by("id.resp_h")
           .agg(pl.col("resp_ip_bytes").sum(), pl.len()).collect())
    return {"rows": int(out["len"].sum()), "responders": out.height,
            "total": int(out["resp_ip_bytes"].sum())}


WORKERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "egress-tsv": work_egress_tsv,
    "egress-tsv-sum": work_egress_tsv_sum,
    "egress-json": work_egress_tsv,
    "egress-json-sum": work_egress_tsv_sum,
    "zat": work_zat,
    "zat-usecols": work_zat_usecols,
    "split": work_split,
    "duckdb-tsv": work_duckdb_tsv,
    "polars-tsv": work_polars_tsv,
    "duckdb-json": work_duckdb_json,
    "polars-json": work_polars_json,
}
OPTIONAL = {"zat": "zat", "zat-usecols": "zat", "duckdb-tsv": "duckdb", "duckdb-json": "duckdb",
            "polars-tsv": "polars", "polars-json": "polars"}

# ------------------------------------------------------------------ parent side


def run_child(name: str, path: Path) -> dict[str, Any]:
    """Run one worker in a child process; add wall/CPU seconds and peak RSS."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, str(path)]
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return {"name": name, "error": err.decode(errors="replace").strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result.update(name=name, wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime,
                  peak_rss_mb=usage.ru_maxrss / 1024)
    return result


def _head(src: Path, n: int) -> Path:
    """The header, the first ``n`` data rows and (TSV) a ``#close`` line of ``src``, as a file."""
    out = src.with_name(f"{src.stem}.head{n}{src.suffix}")
    if out.exists():
        return out
    tsv = False
    part = out.with_name(f"{out.name}.{os.getpid()}.part")  # renamed when complete
    with src.open("rb") as fi, part.open("wb") as fo:
        kept = 0
        for raw in fi:
            if raw.startswith(b"#"):
                tsv = True
                fo.write(raw)
                continue
            if kept == n:
                break
            fo.write(raw)
            kept += 1
        if tsv:
            fo.write(b"#close\t2024-05-02-00-00-00\n")
    part.replace(out)
    return out


def count_instructions(name: str, path: Path) -> int:
    """Instructions one worker executes on ``path``, counted by callgrind (all threads)."""
    import re
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out",
               sys.executable, str(Path(__file__).resolve()), "--worker", name, str(path)]
        env = dict(os.environ, PYTHONPATH=str(HERE.parent), PYTHONHASHSEED="0")
        proc = subprocess.run(cmd, capture_output=True, env=env, check=True)
    found = re.search(rb"Collected : (\d+)", proc.stderr)
    if found is None:
        raise RuntimeError(f"no callgrind total for {name} on {path}")
    return int(found.group(1))


def instructions(tsv: Path, jsonl: Path, rows: int) -> None:
    """Print instructions per row of the egress workers between 1,000 and ``rows`` rows."""
    base = 1000
    if rows <= base:
        raise SystemExit(f"--instructions needs more than {base} rows")
    for name, src in (("egress-tsv", tsv), ("egress-json", jsonl)):
        small, large = (count_instructions(name, _head(src, n)) for n in (base, rows))
        print(f"{name:16s} {(large - small) / (rows - base):8.0f} instructions per row "
              f"(callgrind: {small:,} for {base:,} rows, {large:,} for {rows:,})")


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "FILE"))
    parser.add_argument("--only", nargs="*", help="run only these workers")
    parser.add_argument("--instructions", type=int, metavar="N",
                        help="count instructions per row on the first N rows (valgrind)")
    parser.add_argument("--generate", nargs=3, metavar=("ROWS", "TSV", "JSON"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate:
        generate(int(args.generate[0]), Path(args.generate[1]), Path(args.generate[2]))
        return 0
    if args.worker:
        name, file = args.worker
        print(json.dumps(WORKERS[name](Path(file))))
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    tsv = args.workdir / f"conn-{args.rows}.log"
    jsonl = args.workdir / f"conn-{args.rows}.json.log"
    if not (tsv.exists() and jsonl.exists()):
        t0 = time.perf_counter()
        # In a child, so this process stays small: children inherit its size until exec.
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--generate",
                        str(args.rows), str(tsv), str(jsonl)], check=True)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - t0:.1f} s")
    if args.instructions:
        instructions(tsv, jsonl, args.instructions)
        return 0
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f} (before)")
    print(f"TSV  {tsv} ({tsv.stat().st_size / 1e6:.0f} MB)")
    print(f"JSON {jsonl} ({jsonl.stat().st_size / 1e6:.0f} MB)")
    subprocess.run(["cat", str(tsv), str(jsonl)], stdout=subprocess.DEVNULL, check=False)
    results: dict[str, dict[str, Any]] = {}
    for name in WORKERS:
        if args.only and name not in args.only:
            continue
        if name in OPTIONAL and not _installed(OPTIONAL[name]):
            print(f"{name:16s} skipped ({OPTIONAL[name]} not installed)")
            continue
        path = jsonl if "json" in name else tsv
        res = run_child(name, path)
        results[name] = res
        if "error" in res:
            print(f"{name:16s} FAILED {res['error']}")
            continue
        rate = res["rows"] / res["wall_s"] / 1e6
        cpu_rate = res["rows"] / res["cpu_s"] / 1e6
        print(f"{name:16s} {res['rows']:>10,} rows  {res['wall_s']:6.2f} s wall  "
              f"{res['cpu_s']:6.2f} s cpu  {rate:5.2f} M rows/s wall  {cpu_rate:5.2f} per "
              f"cpu-s  peak RSS {res['peak_rss_mb']:6.0f} MB  total {res.get('total', '-')}")
    print(f"load average {os.getloadavg()[0]:.2f} (after)")
    _verdicts(results, args.rows)
    return 0


def _rate(results: dict[str, dict[str, Any]], name: str, clock: str = "wall_s") -> float | None:
    """Rows per second of ``clock`` (``wall_s`` or ``cpu_s``), or None if it did not run."""
    res = results.get(name)
    if res is None or "error" in res:
        return None
    return float(res["rows"]) / float(res[clock])


def _verdicts(results: dict[str, dict[str, Any]], rows: int) -> None:
    def line(label: str, value: float | None, target: float, unit: str) -> None:
        if value is None:
            print(f"  n/a   {label}")
            return
        verdict = "PASS" if value >= target else "MISS"
        print(f"  {verdict}  {label}: {value:.2f}{unit} (target >= {target}{unit})")

    def ratio(mine: str, peer: str, clock: str = "wall_s") -> float | None:
        a, b = _rate(results, mine, clock), _rate(results, peer, clock)
        return a / b if a and b else None

    def info(mine: str, peer: str) -> None:
        wall, cpu = ratio(mine, peer), ratio(mine, peer, "cpu_s")
        if wall is not None and cpu is not None:
            print(f"  info  {mine} vs {peer}: {wall:.2f}x wall, {cpu:.2f}x cpu")

    print("targets (wall clock; the machine's other load counts against everyone):")
    for name, target in (("egress-tsv", 3.0), ("egress-json", 1.5)):
        wall, cpu = _rate(results, name), _rate(results, name, "cpu_s")
        line(f"{name} into typed batches", wall / 1e6 if wall else None, target, " M rows/s")
        if cpu:
            print(f"  info  {name}: {cpu / 1e6:.2f} M rows per CPU-second")
    for name in ("egress-tsv", "egress-tsv-sum"):
        line(f"{name} vs zat LogToDataFrame", ratio(name, "zat"), 7.0, "x")
        cpu = ratio(name, "zat", "cpu_s")
        if cpu is not None:
            print(f"  info  {name} vs zat LogToDataFrame by CPU time: {cpu:.2f}x")
    for peer in ("zat-usecols", "split", "duckdb-tsv", "polars-tsv"):
        info("egress-tsv-sum", peer)
    for peer in ("duckdb-json", "polars-json"):
        info("egress-json-sum", peer)
    del rows


if __name__ == "__main__":
    sys.exit(main())
