"""Findings and cases: signature hits explained, and each tenant's story.

A :class:`Finding` is one :class:`~egress.signatures.match.Match` made readable: a message
that says plainly who received (or sent) what from where, the evidence (metrics against
thresholds, context facts, sequence steps, top remote countries, the largest transfers of
the window with file and position), the risk score with each factor's contribution, and the
ATT&CK mapping. A finding's ``severity`` is its signature's, raised by the risk score
(:data:`RISK_BANDS`: crypto payment, thin KYC or a substituted tenant make a hit more
severe); ``signature_severity`` keeps the signature's own. A :class:`Case` gathers one
tenant's findings into a timeline with the inventory's facts (registration, predecessor,
allocations, media imports).

Ids are stable: a finding's id is derived from its signature's dedup key and the
suppression interval (aligned on the Unix epoch) its window starts in, so running again
over overlapping input gives the same ids and a SIEM that dedupes on ``event.id`` never
shows an alert twice. A case's id is derived from the tenant id.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from egress.inventory import Inventory, Tenant
from egress.records import DriveAttach
from egress.signatures.compile import Signature
from egress.signatures.match import (
    CountryShare,
    FactEvidence,
    Match,
    MetricEvidence,
    RiskFactor,
    StepMatch,
)
from egress.signatures.units import format_bytes, format_duration, format_rate

#: Namespace of finding and case ids (UUID version 5).
ID_NAMESPACE = uuid.UUID("5f0c6f3e-2d4b-5a7e-9c1d-7e6a3b2f4e10")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TOP_TRANSFERS = 5
_OUTBOUND_METRICS = frozenset({"bytes_out", "cross_border_bytes_out", "concern_bytes_out",
                               "peak_rate_out_bps"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer:
    """One of the largest transfers of the finding's window, where it was read."""

    kind: str
    start: datetime
    end: datetime
    bytes_in: int
    bytes_out: int
    remote_addr: str | None
    remote_country: str | None
    where: str | None
    ref: str | None
    quality: bool
    community_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One signature hit with its explanation (module doc)."""

    id: str
    signature_id: str
    signature_version: int
    title: str
    severity: str
    signature_severity: str
    risk_score: int
    risk_factors: tuple[RiskFactor, ...]
    attack: tuple[str, ...]
    tenant: str
    tenant_name: str | None
    direction: str
    span: str
    window_start: datetime
    window_end: datetime
    message: str
    metrics: tuple[MetricEvidence, ...]
    facts: tuple[FactEvidence, ...]
    steps: tuple[StepMatch, ...]
    countries: tuple[CountryShare, ...]
    transfers: tuple[Transfer, ...]
    dedup_key: str
    suppressed: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineEntry:
    """One dated event of a case: an inventory fact or a finding (``finding_id`` set)."""

    at: datetime
    what: str
    finding_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One tenant's findings and story, earliest first; ``risk_score`` is the highest."""

    id: str
    tenant: str
    tenant_name: str | None
    risk_score: int
    severity: str
    findings: tuple[str, ...]
    timeline: tuple[TimelineEntry, ...]
    summary: str


SEVERITY_ORDER = ("informational", "low", "medium", "high", "critical")

#: Risk score from which a finding is at least this severe (amplifiers escalate).
RISK_BANDS = ((90, "critical"), (70, "high"), (40, "medium"), (20, "low"))


def effective_severity(signature_severity: str, risk_score: int) -> str:
    """The signature's severity, raised to the band its risk score reaches (never lowered)."""
    band = next((name for floor, name in RISK_BANDS if risk_score >= floor), "informational")
    return max(signature_severity, band, key=SEVERITY_ORDER.index)


def finding_id(dedup_key: str, window_start: datetime, suppress_s: float) -> str:
    """The stable id of a hit: its dedup key and the epoch-aligned suppression interval."""
    micros = (window_start - _EPOCH) // _US
    step = int(suppress_s * 1_000_000)
    bucket = micros - micros % step if step > 0 else micros
    return str(uuid.uuid5(ID_NAMESPACE, f"{dedup_key}|{bucket}"))


_US = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


