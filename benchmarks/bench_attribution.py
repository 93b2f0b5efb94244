"""Time attribution of Zeek conn batches: column-wise against the row loop, in one process.

Builds an inventory of 10,000 tenants, each holding a /24 of the site's 10.0.0.0/8 (one in
ten handed over from a predecessor mid-period, one in five with a VNI), and a conn batch of
1 M rows: 80 % between a tenant host and the Internet (either end originating), 10 % internal
(same tenant, two tenants, tenant and site service; a few by VNI) and 10 % that no rule places
(Internet to Internet, site-only, unknown VNI). Then times
``Attributor.attribute_batch`` (whole batch and 64k-row slices) and the reference row loop
(``Attributor._attribute_batch_rows``) on the same rows, checks that they agree, and prints
rows/s by wall clock and by CPU time (``time.process_time``). ``--geo`` adds a range-file geo
lookup with 20,000 ranges. Figures are printed, never asserted.

    python benchmarks/bench_attribution.py                  # 1 M rows
    python benchmarks/bench_attribution.py --rows 200000 --row-loop-rows 50000
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Network, ip_network
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from egress.attribution import Attributor
from egress.columns import CONN_SCHEMA
from egress.geo import RangeCsvGeo
from egress.inventory import (
    Identifiers,
    Inventory,
    NetworkAssignment,
    Site,
    Tenant,
    VniAssignment,
)

START = datetime(2026, 5, 1, tzinfo=UTC)
HANDOVER = START + timedelta(days=15)
PERIOD_S = 30 * 86_400
HOSTS = 32  # active hosts per tenant
REMOTES = 200_000  # distinct Internet addresses


def tenant_net(i: int) -> IPv4Network:
    return IPv4Network(((10 << 24) | (i << 8), 24))


def inventory(tenants: int) -> Inventory:
    """``tenants`` tenants, each with a /24; every tenth range changed hands at HANDOVER."""
    records = []
    for i in range(tenants):
        net = tenant_net(i)
        handed = i % 10 == 0
        nets = (NetworkAssignment(cidr=net, valid_from=HANDOVER if handed else START,
                                  valid_until=None),)
        vnis = (VniAssignment(vni=5000 + i, valid_from=START, valid_until=None),) \
            if i % 5 == 0 else ()
        records.append(Tenant(
            id=f"t-{i:05d}", name=f"tenant {i}", registered=START, country="MY",
            parent_country=None, kyc="basic", payment="card", predecessor=None,
            identifiers=Identifiers(), offboarded=None, networks=nets, vnis=vnis))
        if handed:
            records.append(Tenant(
                id=f"p-{i:05d}", name=f"predecessor {i}", registered=START, country="MY",
                parent_country=None, kyc="basic", payment="card", predecessor=None,
                identifiers=Identifiers(), offboarded=HANDOVER,
                networks=(NetworkAssignment(cidr=net, valid_from=START, valid_until=HANDOVER),)))
    site = Site(name="bench", country="MY", networks=(ip_network("10.0.0.0/8"),),
                ingest_stations=())
    return Inventory(site=site, concern_countries=("CN",), tenants=tuple(records))


def dotted(numbers: np.ndarray) -> pa.Array:
    """Dotted-quad text of IPv4 numbers."""
    parts = [pa.array((numbers >> s) & 255).cast(pa.string()) for s in (24, 16, 8, 0)]
    return pc.binary_join_element_wise(*parts, ".")


def conn_batch(rows: int, tenants: int, seed: int = 5) -> pa.RecordBatch:
    """The benchmark mix (module docstring) as one CONN_SCHEMA batch."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(3, rows, p=[0.8, 0.1, 0.1])  # 0 Internet, 1 internal, 2 unplaced

    def host(tenant: np.ndarray) -> np.ndarray:
        return (10 << 24) | (tenant << 8) | rng.integers(1, 1 + HOSTS, len(tenant))

    # Internet addresses: Zipf-like reuse of a pool of public addresses
    pool = rng.integers(0x0B000000, 0xDF000000, REMOTES, dtype=np.int64)
    remote = pool[np.minimum(rng.zipf(1.3, rows) - 1, REMOTES - 1)]
    owner = rng.integers(0, tenants, rows)
    peer = np.where(rng.random(rows) < 0.5, owner, rng.integers(0, tenants, rows))
    service = (10 << 24) | (200 << 16) | rng.integers(1, 255, rows)  # site, no tenant
    inside = np.where(rng.random(rows) < 0.7, host(peer), service)
    unplaced_a = np.where(rng.random(rows) < 0.5, remote, service)
    a = np.select([kind == 0, kind == 1], [host(owner), host(owner)], unplaced_a)
    b = np.select([kind == 0, kind == 1], [remote, inside], pool[rng.integers(0, REMOTES, rows)])
    flip = rng.random(rows) < 0.5
    orig, resp = np.where(flip, b, a), np.where(flip, a, b)
    vni = np.where(kind == 1, 5000 + owner - owner % 5, 0)
    vni_rows = ((kind == 1) & (rng.random(rows) < 0.3)) | ((kind == 2) & (rng.random(rows) < 0.2))
    vni = np.where(kind == 2, 90_000, vni)
    ts = (START.timestamp() + rng.random(rows) * PERIOD_S) * 1e6
    big = rng.random(rows) < 0.5
    d_orig = np.where(big, rng.integers(1, 1 << 30, rows), rng.integers(40, 4000, rows))
    d_resp = np.where(~big, rng.integers(1, 1 << 30, rows), rng.integers(40, 4000, rows))
    columns = {f.name: pa.nulls(rows, f.type) for f in CONN_SCHEMA}
    columns |= {
        "ts": pa.array(ts.astype(np.int64)).cast(pa.timestamp("us", tz="UTC")),
        "uid": pa.array(np.full(rows, "C"), pa.string()),
        "orig_h": dotted(orig), "resp_h": dotted(resp),
        "vni": pa.array(vni.astype(np.uint32), mask=~vni_rows),
        "interim": pa.array(np.zeros(rows, np.bool_)),
        "delta_orig_ip_bytes": pa.array(d_orig.astype(np.uint64)),
        "delta_resp_ip_bytes": pa.array(d_resp.astype(np.uint64)),
        "line": pa.array(np.arange(1, rows + 1)),
    }
    return pa.RecordBatch.from_pydict(columns, schema=CONN_SCHEMA)


