"""Tenants and what they own over time: addresses, VNIs, buckets, drives, GPU allocations.

:func:`load_inventory` reads an inventory file (see :mod:`egress.inventory_model`
for the forms), checks what pydantic cannot see record by record (unique tenant
ids, predecessors that exist, one owner per address range and VNI at a time) and
returns an :class:`Inventory`: frozen records plus indexes built once.

Every validity interval is half-open, ``valid_from <= at < valid_until``, so a
range handed from one tenant to the next on a date belongs to the new tenant from
00:00 UTC that day. A tenant is active from ``registered`` until ``offboarded``;
buckets follow their tenant's activity. Lookups return ``None`` when nothing, or
more than one tenant equally, matches: ambiguity is never resolved by a guess.
"""

from __future__ import annotations

import gc
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import ip_address
from math import inf
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from egress.errors import ConfigError
from egress.inventory_index import (
    AnyAddress,
    AnyNetwork,
    Conflict,
    GlobIndex,
    PrefixIndex,
    PrefixKey,
    Span,
    Timeline,
    build_timelines,
    prefix_key,
)
from egress.inventory_model import (
    CSV_MARKER,
    InventoryModel,
    Locator,
    Parsed,
    TenantModel,
    config_error,
    read_csv_tables,
    read_json,
    read_yaml,
)
from egress.yaml_lines import FieldPath

