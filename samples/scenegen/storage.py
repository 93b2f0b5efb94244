"""The physical path: drives attached at the ingest station, copied, uploaded to the bucket.

Drives are Seagate Expansion desktop enclosures on USB 3 docks (UAS), so the kernel log
names each drive's serial (the USB ``SerialNumber`` of these enclosures is the drive's).
Each drive is copied with ``rsync -a --log-file=imp-77-dNN.log --log-file-format='%i %n %l'``
onto the station's staging area; an uploader then puts every copied file into the tenant's
bucket as a multipart upload of 5 GiB parts (S3's largest). The station's clock is UTC.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from scenegen.plan import (
    BULK_BUCKET,
    DRIVE_BATCHES,
    INGEST_HOST,
    INGEST_JOB,
    INGEST_STATION,
    S3_EXCERPT_END,
    TENANTS,
)

SECTOR = 512
SECTORS = {18: 35_156_656_128, 20: 39_063_650_304, 22: 42_970_644_480,
           80: 156_250_000_000}  # 80: a mobile array (the acceptance scenarios' courier)
PRODUCTS = {18: "STKP18000400", 20: "STKP20000400", 22: "STKP22000400"}
PART = 5 * 1024**3
SLOTS = ("2-1.1", "2-1.2", "2-1.3", "2-1.4", "2-2.1", "2-2.2", "2-2.3", "2-2.4",
         "4-1.1", "4-1.2", "4-1.3", "4-1.4", "4-2.1", "4-2.2", "4-2.3", "4-2.4")
OWNER_ID = "8f2c6a1d0b9e4f3a7c5d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b"
S3_HOST = "s3.kul-1.example.net"
_UNSET = datetime(2026, 1, 1, tzinfo=UTC)  # until :func:`schedule` sets the times


@dataclass(slots=True, kw_only=True)
class Drive:
    """One drive of the import and what happened to it."""

    index: int
    serial: str
    size_tb: int
    listed: bool
    slot: str = ""
    attached: datetime = _UNSET
    detached: datetime = _UNSET
    files: list[tuple[datetime, str, int]] = field(default_factory=list)

    @property
    def capacity_bytes(self) -> int:
        """Capacity as the kernel reports it: logical blocks x 512."""
        return SECTORS[self.size_tb] * SECTOR

    @property
    def copied_bytes(self) -> int:
        """Bytes rsync copied off the drive."""
        return sum(size for _, _, size in self.files)

    @property
    def log_name(self) -> str:
        """The rsync log file of this drive."""
        return f"{INGEST_JOB}-d{self.index:02d}.log"


def plan_drives(rng: random.Random) -> list[Drive]:
    """30 listed drives and one that no manifest lists, in attach order."""
    sizes = [18] * 10 + [20] * 12 + [22] * 8
    rng.shuffle(sizes)
    serials: list[str] = []
    while len(serials) < 31:
        serial = "NA" + "".join(rng.choice(string.ascii_uppercase + string.digits)
                                for _ in range(6))
        if serial not in serials:
            serials.append(serial)
    drives = [Drive(index=0, serial=s, size_tb=z, listed=True)
              for s, z in zip(serials[:30], sizes, strict=True)]
    drives.insert(25, Drive(index=0, serial=serials[30], size_tb=20, listed=False))
    for i, d in enumerate(drives, 1):
        d.index = i
    return drives


def _copy(rng: random.Random, d: Drive, start: datetime) -> datetime:
    """Plan the files rsync copies off ``d`` from ``start``; return when it is done."""
    fill = int(d.capacity_bytes * rng.uniform(0.84, 0.93))
    rate = rng.uniform(245e6, 275e6)
    now = start + timedelta(seconds=rng.randint(2, 9))
    done = 0
    k = 1
    while done < fill:
        size = min(fill - done, rng.randrange(150_000_000_000, 260_000_000_000))
        done += size
        now += timedelta(seconds=size / rate)
        d.files.append((now.replace(microsecond=0), f"{d.serial}/ds/part-{k:06d}.tar", size))
        k += 1
    manifest = 64 * (k - 1) + rng.randrange(200, 900)
    now += timedelta(seconds=1)
    d.files.append((now.replace(microsecond=0), f"{d.serial}/MANIFEST.sha256", manifest))
    return now


def schedule(rng: random.Random, drives: list[Drive]) -> None:
    """Attach in two batches of up to 16 slots; copy each; detach after its copy."""
    batches = [drives[:16], drives[16:]]
    for when, batch in zip(DRIVE_BATCHES, batches, strict=True):
        now = when
        for slot, d in zip(SLOTS, batch, strict=False):
            now += timedelta(seconds=rng.randint(55, 95), microseconds=rng.randrange(10**6))
            d.slot = slot
            d.attached = now
            done = _copy(rng, d, now + timedelta(minutes=rng.randint(3, 6)))
            d.detached = done + timedelta(minutes=rng.randint(4, 25), seconds=rng.randint(0, 59))
    last_first = max(d.detached for d in batches[0])
    if last_first >= DRIVE_BATCHES[1]:
        raise AssertionError("second batch attached before the first was unplugged")


# -- kern.log -----------------------------------------------------------------------------


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"


def kern_log(rng: random.Random, drives: list[Drive]) -> str:
    """rsyslog RFC 3339 kern.log of the ingest station."""
    events: list[tuple[datetime, int, str]] = []

    def add(t: datetime, program: str, msg: str) -> None:
        events.append((t, len(events), f"{_stamp(t)} {INGEST_HOST} {program}: {msg}\n"))

    numbers = {"2": 4, "4": 4}
    host = 9
    free = [f"sd{c}" for c in "bcdefghijklmnopq"]
    in_use: dict[str, datetime] = {}
    for d in drives:
        for name, until in list(in_use.items()):
            if until < d.attached:
                del in_use[name]
                free.append(name)
        free.sort(key=lambda n: (len(n), n))
        dev = free.pop(0)
        in_use[dev] = d.detached
        bus = d.slot.split("-")[0]
        numbers[bus] += 1
        number = numbers[bus]
        host += 1
        t = d.attached
        hctl = f"{host}:0:0:0"
        port = d.slot

        def step(ms: int) -> datetime:
            nonlocal t
            t += timedelta(microseconds=ms * 1000 + rng.randrange(1000))
            return t

        add(t, "kernel", f"usb {port}: new SuperSpeed USB device number {number} using xhci_hcd")
        add(step(21), "kernel", f"usb {port}: New USB device found, idVendor=0bc2, "
            "idProduct=3343, bcdDevice=18.01")
        add(step(0), "kernel", f"usb {port}: New USB device strings: Mfr=2, Product=3, "
            "SerialNumber=1")
        add(step(0), "kernel", f"usb {port}: Product: Expansion HDD")
        add(step(0), "kernel", f"usb {port}: Manufacturer: Seagate")
        add(step(0), "kernel", f"usb {port}: SerialNumber: {d.serial}")
        add(step(4), "kernel", f"scsi host{host}: uas")
        add(step(1), "kernel", f"scsi {hctl}: Direct-Access     Seagate  Expansion HDD    1801 "
            "PQ: 0 ANSI: 6")
        add(step(1), "kernel", f"sd {hctl}: Attached scsi generic sg{host - 8} type 0")
        blocks = SECTORS[d.size_tb]
        tb = blocks * SECTOR / 1e12
        tib = blocks * SECTOR / 2**40
        add(step(5200), "kernel", f"sd {hctl}: [{dev}] Very big device. Trying to use READ "
            "CAPACITY(16).")
        add(step(0), "kernel", f"sd {hctl}: [{dev}] {blocks} 512-byte logical blocks: "
            f"({tb:.1f} TB/{tib:.1f} TiB)")
        add(step(0), "kernel", f"sd {hctl}: [{dev}] 4096-byte physical blocks")
        add(step(0), "kernel", f"sd {hctl}: [{dev}] Write Protect is off")
        add(step(0), "kernel", f"sd {hctl}: [{dev}] Mode Sense: 4f 00 00 00")
        add(step(0), "kernel", f"sd {hctl}: [{dev}] Write cache: enabled, read cache: enabled, "
            "doesn't support DPO or FUA")
        add(step(0), "kernel", f"sd {hctl}: [{dev}] Preferred minimum I/O size 4096 bytes")
        add(step(12), "kernel", f" {dev}: {dev}1")
        add(step(1), "kernel", f"sd {hctl}: [{dev}] Attached SCSI disk")
        uuid = "".join(rng.choice("0123456789abcdef") for _ in range(32))
        uuid = f"{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:]}"
        add(step(2100), "kernel", f"EXT4-fs ({dev}1): mounted filesystem {uuid} ro with ordered "
            "data mode. Quota mode: none.")
        add(d.attached + timedelta(seconds=rng.randint(20, 60)), "systemd[1]",
            f"Started rsync-import@{d.serial}.service - import {INGEST_JOB} drive {d.serial}.")
        gone = d.detached
        add(gone, "kernel", f"EXT4-fs ({dev}1): unmounting filesystem {uuid}.")
        add(gone + timedelta(seconds=rng.randint(20, 90)), "kernel",
            f"usb {port}: USB disconnect, device number {number}")
    events.sort(key=lambda e: (e[0], e[1]))
    return "".join(text for _, _, text in events)


# -- rsync logs ---------------------------------------------------------------------------


def _rsync_time(t: datetime) -> str:
    return t.strftime("%Y/%m/%d %H:%M:%S")


def rsync_log(rng: random.Random, d: Drive) -> str:
    """The rsync log of one drive (``--log-file-format='%i %n %l'``)."""
    pid = 40_000 + 37 * d.index + rng.randrange(30)
    first = d.files[0][0] - timedelta(seconds=rng.randint(240, 600))
    lines = [f"{_rsync_time(first)} [{pid}] building file list\n",
             f"{_rsync_time(first)} [{pid}] cd+++++++++ {d.serial}/ 4096\n",
             f"{_rsync_time(first)} [{pid}] cd+++++++++ {d.serial}/ds/ 4096\n"]
    for when, name, size in d.files:
        lines.append(f"{_rsync_time(when)} [{pid + 1}] >f+++++++++ {name} {size}\n")
    total = d.copied_bytes
    sent = total + total // 7_800 + rng.randrange(10_000)
    end = d.files[-1][0] + timedelta(seconds=2)
    lines.append(f"{_rsync_time(end)} [{pid}] sent {sent} bytes  received "
                 f"{4_000 + rng.randrange(9_000)} bytes  total size {total}\n")
    return "".join(lines)


# -- S3 server access log -----------------------------------------------------------------


@dataclass(slots=True)
class S3Totals:
    """What the access log adds up to, per bucket owner tenant."""

    put_bytes: dict[str, int] = field(default_factory=dict)
    puts: dict[str, int] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)

    def add(self, tenant: str, size: int | None, *, put: bool) -> None:
        """Count one line (and its volume when it is a successful put/part)."""
        self.lines[tenant] = self.lines.get(tenant, 0) + 1
        if put and size is not None:
            self.put_bytes[tenant] = self.put_bytes.get(tenant, 0) + size
            self.puts[tenant] = self.puts.get(tenant, 0) + 1


def _s3_time(t: datetime) -> str:
    return t.strftime("[%d/%b/%Y:%H:%M:%S +0000]")


class S3Log:
    """Builds S3 server access log lines and their totals."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.lines: list[tuple[datetime, int, str]] = []
        self.totals = S3Totals()

    def _ids(self) -> tuple[str, str]:
        rid = "".join(self.rng.choice("0123456789ABCDEF") for _ in range(16))
        hid = "".join(self.rng.choice(string.ascii_letters + string.digits + "+/")
                      for _ in range(32)) + "="
        return rid, hid

    def line(self, tenant: str, t: datetime, bucket: str, remote: str, requester: str,
             op: str, key: str, uri: str, status: int, sent: int | None, size: int | None,
             agent: str, *, put: bool) -> None:
        """Add one request."""
        rid, hid = self._ids()
        total_ms = self.rng.randint(8, 40) if size is None else max(
            9, size // 360_000 + self.rng.randint(0, 400))  # about 360 MB/s per request
        text = (f"{OWNER_ID} {bucket} {_s3_time(t)} {remote} {requester} {rid} {op} {key} "
                f'"{uri}" {status} - {"-" if sent is None else sent} '
                f'{"-" if size is None else size} {total_ms} {self.rng.randint(3, 30)} "-" '
                f'"{agent}" - {hid} SigV4 TLS_AES_256_GCM_SHA384 AuthHeader {S3_HOST} TLSv1.3 '
                "- -\n")
        self.lines.append((t, len(self.lines), text))
        self.totals.add(tenant, size, put=put)

    def text(self) -> str:
        """The log, in time order."""
        return "".join(text for _, _, text in sorted(self.lines))


def ingest_uploads(log: S3Log, drives: list[Drive], tenant_id: str) -> int:
    """Multipart uploads of the copied files, queued as they land; return files completed."""
    rng = log.rng
    requester = "arn:aws:iam::402711930057:user/kul1-ingest"
    agent = "aws-cli/2.17.12 md/awscrt#0.20.11 ua/2.0 os/linux#6.8.0-49-generic cmd/s3.cp"
    queue = sorted((when, d.serial, name, size) for d in drives for when, name, size in d.files)
    rate = 360e6
    busy = queue[0][0]
    completed = 0
    for when, _, name, size in queue:
        now = max(when, busy) + timedelta(seconds=rng.randint(1, 4))
        if now >= S3_EXCERPT_END:
            break
        key = f"{INGEST_JOB}/{name}"
        upload_id = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(24))
        log.line(tenant_id, now, BULK_BUCKET, INGEST_STATION, requester, "REST.POST.UPLOADS",
                 key, f"POST /{BULK_BUCKET}/{key}?uploads HTTP/1.1", 200, 412, None, agent,
                 put=False)
        left, number = size, 1
        while left > 0:
            part = min(PART, left)
            now += timedelta(seconds=part / rate)
            if now >= S3_EXCERPT_END:
                busy = now
                break
            log.line(tenant_id, now.replace(microsecond=0), BULK_BUCKET, INGEST_STATION,
                     requester, "REST.PUT.PART", key,
                     f"PUT /{BULK_BUCKET}/{key}?partNumber={number}&uploadId={upload_id} "
                     "HTTP/1.1", 200, None, part, agent, put=True)
            left -= part
            number += 1
        else:
            now += timedelta(seconds=1)
            log.line(tenant_id, now.replace(microsecond=0), BULK_BUCKET, INGEST_STATION,
                     requester, "REST.POST.UPLOAD", key,
                     f"POST /{BULK_BUCKET}/{key}?uploadId={upload_id} HTTP/1.1", 200, 389,
                     size, agent, put=False)
            completed += 1
            busy = now
            continue
        break
    return completed


