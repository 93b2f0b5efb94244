"""The scenario's inventory (egress's YAML shape) and its geo range files."""

from __future__ import annotations

from ipaddress import IPv4Network

from scenegen.plan import (
    BULK_BUCKET,
    CONCERN,
    INGEST_JOB,
    INGEST_STATION,
    MEDIA_RECEIVED,
    REMOTE_RANGES,
    SITE,
    SITE_COUNTRY,
    TENANTS,
    TenantPlan,
)


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tenant_yaml(t: TenantPlan, serials: list[str], copy_logs: str) -> list[str]:
    out = [f"  - id: {t.id}", f"    name: {_q(t.name)}", f"    registered: {t.registered}",
           f"    country: {t.country}"]
    if t.parent_country:
        out.append(f"    parent_country: {t.parent_country}")
    out += [f"    kyc: {t.kyc}", f"    payment: {t.payment}"]
    if t.predecessor:
        out.append(f"    predecessor: {t.predecessor}")
    contacts = ", ".join(_q(c) for c in t.contacts)
    out.append(f"    identifiers: {{payment_ref: {_q(t.payment_ref or '')}, "
               f"contacts: [{contacts}]}}")
    if t.offboarded:
        out.append(f"    offboarded: {t.offboarded}")
    until = f", until: {t.net_until}" if t.net_until else ""
    out += ["    networks:", f"      - {{cidr: {t.cidr}, from: {t.net_from}{until}}}",
            f"    vnis: [{{vni: {t.vni}, from: {t.net_from}{until}}}]",
            "    buckets: [" + ", ".join(_q(b) for b in t.buckets) + "]",
            "    allocations:"]
    for cluster, model, gpus, start, end in t.allocations:
        end_text = f", until: {end}" if end else ""
        out.append(f"      - {{cluster: {cluster}, gpu_model: {model}, gpus: {gpus}, "
                   f"from: {start}{end_text}}}")
    if serials:
        out += ["    media_imports:",
                f"      - job: {INGEST_JOB}",
                f"        received: {MEDIA_RECEIVED.date().isoformat()}",
                f"        target_buckets: [{_q(BULK_BUCKET)}]",
                f"        copy_logs: [{_q(copy_logs)}]",
                "        serials: ["]
        for i in range(0, len(serials), 6):
            out.append("          " + ", ".join(_q(x) for x in serials[i:i + 6]) + ",")
        out[-1] = out[-1].rstrip(",")
        out.append("        ]")
    out.append(f"    # {t_role(t)}")
    return out


def t_role(t: TenantPlan) -> str:
    """The tenant's part in the scenario (a comment in the inventory)."""
    return t.role


def inventory_yaml(listed_serials: list[str]) -> str:
    """The inventory file; the bulk tenant's media import lists ``listed_serials``."""
    lines = [
        "# Sample inventory of site kul-1 (made by samples/generate_scenario.py; do not edit).",
        "# Addresses and AS numbers are from documentation and benchmarking ranges.",
        f"site: {{name: {SITE}, country: {SITE_COUNTRY}, networks: [10.0.0.0/8], "
        f"ingest_stations: [{INGEST_STATION}]}}",
        f"concern_countries: [{', '.join(CONCERN)}]",
        "tenants:",
    ]
    for t in TENANTS:
        serials = listed_serials if t.id == "t-0042" else []
        lines += _tenant_yaml(t, serials, f"{INGEST_JOB}-*.log")
    return "\n".join(lines) + "\n"


def _ranges() -> list[tuple[IPv4Network, str, int, str]]:
    rows = [(IPv4Network(r.cidr), r.country, r.asn, r.org) for r in REMOTE_RANGES]
    return sorted(rows, key=lambda row: int(row[0].network_address))


def dbip_country_csv() -> str:
    """DB-IP lite country layout: ``start,end,country``."""
    return "".join(f"{net.network_address},{net.broadcast_address},{country}\n"
                   for net, country, _, _ in _ranges())


def iptoasn_tsv() -> str:
    """iptoasn ``ip2asn-combined.tsv`` layout: ``start end asn country description``."""
    return "".join(f"{net.network_address}\t{net.broadcast_address}\t{asn}\t{country}\t{org}\n"
                   for net, country, asn, org in _ranges())