# -- records ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Site:
    """The site the inventory describes: its own address space and ingest stations."""

    name: str
    country: str
    networks: tuple[AnyNetwork, ...]
    ingest_stations: tuple[AnyAddress, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkAssignment:
    """An address range held by a tenant over ``[valid_from, valid_until)``."""

    cidr: AnyNetwork
    valid_from: datetime
    valid_until: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class VniAssignment:
    """A VXLAN network identifier held by a tenant over ``[valid_from, valid_until)``."""

    vni: int
    valid_from: datetime
    valid_until: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Allocation:
    """GPUs of one model on one cluster reserved for a tenant over ``[valid_from, valid_until)``."""

    cluster: str
    gpu_model: str | None  # None: the source did not say (a scheduler's untyped GPU count)
    gpus: int
    valid_from: datetime
    valid_until: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduledAllocation:
    """GPUs a scheduler gave one job or pod, for the tenant its account or namespace maps to.

    ``account`` is the Slurm account or namespace as written; ``position`` the line
    (``12``) or JSON path (``$.items[3]``) of the row in ``path``.
    """

    tenant_id: str
    account: str
    job: str
    path: str
    position: str
    allocation: Allocation

    @property
    def source(self) -> str:
        """Where the row stands: ``file:line`` or ``file:$.json.path``."""
        return f"{self.path}:{self.position}"


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaImport:
    """An intake manifest of customer drives: serials received, where their data went."""

    job: str
    received: datetime
    serials: tuple[str, ...]
    target_buckets: tuple[str, ...]
    copy_logs: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Identifiers:
    """What identifies a tenant beyond its id, for shared-identity checks."""

    payment_ref: str | None = None
    contacts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Tenant:
    """One tenant as the inventory records it; unset facts are ``None``."""

    id: str
    name: str
    registered: datetime
    country: str
    parent_country: str | None
    kyc: str
    payment: str
    predecessor: str | None
    identifiers: Identifiers
    offboarded: datetime | None
    networks: tuple[NetworkAssignment, ...] = ()
    vnis: tuple[VniAssignment, ...] = ()
    buckets: tuple[str, ...] = ()
    allocations: tuple[Allocation, ...] = ()
    media_imports: tuple[MediaImport, ...] = ()


class MediaImportRef(NamedTuple):
    """The tenant and intake job a drive or copy log belongs to."""

    tenant_id: str
    job: str


class SharedIdentity(NamedTuple):
    """Another tenant sharing something with the one asked about; ``what`` is ``kind:value``."""

    other_id: str
    what: str


# -- indexes, from tenant records (structures: egress.inventory_index) --------------------


def _ts(moment: datetime | None, *, default: float) -> float:
    return default if moment is None else moment.timestamp()


def _at(at: datetime) -> float:
    if at.tzinfo is None:
        raise ValueError(f"lookup time {at.isoformat()} is naive; pass a tz-aware datetime")
    return at.timestamp()


@dataclass(frozen=True, slots=True)
class _Indexes:
    addresses: PrefixIndex
    site: PrefixIndex
    ingest: frozenset[AnyAddress]
    vnis: dict[int, Timeline]
    buckets: GlobIndex
    copy_logs: GlobIndex
    serials: dict[str, tuple[tuple[float, ...], tuple[MediaImportRef, ...]]]
    tenants: dict[str, Tenant]
    shared: dict[str, tuple[SharedIdentity, ...]]


def _shared(tenants: Iterable[Tenant], buckets: GlobIndex) -> dict[str, tuple[SharedIdentity, ...]]:
    holders: dict[str, set[str]] = defaultdict(set)
    for tenant in tenants:
        ids = tenant.identifiers
        values = [f"payment_ref:{ids.payment_ref}"] if ids.payment_ref else []
        values += [f"contact:{contact}" for contact in ids.contacts]
        values += [f"bucket:{bucket}" for bucket in tenant.buckets]
        values += [f"serial:{s}" for imp in tenant.media_imports for s in imp.serials]
        for value in values:
            holders[value].add(tenant.id)
    found: dict[str, set[SharedIdentity]] = defaultdict(set)
    for what, owners in holders.items():
        if len(owners) > 1:
            for owner in owners:
                found[owner].update(SharedIdentity(o, what) for o in owners if o != owner)
    # a glob of one tenant covering a bucket name of another is shared too
    for what, owners in holders.items():
        if what.startswith("bucket:"):
            name = what.removeprefix("bucket:")
            for glob in buckets.matches(name):
                for owner in owners - {glob.owner}:
                    found[owner].add(SharedIdentity(glob.owner, what))
                    found[glob.owner].add(SharedIdentity(owner, what))
    return {tenant: tuple(sorted(items)) for tenant, items in found.items()}


def _index(site: Site, tenants: tuple[Tenant, ...]) -> tuple[_Indexes, list[Conflict]]:
    nets: dict[tuple[int, int, int], list[Span]] = defaultdict(list)
    vnis: dict[int, list[Span]] = defaultdict(list)
    serials: dict[str, list[tuple[float, MediaImportRef]]] = defaultdict(list)
    bucket_entries: list[tuple[str, float, float, str, str]] = []
    log_entries: list[tuple[str, float, float, str, str]] = []
    for i, tenant in enumerate(tenants):
        here: FieldPath = ("tenants", i)
        for j, net in enumerate(tenant.networks):
            span = Span(
                net.valid_from.timestamp(),
                _ts(net.valid_until, default=inf),
                tenant.id,
                (*here, "networks", j),
                net.cidr,
            )
            nets[prefix_key(net.cidr)].append(span)
        for j, vni in enumerate(tenant.vnis):
            span = Span(
                vni.valid_from.timestamp(),
                _ts(vni.valid_until, default=inf),
                tenant.id,
                (*here, "vnis", j),
                vni.vni,
            )
            vnis[vni.vni].append(span)
        start, end = tenant.registered.timestamp(), _ts(tenant.offboarded, default=inf)
        bucket_entries += [(bucket, start, end, tenant.id, "") for bucket in tenant.buckets]
        for imp in tenant.media_imports:
            ref = MediaImportRef(tenant.id, imp.job)
            for serial in imp.serials:
                serials[serial].append((imp.received.timestamp(), ref))
            log_entries += [(pattern, -inf, inf, tenant.id, imp.job) for pattern in imp.copy_logs]
    net_tables, net_conflicts = build_timelines(nets)
    vni_tables, vni_conflicts = build_timelines(vnis)
    site_tables = {
        prefix_key(net): Timeline((-inf,), (inf,), (site.name,)) for net in site.networks
    }
    buckets = GlobIndex.build(bucket_entries)
    serial_index = {}
    for serial, items in serials.items():
        items.sort(key=lambda item: item[0])
        serial_index[serial] = (tuple(t for t, _ in items), tuple(ref for _, ref in items))
    indexes = _Indexes(
        addresses=PrefixIndex.build(net_tables),
        site=PrefixIndex.build(site_tables),
        ingest=frozenset(site.ingest_stations),
        vnis=vni_tables,
        buckets=buckets,
        copy_logs=GlobIndex.build(log_entries),
        serials=serial_index,
        tenants={tenant.id: tenant for tenant in tenants},
        shared=_shared(tenants, buckets),
    )
    return indexes, net_conflicts + vni_conflicts


class _Conflicts(ValueError):
    def __init__(self, conflicts: list[Conflict]) -> None:
        super().__init__(f"held twice at the same time: {conflicts[0]}")
        self.conflicts = conflicts


# -- the inventory ------------------------------------------------------------------------


def _addr(value: str | AnyAddress) -> AnyAddress:
    return ip_address(value) if isinstance(value, str) else value


@dataclass(frozen=True, slots=True, kw_only=True)
class Inventory:
    """The validated inventory with time-aware lookups; equal when the content is equal.

    Lookups take a tz-aware ``at`` (a naive one raises :class:`ValueError`, as does
    a malformed address string) and return ``None`` when no tenant, or more than
    one equally, holds the thing asked about at that time.
    Constructing one whose address ranges or VNIs are held twice at a time raises
    :class:`ValueError`; :func:`load_inventory` reports those as ConfigError.
    """

    site: Site
    concern_countries: tuple[str, ...]
    tenants: tuple[Tenant, ...]
    _ix: _Indexes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        indexes, conflicts = _index(self.site, self.tenants)
        if conflicts:
            raise _Conflicts(conflicts)
        object.__setattr__(self, "_ix", indexes)

    def tenant(self, tenant_id: str) -> Tenant:
        """The tenant with this id; raises KeyError when there is none."""
        return self._ix.tenants[tenant_id]

    def tenant_for_address(self, address: str | AnyAddress, at: datetime) -> str | None:
        """Tenant whose longest matching prefix is assigned at ``at``."""
        return self._ix.addresses.owner(_addr(address), _at(at))

    def address_timelines(
        self, address: str | AnyAddress
    ) -> tuple[tuple[PrefixKey, Timeline], ...]:
        """Tenant ranges containing ``address`` with their ownership over time, longest first.

        :meth:`tenant_for_address` answers with the first of these that has an owner at
        ``at``. Keys are those of :meth:`network_timelines`.
        """
        return self._ix.addresses.matching(_addr(address))

    def network_timelines(self) -> Mapping[PrefixKey, Timeline]:
        """Every tenant range's ownership over time (POSIX seconds), keyed by prefix."""
        return MappingProxyType(self._ix.addresses.timelines)

    def vni_timelines(self) -> Mapping[int, Timeline]:
        """Every VNI's ownership over time (POSIX seconds), keyed by VNI."""
        return MappingProxyType(self._ix.vnis)

    def tenant_for_vni(self, vni: int, at: datetime) -> str | None:
        """Tenant holding VXLAN network identifier ``vni`` at ``at``."""
        timeline = self._ix.vnis.get(vni)
        return None if timeline is None else timeline.owner_at(_at(at))

    def tenant_for_bucket(self, bucket: str, at: datetime) -> str | None:
        """Active tenant owning ``bucket``: an exact name beats a glob, a longer glob a shorter."""
        found = self._ix.buckets.best(bucket, _at(at))
        return None if found is None else found[0]

    def tenant_for_drive_serial(self, serial: str, at: datetime) -> MediaImportRef | None:
        """Tenant and job of the latest intake of drive ``serial`` received at or before ``at``."""
        entry = self._ix.serials.get(serial)
        if entry is None:
            return None
        received, refs = entry
        t = _at(at)
        i = bisect_right(received, t) - 1
        if i < 0:
            return None
        latest = {ref for when, ref in zip(received, refs, strict=True) if when == received[i]}
        return latest.pop() if len(latest) == 1 else None

    def tenant_for_copy_log(self, path: str) -> MediaImportRef | None:
        """Tenant and job whose ``copy_logs`` pattern matches the file name of ``path``."""
        name = path.replace("\\", "/").rsplit("/", 1)[-1]
        found = self._ix.copy_logs.best(name, 0.0)
        return None if found is None else MediaImportRef(*found)

    def is_site_address(self, address: str | AnyAddress) -> bool:
        """Whether ``address`` lies in one of the site's own networks."""
        return self._ix.site.owner(_addr(address), 0.0) is not None

    def is_ingest_station(self, address: str | AnyAddress) -> bool:
        """Whether ``address`` is one of the site's ingest stations."""
        return _addr(address) in self._ix.ingest

    def gpus_allocated(self, tenant_id: str, at: datetime) -> int:
        """GPUs reserved for the tenant at ``at``, summed over clusters; KeyError if unknown."""
        t = _at(at)
        return sum(
            a.gpus
            for a in self.tenant(tenant_id).allocations
            if a.valid_from.timestamp() <= t < _ts(a.valid_until, default=inf)
        )

    def shared_identity(self, tenant_id: str) -> tuple[SharedIdentity, ...]:
        """Other tenants sharing a payment ref, contact, bucket or drive serial, sorted.

        Time is ignored on purpose: a successor reusing its predecessor's payment
        reference is exactly what this is for. Raises KeyError for an unknown id.
        """
        self.tenant(tenant_id)
        return self._ix.shared.get(tenant_id, ())


# -- loading ------------------------------------------------------------------------------


def _tenant(model: TenantModel) -> Tenant:
    return Tenant(
        id=model.id,
        name=model.name,
        registered=model.registered,
        country=model.country,
        parent_country=model.parent_country,
        kyc=model.kyc,
        payment=model.payment,
        predecessor=model.predecessor,
        identifiers=Identifiers(
            payment_ref=model.identifiers.payment_ref,
            contacts=tuple(model.identifiers.contacts),
        ),
        offboarded=model.offboarded,
        networks=tuple(
            NetworkAssignment(cidr=n.cidr, valid_from=n.from_, valid_until=n.until)
            for n in model.networks
        ),
        vnis=tuple(
            VniAssignment(vni=v.vni, valid_from=v.from_, valid_until=v.until) for v in model.vnis
        ),
        buckets=tuple(model.buckets),
        allocations=tuple(
            Allocation(
                cluster=a.cluster,
                gpu_model=a.gpu_model,
                gpus=a.gpus,
                valid_from=a.from_,
                valid_until=a.until,
            )
            for a in model.allocations
        ),
        media_imports=tuple(
            MediaImport(
                job=m.job,
                received=m.received,
                serials=tuple(m.serials),
                target_buckets=tuple(m.target_buckets),
                copy_logs=tuple(m.copy_logs),
            )
            for m in model.media_imports
        ),
    )


def _describe(path: FieldPath, tenants: tuple[Tenant, ...]) -> str:
    i = path[1]
    assert isinstance(i, int)
    return f"tenants[{i}] ({tenants[i].id}) {path[2]}[{path[3]}]"


def build_inventory(model: InventoryModel, locate: Locator) -> Inventory:
    """Check cross-record rules on a validated model and build the Inventory."""
    tenants = tuple(_tenant(t) for t in model.tenants)
    problems: list[tuple[FieldPath, str]] = []
    first_at: dict[str, int] = {}
    for i, tenant in enumerate(tenants):
        if tenant.id in first_at:
            problems.append(
                (
                    ("tenants", i, "id"),
                    f"duplicate tenant id {tenant.id!r} (also tenants[{first_at[tenant.id]}])",
                )
            )
        first_at.setdefault(tenant.id, i)
    for i, tenant in enumerate(tenants):
        if tenant.predecessor is not None and tenant.predecessor not in first_at:
            problems.append(
                (("tenants", i, "predecessor"), f"unknown tenant {tenant.predecessor!r}")
            )
        elif tenant.predecessor == tenant.id:
            problems.append(
                (("tenants", i, "predecessor"), "a tenant cannot be its own predecessor")
            )
    site = Site(
        name=model.site.name,
        country=model.site.country,
        networks=tuple(model.site.networks),
        ingest_stations=tuple(model.site.ingest_stations),
    )
    if problems:
        raise config_error(problems, locate)
    try:
        return Inventory(
            site=site, concern_countries=tuple(model.concern_countries), tenants=tenants
        )
    except _Conflicts as exc:
        for conflict in exc.conflicts:
            is_range = conflict.second[2] == "networks"
            there, here = locate(conflict.first), locate(conflict.second)
            problems.append(
                (
                    (*conflict.second, "cidr" if is_range else "vni"),
                    f"{'range' if is_range else 'VNI'} {conflict.key} is held at overlapping "
                    f"times by {_describe(conflict.first, tenants)}"
                    + (f" ({there})" if there != here else "")
                    + f" and {_describe(conflict.second, tenants)}",
                )
            )
        raise config_error(problems, locate) from exc


def load_inventory(path: Path) -> Inventory:
    """Read an inventory: a YAML or JSON file, or a directory holding ``tenants.csv``.

    The form is taken from the suffix (``.yaml``, ``.yml``, ``.json``), else from
    the content (JSON if it starts with ``{``). Raises ConfigError naming the file,
    line where known, and field path of every problem found (the first ten).
    """
    with _collection_paused():
        return build_inventory(*read_inventory(path))


@contextmanager
def _collection_paused() -> Iterator[None]:
    """The cyclic garbage collector paused: reading an estate's inventory makes millions of
    objects and no cycles to collect, and the collections the allocations trigger over and
    over took 60 % of the time (1.7 s of 2.7 s for 10,000 tenants)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_inventory(path: Path) -> Parsed:
    """Read and validate an inventory file as :func:`load_inventory` does, without building it.

    For :func:`with_allocations`, which adds scheduler allocations before building.
    """
    if path.is_dir():
        if not (path / CSV_MARKER).is_file():
            raise ConfigError(f"{path}: a directory inventory needs {CSV_MARKER}")
        parsed = read_csv_tables(path)
    elif path.suffix.lower() in (".yaml", ".yml"):
        parsed = read_yaml(path)
    elif path.suffix.lower() == ".json":
        parsed = read_json(path)
    else:
        try:
            with path.open("rb") as handle:
                head = handle.read(4096).lstrip()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read inventory: {exc.strerror}") from exc
        parsed = read_json(path) if head.startswith(b"{") else read_yaml(path)
    return parsed
