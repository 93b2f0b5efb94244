"""Evaluate compiled signatures over the windows table and the tenant inventory (pure).

Metric tests run column-wise (pyarrow.compute) over all windows of the signature's span;
context facts are looked up per remaining (tenant, window_end) only. A context fact that is
unset (no parent country, a tenant missing from the inventory) makes its test false.

Sequences: each earlier step is met by a GPU allocation (time: its ``from``) or by a window
of its span (time: ``window_start``; for ``cumulative`` rows the start of the day the row
ends). A window step must come strictly before the next step; an allocation must begin before
the next step's window ends. The final step's time minus the first step's is at most
``within``. The latest qualifying occurrence of each step is reported.

Suppression: matches of a signature with the same dedup key are folded when they start within
``suppress`` of the first kept one (counted in ``Match.suppressed``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from egress.inventory import Allocation, Inventory
from egress.signatures.compile import (
    AllocationStep,
    AllOf,
    FactCondition,
    MetricCondition,
    Node,
    NotOf,
    Signature,
    WindowStep,
)
from egress.signatures.match import (
    Context,
    CountryShare,
    FactEvidence,
    Match,
    MetricEvidence,
    RiskFactor,
    StepMatch,
    compare,
)
from egress.signatures.units import format_duration

Mask = npt.NDArray[np.bool_]
_DAY_US = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_TOP_COUNTRIES = 5


# -- column-wise metric tests -------------------------------------------------------------

_PC_OPS = {
    ">=": pc.greater_equal,
    ">": pc.greater,
    "<=": pc.less_equal,
    "<": pc.less,
    "==": pc.equal,
    "!=": pc.not_equal,
}


def _metric_mask(column: pa.ChunkedArray, op: str, value: int | float) -> Mask:
    """``column OP value`` as a numpy mask, exact for unsigned and signed integer columns."""
    n = len(column)
    kind = column.type
    if pa.types.is_integer(kind):
        low = 0 if pa.types.is_unsigned_integer(kind) else -(2**63)
        high = 2**64 - 1 if pa.types.is_unsigned_integer(kind) else 2**63 - 1
        if isinstance(value, float) and not value.is_integer():
            # integers never equal a fraction; ordering tests move to the next integer
            if op in ("==", "!="):
                return np.full(n, op == "!=")
            value, op = (int(np.ceil(value)), ">=") if op in (">=", ">") else (
                int(np.floor(value)), "<=")
        value = int(value)
        if value < low or value > high:
            above = value > high
            truth = {">=": not above, ">": not above, "<=": above, "<": above,
                     "==": False, "!=": True}[op]
            return np.full(n, truth)
        scalar = pa.scalar(value, kind)
    else:
        scalar = pa.scalar(float(value), pa.float64())
    result = _PC_OPS[op](column, scalar)
    return np.asarray(result.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.bool_)


def _has_facts(node: Node) -> bool:
    if isinstance(node, FactCondition):
        return True
    if isinstance(node, MetricCondition):
        return False
    if isinstance(node, NotOf):
        return _has_facts(node.child)
    return any(_has_facts(child) for child in node.children)


def _leaves(node: Node) -> Iterator[MetricCondition | FactCondition]:
    if isinstance(node, MetricCondition | FactCondition):
        yield node
    elif isinstance(node, NotOf):
        yield from _leaves(node.child)
    else:
        for child in node.children:
            yield from _leaves(child)


class _SpanTable:
    """The windows of one span; the tenant column converted to Python once, when needed."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.tenants: list[str] | None = None

    def tenant_list(self) -> list[str]:
        if self.tenants is None:
            self.tenants = self.table.column("tenant").to_pylist()
        return self.tenants

    def take(self, column: str, index: npt.NDArray[np.int64] | list[int]) -> list[Any]:
        """Python values of ``column`` at rows ``index``."""
        values: list[Any] = self.table.column(column).take(pa.array(index, pa.int64())).to_pylist()
        return values

    def take_us(self, column: str, index: npt.NDArray[np.int64] | list[int]) -> list[int]:
        """Microseconds since the epoch of timestamp ``column`` at rows ``index``."""
        taken = self.table.column(column).take(pa.array(index, pa.int64()))
        values: list[int] = taken.cast(pa.int64()).to_numpy().tolist()
        return values


