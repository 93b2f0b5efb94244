"""Acceptance scenarios (issue 6): one site, a few tenants, the logs a site would collect.

A :class:`Scene` holds one scenario while it is built: its tenants (the inventory's
:class:`~scenegen.plan.TenantPlan`), the connections of a
:class:`~scenegen.traffic.ConnFactory`, drive imports at the ingest station and an
:class:`~scenegen.storage.S3Log`. :func:`write_scene` writes it the way the sample scenario
is written: ``inventory.yaml``, ``geo/`` range files, ``zeek/conn.log`` and
``zeek/conn_long.log``, ``storage/s3-access.log``, ``storage/kern.log`` and one rsync log
per drive. Volume lives in byte fields, not in record counts: a petabyte is a few hundred
records (multi-terabyte connections with interim records every 6 hours, multi-terabyte
files in the copy logs), so each scenario generates and analyzes in well under a second.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from scenegen.inventory import _q, _tenant_yaml, dbip_country_csv, iptoasn_tsv
from scenegen.plan import (
    CONCERN,
    INGEST_JOB,
    INGEST_STATION,
    SITE,
    SITE_COUNTRY,
    RemoteRange,
    TenantPlan,
)
from scenegen.storage import PART, SLOTS, Drive, S3Log, kern_log, rsync_log
from scenegen.traffic import DAY_US, GB, HOUR_US, TB, ConnFactory
from scenegen.zeek import Conn, conn_log, conn_long_log, micros

SITE_BACKUP = RemoteRange(cidr="10.0.20.0/24", country=SITE_COUNTRY, asn=0,
                          org="site backup service")
"""The site's own backup appliances: inside the site, owned by no tenant."""

UPLOADER = "arn:aws:iam::402711930057:user/kul1-ingest"
CLI_AGENT = "aws-cli/2.17.12 md/awscrt#0.20.11 ua/2.0 os/linux#6.8.0-49-generic cmd/s3.cp"
SDK_AGENT = "Boto3/1.34.144 md/Botocore#1.34.144 ua/2.0 os/linux#6.8.0 lang/python#3.11.9"


@dataclass(slots=True, kw_only=True)
class ImportedDrive(Drive):
    """A drive of one import job; its rsync log is named after the job."""

    job: str

    @property
    def log_name(self) -> str:
        """The rsync log file of this drive."""
        return f"{self.job}-d{self.index:02d}.log"


@dataclass(slots=True, kw_only=True)
class MediaImport:
    """Drives a tenant shipped to the ingest station (job ``job``), copied into ``bucket``."""

    tenant: str
    job: str
    received: datetime
    bucket: str
    drives: list[ImportedDrive] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class Scene:
    """One scenario being built (module doc); ``start``/``end`` bound its Zeek logs."""

    name: str
    seed: str
    start: datetime
    end: datetime
    tenants: list[TenantPlan] = field(default_factory=list)
    imports: list[MediaImport] = field(default_factory=list)
    rng: random.Random = field(init=False)
    conns: ConnFactory = field(init=False)
    s3: S3Log = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}/{self.name}")
        self.conns = ConnFactory(self.rng)
        self.s3 = S3Log(self.rng)

    def add(self, tenant: TenantPlan) -> TenantPlan:
        """Add a tenant to the inventory; return it."""
        self.tenants.append(tenant)
        return tenant


def plan_tenant(tenant_id: str, *, name: str, registered: str, cidr: str, role: str,
                kyc: str = "verified", payment: str = "invoice", country: str = SITE_COUNTRY,
                parent_country: str | None = None, net_until: str | None = None,
                allocations: tuple[tuple[str, str, int, str, str | None], ...] = (),
                predecessor: str | None = None, payment_ref: str | None = None,
                contacts: tuple[str, ...] = (), offboarded: str | None = None,
                net_from: str | None = None) -> TenantPlan:
    """A :class:`TenantPlan` with the scenario's conventions (bucket ``<id>-data``, own
    payment reference and contact unless shared ones are given)."""
    digits = tenant_id.replace("-", "")
    return TenantPlan(
        id=tenant_id, name=name, registered=registered, country=country,
        parent_country=parent_country, kyc=kyc, payment=payment, cidr=cidr,
        vni=4000 + int("".join(c for c in digits if c.isdigit()) or "0"),
        net_from=net_from or registered, net_until=net_until, buckets=(f"{digits}-data",),
        allocations=allocations, predecessor=predecessor,
        payment_ref=payment_ref or f"REF-{digits.upper()}",
        contacts=contacts or (f"ops@{digits}.example",), offboarded=offboarded, role=role)


