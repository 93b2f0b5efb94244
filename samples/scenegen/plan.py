"""The facts of the sample scenario: site, tenants, address plan, remote ranges, timeline.

Everything the writers need to agree on lives here, as constants. Remote addresses come
from ranges reserved for documentation and benchmarking (192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24, 198.18.0.0/15) and AS numbers from the documentation block (64496-64511),
so no real network is named; the scenario's geo files map them to countries.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network

SEED = "egress-samples-kul-1-v1"
SITE = "kul-1"
SITE_COUNTRY = "MY"
CONCERN = ("CN", "MO")
INGEST_STATION = "10.9.0.11"
INGEST_HOST = "kul1-ingest-01"
INGEST_JOB = "imp-77"
BULK_TENANT = "t-0042"
BULK_BUCKET = "t0042-datasets"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
        second: int = 0) -> datetime:
    """A UTC time."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# -- timeline -----------------------------------------------------------------------------

BACKGROUND_START = utc(2026, 5, 13)
BACKGROUND_END = utc(2026, 6, 6)  # exclusive: 24 days of ordinary traffic
BULK_START = utc(2026, 5, 14)  # 40 parallel streams from CN, 4 days
MEDIA_RECEIVED = utc(2026, 5, 19)
DRIVE_BATCHES = (utc(2026, 5, 19, 6, 5), utc(2026, 5, 20, 6, 10))
S3_EXCERPT_END = utc(2026, 5, 20)  # the access log holds the ingest bucket's first day
OUTBOUND_START = utc(2026, 6, 4, 1)  # trained weights leave, three weeks after the arrival
LONG_CONN_INTERVAL_S = 6 * 3600  # conn_long.log: an interim record every 6 h of a connection


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteRange:
    """A remote address range with its country and AS, as the geo files state it."""

    cidr: str
    country: str
    asn: int
    org: str

    def address(self, rng: random.Random) -> str:
        """A host address of the range, chosen by ``rng``."""
        net = IPv4Network(self.cidr)
        return str(IPv4Address(int(net.network_address) + rng.randrange(2, net.num_addresses - 1)))


CN_TELECOM = RemoteRange(cidr="198.18.0.0/18", country="CN", asn=64496,
                         org="EXAMPLE-CN-BACKBONE")
CN_UNICOM = RemoteRange(cidr="198.18.64.0/18", country="CN", asn=64497,
                        org="EXAMPLE-CN-NORTH")
CN_CLOUD = RemoteRange(cidr="198.18.128.0/18", country="CN", asn=64498,
                       org="EXAMPLE-CN-CLOUD")
MO_TELECOM = RemoteRange(cidr="198.18.192.0/19", country="MO", asn=64499,
                         org="EXAMPLE-MO-TELECOM")
MY_CDN = RemoteRange(cidr="203.0.113.0/25", country="MY", asn=64500, org="EXAMPLE-MY-CDN")
MY_ISP = RemoteRange(cidr="203.0.113.128/25", country="MY", asn=64501, org="EXAMPLE-MY-ISP")
US_CDN = RemoteRange(cidr="198.51.100.0/25", country="US", asn=64502, org="EXAMPLE-US-CDN")
US_CLOUD = RemoteRange(cidr="198.51.100.128/25", country="US", asn=64503,
                       org="EXAMPLE-US-CLOUD")
SG_CLOUD = RemoteRange(cidr="192.0.2.0/25", country="SG", asn=64504, org="EXAMPLE-SG-CLOUD")
HK_TRANSIT = RemoteRange(cidr="192.0.2.128/26", country="HK", asn=64505,
                         org="EXAMPLE-HK-TRANSIT")
DNS_ANYCAST = RemoteRange(cidr="192.0.2.192/26", country="US", asn=64506,
                          org="EXAMPLE-ANYCAST-DNS")

REMOTE_RANGES: tuple[RemoteRange, ...] = (
    CN_TELECOM, CN_UNICOM, CN_CLOUD, MO_TELECOM, MY_CDN, MY_ISP, US_CDN, US_CLOUD, SG_CLOUD,
    HK_TRANSIT, DNS_ANYCAST,
)
"""Every remote range, in the order the geo files list them (sorted by start below)."""


