"""Generate the sample scenario of ``samples/scenario/``: a bulk arrival at site kul-1.

Run ``python samples/generate_scenario.py [--out samples/scenario]``. It writes the inventory,
Zeek conn and long-connection logs, geo range files, the ingest station's kernel and rsync
logs, a day of the object store's access log, ``expected.json`` (exact totals per tenant,
counted from what was written, never by running egress) and ``EXPECTED.md`` (the story and
the figures for an analyst). Output is a pure function of this file and ``scenegen/``: one
``random.Random`` seeded with a constant string, fixed times, gzip without name or time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scenegen.inventory import dbip_country_csv, inventory_yaml, iptoasn_tsv
from scenegen.plan import (
    BACKGROUND_END,
    BACKGROUND_START,
    BULK_TENANT,
    SEED,
    utc,
)
from scenegen.report import expected, expected_md
from scenegen.storage import (
    S3Log,
    ingest_uploads,
    kern_log,
    ordinary_requests,
    plan_drives,
    rsync_log,
    schedule,
)
from scenegen.traffic import all_connections
from scenegen.zeek import conn_log, conn_long_log, micros

DEFAULT_OUT = Path(__file__).resolve().parent / "scenario"


def _write(path: Path, text: str, *, gz: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0) if gz else data)


def generate(out: Path) -> dict[str, Any]:
    """Write the scenario into ``out``; return the content of ``expected.json``."""
    rng = random.Random(SEED)
    conns = all_connections(rng)
    opened, closed = micros(BACKGROUND_START), micros(BACKGROUND_END)
    long_conns = [c for c in conns if c.interim_payloads]
    _write(out / "zeek" / "conn_long.log", conn_long_log(long_conns, opened, closed))
    _write(out / "zeek" / "conn.log", conn_log(conns, opened, closed))
    _write(out / "geo" / "dbip-country-lite.csv", dbip_country_csv())
    _write(out / "geo" / "ip2asn-combined.tsv", iptoasn_tsv())

    drives = plan_drives(rng)
    schedule(rng, drives)
    _write(out / "inventory.yaml", inventory_yaml([d.serial for d in drives if d.listed]))
    _write(out / "storage" / "kern.log", kern_log(rng, drives))
    for d in drives:
        _write(out / "storage" / d.log_name, rsync_log(rng, d))
    s3 = S3Log(rng)
    day = utc(2026, 5, 19)
    completed = ingest_uploads(s3, drives, BULK_TENANT)
    ordinary_requests(s3, day)
    _write(out / "storage" / "s3-access.log.gz", s3.text(), gz=True)

    facts = expected(conns, drives, s3.totals, completed)
    _write(out / "expected.json", json.dumps(facts, indent=2, sort_keys=True) + "\n")
    _write(out / "EXPECTED.md", expected_md(facts))
    return facts


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="directory to write (default: samples/scenario)")
    args = parser.parse_args(argv)
    facts = generate(args.out)
    t = facts["tenants"][BULK_TENANT]
    print(f"wrote {args.out}: {t['conn']['bytes_in']:,} bytes in for {BULK_TENANT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