def build_findings(
    matches: Iterable[Match],
    signatures: Iterable[Signature],
    inventory: Inventory,
    evidence: pa.Table | None = None,
) -> Iterator[Finding]:
    """Explain each match. ``evidence`` is the windows stage's
    :data:`~egress.windows.EVIDENCE_SCHEMA` table (largest transfers per tenant and day)."""
    by_id = {s.id: s for s in signatures}
    per_tenant = _split_evidence(evidence)
    for match in matches:
        signature = by_id[match.signature_id]
        direction = _direction(match)
        tenant = _tenant(inventory, match.tenant)
        yield Finding(
            id=finding_id(match.dedup_key, match.window_start, signature.suppress_s),
            signature_id=match.signature_id,
            signature_version=match.version,
            title=match.title,
            severity=effective_severity(match.severity, match.risk_score),
            signature_severity=match.severity,
            risk_score=match.risk_score,
            risk_factors=match.risk_factors,
            attack=match.attack,
            tenant=match.tenant,
            tenant_name=None if tenant is None else tenant.name,
            direction=direction,
            span=match.span,
            window_start=match.window_start,
            window_end=match.window_end,
            message=message(match, tenant),
            metrics=match.metrics,
            facts=match.facts,
            steps=match.steps,
            countries=match.countries,
            transfers=_transfers(per_tenant.get(match.tenant), match, direction),
            dedup_key=match.dedup_key,
            suppressed=match.suppressed,
        )


def _tenant(inventory: Inventory, tenant_id: str) -> Tenant | None:
    try:
        return inventory.tenant(tenant_id)
    except KeyError:
        return None


def _final_step(match: Match) -> str:
    return match.steps[-1].name if match.steps else "match"


def _direction(match: Match) -> str:
    final = _final_step(match)
    held = [m.metric for m in match.metrics if m.held and m.step == final]
    if held and all(m in _OUTBOUND_METRICS for m in held):
        return "outbound"
    return "inbound"


# -- the message ------------------------------------------------------------------------------


def _phrase(evidence: MetricEvidence, match: Match) -> str:
    v = evidence.value
    countries = _from_where(match)
    phrases = {
        "bytes_in": f"received {format_bytes(v)}{countries}",
        "bytes_out": f"sent {format_bytes(v)} out{_to_where(match)}",
        "cross_border_bytes_in": f"received {format_bytes(v)} from abroad{countries}",
        "cross_border_bytes_out": f"sent {format_bytes(v)} abroad{_to_where(match)}",
        "concern_bytes_in": f"received {format_bytes(v)} from countries of concern"
                            + _from_where(match, lead=": "),
        "concern_bytes_out": f"sent {format_bytes(v)} to countries of concern",
        "object_put_bytes": f"wrote {format_bytes(v)} into object storage",
        "object_puts": f"made {int(v):,} object writes",
        "drives_attached": f"had {int(v):,} drives attached at ingest stations",
        "drive_capacity_bytes": f"had {format_bytes(v)} of drives attached at ingest stations",
        "bytes_copied": f"had {format_bytes(v)} copied from drives",
        "peak_rate_in_bps": f"received at up to {format_rate(v)}",
        "peak_rate_out_bps": f"sent at up to {format_rate(v)}",
        "hours_above_rate": f"received at a sustained high rate for {int(v):,} hours",
        "max_transfer_duration_s": f"kept one transfer open for {_human_duration(v)}",
        "remote_addrs": f"exchanged traffic with {int(v):,} remote addresses",
        "remote_asns": f"exchanged traffic with {int(v):,} networks (ASNs)",
        "flows": f"had {int(v):,} connections",
        "quality_marked": f"had {int(v):,} records with data-quality marks",
    }
    return phrases.get(evidence.metric, f"{evidence.metric} = {v}")


def _human_duration(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.1f} hours"
    return format_duration(round(seconds))


def _from_where(match: Match, *, lead: str = " from ") -> str:
    """`` from 38 addresses in CN``: the countries that sent at least a tenth of the bytes."""
    total = sum(c.bytes_in for c in match.countries)
    main = [c for c in match.countries if c.bytes_in > 0 and c.bytes_in * 10 >= total][:3]
    if not main:
        return ""
    addrs = sum(c.remote_addrs for c in main)
    noun = "address" if addrs == 1 else "addresses"
    return f"{lead}{addrs:,} {noun} in {', '.join(c.country for c in main)}"


def _to_where(match: Match) -> str:
    """`` to CN``: the countries that received at least a tenth of the bytes sent."""
    total = sum(c.bytes_out for c in match.countries)
    main = sorted((c for c in match.countries if c.bytes_out > 0 and c.bytes_out * 10 >= total),
                  key=lambda c: -c.bytes_out)[:3]
    if not main:
        return ""
    return " to " + ", ".join(c.country for c in main)


