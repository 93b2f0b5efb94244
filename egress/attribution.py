"""Attribute records to tenants: record -> :class:`Attributed`, never a guess.

This stage wraps a record; it never fills in the record's fields. A record no rule
can place is wrapped with ``tenant=None`` and ``how='unattributed'`` and counted,
with the reason, in :class:`AttributionStats`.

Rules, by record type (every lookup is at the record's own time):

* :class:`~egress.records.Flow` (time: ``start``): by VNI when the flow has one (a VNI
  names a tenant's overlay; a VNI nobody holds is unattributed, not retried by address,
  since overlay addresses need not follow the site's address plan); else by address, the
  tenant holding ``orig_h`` or ``resp_h``. An end is *inside* when it is a site address or a
  tenant's; for VNI flows a private address counts as inside too (it is overlay space).
  One end inside and one outside: the inside end is the tenant's, the other is the remote,
  and the direction follows the IP-level bytes: ``bytes_in`` is what the remote sent
  (``orig_ip_bytes`` when the tenant is the responder, ``resp_ip_bytes`` when it is the
  originator; the originator is not necessarily the sender of the bulk data) and the
  direction is ``inbound`` when more arrived than left, ``outbound`` when more left,
  ``unknown`` on a tie. Both ends inside: ``internal``; between two tenants the record is
  the receiving tenant's (the one whose ``bytes_in`` is larger), unattributed on a tie.
* :class:`~egress.records.ObjectStoreRequest` (time: ``time``): by bucket. ``bytes_in`` is
  the request's ``bytes_in``; ``bytes_out`` is 0 (access logs give no volume served that
  this stage trusts). A request from an ingest station is ``how='ingest_bucket'``,
  ``inbound`` (data loaded from drives); from another site address ``internal``; from
  outside ``inbound`` for writes, ``outbound`` for reads, else ``unknown``.
* :class:`~egress.records.DriveAttach` (time: ``attached``): by serial through the media
  imports. A serial that no manifest lists is a finding of its own: ``how='unlisted_drive'``,
  tenant ``None``, counted apart. Volume is 0 (capacity is not volume; it stays in the record).
* :class:`~egress.records.CopyRecord`: by the copy-log file name (``provenance.path``);
  ``bytes_in`` is ``bytes_copied`` or 0 when the log gives no size (the record still says
  ``None``).

Zeek conn batches (:data:`~egress.columns.CONN_SCHEMA`) go through
:meth:`Attributor.attribute_batch`, which appends :data:`ATTRIBUTION_FIELDS` (tenant, how,
direction, volumes from the ``delta_*`` increments so that interim records add only what is
new, and the remote end as :class:`Attributed` describes it) column-wise, with the same
answers as the rules above (:mod:`egress.attribution_batch`).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple, TypeVar

import pyarrow as pa

from egress.geo import GeoLookup, is_cross_border, is_not_looked_up, parse_address
from egress.inventory import Inventory
from egress.records import Attributed, CopyRecord, DriveAttach, Flow, ObjectStoreRequest, Record

if TYPE_CHECKING:
    from egress.attribution_batch import ConnBatchAttributor, ConnSolution

V = TypeVar("V", int, int | None)

#: ``how`` of a record no rule could place.
UNATTRIBUTED = "unattributed"
#: ``how`` of a drive attached at an ingest station whose serial no manifest lists.
UNLISTED_DRIVE = "unlisted_drive"

INBOUND, OUTBOUND, INTERNAL, UNKNOWN = "inbound", "outbound", "internal", "unknown"

#: Record kinds as the counters name them.
KIND_FLOW, KIND_CONN = "flow", "conn"
KIND_OBJECT, KIND_DRIVE, KIND_COPY = "object_store", "drive", "copy"

_WRITES = frozenset({"put_object", "put_part", "complete_multipart", "copy_object"})
_READS = frozenset({"get_object"})

#: Columns :meth:`Attributor.attribute_batch` appends.
ATTRIBUTION_FIELDS: tuple[pa.Field, ...] = (
    pa.field("tenant", pa.string()),
    pa.field("how", pa.string(), nullable=False),
    pa.field("direction", pa.string(), nullable=False),
    pa.field("bytes_in", pa.uint64()),
    pa.field("bytes_out", pa.uint64()),
    pa.field("remote_addr", pa.string()),
    pa.field("remote_country", pa.string()),
    pa.field("remote_asn", pa.int64()),
    pa.field("cross_border", pa.bool_()),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttributionStats:
    """Counts of one attributor so far, per record kind (``flow``, ``conn``, ...).

    ``reasons`` counts unattributed records by ``(kind, reason)``; ``unlisted_serials``
    keeps the first few unlisted drive serials in the order seen.
    """

    attributed: dict[str, int] = field(default_factory=dict)
    unattributed: dict[str, int] = field(default_factory=dict)
    reasons: dict[tuple[str, str], int] = field(default_factory=dict)
    unlisted_drives: int = 0
    unlisted_serials: tuple[str, ...] = ()


class _Conn(NamedTuple):
    """The answer for one connection, shared by :class:`Flow` and conn batch rows."""

    tenant: str | None
    how: str
    direction: str
    remote: str | None
    remote_is_orig: bool | None  # None: no single remote end
    reason: str | None  # why unattributed


_FIRST_SERIALS = 10


class Attributor:
    """Attribute records to tenants with an inventory and, optionally, a geo lookup.

    Without ``geo`` remote countries and AS numbers are ``None`` and so is ``cross_border``.
    Lookups raise ``ValueError`` only for naive times, which sources never produce.
    """

    def __init__(self, inventory: Inventory, geo: GeoLookup | None = None) -> None:
        self._inventory = inventory
        self._geo = geo
        self._site_country = inventory.site.country
        self._listed_serials = frozenset(
            serial
            for tenant in inventory.tenants
            for imp in tenant.media_imports
            for serial in imp.serials
        )
        self._attributed: Counter[str] = Counter()
        self._unattributed: Counter[str] = Counter()
        self._reasons: Counter[tuple[str, str]] = Counter()
        self._unlisted = 0
        self._unlisted_serials: list[str] = []
        self._batches: ConnBatchAttributor | None = None

    # -- counters -------------------------------------------------------------------------

    def stats(self) -> AttributionStats:
        """Return a snapshot of the counters."""
        return AttributionStats(
            attributed=dict(self._attributed),
            unattributed=dict(self._unattributed),
            reasons=dict(self._reasons),
            unlisted_drives=self._unlisted,
            unlisted_serials=tuple(self._unlisted_serials),
        )

    def _count(self, kind: str, tenant: str | None, reason: str | None) -> None:
        if tenant is not None:
            self._attributed[kind] += 1
        else:
            self._unattributed[kind] += 1
            self._reasons[kind, reason or UNATTRIBUTED] += 1

    # -- dispatch -------------------------------------------------------------------------

    def attribute(self, record: Record) -> Attributed:
        """Wrap ``record`` with its tenant; raise ``TypeError`` for an unknown record type."""
        if isinstance(record, Flow):
            return self._flow(record)
        if isinstance(record, ObjectStoreRequest):
            return self._object(record)
        if isinstance(record, DriveAttach):
            return self._drive(record)
        if isinstance(record, CopyRecord):
            return self._copy(record)
        raise TypeError(f"cannot attribute a {type(record).__name__}")

    def attribute_all(self, records: Iterable[Record]) -> Iterator[Attributed]:
        """Attribute ``records`` lazily, one at a time."""
        for record in records:
            yield self.attribute(record)

    # -- addresses --------------------------------------------------------------------------

    def _remote(self, addr: str | None) -> tuple[str | None, int | None, bool | None]:
        """Country, AS number and cross-border answer for a remote address."""
        if self._geo is None or addr is None or not _is_address(addr):
            return None, None, None
        info = self._geo.lookup(addr)
        return info.country, info.asn, is_cross_border(self._site_country, info)

    def _remote_view(self, conn: _Conn) -> tuple[str | None, int | None, bool | None]:
        """Country, AS number and cross-border answer of a connection's remote end."""
        country, asn, cross = self._remote(conn.remote)
        if conn.direction == INTERNAL:
            cross = False  # both ends are inside the site
        return country, asn, cross if conn.remote is not None else None

    def _conn(self, at: datetime, orig: str, resp: str, vni: int | None,
              orig_bytes: int, resp_bytes: int) -> _Conn:
        """Place one connection; ``*_bytes`` are what each end sent."""
        inv = self._inventory
        if not (_is_address(orig) and _is_address(resp)):
            return _Conn(None, UNATTRIBUTED, UNKNOWN, None, None, "bad_address")
        orig_t = inv.tenant_for_address(orig, at)
        resp_t = inv.tenant_for_address(resp, at)
        overlay = vni is not None
        orig_in = orig_t is not None or inv.is_site_address(orig) or (overlay and _private(orig))
        resp_in = resp_t is not None or inv.is_site_address(resp) or (overlay and _private(resp))
        if vni is not None:
            owner = inv.tenant_for_vni(vni, at)
            if owner is None:
                return _Conn(None, UNATTRIBUTED, UNKNOWN, None, None, "unknown_vni")
            orig_t = resp_t = owner
            how = "vni"
        else:
            how = "address"
        if orig_in and resp_in:
            if orig_t is not None and resp_t is not None and orig_t != resp_t:
                # Two tenants: the transfer is the receiver's.
                if orig_bytes == resp_bytes:
                    return _Conn(None, UNATTRIBUTED, INTERNAL, None, None, "two_tenants_tie")
                receiver_is_resp = orig_bytes > resp_bytes
                receiver = resp_t if receiver_is_resp else orig_t
                sender_addr = orig if receiver_is_resp else resp
                return _Conn(receiver, how, INTERNAL, sender_addr, receiver_is_resp, None)
            if orig_t is None and resp_t is None:
                return _Conn(None, UNATTRIBUTED, INTERNAL, None, None, "site_only")
            if orig_t is not None and resp_t is not None:  # one tenant at both ends
                return _Conn(orig_t, how, INTERNAL, None, None, None)
            remote_is_orig = orig_t is None
            return _Conn(orig_t or resp_t, how, INTERNAL, orig if remote_is_orig else resp,
                         remote_is_orig, None)
        if not orig_in and not resp_in:
            return _Conn(None, UNATTRIBUTED, UNKNOWN, None, None, "outside_site")
        remote_is_orig = resp_in
        tenant = resp_t if resp_in else orig_t
        remote = orig if remote_is_orig else resp
        received = orig_bytes if remote_is_orig else resp_bytes
        sent = resp_bytes if remote_is_orig else orig_bytes
        direction = INBOUND if received > sent else OUTBOUND if sent > received else UNKNOWN
        if tenant is None:
            return _Conn(None, UNATTRIBUTED, direction, remote, remote_is_orig, "no_tenant")
        return _Conn(tenant, how, direction, remote, remote_is_orig, None)

    # -- records ----------------------------------------------------------------------------

    def _flow(self, flow: Flow) -> Attributed:
        conn = self._conn(flow.start, flow.orig_h, flow.resp_h, flow.vni,
                          flow.orig_ip_bytes, flow.resp_ip_bytes)
        self._count(KIND_FLOW, conn.tenant, conn.reason)
        bytes_in, bytes_out = _volume(conn.remote_is_orig, flow.orig_ip_bytes,
                                      flow.resp_ip_bytes)
        country, asn, cross = self._remote_view(conn)
        return Attributed(
            record=flow, tenant=conn.tenant, how=conn.how, direction=conn.direction,
            remote_addr=conn.remote, remote_country=country, remote_asn=asn, cross_border=cross,
            bytes_in=bytes_in, bytes_out=bytes_out,
        )

    def _object(self, request: ObjectStoreRequest) -> Attributed:
        inv = self._inventory
        remote = request.remote_addr
        addr = remote if remote is not None and _is_address(remote) else None
        how = "bucket"
        if addr is not None and inv.is_ingest_station(addr):
            how, direction = "ingest_bucket", INBOUND
        elif addr is not None and inv.is_site_address(addr):
            direction = INTERNAL
        elif request.operation in _WRITES:
            direction = INBOUND
        elif request.operation in _READS:
            direction = OUTBOUND
        else:
            direction = UNKNOWN
        tenant = None
        reason = "no_bucket"
        if request.bucket is not None:
            tenant = inv.tenant_for_bucket(request.bucket, request.time)
            reason = "unknown_bucket"
        self._count(KIND_OBJECT, tenant, reason)
        country, asn, cross = self._remote(remote)
        if direction == INTERNAL or how == "ingest_bucket":
            cross = False
        return Attributed(
            record=request, tenant=tenant, how=how if tenant is not None else UNATTRIBUTED,
            direction=direction, remote_addr=remote, remote_country=country, remote_asn=asn,
            cross_border=cross if remote is not None else None,
            bytes_in=request.bytes_in, bytes_out=0,
        )

    def _drive(self, drive: DriveAttach) -> Attributed:
        serial = drive.serial
        if serial is None:
            return self._drive_miss(drive, UNATTRIBUTED, "no_serial")
        if serial not in self._listed_serials:
            self._unlisted += 1
            if len(self._unlisted_serials) < _FIRST_SERIALS:
                self._unlisted_serials.append(serial)
            return self._drive_miss(drive, UNLISTED_DRIVE, UNLISTED_DRIVE)
        if drive.attached is None:
            return self._drive_miss(drive, UNATTRIBUTED, "no_time")
        ref = self._inventory.tenant_for_drive_serial(serial, drive.attached)
        if ref is None:
            # Listed, but not received by then (or received by two tenants at once).
            return self._drive_miss(drive, UNATTRIBUTED, "not_received")
        self._count(KIND_DRIVE, ref.tenant_id, None)
        return Attributed(record=drive, tenant=ref.tenant_id, how="drive_serial",
                          direction=INBOUND, job=ref.job)

    def _drive_miss(self, drive: DriveAttach, how: str, reason: str) -> Attributed:
        self._count(KIND_DRIVE, None, reason)
        return Attributed(record=drive, tenant=None, how=how, direction=INBOUND)

    def _copy(self, copy: CopyRecord) -> Attributed:
        ref = self._inventory.tenant_for_copy_log(copy.provenance.path)
        self._count(KIND_COPY, None if ref is None else ref.tenant_id, "unknown_copy_log")
        return Attributed(
            record=copy, tenant=None if ref is None else ref.tenant_id,
            how=UNATTRIBUTED if ref is None else "copy_log", direction=INBOUND,
            bytes_in=copy.bytes_copied or 0, job=None if ref is None else ref.job,
        )

    # -- conn batches -----------------------------------------------------------------------

    def attribute_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Append :data:`ATTRIBUTION_FIELDS` to a :data:`~egress.columns.CONN_SCHEMA` batch.

        Volumes come from ``delta_orig_ip_bytes`` / ``delta_resp_ip_bytes`` so that summing a
        connection's interim and final rows counts each byte once; a null delta gives a null
        volume. Rows count as kind ``conn``. The time of a row is its ``ts``; a row without
        ``ts`` or addresses is unattributed (reason ``no_time`` / ``bad_address``). The remote
        columns are those of :class:`Attributed` for a flow.

        Computed column-wise (:class:`~egress.attribution_batch.ConnBatchAttributor`, built
        on first use and kept); the answers are those of the per-record rules. Raises
        ``ValueError`` when ``ts`` has no time zone.
        """
        return with_attribution(batch, self.solve_batch(batch).arrays(batch))

    def solve_batch(self, batch: pa.RecordBatch) -> ConnSolution:
        """:meth:`attribute_batch` as codes, without the string columns (counted alike):
        :meth:`ConnSolution.arrays <egress.attribution_batch.ConnSolution.arrays>` makes
        them, for all rows or, after ``take``, for some."""
        from egress.attribution_batch import ConnBatchAttributor

        if self._batches is None:
            self._batches = ConnBatchAttributor(self._inventory, self._geo)
        solution, counts = self._batches.solve(batch)
        if counts.attributed:
            self._attributed[KIND_CONN] += counts.attributed
        if counts.unattributed:
            self._unattributed[KIND_CONN] += counts.unattributed
        for reason, count in counts.reasons.items():
            self._reasons[KIND_CONN, reason] += count
        return solution

    def _attribute_batch_rows(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """:meth:`attribute_batch` one row at a time: the reference for tests and benchmarks."""
        cols = {name: batch.column(name).to_pylist() for name in (
            "ts", "orig_h", "resp_h", "vni", "delta_orig_ip_bytes", "delta_resp_ip_bytes")}
        out: list[list[object]] = [[] for _ in ATTRIBUTION_FIELDS]
        for ts, orig, resp, vni, d_orig, d_resp in zip(
            cols["ts"], cols["orig_h"], cols["resp_h"], cols["vni"],
            cols["delta_orig_ip_bytes"], cols["delta_resp_ip_bytes"], strict=True,
        ):
            if ts is None or orig is None or resp is None:
                conn = _Conn(None, UNATTRIBUTED, UNKNOWN, None, None,
                             "no_time" if ts is None else "bad_address")
            else:
                conn = self._conn(ts, orig, resp, vni, d_orig or 0, d_resp or 0)
            self._count(KIND_CONN, conn.tenant, conn.reason)
            bytes_in, bytes_out = _volume(conn.remote_is_orig, d_orig, d_resp)
            row = (conn.tenant, conn.how, conn.direction, bytes_in, bytes_out, conn.remote,
                   *self._remote_view(conn))
            for values, value in zip(out, row, strict=True):
                values.append(value)
        return with_attribution(batch, [
            pa.array(values, f.type) for values, f in zip(out, ATTRIBUTION_FIELDS, strict=True)
        ])


def with_attribution(batch: pa.RecordBatch, arrays: list[pa.Array]) -> pa.RecordBatch:
    """``batch`` with the :data:`ATTRIBUTION_FIELDS` columns ``arrays`` appended."""
    schema = pa.schema([*batch.schema, *ATTRIBUTION_FIELDS], metadata=batch.schema.metadata)
    return pa.RecordBatch.from_arrays([*batch.columns, *arrays], schema=schema)


def _volume(remote_is_orig: bool | None, orig_bytes: V, resp_bytes: V) -> tuple[V, V]:
    """Bytes to and from the tenant; with no single remote end, the responder's view."""
    if remote_is_orig is False:
        return resp_bytes, orig_bytes
    return orig_bytes, resp_bytes


def _is_address(value: str) -> bool:
    # No stripping: the inventory's lookups would reject what this accepted.
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _private(value: str) -> bool:
    return is_not_looked_up(parse_address(value))
