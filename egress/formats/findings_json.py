"""Findings and cases as JSON: egress's own alert form (``egress analyze --out``).

Field names are the dataclasses' own, nested as they are; times are ISO 8601 in UTC with a
``Z``; nothing is omitted (unset is ``null``), so every line has the same shape.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

import orjson

from egress.findings import Case, Finding


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def finding_dict(finding: Finding) -> dict[str, Any]:
    """A finding as a JSON-ready dict."""
    out: dict[str, Any] = _plain(finding)
    return out


def case_dict(case: Case) -> dict[str, Any]:
    """A case as a JSON-ready dict."""
    out: dict[str, Any] = _plain(case)
    return out


def finding_json_line(finding: Finding) -> str:
    """One finding as one JSON line (with the trailing newline).

    orjson serializes the dataclasses directly (the same bytes as :func:`finding_dict`
    through the stdlib: field order, ``Z`` times, UTF-8); a finding it refuses (a lone
    surrogate, an integer beyond 64 bits) goes the stdlib way."""
    try:
        return orjson.dumps(finding, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(finding_dict(finding), separators=(",", ":"),
                          ensure_ascii=False) + "\n"


_ORJSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_APPEND_NEWLINE


def cases_json(cases: list[Case]) -> str:
    """All cases as one indented JSON document (a list)."""
    return json.dumps([case_dict(c) for c in cases], indent=2, ensure_ascii=False) + "\n"