def geo_file(where: Path, ranges: int, seed: int = 3) -> Path:
    """A DB-IP lite country file of ``ranges`` ranges over the public IPv4 space."""
    rng = np.random.default_rng(seed)
    cuts = np.unique(rng.integers(0x0B000000, 0xDF000000, ranges * 2))[: ranges * 2]
    countries = ["US", "CN", "MY", "SG", "DE", "JP"]
    path = where / "country.csv"
    with path.open("w", encoding="utf-8") as out:
        for start, end in zip(cuts[0::2].tolist(), cuts[1::2].tolist(), strict=False):
            out.write(f"{IPv4Network((start, 32)).network_address},"
                      f"{IPv4Network((end, 32)).network_address},"
                      f"{countries[start % len(countries)]}\n")
    return path


def timed(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best wall and CPU seconds of ``repeat`` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def report(label: str, rows: int, wall: float, cpu: float) -> None:
    print(f"{label:<34} {rows:>9,} rows  {wall:7.3f} s wall {rows / wall / 1e6:7.2f} M rows/s"
          f"  {cpu:7.3f} s CPU {rows / cpu / 1e6:7.2f} M rows/s")


def measure(name: str, inv: Inventory, batch: pa.RecordBatch, geo: RangeCsvGeo | None,
            *, repeat: int, row_loop_rows: int) -> None:
    """Time one configuration: column-wise (warm, 64k slices, cold) and the row loop."""
    rows = batch.num_rows
    attributor = Attributor(inv, geo)
    out = attributor.attribute_batch(batch)  # builds the tables, fills the geo memo
    stats = attributor.stats()
    print(f"[{name}] attributed {stats.attributed.get('conn', 0):,}, not "
          f"{stats.unattributed.get('conn', 0):,}: "
          + ", ".join(f"{r} {n:,}" for (_, r), n in sorted(stats.reasons.items())))
    report(f"column-wise, {name}, 1 batch", rows,
           *timed(lambda: attributor.attribute_batch(batch), repeat))
    slices = [batch.slice(i, 65_536) for i in range(0, rows, 65_536)]
    report(f"column-wise, {name}, 64k batches", rows,
           *timed(lambda: [attributor.attribute_batch(s) for s in slices], repeat))
    fresh = Attributor(inv, geo)
    report(f"column-wise, {name}, cold", rows, *timed(lambda: fresh.attribute_batch(batch), 1))
    part = batch.slice(0, row_loop_rows)
    reference = Attributor(inv, geo)
    holder: list[pa.RecordBatch] = []
    wall, cpu = timed(lambda: holder.append(reference._attribute_batch_rows(part)), 1)
    report(f"row loop, {name}", len(part), wall, cpu)
    print(f"[{name}] column-wise == row loop on {len(part):,} rows: "
          f"{holder[0].equals(out.slice(0, len(part)))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--row-loop-rows", type=int, default=None,
                        help="rows given to the row loop (default: all)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--geo", action="store_true", help="also time with a geo lookup")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, pyarrow {pa.__version__}, numpy {np.__version__}")
    w0, c0 = time.perf_counter(), time.process_time()
    inv = inventory(args.tenants)
    batch = conn_batch(args.rows, args.tenants)
    print(f"setup: {len(inv.tenants):,} tenants, {args.rows:,} rows in "
          f"{time.perf_counter() - w0:.1f} s wall, {time.process_time() - c0:.1f} s CPU")
    loop_rows = min(args.row_loop_rows or args.rows, args.rows)
    measure("no geo", inv, batch, None, repeat=args.repeat, row_loop_rows=loop_rows)
    if args.geo:
        with tempfile.TemporaryDirectory() as tmp, \
                RangeCsvGeo([geo_file(Path(tmp), 20_000)]) as geo:
            measure("geo", inv, batch, geo, repeat=args.repeat, row_loop_rows=loop_rows)


if __name__ == "__main__":
    main()
