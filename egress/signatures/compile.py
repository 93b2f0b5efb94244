"""Validated signature models -> compiled signatures: parsed conditions, resolved thresholds.

A condition leaf is one string, ``OPERAND [OP VALUE]``:

* ``bytes_in >= 50 TB`` or ``bytes_in >= $volume`` (a named threshold) for window metrics;
* ``tenant.age < 90d``, ``tenant.gpus >= 256``, ``tenant.kyc <= basic``,
  ``tenant.payment in [crypto, other]``, ``tenant.country != site.country``,
  ``tenant.parent_country in concern_countries`` for the tenant's context at ``window_end``;
* ``tenant.predecessor``, ``tenant.shared_identity``, ``tenant.offboarded`` (flags, no operator);
* ``allocation.gpus >= 256``, ``allocation.gpu_model in [H100, B200]`` in allocation steps.

Leaves combine with ``all: [...]``, ``any: [...]`` and ``not: ...``. Every fault raises
:class:`~egress.errors.SignatureError` at the file and line of the offending value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Literal

from egress.errors import SignatureError
from egress.signatures.schema import (
    AllocationStepModel,
    Severity,
    SignatureModel,
    Span,
    Status,
)
from egress.signatures.units import Kind, parse_duration, parse_quantity
from egress.yaml_lines import FieldPath

#: Window metrics (the windows contract) and the kind of value each holds.
METRICS: dict[str, Kind] = {
    "bytes_in": "bytes",
    "bytes_out": "bytes",
    "cross_border_bytes_in": "bytes",
    "cross_border_bytes_out": "bytes",
    "concern_bytes_in": "bytes",
    "concern_bytes_out": "bytes",
    "remote_addrs": "number",
    "remote_asns": "number",
    "flows": "number",
    "peak_rate_in_bps": "rate",
    "peak_rate_out_bps": "rate",
    "hours_above_rate": "number",
    "object_put_bytes": "bytes",
    "object_puts": "number",
    "drives_attached": "number",
    "drive_capacity_bytes": "bytes",
    "bytes_copied": "bytes",
    "max_transfer_duration_s": "duration",
    "quality_marked": "number",
}

FactKind = Literal["duration", "number", "kyc", "payment", "country", "flag", "word"]
#: Context facts: the tenant's at ``window_end``; ``allocation.*`` only in allocation steps.
FACTS: dict[str, FactKind] = {
    "tenant.age": "duration",
    "tenant.gpus": "number",
    "tenant.kyc": "kyc",
    "tenant.payment": "payment",
    "tenant.country": "country",
    "tenant.parent_country": "country",
    "tenant.predecessor": "flag",
    "tenant.shared_identity": "flag",
    "tenant.offboarded": "flag",
    "allocation.gpus": "number",
    "allocation.gpu_model": "word",
}
KYC_LEVELS = ("none", "basic", "verified", "enhanced")
PAYMENTS = ("card", "invoice", "wire", "crypto", "other")
SEVERITY_RISK: dict[str, int] = {
    "informational": 10,
    "low": 25,
    "medium": 50,
    "high": 75,
    "critical": 90,
}
COMPARISONS = (">=", ">", "<=", "<", "==", "!=")
Op = Literal[">=", ">", "<=", "<", "==", "!=", "in", "not in"]
Where = Literal["window", "allocation", "amplifier"]

_LEAF = re.compile(
    r"^\s*(?P<lhs>[a-z_][a-z0-9_.]*)\s*"
    r"(?:(?P<op>>=|<=|==|!=|>|<|not\s+in\b|in\b)\s*(?P<rhs>.*?))?\s*$"
)
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def format_path(path: FieldPath) -> str:
    """Render ``("condition", "all", 0)`` as ``condition.all[0]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


@dataclass(frozen=True, slots=True)
class Source:
    """A parsed file and how to find the line of a field path in it."""

    path: Path
    locate: Callable[[FieldPath], int]

    def line(self, field_path: FieldPath) -> int:
        """Line (1-based) where ``field_path`` stands."""
        return self.locate(field_path)

    def error(self, field_path: FieldPath, message: str) -> SignatureError:
        """A SignatureError at ``field_path``: ``file:line: field.path: message``."""
        field = format_path(field_path)
        text = f"{field}: {message}" if field else message
        return SignatureError(text, path=self.path, line=self.locate(field_path))


@dataclass(frozen=True, slots=True)
class Located:
    """A raw value and the file and line it was written at."""

    value: str | int | float
    path: Path
    line: int


