"""Lint a directory of signatures: errors that stop a run and warnings worth a look.

Errors: a file that does not load (bad YAML, unknown key, unknown metric, unit mismatch such
as a rate threshold on a byte metric), an id that differs from the file name, a duplicate id,
a condition that can never hold (``bytes_in < 0``, contradictory ranges under ``all``, a KYC
level below ``none``), an override naming an unknown signature. Warnings: two signatures with
the same window and condition structure (overlapping rules), a threshold no condition uses,
a high or critical signature without ATT&CK techniques.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from math import inf
from pathlib import Path
from typing import Literal

from egress.errors import SignatureError
from egress.signatures.compile import (
    KYC_LEVELS,
    AllocationStep,
    AllOf,
    AnyOf,
    FactCondition,
    MetricCondition,
    Node,
    NotOf,
    Signature,
    compile_signature,
)
from egress.signatures.load import (
    Overrides,
    load_overrides,
    read_signature,
    signature_files,
)

Level = Literal["error", "warning"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LintFinding:
    """One lint result; ``str()`` gives ``file:line: level: code: message``."""

    level: Level
    code: str
    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else f"{self.path}"
        return f"{where}: {self.level}: {self.code}: {self.message}"


def _from_error(exc: SignatureError, code: str = "invalid") -> LintFinding:
    path = exc.path if exc.path is not None else Path("?")
    text = str(exc)
    prefix = f"{exc.path}:{exc.line}: " if exc.line is not None else f"{exc.path}: "
    return LintFinding(level="error", code=code, path=path, line=exc.line,
                       message=text.removeprefix(prefix))


# -- conditions that can never hold -------------------------------------------------------

Interval = tuple[float, bool, float, bool]  # low, low included, high, high included


def _interval(leaf: MetricCondition | FactCondition) -> tuple[str, Interval] | None:
    """The values of the operand the leaf allows, intersected with the operand's domain."""
    if isinstance(leaf, MetricCondition):
        value: float = leaf.value
        domain: Interval = (0.0, True, inf, True)
        name = leaf.metric
    elif leaf.kind == "kyc" and isinstance(leaf.value, str) and leaf.op not in ("in", "not in"):
        value = float(KYC_LEVELS.index(leaf.value))
        domain = (0.0, True, float(len(KYC_LEVELS) - 1), True)
        name = leaf.fact
    elif leaf.kind == "number" and isinstance(leaf.value, int | float):
        value, domain, name = float(leaf.value), (0.0, True, inf, True), leaf.fact
    elif leaf.kind == "duration" and isinstance(leaf.value, int | float):
        value, domain, name = float(leaf.value), (-inf, True, inf, True), leaf.fact
    else:
        return None
    allowed: dict[str | None, Interval] = {
        ">=": (value, True, inf, True),
        ">": (value, False, inf, True),
        "<=": (-inf, True, value, True),
        "<": (-inf, True, value, False),
        "==": (value, True, value, True),
    }
    if leaf.op not in allowed:
        return None
    return name, _meet(allowed[leaf.op], domain)


def _meet(a: Interval, b: Interval) -> Interval:
    low, low_in = max((a[0], a[1]), (b[0], b[1]), key=lambda x: (x[0], not x[1]))
    high, high_in = min((a[2], a[3]), (b[2], b[3]), key=lambda x: (x[0], x[1]))
    return low, low_in, high, high_in


def _empty(i: Interval) -> bool:
    return i[0] > i[2] or (i[0] == i[2] and not (i[1] and i[3]))


def _never(node: Node) -> tuple[int, str] | None:
    """(line, reason) when ``node`` can never hold."""
    if isinstance(node, MetricCondition | FactCondition):
        if isinstance(node, FactCondition) and node.op == "in" and node.value == ():
            return node.line, f"{node.source!r}: the list is empty"
        found = _interval(node)
        if found is not None and _empty(found[1]):
            return node.line, f"{node.source!r} can never hold"
        return None
    if isinstance(node, NotOf):
        return None
    if isinstance(node, AnyOf):
        reasons = [_never(child) for child in node.children]
        if all(r is not None for r in reasons):
            return reasons[0]
        return None
    for child in node.children:
        reason = _never(child)
        if reason is not None:
            return reason
    ranges: dict[str, tuple[Interval, list[MetricCondition | FactCondition]]] = {}
    for child in node.children:
        if not isinstance(child, MetricCondition | FactCondition):
            continue
        found = _interval(child)
        if found is None:
            continue
        name, interval = found
        if name in ranges:
            merged, leaves = ranges[name]
            ranges[name] = (_meet(merged, interval), [*leaves, child])
        else:
            ranges[name] = (interval, [child])
        if _empty(ranges[name][0]):
            leaves = ranges[name][1]
            shown = " and ".join(repr(leaf.source) for leaf in leaves)
            return leaves[-1].line, f"all of {shown} cannot hold together"
    return None