def message(match: Match, tenant: Tenant | None) -> str:
    """One plain sentence on who did what, when, against which threshold, after what."""
    who = f"Tenant {match.tenant}" + (f" ({tenant.name})" if tenant is not None else "")
    final = _final_step(match)
    own = [m for m in match.metrics if m.held and m.step == final]
    phrases = [_phrase(m, match) for m in own[:2]]
    if [m.metric for m in own[:2]] == ["drives_attached", "drive_capacity_bytes"]:
        phrases = [f"had {int(own[0].value):,} drives ({format_bytes(own[1].value)}) attached "
                   "at ingest stations"]
    what = " and ".join(dict.fromkeys(phrases)) or "matched"
    when = (f"between {match.window_start:%Y-%m-%d %H:%M} and {match.window_end:%Y-%m-%d %H:%M}"
            f" UTC ({_span_words(match.span)})")
    thresholds = "; ".join(dict.fromkeys(
        f"{m.metric} {m.op} {m.threshold_text}" for m in own[:2]))
    text = f"{who} {what} {when}"
    if thresholds:
        text += f" (threshold {thresholds})"
    earlier = [_step_words(step, match) for step in match.steps[:-1]]
    if earlier:
        text += ", after " + " and ".join(earlier)
    return text + "."


def _step_words(step: StepMatch, match: Match) -> str:
    if step.kind == "allocation":
        return f"{step.detail or step.name} from {step.start:%Y-%m-%d}"
    held = [m for m in match.metrics if m.held and m.step == step.name]
    what = f" ({_phrase(held[0], match).split(' from ')[0]})" if held else ""
    return f"{step.name}{what} on {step.start:%Y-%m-%d}"


def _span_words(span: str) -> str:
    return {"1h": "1 hour", "24h": "1 day", "7d": "7 days",
            "cumulative": "since registration"}.get(span, span)


# -- evidence transfers -------------------------------------------------------------------


def _split_evidence(evidence: pa.Table | None) -> Mapping[str, pa.Table]:
    if evidence is None or evidence.num_rows == 0:
        return {}
    ordered = evidence.sort_by("tenant")
    tenants = ordered.column("tenant").to_numpy(zero_copy_only=False)
    out: dict[str, pa.Table] = {}
    start = 0
    for i in range(1, len(tenants) + 1):
        if i == len(tenants) or tenants[i] != tenants[start]:
            out[str(tenants[start])] = ordered.slice(start, i - start)
            start = i
    return out


def _transfers(rows: pa.Table | None, match: Match, direction: str) -> tuple[Transfer, ...]:
    if rows is None:
        return ()
    overlapping = rows.filter(pc.and_(
        pc.less(rows.column("start"), pa.scalar(match.window_end, rows.schema.field("start").type)),
        pc.or_(pc.greater(rows.column("end"), pa.scalar(
            match.window_start, rows.schema.field("end").type)),
            pc.greater_equal(rows.column("start"), pa.scalar(
                match.window_start, rows.schema.field("start").type)))))
    key = "bytes_out" if direction == "outbound" else "bytes_in"
    kinds = _evidence_kinds(match)
    if kinds:
        overlapping = overlapping.filter(pc.is_in(overlapping.column("kind"),
                                                  pa.array(sorted(kinds), pa.string())))
    top = overlapping.sort_by([(key, "descending"), ("start", "ascending")]).slice(
        0, _TOP_TRANSFERS)
    return tuple(Transfer(**row) for row in top.select(
        ["kind", "start", "end", "bytes_in", "bytes_out", "remote_addr", "remote_country",
         "where", "ref", "quality", "community_id"]).to_pylist() if row[key] > 0)


_METRIC_KINDS = {
    "object_put_bytes": "object_put", "object_puts": "object_put", "bytes_copied": "copy",
    "drives_attached": "drive", "drive_capacity_bytes": "drive",
}


def _evidence_kinds(match: Match) -> set[str]:
    """The transfer kinds that back the final step's held metrics (network by default)."""
    final = _final_step(match)
    held = [m.metric for m in match.metrics if m.held and m.step == final]
    return {_METRIC_KINDS.get(metric, "network") for metric in held}


# -- drives no manifest lists --------------------------------------------------------------

#: Id of the built-in rule for drives attached at an ingest station that no manifest lists.
UNLISTED_DRIVE_RULE = "unlisted-drive"
#: ``tenant`` of findings no tenant can be named for.
NO_TENANT = "unattributed"