def ordinary_requests(log: S3Log, day: datetime) -> None:
    """A day of the other tenants' object traffic (from their own clusters)."""
    rng = log.rng
    plan = {"t-0003": ("t0003-research", "10.3.1.", "checkpoints/run-{}/step-{}.pt", 10),
            "t-0008": ("t0008-media", "10.8.2.", "masters/ep{}/reel-{}.mxf", 8),
            "t-0051": ("t0051-data", "10.51.1.", "eval/batch-{}/out-{}.parquet", 4)}
    ids = {t.id for t in TENANTS}
    for tenant_id, (bucket, net, pattern, n) in plan.items():
        assert tenant_id in ids
        requester = f"arn:aws:iam::402711930057:user/{tenant_id}-svc"
        agent = "Boto3/1.34.144 md/Botocore#1.34.144 ua/2.0 os/linux#6.8.0 lang/python#3.11.9"
        for _ in range(n):
            t = day + timedelta(seconds=rng.randrange(86_400))
            key = pattern.format(rng.randint(1, 40), rng.randint(1000, 99999))
            remote = net + str(rng.randint(10, 250))
            size = rng.randrange(200_000_000, 4_500_000_000)
            log.line(tenant_id, t, bucket, remote, requester, "REST.PUT.OBJECT", key,
                     f"PUT /{bucket}/{key} HTTP/1.1", 200, None, size, agent, put=True)
            for _ in range(rng.randint(0, 3)):
                g = t + timedelta(seconds=rng.randint(60, 30_000))
                log.line(tenant_id, min(g, day + timedelta(seconds=86_399)), bucket, remote,
                         requester, "REST.GET.OBJECT", key, f"GET /{bucket}/{key} HTTP/1.1",
                         200, size, size, agent, put=False)
