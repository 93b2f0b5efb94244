"""Signature and override files in: YAML parsed with node marks, errors as ``file:line``.

:func:`load_signatures` reads every ``*.yaml``/``*.yml`` file of a directory, validates it
(:mod:`~egress.signatures.schema`), applies site overrides and compiles it. Every fault is a
:class:`~egress.errors.SignatureError` naming the file and line, e.g.
``signatures/bulk.yaml:12: condition.all[0]: unknown metric 'byte_in'``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from egress.errors import SignatureError
from egress.signatures.compile import (
    Located,
    Signature,
    Source,
    compile_signature,
)
from egress.signatures.schema import STEP_TAGS, SignatureModel
from egress.yaml_lines import FieldPath, YamlSyntaxError, line_of, parse_document


def read_yaml(path: Path) -> tuple[Any, Source]:
    """Parse one YAML document; returns its data and a :class:`Source` to locate paths."""
    try:
        data, root = parse_document(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SignatureError(f"cannot read: {exc.strerror}", path=path) from exc
    except YamlSyntaxError as exc:
        raise SignatureError(f"not valid YAML: {exc.problem}", path=path,
                             line=exc.line) from exc
    if root is None:
        raise SignatureError("the file is empty", path=path)
    node = root
    return data, Source(path, lambda field_path: line_of(node, field_path))


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    if error["type"] == "literal_error":
        return f"must be one of {error['ctx']['expected']}"
    if error["type"] == "string_pattern_mismatch":
        return f"{error['input']!r} does not match {error['ctx']['pattern']}"
    return str(error["msg"])


def read_signature(path: Path) -> tuple[SignatureModel, Source]:
    """Parse and validate one signature file (not yet compiled)."""
    data, source = read_yaml(path)
    if not isinstance(data, dict):
        raise SignatureError("a signature file holds one mapping", path=path, line=1)
    try:
        return SignatureModel.model_validate(data), source
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field_path: FieldPath = tuple(p for p in first["loc"] if isinstance(p, str | int))
        field_path = tuple(p for p in field_path if p not in STEP_TAGS)
        raise source.error(field_path, _message(first)) from exc


@dataclass(frozen=True, slots=True)
class Overrides:
    """Site overrides: per signature id, threshold name -> value, each with its place."""

    path: Path
    values: dict[str, dict[str, Located]]
    lines: dict[str, int]


def load_overrides(path: Path) -> Overrides:
    """Read an overrides file: ``{signature_id: {threshold_name: value}}``.

    Values are checked when the signatures are compiled (:func:`load_signatures`).
    """
    data, source = read_yaml(path)
    if not isinstance(data, dict):
        raise source.error((), "an overrides file maps signature ids to thresholds")
    values: dict[str, dict[str, Located]] = {}
    lines: dict[str, int] = {}
    for sig_id, entries in data.items():
        if not isinstance(sig_id, str):
            raise source.error((), f"signature id {sig_id!r} is not a string")
        if not isinstance(entries, dict) or not entries:
            raise source.error((sig_id,), "give a mapping of threshold names to values")
        lines[sig_id] = source.line((sig_id,))
        values[sig_id] = {}
        for name, value in entries.items():
            if not isinstance(name, str):
                raise source.error((sig_id,), f"threshold name {name!r} is not a string")
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise source.error((sig_id, name), "a threshold value is a number or a string")
            values[sig_id][name] = Located(value, source.path, source.line((sig_id, name)))
    return Overrides(path, values, lines)


def shipped_directory() -> Path:
    """The signatures egress ships: ``signatures/`` of a source tree, else the installed copy."""
    beside = Path(__file__).resolve().parent.parent.parent / "signatures"
    if beside.is_dir():
        return beside
    return Path(str(files("egress.shipped_signatures")))


def signature_files(directory: Path) -> list[Path]:
    """The signature files of ``directory``, sorted by name."""
    if not directory.is_dir():
        raise SignatureError("not a directory of signatures", path=directory)
    return sorted(
        p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()
    )


def load_signature(path: Path, overrides: Overrides | None = None) -> Signature:
    """Read, validate and compile one signature file; its id must equal the file name."""
    model, source = read_signature(path)
    if model.id != path.stem:
        raise source.error(("id",), f"id {model.id!r} differs from the file name {path.stem!r}")
    values = overrides.values.get(model.id, {}) if overrides is not None else {}
    return compile_signature(model, source, overrides=values)


def load_signatures(directory: Path, *, overrides: Path | None = None) -> tuple[Signature, ...]:
    """Load every signature of ``directory`` (sorted by id), with optional site overrides.

    Raises SignatureError (file:line) for the first invalid file, a duplicate id, or an
    override naming an unknown signature or threshold or giving a value of the wrong kind.
    """
    site = load_overrides(overrides) if overrides is not None else None
    found: dict[str, Signature] = {}
    for path in signature_files(directory):
        signature = load_signature(path, site)
        if signature.id in found:
            other = found[signature.id].path
            raise SignatureError(
                f"duplicate signature id {signature.id!r} (also {other})", path=path, line=1
            )
        found[signature.id] = signature
    if site is not None:
        for sig_id, line in site.lines.items():
            if sig_id not in found:
                raise SignatureError(
                    f"unknown signature {sig_id!r}", path=site.path, line=line
                )
    return tuple(found[key] for key in sorted(found))


__all__ = [
    "Overrides",
    "load_overrides",
    "load_signature",
    "load_signatures",
    "read_signature",
    "read_yaml",
    "signature_files",
]
