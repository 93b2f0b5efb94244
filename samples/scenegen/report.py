"""What an analyst should find: ``expected.json`` (exact totals) and ``EXPECTED.md``.

Totals are counted from the generated records with attribution's rules (bytes in are
the IP bytes the remote end sent; interim records add nothing beyond the final totals),
not by running egress.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from scenegen.plan import (
    BULK_BUCKET,
    BULK_TENANT,
    CONCERN,
    INGEST_JOB,
    INGEST_STATION,
    SEED,
    SITE,
    SITE_COUNTRY,
    TENANTS,
    tenant,
)
from scenegen.storage import Drive, S3Totals
from scenegen.zeek import Conn


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _add(table: dict[str, int], key: str, value: int) -> None:
    table[key] = table.get(key, 0) + value


def _conn_totals(conns: list[Conn]) -> dict[str, Any]:
    rows = sum(1 + len(c.interim_payloads) for c in conns)
    by_in: dict[str, int] = {}
    by_out: dict[str, int] = {}
    total_in = total_out = 0
    for c in conns:
        b_in, b_out = c.bytes_in_out()
        total_in += b_in
        total_out += b_out
        _add(by_in, c.remote_country or "??", b_in)
        _add(by_out, c.remote_country or "??", b_out)
    return {"rows": rows, "connections": len(conns), "bytes_in": total_in,
            "bytes_out": total_out, "bytes_in_by_country": by_in,
            "bytes_out_by_country": by_out, "remote_addrs": len({c.remote for c in conns})}


def _story(conns: list[Conn], country_key: str) -> dict[str, Any]:
    totals = _conn_totals(conns)
    return {
        "connections": len(conns), "remote_addrs": totals["remote_addrs"],
        "countries": sorted({c.remote_country or "??" for c in conns}),
        "bytes": totals[country_key],
        "payload_bytes": sum(max(c.orig_payload, c.resp_payload) for c in conns),
        "start": _iso(min(c.start_us for c in conns)),
        "end": _iso(max(c.end_us for c in conns)),
        "conn_long_rows": sum(len(c.interim_payloads) for c in conns),
    }


def expected(conns: list[Conn], drives: list[Drive], s3: S3Totals,
             uploads_completed: int) -> dict[str, Any]:
    """The facts of ``expected.json``."""
    tenants: dict[str, Any] = {}
    for t in TENANTS:
        mine = [c for c in conns if c.tenant == t.id]
        entry: dict[str, Any] = {
            "conn": _conn_totals(mine),
            "object_store": {"requests": s3.lines.get(t.id, 0),
                             "put_bytes": s3.put_bytes.get(t.id, 0),
                             "puts": s3.puts.get(t.id, 0)},
            "drives": {"attached": 0, "capacity_bytes": 0},
            "copies": {"files": 0, "bytes": 0},
        }
        if t.id == BULK_TENANT:
            listed = [d for d in drives if d.listed]
            entry["drives"] = {"attached": len(listed),
                               "capacity_bytes": sum(d.capacity_bytes for d in listed)}
            entry["copies"] = {"files": sum(len(d.files) for d in drives),
                               "bytes": sum(d.copied_bytes for d in drives)}
        tenants[t.id] = entry
    bulk = [c for c in conns if c.story == "bulk"]
    out = [c for c in conns if c.story == "outbound"]
    unlisted = [d for d in drives if not d.listed]
    t42 = tenant(BULK_TENANT)
    cluster, model, gpus, alloc_from, _ = t42.allocations[0]
    return {
        "scenario": {"site": SITE, "site_country": SITE_COUNTRY,
                     "concern_countries": list(CONCERN), "seed": SEED,
                     "conn_log_rows": len(conns),
                     "conn_long_rows": sum(len(c.interim_payloads) for c in conns)},
        "tenants": tenants,
        "unattributed": {
            "conn_rows": sum(1 for c in conns if c.tenant is None),
            "unlisted_drives": [{"serial": d.serial, "capacity_bytes": d.capacity_bytes,
                                 "attached": _time(d.attached), "copy_log": d.log_name,
                                 "bytes_copied": d.copied_bytes} for d in unlisted],
        },
        "findings": {
            "tenant": BULK_TENANT,
            "context": {"registered": t42.registered, "country": t42.country,
                        "parent_country": t42.parent_country, "kyc": t42.kyc,
                        "payment": t42.payment, "predecessor": t42.predecessor,
                        "shared_with_predecessor": ["payment_ref", "contacts"],
                        "allocation": {"cluster": cluster, "gpu_model": model, "gpus": gpus,
                                       "from": alloc_from}},
            "bulk_arrival": {**_story(bulk, "bytes_in"),
                             "push_ssh": sum(1 for c in bulk if c.remote_is_orig),
                             "pull_https": sum(1 for c in bulk if not c.remote_is_orig)},
            "follow_on_outbound": _story(out, "bytes_out"),
            "drive_ingest": {
                "job": INGEST_JOB, "station": INGEST_STATION,
                "drives_attached": len(drives), "listed_drives": sum(d.listed for d in drives),
                "capacity_bytes_listed": sum(d.capacity_bytes for d in drives if d.listed),
                "first_attach": _time(min(d.attached for d in drives)),
                "last_attach": _time(max(d.attached for d in drives)),
                "bytes_copied": sum(d.copied_bytes for d in drives),
                "files_copied": sum(len(d.files) for d in drives),
                "copy_logs": len(drives),
            },
            "object_store_ingest": {
                "bucket": BULK_BUCKET, "from": INGEST_STATION, "day": "2026-05-19",
                "put_bytes": s3.put_bytes.get(BULK_TENANT, 0),
                "parts": s3.puts.get(BULK_TENANT, 0), "uploads_completed": uploads_completed,
            },
        },
    }


def _tb(n: int) -> str:
    if n == 0:
        return "0"
    return f"{n / 1e12:,.1f} TB" if n >= 10**12 else f"{n / 1e9:,.1f} GB"


def expected_md(f: dict[str, Any]) -> str:
    """The analyst's page."""
    x = f["findings"]
    ctx, bulk, out = x["context"], x["bulk_arrival"], x["follow_on_outbound"]
    drv, obj = x["drive_ingest"], x["object_store_ingest"]
    unl = f["unattributed"]["unlisted_drives"][0]
    alloc = ctx["allocation"]
    rows = []
    for tid, t in f["tenants"].items():
        c = t["conn"]
        rows.append(f"| {tid} | {c['rows']} | {_tb(c['bytes_in'])} | {_tb(c['bytes_out'])} | "
                    f"{_tb(t['object_store']['put_bytes'])} | {t['drives']['attached']} | "
                    f"{_tb(t['copies']['bytes'])} | {tenant(tid).role} |")
    return f"""# Sample scenario: a bulk arrival at kul-1 (what an analyst should find)

Generated by `samples/generate_scenario.py` (seed `{f['scenario']['seed']}`); exact figures are in
`expected.json`. TB are decimal (10^12 bytes); network volumes are IP bytes as Zeek counts
them. Addresses and AS numbers come from documentation and benchmarking ranges; the files in
`geo/` map them to countries.

## Files

| file | what |
|---|---|
| `inventory.yaml` | site kul-1 (MY), concern countries CN and MO, \
ingest station {drv['station']}, 5 tenants |
| `zeek/conn.log` | {f['scenario']['conn_log_rows']} final connection records, \
13 May - 5 June 2026 |
| `zeek/conn_long.log` | {f['scenario']['conn_long_rows']} interim records (running totals \
every 6 h) of connections open longer than 6 h |
| `geo/dbip-country-lite.csv`, `geo/ip2asn-combined.tsv` | countries and AS numbers \
of the remote ranges |
| `storage/kern.log` | the ingest station's kernel log: \
{drv['drives_attached']} USB drives attached |
| `storage/{INGEST_JOB}-dNN.log` | one rsync log per drive \
(`--log-file-format='%i %n %l'`) |
| `storage/s3-access.log.gz` | one day (19 May) of the object store's S3 server access \
log, all buckets |

Read the Zeek logs with `conn_long.log` first (or give the `zeek/` directory): interim records
must come before the final record of the same connection. The station's clocks are UTC.

## The case: {x['tenant']}

**Context.** Registered {ctx['registered']} as a local company ({ctx['country']}) with a parent
in {ctx['parent_country']}; KYC `{ctx['kyc']}`, paid in `{ctx['payment']}`. It names
{ctx['predecessor']} as predecessor: a foreign subsidiary offboarded on 2026-05-01 whose payment
reference and contacts it shares, and whose address range (10.42.0.0/16) it took over.
From {alloc['from']} it holds {alloc['gpus']} {alloc['gpu_model']} GPUs on {alloc['cluster']}.

**Bulk arrival over the network** ({bulk['start']} to {bulk['end']}): {x['tenant']} received
**{_tb(bulk['bytes'])}** ({bulk['bytes']:,} bytes) from **{bulk['remote_addrs']} addresses in CN**
over {bulk['connections']} long connections ({bulk['push_ssh']} pushed to it over SSH, the remote
end originating; {bulk['pull_https']} pulled by it over HTTPS). Each lasted 2.5 to 4 days, so
`conn_long.log` shows the volume while they run ({bulk['conn_long_rows']} interim records).
(Its IP bytes out during the arrival are mostly the TCP ACKs of what it received.)

**Drive courier** ({drv['first_attach']} to {drv['last_attach']}): {drv['drives_attached']}
drives of 18-22 TB attached at the ingest station in two batches, job {drv['job']}:
{drv['listed_drives']} listed in the import manifest ({_tb(drv['capacity_bytes_listed'])} of
capacity) and **one that no manifest lists**: serial `{unl['serial']}`
({_tb(unl['capacity_bytes'])}), attached {unl['attached']}, copied under the same job
(`storage/{unl['copy_log']}`, {_tb(unl['bytes_copied'])}). rsync copied
**{_tb(drv['bytes_copied'])}** in {drv['files_copied']} files off all {drv['copy_logs']} drives.

**Into the bucket**: on 19 May the ingest station ({obj['from']}) put {_tb(obj['put_bytes'])} into
`{obj['bucket']}` ({obj['parts']} multipart parts of up to 5 GiB; {obj['uploads_completed']}
uploads completed). The access log holds that day only; the uploads go on after it.

**Follow-on outbound** ({out['start']} to {out['end']}): three weeks later
**{_tb(out['bytes'])}** left {x['tenant']} for {out['remote_addrs']} addresses in CN over
{out['connections']} HTTPS uploads (trained weights leaving).

Patterns: new tenant x large GPU allocation x bulk arrival; cross-border arrival from a
country of concern; long-lived and sustained high-rate inbound; drive-ingest burst with an
unlisted drive; object-store PUT volume; entity substitution (predecessor, shared payment
reference and contacts); crypto payment and basic KYC as amplifiers; follow-on outbound.

## Ordinary tenants (must not alert)

| tenant | conn rows | in | out | PUT | drives | copied | role |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

t-0003 is busy but established and pulls from a CDN in the site's own country; t-0008 sends a
lot out every day but receives little; t-0051 is new and small. The site's resolvers and clocks
(10.0.1.53, 10.0.1.123) belong to no tenant: {f['unattributed']['conn_rows']} unattributed
conn rows.
"""