def unlisted_drive_findings(drives: Iterable[DriveAttach]) -> Iterator[Finding]:
    """One finding per drive attached at an ingest station that no media-import manifest
    lists: customer media the operator did not take in through intake (issue 5: a finding in
    itself). Medium severity, risk 50; the evidence is the kernel log line."""
    for drive in drives:
        at = drive.attached or _EPOCH
        size = "" if drive.capacity_bytes is None else f" ({format_bytes(drive.capacity_bytes)})"
        model = f" {drive.model}" if drive.model else ""
        key = f"{UNLISTED_DRIVE_RULE}|{drive.serial or drive.device}|{drive.station}"
        yield Finding(
            id=finding_id(key, at, 0), signature_id=UNLISTED_DRIVE_RULE, signature_version=1,
            title="Drive attached at an ingest station that no media-import manifest lists",
            severity="medium", signature_severity="medium", risk_score=50,
            risk_factors=(RiskFactor(name="severity medium", points=50,
                                     reason="unmanifested media at an ingest station"),),
            attack=("T1200",), tenant=NO_TENANT, tenant_name=None, direction="inbound",
            span="event", window_start=at, window_end=drive.detached or at,
            message=(f"A{model} drive with serial {drive.serial or '(none)'}{size} was "
                     f"attached at ingest station {drive.station or '(unknown)'} at "
                     f"{at:%Y-%m-%d %H:%M} UTC; no media-import manifest lists it."),
            metrics=(), facts=(), steps=(), countries=(),
            transfers=(Transfer(kind="drive", start=at, end=at, bytes_in=0, bytes_out=0,
                                remote_addr=None, remote_country=None,
                                where=str(drive.provenance), ref=drive.serial or drive.device,
                                quality=False),),
            dedup_key=key, suppressed=0,
        )


# -- cases ------------------------------------------------------------------------------------


def build_cases(findings: Iterable[Finding], inventory: Inventory) -> list[Case]:
    """One case per tenant with findings, highest risk first (then tenant id)."""
    by_tenant: dict[str, list[Finding]] = {}
    for finding in findings:
        by_tenant.setdefault(finding.tenant, []).append(finding)
    cases = [_case(tenant_id, items, _tenant(inventory, tenant_id))
             for tenant_id, items in by_tenant.items()]
    return sorted(cases, key=lambda c: (-c.risk_score, c.tenant))


def _case(tenant_id: str, findings: list[Finding], tenant: Tenant | None) -> Case:
    findings = sorted(findings, key=lambda f: (f.window_start, f.signature_id))
    timeline = [*_inventory_events(tenant),
                *(TimelineEntry(at=f.window_start, what=f"{f.title}: {f.message}",
                                finding_id=f.id) for f in findings)]
    timeline.sort(key=lambda e: (e.at, e.finding_id is not None, e.what))
    top = max(findings, key=lambda f: (f.risk_score, SEVERITY_ORDER.index(f.severity)))
    severity = max((f.severity for f in findings), key=SEVERITY_ORDER.index)
    name = None if tenant is None else tenant.name
    signatures = sorted({f.signature_id for f in findings})
    summary = (f"{tenant_id}" + (f" ({name})" if name else "")
               + f": {len(findings)} finding(s) from {len(signatures)} signature(s) "
               f"({', '.join(signatures)}); highest risk {top.risk_score}: {top.title}.")
    return Case(
        id=str(uuid.uuid5(ID_NAMESPACE, f"case|{tenant_id}")), tenant=tenant_id,
        tenant_name=name, risk_score=top.risk_score, severity=severity,
        findings=tuple(f.id for f in findings), timeline=tuple(timeline), summary=summary,
    )


def _inventory_events(tenant: Tenant | None) -> Iterator[TimelineEntry]:
    if tenant is None:
        return
    origin = f" in {tenant.country}" + (
        f" (parent in {tenant.parent_country})" if tenant.parent_country else "")
    yield TimelineEntry(at=tenant.registered, what=(
        f"registered{origin}; KYC {tenant.kyc}, pays by {tenant.payment}"
        + (f"; successor of {tenant.predecessor}" if tenant.predecessor else "")))
    for a in tenant.allocations:
        model = f" {a.gpu_model}" if a.gpu_model else ""
        yield TimelineEntry(at=a.valid_from,
                            what=f"allocated {a.gpus:,}{model} GPUs on {a.cluster}")
    for m in tenant.media_imports:
        yield TimelineEntry(at=m.received, what=(
            f"media import {m.job}: {len(m.serials)} drive(s) received"))
    if tenant.offboarded is not None:
        yield TimelineEntry(at=tenant.offboarded, what="offboarded")