def _mask(node: Node, rows: _SpanTable, candidates: Mask, context: Context) -> Mask:
    """Where ``node`` holds, computed only where ``candidates`` is true."""
    if isinstance(node, MetricCondition):
        return candidates & _metric_mask(rows.table.column(node.metric), node.op, node.value)
    if isinstance(node, FactCondition):
        out = np.zeros(len(candidates), dtype=np.bool_)
        index = np.flatnonzero(candidates)
        tenants, ends = rows.take("tenant", index), rows.take("window_end", index)
        for i, tenant, end in zip(index.tolist(), tenants, ends, strict=True):
            out[i] = context.test(node, tenant, end)[0]
        return out
    if isinstance(node, NotOf):
        return candidates & ~_mask(node.child, rows, candidates, context)
    ordered = sorted(node.children, key=_has_facts)  # column-wise tests first: they narrow
    if isinstance(node, AllOf):
        held = candidates.copy()
        for child in ordered:
            held = _mask(child, rows, held, context)
        return held
    found = np.zeros(len(candidates), dtype=np.bool_)
    remaining = candidates.copy()
    for child in ordered:
        hit = _mask(child, rows, remaining, context)
        found |= hit
        remaining &= ~hit
    return found


# -- sequences ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Occurrence:
    """A step met; times in microseconds since the epoch (cheap to compare in bulk)."""

    time: int
    start: int
    end: int
    row: int  # row in the span table, -1 for an allocation
    detail: str | None


_Occurrences = tuple[list[int], list[_Occurrence]]
"""Occurrences of a step for one tenant, sorted by time, with their times for bisection."""


def _sorted(items: list[_Occurrence]) -> _Occurrences:
    items = sorted(items, key=lambda o: o.time)
    return [o.time for o in items], items


def _anchor(span: str, start: int, end: int) -> int:
    return end - _DAY_US if span == "cumulative" else start


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _window_occurrences(
    step: WindowStep, rows: _SpanTable, tenants: set[str], context: Context
) -> dict[str, _Occurrences]:
    candidates = np.asarray(
        pc.is_in(rows.table.column("tenant"), pa.array(sorted(tenants), pa.string()))
        .to_numpy(zero_copy_only=False),
        dtype=np.bool_,
    )
    held = np.flatnonzero(_mask(step.condition, rows, candidates, context))
    starts, ends = rows.take_us("window_start", held), rows.take_us("window_end", held)
    names = rows.tenant_list()
    found: dict[str, list[_Occurrence]] = defaultdict(list)
    for row, start, end in zip(held.tolist(), starts, ends, strict=True):
        found[names[row]].append(_Occurrence(_anchor(step.span, start, end), start, end, row, None))
    return {tenant: _sorted(items) for tenant, items in found.items()}


def _allocation_occurrences(
    step: AllocationStep, tenants: set[str], context: Context
) -> dict[str, _Occurrences]:
    found: dict[str, _Occurrences] = {}
    for tenant_id in tenants:
        tenant = context.tenant(tenant_id)
        if tenant is None:
            continue
        items = [
            _Occurrence(
                _us(a.valid_from), _us(a.valid_from), _us(a.valid_from), -1,
                f"{a.gpus} {a.gpu_model} GPUs on {a.cluster}",
            )
            for a in tenant.allocations
            if _node_holds(step.condition, tenant_id, a.valid_from, context, a)
        ]
        found[tenant_id] = _sorted(items)
    return found


def _node_holds(
    node: Node, tenant: str, at: datetime, context: Context, allocation: Allocation | None
) -> bool:
    if isinstance(node, FactCondition):
        return context.test(node, tenant, at, allocation)[0]
    if isinstance(node, MetricCondition):
        raise TypeError("metric tests need a window")
    if isinstance(node, NotOf):
        return not _node_holds(node.child, tenant, at, context, allocation)
    results = (_node_holds(c, tenant, at, context, allocation) for c in node.children)
    return all(results) if isinstance(node, AllOf) else any(results)


def _chain(
    signature: Signature,
    occurrences: list[dict[str, _Occurrences]],
    tenant: str,
    final: _Occurrence,
) -> list[_Occurrence] | None:
    """Latest occurrence of each earlier step, or None when the sequence is not met."""
    assert signature.sequence is not None
    chosen: list[_Occurrence] = []
    later = final
    for step, found in zip(
        reversed(signature.sequence.steps), reversed(occurrences), strict=True
    ):
        times, items = found.get(tenant, ([], []))
        bound = later.end if isinstance(step, AllocationStep) else later.time
        i = bisect_left(times, bound) - 1
        if i < 0:
            return None
        later = items[i]
        chosen.append(later)
    if final.time - later.time > signature.sequence.within_s * 1e6:
        return None
    return chosen[::-1]


# -- the evaluation -----------------------------------------------------------------------


def _metric_evidence(
    step: str, node: Node, rows: _SpanTable, index: list[int]
) -> list[list[MetricEvidence]]:
    per_row: list[list[MetricEvidence]] = [[] for _ in index]
    taken = pa.array(index, pa.int64())
    for leaf in _leaves(node):
        if not isinstance(leaf, MetricCondition):
            continue
        values = rows.table.column(leaf.metric).take(taken).to_pylist()
        for out, value in zip(per_row, values, strict=True):
            out.append(
                MetricEvidence(
                    step=step, metric=leaf.metric, op=leaf.op, value=value,
                    threshold=leaf.value, threshold_text=leaf.text,
                    threshold_name=leaf.threshold, kind=leaf.kind,
                    held=compare(value, leaf.op, leaf.value),
                )
            )
    return per_row