# -- overlapping rules --------------------------------------------------------------------


def _shape(node: Node) -> str:
    if isinstance(node, MetricCondition):
        return f"{node.metric}{node.op}"
    if isinstance(node, FactCondition):
        value = node.value if node.kind not in ("number", "duration") else ""
        return f"{node.fact}{node.op or ''}{value}{node.ref or ''}"
    if isinstance(node, NotOf):
        return f"not({_shape(node.child)})"
    parts = sorted(_shape(child) for child in node.children)
    return f"{'all' if isinstance(node, AllOf) else 'any'}({','.join(parts)})"


def _fingerprint(signature: Signature) -> str:
    text = f"{signature.span}:{_shape(signature.condition)}"
    if signature.sequence is not None:
        for step in signature.sequence.steps:
            where = "allocation" if isinstance(step, AllocationStep) else step.span
            text += f";{where}:{_shape(step.condition)}"
    return text


def _first_line(node: Node) -> int | None:
    if isinstance(node, MetricCondition | FactCondition):
        return node.line
    if isinstance(node, NotOf):
        return _first_line(node.child)
    return _first_line(node.children[0])


def _nodes(signature: Signature) -> Iterator[Node]:
    yield signature.condition
    if signature.sequence is not None:
        yield from (step.condition for step in signature.sequence.steps)
    yield from (amp.condition for amp in signature.amplifiers)


# -- the lint -----------------------------------------------------------------------------


def lint_signatures(signatures: Iterable[Signature]) -> list[LintFinding]:
    """Checks on compiled signatures: never-holding conditions, overlaps, unused thresholds."""
    findings: list[LintFinding] = []
    seen: dict[str, Signature] = {}
    for signature in signatures:
        for node in _nodes(signature):
            reason = _never(node)
            if reason is not None:
                findings.append(LintFinding(level="error", code="never-holds",
                                            path=signature.path, line=reason[0],
                                            message=f"condition can never hold: {reason[1]}"))
        for name in signature.unused_thresholds:
            item = signature.threshold(name)
            findings.append(LintFinding(
                level="warning", code="unused-threshold", path=signature.path,
                line=item.line if not item.overridden else None,
                message=f"threshold {name!r} ({item.text}) "
                        "is not used by any condition",
            ))
        if signature.severity in ("high", "critical") and not signature.attack:
            findings.append(LintFinding(level="warning", code="no-attack", path=signature.path,
                                        line=1, message="no ATT&CK technique for a "
                                        f"{signature.severity} signature"))
        fingerprint = _fingerprint(signature)
        if fingerprint in seen:
            other = seen[fingerprint]
            findings.append(LintFinding(
                level="warning", code="overlap", path=signature.path,
                line=_first_line(signature.condition),
                message=f"same window ({signature.span}) and condition structure as "
                        f"{other.id!r} ({other.path.name}): one of them may be redundant",
            ))
        else:
            seen[fingerprint] = signature
    return findings


def lint_directory(directory: Path, *, overrides: Path | None = None) -> list[LintFinding]:
    """Lint every signature file of ``directory`` (with site ``overrides`` applied).

    Returns findings sorted by file and line; never raises SignatureError for a bad file
    (it becomes an ``invalid`` finding). A directory that does not exist is one error.
    """
    findings: list[LintFinding] = []
    site: Overrides | None = None
    if overrides is not None:
        try:
            site = load_overrides(overrides)
        except SignatureError as exc:
            findings.append(_from_error(exc))
    try:
        files = signature_files(directory)
    except SignatureError as exc:
        return [_from_error(exc)]
    compiled: list[Signature] = []
    first: dict[str, Path] = {}
    for path in files:
        try:
            model, source = read_signature(path)
        except SignatureError as exc:
            findings.append(_from_error(exc))
            continue
        if model.id != path.stem:
            findings.append(LintFinding(
                level="error", code="id-mismatch", path=path, line=source.line(("id",)),
                message=f"id {model.id!r} differs from the file name {path.stem!r}",
            ))
        if model.id in first:
            findings.append(LintFinding(
                level="error", code="duplicate-id", path=path, line=source.line(("id",)),
                message=f"id {model.id!r} is also used by {first[model.id].name}",
            ))
            continue
        first[model.id] = path
        values = site.values.get(model.id, {}) if site is not None else {}
        try:
            compiled.append(compile_signature(model, source, overrides=values))
        except SignatureError as exc:
            findings.append(_from_error(exc))
    if site is not None:
        for sig_id, line in site.lines.items():
            if sig_id not in first:
                findings.append(LintFinding(level="error", code="unknown-signature",
                                            path=site.path, line=line,
                                            message=f"no signature {sig_id!r} to override"))
    findings += lint_signatures(compiled)
    return sorted(findings, key=lambda f: (str(f.path), f.line or 0, f.code))
