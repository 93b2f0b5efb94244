"""What a signature hit carries (:class:`Match` and its evidence records), and
:class:`Context`, the tenant facts from the inventory that conditions are judged on.

:mod:`egress.signatures.evaluate` produces matches; later stages (findings, formats) read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from egress.inventory import Allocation, Inventory, Tenant
from egress.signatures.compile import KYC_LEVELS, FactCondition
from egress.signatures.units import Kind

FactValue = int | float | str | bool | None


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricEvidence:
    """One metric test on one window: the value seen against the threshold."""

    step: str
    metric: str
    op: str
    value: int | float
    threshold: int | float
    threshold_text: str
    threshold_name: str | None
    kind: Kind
    held: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class FactEvidence:
    """One context test: the fact's value at ``at`` (``None`` when unset) and the outcome."""

    step: str
    fact: str
    test: str
    value: FactValue
    detail: str | None
    at: datetime
    held: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class StepMatch:
    """A sequence step as met: an allocation (``start == end``) or a window."""

    name: str
    kind: Literal["allocation", "window"]
    start: datetime
    end: datetime
    span: str | None
    detail: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskFactor:
    """A contribution to the risk score; contributions sum to the score."""

    name: str
    points: int
    reason: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CountryShare:
    """Traffic of the matched window with one remote country (from the countries table)."""

    country: str
    bytes_in: int
    bytes_out: int
    remote_addrs: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """One signature hit on one tenant window, with everything needed to explain it.

    ``metrics``: every metric test of the condition (and of window steps), value against
    threshold, held or not. ``facts``: every context test (step ``risk`` for amplifiers).
    ``steps``: the sequence as met, earliest first, ending with the signature's own window
    (empty without a sequence). ``risk_factors`` sum to ``risk_score`` (0-100).
    ``dedup_key``: the signature's key fields joined by ``|``; ``suppressed``: hits with the
    same key folded into this one. ``countries``: top remote countries of the window by
    bytes in (empty without a countries table).
    """

    signature_id: str
    title: str
    severity: str
    version: int
    attack: tuple[str, ...]
    tenant: str
    span: str
    window_start: datetime
    window_end: datetime
    metrics: tuple[MetricEvidence, ...]
    facts: tuple[FactEvidence, ...]
    steps: tuple[StepMatch, ...]
    risk_score: int
    risk_factors: tuple[RiskFactor, ...]
    dedup_key: str
    suppressed: int
    countries: tuple[CountryShare, ...]


# -- context facts ------------------------------------------------------------------------


class Context:
    """Context facts from the inventory, cached per (condition, tenant, time)."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.cache: dict[tuple[int, str, datetime], tuple[bool, FactValue, str | None]] = {}

    def tenant(self, tenant_id: str) -> Tenant | None:
        try:
            return self.inventory.tenant(tenant_id)
        except KeyError:
            return None

    def value(
        self, fact: str, tenant: Tenant, at: datetime, allocation: Allocation | None
    ) -> tuple[FactValue, str | None]:
        if fact == "tenant.age":
            return (at - tenant.registered).total_seconds(), None
        if fact == "tenant.gpus":
            return self.inventory.gpus_allocated(tenant.id, at), None
        if fact == "tenant.kyc":
            return tenant.kyc, None
        if fact == "tenant.payment":
            return tenant.payment, None
        if fact == "tenant.country":
            return tenant.country, None
        if fact == "tenant.parent_country":
            return tenant.parent_country, None
        if fact == "tenant.predecessor":
            return tenant.predecessor is not None, tenant.predecessor
        if fact == "tenant.shared_identity":
            shared = self.inventory.shared_identity(tenant.id)
            detail = ", ".join(f"{s.other_id} ({s.what})" for s in shared) or None
            return bool(shared), detail
        if fact == "tenant.offboarded":
            off = tenant.offboarded
            return off is not None and off <= at, None if off is None else off.isoformat()
        if allocation is None:
            return None, None
        if fact == "allocation.gpus":
            return allocation.gpus, None
        return allocation.gpu_model, None

    def test(
        self, cond: FactCondition, tenant_id: str, at: datetime,
        allocation: Allocation | None = None,
    ) -> tuple[bool, FactValue, str | None]:
        key = (id(cond), tenant_id, at)
        if allocation is None and key in self.cache:
            return self.cache[key]
        tenant = self.tenant(tenant_id)
        if tenant is None:
            result: tuple[bool, FactValue, str | None] = (False, None, "not in the inventory")
        else:
            value, detail = self.value(cond.fact, tenant, at, allocation)
            result = (self.holds(cond, value), value, detail)
        if allocation is None:
            self.cache[key] = result
        return result

    def holds(self, cond: FactCondition, value: FactValue) -> bool:
        if cond.kind == "flag":
            return bool(value)
        if value is None:
            return False
        target: object = cond.value
        if cond.ref == "site.country":
            target = self.inventory.site.country
        elif cond.ref == "concern_countries":
            target = self.inventory.concern_countries
        if cond.op in ("in", "not in"):
            assert isinstance(target, tuple)
            return (value in target) == (cond.op == "in")
        if cond.kind == "kyc":
            assert isinstance(value, str) and isinstance(target, str)
            return compare(KYC_LEVELS.index(value), cond.op, KYC_LEVELS.index(target))
        return compare(value, cond.op, target)


def compare(left: object, op: str | None, right: object) -> bool:
    """``left OP right`` for the comparison operators."""
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    assert isinstance(left, int | float) and isinstance(right, int | float)
    if op == ">=":
        return left >= right
    if op == ">":
        return left > right
    if op == "<=":
        return left <= right
    return left < right