def _fact_evidence(
    step: str, nodes: Iterable[Node], tenant: str, at: datetime, context: Context
) -> list[FactEvidence]:
    found = []
    for node in nodes:
        for leaf in _leaves(node):
            if isinstance(leaf, FactCondition) and not leaf.fact.startswith("allocation."):
                held, value, detail = context.test(leaf, tenant, at)
                found.append(
                    FactEvidence(step=step, fact=leaf.fact, test=_resolved(leaf), value=value,
                                 detail=detail, at=at, held=held)
                )
    return found


def _resolved(leaf: FactCondition) -> str:
    """The test as written, its ``$threshold`` replaced by the value in force."""
    if leaf.threshold is None or leaf.value is None:
        return leaf.source
    if leaf.fact == "tenant.age" and isinstance(leaf.value, int | float):
        shown = format_duration(leaf.value)
    elif isinstance(leaf.value, tuple):
        shown = "[" + ", ".join(leaf.value) + "]"
    else:
        shown = str(leaf.value)
    return leaf.source.replace(f"${leaf.threshold}", shown)


def _risk(
    signature: Signature, tenant: str, at: datetime, context: Context
) -> tuple[int, tuple[RiskFactor, ...]]:
    factors = [RiskFactor(name=f"severity {signature.severity}", points=signature.base_risk,
                          reason="base score of the signature")]
    for amp in signature.amplifiers:
        if _node_holds(amp.condition, tenant, at, context, None):
            factors.append(RiskFactor(name=amp.name, points=amp.points, reason=amp.reason))
    total = sum(f.points for f in factors)
    score = min(100, max(0, total))
    if score != total:
        factors.append(RiskFactor(name="clamp", points=score - total, reason="score is 0-100"))
    return score, tuple(factors)


def _key(signature: Signature, tenant: str, start: datetime, end: datetime) -> str:
    values = {
        "signature": signature.id,
        "tenant": tenant,
        "span": signature.span,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "version": str(signature.version),
    }
    return "|".join(values[field] for field in signature.dedup_key)


def _suppress(signature: Signature, matches: list[Match]) -> list[Match]:
    by_key: dict[str, list[Match]] = defaultdict(list)
    for match in matches:
        by_key[match.dedup_key].append(match)
    kept: list[Match] = []
    interval = timedelta(seconds=signature.suppress_s)
    for group in by_key.values():
        group.sort(key=lambda m: m.window_start)
        current: list[Match] = []
        for match in group:
            if current and match.window_start < current[0].window_start + interval:
                current.append(match)
                continue
            if current:
                kept.append(_folded(current))
            current = [match]
        kept.append(_folded(current))
    kept.sort(key=lambda m: (m.tenant, m.window_start, m.window_end))
    return kept


def _folded(group: list[Match]) -> Match:
    first = group[0]
    if len(group) == 1:
        return first
    return Match(**{**{f: getattr(first, f) for f in Match.__dataclass_fields__},
                    "suppressed": len(group) - 1})


def _countries(
    countries: pa.Table | None, span: str, keys: set[tuple[str, datetime]]
) -> dict[tuple[str, datetime], tuple[CountryShare, ...]]:
    if countries is None or not keys:
        return {}
    tenants = pa.array(sorted({tenant for tenant, _ in keys}), pa.string())
    picked = countries.filter(
        pc.and_(pc.equal(countries.column("span"), span),
                pc.is_in(countries.column("tenant"), tenants))
    )
    found: dict[tuple[str, datetime], list[CountryShare]] = defaultdict(list)
    for row in picked.to_pylist():
        key = (row["tenant"], row["window_start"])
        if key in keys:
            found[key].append(CountryShare(
                country=row["country"], bytes_in=row["bytes_in"], bytes_out=row["bytes_out"],
                remote_addrs=row["remote_addrs"],
            ))
    return {
        key: tuple(sorted(items, key=lambda c: (-c.bytes_in, c.country))[:_TOP_COUNTRIES])
        for key, items in found.items()
    }