# -- compiled forms -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Threshold:
    """A named threshold after overrides; ``value`` in base units (bytes, bits/s, s) or a word."""

    name: str
    value: int | float | str
    kind: Kind | Literal["word"]
    text: str
    reason: str
    overridden: bool
    path: Path
    line: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricCondition:
    """``metric OP value`` over a window metric; ``value`` in the metric's base unit."""

    metric: str
    op: Op
    value: int | float
    kind: Kind
    text: str
    threshold: str | None
    source: str
    line: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FactCondition:
    """A test of a context fact; ``op`` is ``None`` for a flag.

    ``value`` is seconds (age), a count, a KYC level, a payment, a country, a tuple of
    those for ``in``, or ``None`` when ``ref`` (``site.country``/``concern_countries``) is used.
    """

    fact: str
    kind: FactKind
    op: Op | None
    value: int | float | str | tuple[str, ...] | None
    ref: Literal["site.country", "concern_countries"] | None
    threshold: str | None
    source: str
    line: int


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every child holds."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one child holds."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class NotOf:
    """The child does not hold."""

    child: Node


Node = MetricCondition | FactCondition | AllOf | AnyOf | NotOf


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationStep:
    """A step met by a GPU allocation of the tenant, at the allocation's ``from`` time."""

    name: str
    condition: Node


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowStep:
    """A step met by a window of ``span`` whose condition holds."""

    name: str
    span: Span
    condition: Node


@dataclass(frozen=True, slots=True, kw_only=True)
class Sequence:
    """Earlier steps in order; the signature's own window is the final step ``final``."""

    within_s: float
    steps: tuple[AllocationStep | WindowStep, ...]
    final: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Amplifier:
    """Risk points added when a context condition holds."""

    name: str
    condition: Node
    points: int
    reason: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Signature:
    """A compiled signature, ready for :func:`egress.signatures.evaluate.evaluate`."""

    id: str
    title: str
    description: str
    severity: Severity
    version: int
    status: Status
    references: tuple[str, ...]
    attack: tuple[str, ...]
    span: Span
    thresholds: tuple[Threshold, ...]
    condition: Node
    sequence: Sequence | None
    base_risk: int
    amplifiers: tuple[Amplifier, ...]
    dedup_key: tuple[str, ...]
    suppress_s: float
    path: Path
    unused_thresholds: tuple[str, ...]

    def threshold(self, name: str) -> Threshold:
        """The threshold called ``name``; KeyError when there is none."""
        for item in self.thresholds:
            if item.name == name:
                return item
        raise KeyError(name)


# -- compiling ----------------------------------------------------------------------------


def _threshold(name: str, raw: Located, reason: str, overridden: bool) -> Threshold:
    def fail(message: str) -> SignatureError:
        where = "" if overridden else "thresholds."
        return SignatureError(f"{where}{name}: {message}", path=raw.path, line=raw.line)

    value = raw.value
    if isinstance(value, str) and not re.match(r"^\s*[+-]?[\d.]", value):
        return Threshold(
            name=name, value=value.strip(), kind="word", text=value.strip(), reason=reason,
            overridden=overridden, path=raw.path, line=raw.line,
        )
    try:
        quantity = parse_quantity(value)
    except ValueError as exc:
        raise fail(str(exc)) from None
    return Threshold(
        name=name, value=quantity.value, kind=quantity.kind, text=quantity.text, reason=reason,
        overridden=overridden, path=raw.path, line=raw.line,
    )


def _list(text: str) -> tuple[str, ...] | None:
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    items = [item.strip().strip("'\"") for item in text[1:-1].split(",")]
    return tuple(item for item in items if item)