# -- network ------------------------------------------------------------------------------


def pool(rng: random.Random, where: RemoteRange, n: int) -> list[str]:
    """``n`` distinct addresses of ``where``."""
    seen: list[str] = []
    while len(seen) < n:
        addr = where.address(rng)
        if addr not in seen:
            seen.append(addr)
    return seen


def bulk_streams(scene: Scene, who: TenantPlan, where: RemoteRange, *, start: datetime,
                 hours: float, total: int, streams: int, sources: int, subnet: int = 8,
                 pull_every: int = 3) -> list[Conn]:
    """``total`` bytes arriving at ``who`` over ``hours`` in parallel ``streams`` from
    ``sources`` addresses of ``where``; every ``pull_every``-th stream is a pull (the
    tenant originates), the rest are pushes. Streams start within the first tenth of the
    period and end within its last tenth; long ones get interim records."""
    rng, f = scene.rng, scene.conns
    remotes = pool(rng, where, sources)
    span_us = int(hours * HOUR_US)
    out = []
    for i in range(streams):
        s = micros(start) + rng.randrange(max(1, span_us // 10))
        e = micros(start) + span_us - rng.randrange(max(1, span_us // 10))
        size = total // streams
        rate = size / ((e - s) / 1_000_000)
        local = who.host(rng, subnet)
        remote = remotes[i % sources]
        if i % pull_every == pull_every - 1:
            conn = f.pull(who, local, remote, where, s, size, rate, story="bulk")
        else:
            conn = f.push_in(who, local, remote, where, s, size, rate, story="bulk")
        conn.duration_us = e - s
        conn.plan_interim(rng)
        out.append(conn)
    return out


def outbound(scene: Scene, who: TenantPlan, where: RemoteRange, *, start: datetime,
             transfers: int, size: tuple[int, int], gap_min: int = 60) -> None:
    """``transfers`` uploads from ``who`` to ``where``, one every ``gap_min`` minutes."""
    rng, f = scene.rng, scene.conns
    targets = pool(rng, where, 4)
    for i in range(transfers):
        s = micros(start) + i * gap_min * 60_000_000 + rng.randrange(10 * 60_000_000)
        n = rng.randrange(*size)
        conn = f.push_out(who, who.host(rng, 9), targets[i % 4], where, s, n,
                          n / (rng.uniform(2.0, 5.0) * 3600), story="outbound")
        conn.plan_interim(rng)


def daily(scene: Scene, who: TenantPlan, where: RemoteRange, *, start: datetime,
          end: datetime, per_day: tuple[int, int], size: tuple[int, int],
          rate: tuple[float, float] = (100e6, 600e6), direction: str = "in",
          subnet: int = 1) -> None:
    """Ordinary traffic of ``who`` with ``where`` every day in ``[start, end)``:
    ``per_day`` transfers of ``size`` bytes, downloads (``in``) or uploads (``out``)."""
    rng, f = scene.rng, scene.conns
    remotes = pool(rng, where, 6)
    day = start
    while day < end:
        for _ in range(rng.randint(*per_day)):
            at = micros(day) + rng.randrange(DAY_US)
            n = rng.randrange(*size)
            local = who.host(rng, subnet)
            r = rng.uniform(*rate)
            if direction == "in":
                conn = f.pull(who, local, rng.choice(remotes), where, at, n, r,
                              story="ordinary")
            else:
                conn = f.push_out(who, local, rng.choice(remotes), where, at, n, r,
                                  story="ordinary")
            conn.plan_interim(rng)
        day += timedelta(days=1)


def site_dns(scene: Scene, where: RemoteRange, *, start: datetime, end: datetime) -> None:
    """The site resolver's lookups (no tenant owns them)."""
    rng = scene.rng
    resolvers = pool(rng, where, 2)
    day = start
    while day < end:
        for _ in range(rng.randint(3, 6)):
            scene.conns.udp("10.0.1.53", rng.choice(resolvers), where,
                            micros(day) + rng.randrange(DAY_US), 53, "dns",
                            rng.randrange(30, 60), rng.randrange(60, 300))
        day += timedelta(days=1)


# -- drives -------------------------------------------------------------------------------


def _serials(rng: random.Random, n: int, prefix: str) -> list[str]:
    seen: list[str] = []
    while len(seen) < n:
        serial = prefix + "".join(rng.choice(string.ascii_uppercase + string.digits)
                                  for _ in range(6))
        if serial not in seen:
            seen.append(serial)
    return seen


def drive_import(scene: Scene, who: TenantPlan, *, received: datetime,
                 waves: list[datetime], per_wave: int, size_tb: int, rate: float,
                 file_bytes: tuple[int, int], prefix: str = "LM",
                 job: str = INGEST_JOB) -> MediaImport:
    """Drives attached in ``waves`` of ``per_wave`` (at most 16 slots), each filled to
    85-93 % and copied at ``rate`` bytes/s as files of ``file_bytes``; detached when done."""
    rng = scene.rng
    if per_wave > len(SLOTS):
        raise ValueError(f"{per_wave} drives per wave, the station has {len(SLOTS)} slots")
    serials = _serials(rng, per_wave * len(waves), prefix)
    media = MediaImport(tenant=who.id, job=job, received=received, bucket=who.buckets[0])
    for w, when in enumerate(waves):
        now = when
        for k in range(per_wave):
            d = ImportedDrive(index=w * per_wave + k + 1, serial=serials[w * per_wave + k],
                              size_tb=size_tb, listed=True, job=job)
            now += timedelta(seconds=rng.randint(55, 95), microseconds=rng.randrange(10**6))
            d.slot, d.attached = SLOTS[k], now
            done = _copy(rng, d, now + timedelta(minutes=rng.randint(3, 6)), rate, file_bytes)
            d.detached = done + timedelta(minutes=rng.randint(4, 25))
            media.drives.append(d)
        if w + 1 < len(waves) and max(d.detached for d in media.drives) >= waves[w + 1]:
            raise ValueError("a wave is attached before the previous one is unplugged")
    scene.imports.append(media)
    return media


def _copy(rng: random.Random, d: Drive, start: datetime, rate: float,
          file_bytes: tuple[int, int]) -> datetime:
    fill = int(d.capacity_bytes * rng.uniform(0.85, 0.93))
    now = start
    done = 0
    k = 1
    while done < fill:
        size = min(fill - done, rng.randrange(*file_bytes))
        done += size
        now += timedelta(seconds=size / rate)
        d.files.append((now.replace(microsecond=0), f"{d.serial}/corpus/shard-{k:05d}.tar", size))
        k += 1
    return now


# -- object store -------------------------------------------------------------------------


def multipart(scene: Scene, who: TenantPlan, *, at: datetime, key: str, size: int,
              remote: str, rate: float = 1.2e9, agent: str = CLI_AGENT) -> datetime:
    """One multipart upload of ``size`` bytes in 5 GiB parts into ``who``'s bucket;
    return when it completed."""
    log, rng, bucket = scene.s3, scene.rng, who.buckets[0]
    upload_id = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(24))
    requester = UPLOADER if remote == INGEST_STATION else f"arn:aws:iam::402711930057:user/{who.id}"
    log.line(who.id, at, bucket, remote, requester, "REST.POST.UPLOADS", key,
             f"POST /{bucket}/{key}?uploads HTTP/1.1", 200, 412, None, agent, put=False)
    now, left, number = at, size, 1
    while left > 0:
        part = min(PART, left)
        now += timedelta(seconds=part / rate)
        log.line(who.id, now.replace(microsecond=0), bucket, remote, requester,
                 "REST.PUT.PART", key,
                 f"PUT /{bucket}/{key}?partNumber={number}&uploadId={upload_id} HTTP/1.1",
                 200, None, part, agent, put=True)
        left -= part
        number += 1
    now += timedelta(seconds=1)
    log.line(who.id, now.replace(microsecond=0), bucket, remote, requester,
             "REST.POST.UPLOAD", key, f"POST /{bucket}/{key}?uploadId={upload_id} HTTP/1.1",
             200, 389, size, agent, put=False)
    return now


def object_days(scene: Scene, who: TenantPlan, *, start: datetime, end: datetime,
                per_day: tuple[int, int], size: tuple[int, int]) -> None:
    """Ordinary PUTs and GETs of ``who``'s own cluster into its bucket, every day."""
    rng, log, bucket = scene.rng, scene.s3, who.buckets[0]
    requester = f"arn:aws:iam::402711930057:user/{who.id}-svc"
    day = start
    while day < end:
        for _ in range(rng.randint(*per_day)):
            t = day + timedelta(seconds=rng.randrange(86_400))
            key = f"checkpoints/run-{rng.randint(1, 40)}/step-{rng.randint(1000, 99999)}.pt"
            remote = who.host(rng, 1)
            n = rng.randrange(*size)
            log.line(who.id, t, bucket, remote, requester, "REST.PUT.OBJECT", key,
                     f"PUT /{bucket}/{key} HTTP/1.1", 200, None, n, SDK_AGENT, put=True)
            if rng.random() < 0.5:
                g = min(t + timedelta(seconds=rng.randint(60, 30_000)),
                        day + timedelta(seconds=86_399))
                log.line(who.id, g, bucket, remote, requester, "REST.GET.OBJECT", key,
                         f"GET /{bucket}/{key} HTTP/1.1", 200, n, n, SDK_AGENT, put=False)
        day += timedelta(days=1)


# -- writing ------------------------------------------------------------------------------


def inventory_yaml(scene: Scene) -> str:
    """The scenario's inventory: site kul-1 (MY), concern countries, its tenants."""
    lines = [
        f"# Inventory of scenario {scene.name} (samples/scenegen/scenes.py; generated).",
        f"site: {{name: {SITE}, country: {SITE_COUNTRY}, networks: [10.0.0.0/8], "
        f"ingest_stations: [{INGEST_STATION}]}}",
        f"concern_countries: [{', '.join(CONCERN)}]",
        "tenants:",
    ]
    for t in scene.tenants:
        part = _tenant_yaml(t, [], "")
        if not t.allocations:  # the shared writer leaves an empty block: no GPUs at all
            part = [x if x != "    allocations:" else "    allocations: []" for x in part]
        lines += part
        media = [m for m in scene.imports if m.tenant == t.id]
        if media:
            lines.append("    media_imports:")
        for m in media:
            serials = ", ".join(_q(d.serial) for d in m.drives)
            lines += [f"      - job: {m.job}",
                      f"        received: {m.received.date().isoformat()}",
                      f"        target_buckets: [{_q(m.bucket)}]",
                      f"        copy_logs: [{_q(m.job + '-*.log')}]",
                      f"        serials: [{serials}]"]
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_scene(scene: Scene, out: Path) -> list[Path]:
    """Write ``scene`` into ``out``; return the log files to analyze (not the inventory
    or the geo files: those are ``out/inventory.yaml`` and ``out/geo/*``)."""
    _write(out / "inventory.yaml", inventory_yaml(scene))
    _write(out / "geo" / "dbip-country-lite.csv", dbip_country_csv())
    _write(out / "geo" / "ip2asn-combined.tsv", iptoasn_tsv())
    opened, closed = micros(scene.start), micros(scene.end)
    conns = scene.conns.conns
    logs = [_write(out / "zeek" / "conn.log", conn_log(conns, opened, closed))]
    long_conns = [c for c in conns if c.interim_payloads]
    if long_conns:
        logs.append(_write(out / "zeek" / "conn_long.log",
                           conn_long_log(long_conns, opened, closed)))
    if scene.s3.lines:
        logs.append(_write(out / "storage" / "s3-access.log", scene.s3.text()))
    drives: list[Drive] = sorted((d for m in scene.imports for d in m.drives),
                                 key=lambda d: d.attached)
    if drives:
        logs.append(_write(out / "storage" / "kern.log", kern_log(scene.rng, drives)))
        logs += [_write(out / "storage" / d.log_name, rsync_log(scene.rng, d)) for d in drives]
    return logs


__all__ = [
    "DAY_US", "GB", "HOUR_US", "SITE_BACKUP", "TB", "ImportedDrive", "MediaImport", "Scene",
    "bulk_streams", "daily", "drive_import", "inventory_yaml", "multipart", "object_days",
    "outbound", "plan_tenant", "pool", "site_dns", "write_scene",
]