def _evaluate_one(
    signature: Signature,
    spans: dict[str, _SpanTable],
    context: Context,
    countries: pa.Table | None,
) -> list[Match]:
    rows = spans[signature.span]
    everything = np.ones(rows.table.num_rows, dtype=np.bool_)
    held = np.flatnonzero(_mask(signature.condition, rows, everything, context)).tolist()
    if not held:
        return []
    names = rows.tenant_list()
    final_name = signature.sequence.final if signature.sequence else "match"
    chains: list[list[_Occurrence]] = [[] for _ in held]
    if signature.sequence is not None:
        tenants = {names[i] for i in held}
        occurrences: list[dict[str, _Occurrences]] = []
        for step in signature.sequence.steps:
            if isinstance(step, AllocationStep):
                occurrences.append(_allocation_occurrences(step, tenants, context))
            else:
                occurrences.append(
                    _window_occurrences(step, spans[step.span], tenants, context)
                )
        starts_us, ends_us = rows.take_us("window_start", held), rows.take_us("window_end", held)
        kept: list[tuple[int, list[_Occurrence]]] = []
        for row, start, end in zip(held, starts_us, ends_us, strict=True):
            final = _Occurrence(_anchor(signature.span, start, end), start, end, row, None)
            chain = _chain(signature, occurrences, names[row], final)
            if chain is not None:
                kept.append((row, chain))
        held, chains = [k[0] for k in kept], [k[1] for k in kept]
    starts, ends = rows.take("window_start", held), rows.take("window_end", held)
    metrics = _metric_evidence(final_name, signature.condition, rows, held)
    shares = _countries(countries, signature.span, {(names[i], s) for i, s in zip(held, starts,
                                                                             strict=True)})
    matches = []
    for n, (row, start, end, chain) in enumerate(zip(held, starts, ends, chains, strict=True)):
        tenant = names[row]
        steps: list[StepMatch] = []
        step_metrics: list[MetricEvidence] = []
        step_facts: list[FactEvidence] = []
        if signature.sequence is not None:
            for step, occ in zip(signature.sequence.steps, chain, strict=True):
                if isinstance(step, WindowStep):
                    step_metrics += _metric_evidence(
                        step.name, step.condition, spans[step.span], [occ.row])[0]
                    step_facts += _fact_evidence(step.name, [step.condition], tenant,
                                                 _datetime(occ.end), context)
                steps.append(StepMatch(
                    name=step.name,
                    kind="allocation" if isinstance(step, AllocationStep) else "window",
                    start=_datetime(occ.start), end=_datetime(occ.end),
                    span=step.span if isinstance(step, WindowStep) else None,
                    detail=occ.detail,
                ))
            steps.append(StepMatch(name=final_name, kind="window", start=start, end=end,
                                   span=signature.span, detail=None))
        facts = _fact_evidence(final_name, [signature.condition], tenant, end, context)
        facts += _fact_evidence("risk", [a.condition for a in signature.amplifiers], tenant,
                                end, context)
        score, factors = _risk(signature, tenant, end, context)
        matches.append(Match(
            signature_id=signature.id, title=signature.title, severity=signature.severity,
            version=signature.version, attack=signature.attack, tenant=tenant,
            span=signature.span, window_start=start, window_end=end,
            metrics=tuple(step_metrics + metrics[n]), facts=tuple(step_facts + facts),
            steps=tuple(steps), risk_score=score, risk_factors=factors,
            dedup_key=_key(signature, tenant, start, end), suppressed=0,
            countries=shares.get((tenant, start), ()),
        ))
    return _suppress(signature, matches)


def evaluate(
    signatures: Iterable[Signature],
    windows: pa.Table,
    inventory: Inventory,
    *,
    countries: pa.Table | None = None,
) -> Iterator[Match]:
    """Matches of each signature, in signature order, then by tenant and window start.

    ``windows`` has the windows contract's columns (``tenant``, ``span``, ``window_start``,
    ``window_end`` and the metrics the signatures test); ``countries`` (optional) adds the
    top remote countries of each matched window. Raises ValueError when a needed column is
    missing. Nothing is modified.
    """
    signatures = tuple(signatures)
    needed = {"tenant", "span", "window_start", "window_end"}
    for signature in signatures:
        nodes: list[Node] = [signature.condition]
        if signature.sequence is not None:
            nodes += [s.condition for s in signature.sequence.steps if isinstance(s, WindowStep)]
        needed |= {leaf.metric for n in nodes for leaf in _leaves(n)
                   if isinstance(leaf, MetricCondition)}
    missing = sorted(needed - set(windows.column_names))
    if missing:
        raise ValueError(f"windows table lacks column(s) {', '.join(missing)}")
    span_names = {s.span for s in signatures} | {
        step.span for s in signatures if s.sequence is not None
        for step in s.sequence.steps if isinstance(step, WindowStep)
    }
    spans: dict[str, _SpanTable] = {
        span: _SpanTable(windows.filter(pc.equal(windows.column("span"), span)))
        for span in sorted(span_names)
    }
    return _matches(signatures, spans, Context(inventory), countries)


def _matches(
    signatures: tuple[Signature, ...],
    spans: dict[str, _SpanTable],
    context: Context,
    countries: pa.Table | None,
) -> Iterator[Match]:
    for signature in signatures:
        yield from _evaluate_one(signature, spans, context, countries)
