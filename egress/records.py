"""Normalized records: the pure core every pipeline stage shares.

Records are frozen and carry units in their field names. Times are timezone-aware
UTC :class:`~datetime.datetime` values; durations are seconds; volumes are bytes.
Unset values are ``None``, never a made-up zero or epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow:
    """One bidirectional connection, counted the way Zeek's conn.log counts it.

    ``orig_*`` is the originator (the side of the first SYN, else of the first
    packet, with Zeek's likely-server-port flip); ``resp_*`` the responder.
    ``*_ip_bytes`` sum the IP total-length fields, so they are right even for
    snaplen-truncated captures; ``*_bytes`` are payload bytes (TCP: from sequence
    numbers, as Zeek does; other protocols: transport payload lengths).
    ``interim`` records are running totals of a flow still open when they were
    written (like Zeek's long-connection logs); the last record of a flow has
    ``interim=False`` and carries the final totals.
    """

    uid: str
    start: datetime
    duration_s: float
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    proto: str
    ip_proto: int
    conn_state: str
    history: str
    orig_pkts: int
    orig_ip_bytes: int
    orig_bytes: int
    resp_pkts: int
    resp_ip_bytes: int
    resp_bytes: int
    community_id: str
    vni: int | None = None
    vlan: int | None = None
    inner_vlan: int | None = None
    tunnel_parents: tuple[str, ...] = ()
    interim: bool = False

    @property
    def total_ip_bytes(self) -> int:
        """Wire volume of both directions at the IP layer, in bytes."""
        return self.orig_ip_bytes + self.resp_ip_bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Issue:
    """A counted problem in an input: what happened, where, and how often."""

    path: str
    kind: str
    count: int
    first_offset: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadStats:
    """Totals of one read over one or more inputs."""

    packets: int = 0
    captured_bytes: int = 0
    ip_packets: int = 0
    ip_bytes: int = 0
    flows: int = 0
    interim_records: int = 0
    issues: tuple[Issue, ...] = field(default_factory=tuple)

    @property
    def skipped(self) -> int:
        """Number of packets or records that could not be used."""
        return sum(issue.count for issue in self.issues)


@dataclass(frozen=True, slots=True, kw_only=True)
class Provenance:
    """Where a record came from: the file and the line (1-based) or byte offset in it."""

    path: str
    line: int | None = None
    offset: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.path}:{self.line}"
        if self.offset is not None:
            return f"{self.path}@{self.offset}"
        return self.path


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectStoreRequest:
    """One request in an object store's access log, normalized across S3, MinIO and Ceph RGW.

    ``bytes_in`` is the volume this request added to the store: the object or part
    size of a successful upload (PUT object, PUT part, copy), else 0 (failed
    requests, reads, a multipart completion whose parts were already counted).
    ``operation`` is normalized (``put_object``, ``put_part``, ``complete_multipart``,
    ``copy_object``, ``get_object``, ``delete_object``, ``other``); ``raw_operation``
    keeps the store's own name.
    """

    time: datetime
    store: str
    operation: str
    raw_operation: str
    bucket: str | None
    key: str | None
    status: int | None
    bytes_in: int
    object_size_bytes: int | None
    remote_addr: str | None
    requester: str | None
    user_agent: str | None
    request_id: str | None
    provenance: Provenance


@dataclass(frozen=True, slots=True, kw_only=True)
class DriveAttach:
    """A drive attached at an ingest station, from kernel and udev log lines.

    ``capacity_bytes`` is logical blocks x block size as the kernel reported them;
    ``detached`` is ``None`` while the drive is (or was last seen) attached.
    """

    station: str | None
    device: str
    serial: str | None
    model: str | None
    bus: str | None
    capacity_bytes: int | None
    attached: datetime | None
    detached: datetime | None
    provenance: Provenance


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyRecord:
    """A file copied off a drive at an ingest station (rsync or rclone log line).

    ``bytes_copied`` is ``None`` when the log line gives no size (rsync's default
    log format, old rclone): the copy is still a fact worth keeping.
    """

    time: datetime | None
    station: str | None
    tool: str
    path: str
    bytes_copied: int | None
    provenance: Provenance


Record = Flow | ObjectStoreRequest | DriveAttach | CopyRecord
"""Any normalized record of one transfer or intake event (row-wise sources)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Attributed:
    """One record and the tenant it belongs to, seen from that tenant.

    ``tenant`` is ``None`` when unattributed (``how`` then says ``unattributed`` or
    ``unlisted_drive``). ``how`` names the rule that placed it: ``address``, ``vni``,
    ``bucket``, ``ingest_bucket``, ``drive_serial`` or ``copy_log``. ``direction`` is
    ``inbound`` (data arriving at the tenant), ``outbound`` (leaving it), ``internal``
    (both ends inside the site) or ``unknown``. ``bytes_in`` and ``bytes_out`` are bytes
    to and from the tenant (IP-level for flows; when there is no single remote end, as
    inside one tenant or between two outside addresses, the responder's view);
    ``remote_*`` describe the other end when there is one and it is known;
    ``cross_border`` is ``None`` when the remote country is unknown.
    ``job`` is the media-import job for drive and copy records.
    """

    record: Record
    tenant: str | None
    how: str
    direction: str
    remote_addr: str | None = None
    remote_country: str | None = None
    remote_asn: int | None = None
    cross_border: bool | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    job: str | None = None
