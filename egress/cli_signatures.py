"""``egress signatures lint | list | show``: the signature set on the command line.

Exit codes: 0 clean (lint may print warnings); 1 lint found errors; 2 a signature or
overrides file does not load (list, show), an unknown id, or a usage error.
"""

from __future__ import annotations

from pathlib import Path

import click

from egress.errors import SignatureError
from egress.signatures.compile import (
    AllocationStep,
    AllOf,
    AnyOf,
    FactCondition,
    MetricCondition,
    Node,
    NotOf,
    Signature,
)
from egress.signatures.lint import lint_directory
from egress.signatures.load import load_signatures, shipped_directory
from egress.signatures.units import format_duration, format_value

#: Shipped signatures: ``signatures/`` of a source checkout, else the installed copy.
DEFAULT_DIR = shipped_directory()


class _LoadFailed(click.ClickException):
    exit_code = 2

    def show(self, file: object = None) -> None:
        click.echo(f"egress: error: {self.message}", err=True)


def _directory(value: Path | None) -> Path:
    directory = DEFAULT_DIR if value is None else value
    if not directory.is_dir():
        raise _LoadFailed(f"{directory}: no signatures directory (give --dir)")
    return directory


def _load(directory: Path | None, overrides: Path | None) -> tuple[Signature, ...]:
    try:
        return load_signatures(_directory(directory), overrides=overrides)
    except SignatureError as exc:
        raise _LoadFailed(str(exc)) from exc


_DIR = click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
    help="Directory of signature files [default: signatures/ beside the package].",
)
_OVERRIDES = click.option(
    "--overrides", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Site overrides of thresholds (YAML: signature id -> threshold name -> value).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def signatures() -> None:
    """Lint, list and show detection signatures."""


@signatures.command()
@_DIR
@_OVERRIDES
def lint(directory: Path | None, overrides: Path | None) -> None:
    """Check every signature file; exit 1 when there are errors."""
    findings = lint_directory(_directory(directory), overrides=overrides)
    for finding in findings:
        click.echo(str(finding))
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    click.echo(f"{errors} error(s), {warnings} warning(s)", err=True)
    if errors:
        raise SystemExit(1)


@signatures.command(name="list")
@_DIR
@_OVERRIDES
def list_(directory: Path | None, overrides: Path | None) -> None:
    """One line per signature: id, severity, window, status, version, title."""
    for sig in _load(directory, overrides):
        click.echo(
            f"{sig.id:<32} {sig.severity:<13} {sig.span:<10} {sig.status:<12} "
            f"v{sig.version:<3} {sig.title}"
        )


def _leaf_text(node: MetricCondition | FactCondition) -> str:
    if isinstance(node, MetricCondition):
        shown = format_value(node.kind, node.value)
        name = f" (${node.threshold})" if node.threshold else ""
        return f"{node.metric} {node.op} {shown}{name}"
    if node.op is None:
        return node.fact
    if node.ref is not None:
        return f"{node.fact} {node.op} {node.ref}"
    value = node.value
    if isinstance(value, tuple):
        shown = "[" + ", ".join(value) + "]"
    elif node.kind == "duration" and isinstance(value, int | float):
        shown = format_duration(value)
    else:
        shown = str(value)
    name = f" (${node.threshold})" if node.threshold else ""
    return f"{node.fact} {node.op} {shown}{name}"


def condition_lines(node: Node, indent: str = "  ") -> list[str]:
    """The condition as indented lines, thresholds with their effective values."""
    if isinstance(node, MetricCondition | FactCondition):
        return [indent + _leaf_text(node)]
    if isinstance(node, NotOf):
        return [indent + "not:", *condition_lines(node.child, indent + "  ")]
    head = "all of:" if isinstance(node, AllOf) else "any of:"
    assert isinstance(node, AllOf | AnyOf)
    lines = [indent + head]
    for child in node.children:
        lines += condition_lines(child, indent + "  ")
    return lines


@signatures.command()
@click.argument("signature_id")
@_DIR
@_OVERRIDES
def show(signature_id: str, directory: Path | None, overrides: Path | None) -> None:
    """Everything about one signature, with site overrides applied."""
    found = {sig.id: sig for sig in _load(directory, overrides)}
    if signature_id not in found:
        raise _LoadFailed(f"no signature {signature_id!r} (see 'egress signatures list')")
    sig = found[signature_id]
    lines = [
        f"{sig.id}  v{sig.version}  {sig.status}  ({sig.path})",
        sig.title,
        f"severity: {sig.severity} (base risk {sig.base_risk})",
        f"window: {sig.span}",
        f"attack: {', '.join(sig.attack) or '-'}",
        "description: " + " ".join(sig.description.split()),
    ]
    lines += [f"reference: {ref}" for ref in sig.references]
    if sig.thresholds:
        lines.append("thresholds:")
        for item in sig.thresholds:
            mark = " (site override)" if item.overridden else ""
            lines.append(f"  {item.name} = {item.text}{mark}: {' '.join(item.reason.split())}")
    if sig.sequence is not None:
        lines.append(f"sequence within {format_duration(sig.sequence.within_s)}:")
        for step in sig.sequence.steps:
            where = "allocation" if isinstance(step, AllocationStep) else f"{step.span} window"
            lines.append(f"  step {step.name} ({where}):")
            lines += condition_lines(step.condition, "    ")
        lines.append(f"  then {sig.sequence.final} ({sig.span} window):")
        lines += condition_lines(sig.condition, "    ")
    else:
        lines.append("condition:")
        lines += condition_lines(sig.condition)
    for amp in sig.amplifiers:
        lines.append(f"risk {amp.points:+d} {amp.name}:")
        lines += condition_lines(amp.condition)
    suppress = format_duration(sig.suppress_s) if sig.suppress_s else "none"
    lines.append(f"dedup key: {', '.join(sig.dedup_key)}; suppress: {suppress}")
    click.echo("\n".join(lines))