# -- tenants ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantPlan:
    """One tenant as the inventory states it, plus where its hosts sit."""

    id: str
    name: str
    registered: str
    country: str
    parent_country: str | None
    kyc: str
    payment: str
    cidr: str
    vni: int
    net_from: str
    net_until: str | None = None
    buckets: tuple[str, ...]
    allocations: tuple[tuple[str, str, int, str, str | None], ...] = ()
    predecessor: str | None = None
    payment_ref: str | None = None
    contacts: tuple[str, ...] = ()
    offboarded: str | None = None
    role: str

    def host(self, rng: random.Random, subnet: int = 1) -> str:
        """A host address in the tenant's range (``10.x.<subnet>.<host>``)."""
        base = IPv4Network(self.cidr).network_address
        return str(IPv4Address(int(base) + subnet * 256 + rng.randrange(10, 250)))


SHARED_PAYMENT_REF = "PAY-MY-88213"
SHARED_CONTACTS = ("infra@lianhe-ai.example", "+60 3 2788 4410")

TENANTS: tuple[TenantPlan, ...] = (
    TenantPlan(
        id="t-0003", name="Universiti Contoh Malaysia - Vision and Language Lab",
        registered="2024-02-01", country="MY", parent_country=None, kyc="verified",
        payment="invoice", cidr="10.3.0.0/16", vni=4003, net_from="2024-02-01",
        buckets=("t0003-research", "t0003-*"),
        allocations=(("a100-pod-1", "A100", 256, "2024-02-15", None),),
        payment_ref="INV-UCM-2024-0117", contacts=("hpc-admin@ucm.example.my",),
        role="established university lab: pulls public datasets from a CDN in MY"),
    TenantPlan(
        id="t-0008", name="Wayang Motion Pictures Sdn Bhd", registered="2023-09-12",
        country="MY", parent_country=None, kyc="enhanced", payment="invoice",
        cidr="10.8.0.0/16", vni=4008, net_from="2023-09-12", buckets=("t0008-media",),
        allocations=(("l40s-pod-2", "L40S", 192, "2023-10-01", None),),
        payment_ref="INV-WMP-2023-0932", contacts=("noc@wayang.example.my",),
        role="video company: steady large outbound to CDNs in US and SG"),
    TenantPlan(
        id="t-0017", name="Lianhe Intelligence (Malaysia) Sdn Bhd", registered="2025-06-03",
        country="MY", parent_country="CN", kyc="basic", payment="wire",
        cidr="10.42.0.0/16", vni=4017, net_from="2025-06-03", net_until="2026-05-01",
        buckets=("t0017-data",),
        allocations=(("h100-pod-3", "H100", 512, "2025-06-10", "2026-04-30"),),
        payment_ref=SHARED_PAYMENT_REF, contacts=SHARED_CONTACTS, offboarded="2026-05-01",
        role="foreign subsidiary, offboarded: the predecessor"),
    TenantPlan(
        id="t-0042", name="Lianhe Data Teknologi Sdn Bhd", registered="2026-05-02",
        country="MY", parent_country="CN", kyc="basic", payment="crypto",
        cidr="10.42.0.0/16", vni=4042, net_from="2026-05-02", buckets=("t0042-datasets", "t0042-*"),
        allocations=(("h100-pod-3", "H100", 2048, "2026-05-10", None),),
        predecessor="t-0017", payment_ref=SHARED_PAYMENT_REF,
        contacts=(*SHARED_CONTACTS, "ops@lianhe-data.example.my"),
        role="new local company replacing the subsidiary: the bulk arrival"),
    TenantPlan(
        id="t-0051", name="Kopi Labs Sdn Bhd", registered="2026-03-16", country="MY",
        parent_country=None, kyc="basic", payment="card", cidr="10.51.0.0/16", vni=4051,
        net_from="2026-03-16", buckets=("t0051-data",),
        allocations=(("h100-pod-1", "H100", 16, "2026-03-20", None),),
        payment_ref="CARD-4417", contacts=("founders@kopilabs.example.my",),
        role="small startup: a 2 TB dataset and light traffic"),
)

SITE_INFRA = "10.0.0.0/16"
"""Site infrastructure (resolvers, NTP): inside the site, owned by no tenant."""


def tenant(tenant_id: str) -> TenantPlan:
    """The planned tenant with this id."""
    for t in TENANTS:
        if t.id == tenant_id:
            return t
    raise KeyError(tenant_id)