class _Compiler:
    def __init__(self, source: Source, thresholds: Mapping[str, Threshold]) -> None:
        self.source = source
        self.thresholds = thresholds
        self.used: set[str] = set()

    def fail(self, field_path: FieldPath, message: str) -> SignatureError:
        return self.source.error(field_path, message)

    def node(self, raw: Any, field_path: FieldPath, where: Where) -> Node:
        if isinstance(raw, str):
            return self.leaf(raw, field_path, where)
        if isinstance(raw, dict) and len(raw) == 1:
            (key, value), = raw.items()
            if key in ("all", "any"):
                if not isinstance(value, list) or not value:
                    raise self.fail((*field_path, key), f"{key} takes a non-empty list")
                children = tuple(
                    self.node(item, (*field_path, key, i), where) for i, item in enumerate(value)
                )
                return AllOf(children) if key == "all" else AnyOf(children)
            if key == "not":
                return NotOf(self.node(value, (*field_path, key), where))
        raise self.fail(
            field_path,
            "a condition is a string such as 'bytes_in >= 50 TB' "
            "or a mapping with one key: all, any or not",
        )

    def resolve(
        self, rhs: str, field_path: FieldPath
    ) -> tuple[int | float | str, Kind | Literal["word"], str, Threshold | None]:
        if rhs.startswith("$"):
            name = rhs[1:]
            if name not in self.thresholds:
                known = ", ".join(sorted(self.thresholds)) or "none"
                raise self.fail(field_path, f"unknown threshold ${name} (defined: {known})")
            self.used.add(name)
            item = self.thresholds[name]
            return item.value, item.kind, item.text, item
        if re.match(r"^[+-]?[\d.]", rhs):
            try:
                quantity = parse_quantity(rhs)
            except ValueError as exc:
                raise self.fail(field_path, str(exc)) from None
            return quantity.value, quantity.kind, quantity.text, None
        return rhs.strip("'\""), "word", rhs, None

    def mismatch(
        self, field_path: FieldPath, operand: str, want: str, text: str, kind: str,
        threshold: Threshold | None,
    ) -> SignatureError:
        reads = "a number without unit" if kind == "number" else (
            "a word" if kind == "word" else f"a {kind} value"
        )
        message = f"unit mismatch: {operand} takes {want}, {text!r} is {reads}"
        if threshold is None:
            return self.fail(field_path, message)
        where = format_path(field_path)
        prefix = "" if threshold.overridden else "thresholds."
        return SignatureError(
            f"{prefix}{threshold.name}: {message} (used at {where})",
            path=threshold.path,
            line=threshold.line,
        )

    def leaf(self, text: str, field_path: FieldPath, where: Where) -> Node:
        found = _LEAF.match(text)
        if found is None:
            raise self.fail(field_path, f"cannot read condition {text!r} (OPERAND [OP VALUE])")
        lhs, raw_op, rhs = found["lhs"], found["op"], (found["rhs"] or "")
        op: Op | None = None if raw_op is None else " ".join(raw_op.split())  # type: ignore[assignment]
        line = self.source.line(field_path)
        if lhs in METRICS:
            if where != "window":
                raise self.fail(field_path, f"{lhs}: window metrics are not allowed here")
            return self.metric(lhs, op, rhs, text, field_path, line)
        if lhs not in FACTS:
            close = get_close_matches(lhs, [*METRICS, *FACTS], n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise self.fail(field_path, f"unknown metric or fact {lhs!r}{hint}")
        if lhs.startswith("allocation.") and where != "allocation":
            raise self.fail(field_path, f"{lhs} is only known in allocation steps")
        return self.fact(lhs, op, rhs, text, field_path, line)

    def metric(
        self, metric: str, op: Op | None, rhs: str, text: str, field_path: FieldPath, line: int
    ) -> MetricCondition:
        if op is None or op not in COMPARISONS or not rhs:
            raise self.fail(field_path, f"{metric} needs a comparison: >=, >, <=, <, == or !=")
        value, kind, shown, threshold = self.resolve(rhs, field_path)
        want = METRICS[metric]
        if isinstance(value, str) or kind not in (want, "number"):
            units = {"bytes": "bytes (50 TB)", "rate": "a rate (5 Gbit/s)",
                     "duration": "a duration (12h)", "number": "a plain number"}
            raise self.mismatch(field_path, metric, units[want], shown, kind, threshold)
        return MetricCondition(
            metric=metric, op=op, value=value, kind=want, text=shown,
            threshold=None if threshold is None else threshold.name, source=text.strip(),
            line=line,
        )

    def fact(
        self, fact: str, op: Op | None, rhs: str, text: str, field_path: FieldPath, line: int
    ) -> FactCondition:
        kind = FACTS[fact]

        def made(
            value: int | float | str | tuple[str, ...] | None,
            threshold: Threshold | None = None,
            ref: Literal["site.country", "concern_countries"] | None = None,
        ) -> FactCondition:
            return FactCondition(
                fact=fact, kind=kind, op=op, value=value, ref=ref,
                threshold=None if threshold is None else threshold.name, source=text.strip(),
                line=line,
            )

        if kind == "flag":
            if op is not None:
                raise self.fail(field_path, f"{fact} is a flag: write it alone, or under not")
            return made(None)
        if op is None or not rhs:
            raise self.fail(field_path, f"{fact} needs an operator and a value")
        if kind in ("duration", "number"):
            if op not in COMPARISONS:
                raise self.fail(field_path, f"{fact} takes >=, >, <=, <, == or !=")
            value, vkind, shown, threshold = self.resolve(rhs, field_path)
            if isinstance(value, str) or vkind != kind:
                want = "a duration (30d)" if kind == "duration" else "a plain number"
                raise self.mismatch(field_path, fact, want, shown, vkind, threshold)
            return made(value, threshold)
        items = _list(rhs)
        if op in ("in", "not in"):
            if kind == "country" and rhs.strip() == "concern_countries":
                return made(None, ref="concern_countries")
            if items is None:
                raise self.fail(field_path, f"{op} takes a list such as [a, b]")
            for item in items:
                self.check_word(fact, kind, item, field_path, None)
            return made(items)
        if kind in ("payment", "country", "word") and op not in ("==", "!="):
            raise self.fail(field_path, f"{fact} takes ==, !=, in or not in")
        if kind == "country" and rhs.strip() == "site.country":
            return made(None, ref="site.country")
        value, _, _, threshold = self.resolve(rhs, field_path)
        self.check_word(fact, kind, value, field_path, threshold)
        return made(value, threshold)

    def check_word(
        self, fact: str, kind: FactKind, value: object, field_path: FieldPath,
        threshold: Threshold | None,
    ) -> None:
        allowed: tuple[str, ...] | None = {"kyc": KYC_LEVELS, "payment": PAYMENTS}.get(kind)
        bad = None
        if allowed is not None and value not in allowed:
            bad = f"{fact} is one of {', '.join(allowed)}; got {value!r}"
        elif kind == "country" and not (isinstance(value, str) and _COUNTRY.match(value)):
            bad = (f"{fact} compares with a country code (two capitals), site.country "
                   f"or concern_countries; got {value!r}")
        elif not isinstance(value, str):
            bad = f"{fact} compares with a word; got {value!r}"
        if bad is None:
            return
        if threshold is None:
            raise self.fail(field_path, bad)
        prefix = "" if threshold.overridden else "thresholds."
        raise SignatureError(f"{prefix}{threshold.name}: {bad}", path=threshold.path,
                             line=threshold.line)


def _within(text: str, compiler: _Compiler, source: Source) -> float:
    """Seconds of ``sequence.within``: a duration or a ``$name`` duration threshold."""
    where: FieldPath = ("sequence", "within")
    value, kind, shown, threshold = compiler.resolve(text.strip(), where)
    if kind != "duration" or isinstance(value, str):
        raise compiler.mismatch(where, "sequence.within", "a duration (14d)", shown, kind,
                                threshold)
    return float(value)


def compile_signature(
    model: SignatureModel, source: Source, *, overrides: Mapping[str, Located] | None = None
) -> Signature:
    """Compile a validated signature, replacing thresholds by ``overrides`` (site values)."""
    overrides = overrides or {}
    thresholds: dict[str, Threshold] = {}
    for name, item in model.thresholds.items():
        raw = Located(item.value, source.path, source.line(("thresholds", name, "value")))
        if name in overrides:
            raw = overrides[name]
        thresholds[name] = _threshold(name, raw, item.reason, name in overrides)
    for name, raw in overrides.items():
        if name not in thresholds:
            known = ", ".join(sorted(thresholds)) or "none"
            raise SignatureError(
                f"{model.id}: no threshold {name!r} (thresholds: {known})",
                path=raw.path, line=raw.line,
            )
    compiler = _Compiler(source, thresholds)
    condition = compiler.node(model.condition, ("condition",), "window")
    sequence = None
    if model.sequence is not None:
        steps: list[AllocationStep | WindowStep] = []
        names = {model.sequence.final}
        for i, step in enumerate(model.sequence.steps):
            here: FieldPath = ("sequence", "steps", i)
            if step.name in names:
                raise source.error((*here, "name"), f"step name {step.name!r} is used twice")
            names.add(step.name)
            if isinstance(step, AllocationStepModel):
                node = compiler.node(step.allocation, (*here, "allocation"), "allocation")
                steps.append(AllocationStep(name=step.name, condition=node))
            else:
                node = compiler.node(step.condition, (*here, "condition"), "window")
                steps.append(WindowStep(name=step.name, span=step.window, condition=node))
        within = _within(model.sequence.within, compiler, source)
        sequence = Sequence(within_s=within, steps=tuple(steps), final=model.sequence.final)
    amplifiers = []
    for i, amp in enumerate(model.risk.amplifiers):
        node = compiler.node(amp.when, ("risk", "amplifiers", i, "when"), "amplifier")
        amplifiers.append(
            Amplifier(name=amp.name, condition=node, points=amp.points, reason=amp.reason)
        )
    try:
        suppress = parse_duration(model.dedup.suppress)
    except ValueError as exc:
        raise source.error(("dedup", "suppress"), str(exc)) from None
    return Signature(
        id=model.id,
        title=model.title,
        description=model.description,
        severity=model.severity,
        version=model.version,
        status=model.status,
        references=tuple(model.references),
        attack=tuple(model.attack),
        span=model.window,
        thresholds=tuple(thresholds.values()),
        condition=condition,
        sequence=sequence,
        base_risk=SEVERITY_RISK[model.severity] if model.risk.base is None else model.risk.base,
        amplifiers=tuple(amplifiers),
        dedup_key=tuple(model.dedup.key),
        suppress_s=suppress,
        path=source.path,
        unused_thresholds=tuple(sorted(set(thresholds) - compiler.used)),
    )
