"""Any normalized record as one JSON line: what ``egress read`` shows of an input.

Field names are the record's own; times are ISO 8601 in UTC; provenance is
flattened to ``source.path`` / ``source.line`` / ``source.offset``; ``None``
fields are omitted. Each line carries ``record`` (the record type).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

from egress.records import Provenance


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def record_dict(record: Any) -> dict[str, Any]:
    """Return a record as a JSON-ready dict, unset fields omitted.

    A record is a dataclass instance, or a row dict of a columnar source that
    already names its ``record`` type.
    """
    if isinstance(record, dict) and "record" in record:
        return {k: _plain(v) for k, v in record.items() if v is not None}
    if not dataclasses.is_dataclass(record) or isinstance(record, type):
        raise TypeError(f"not a record: {record!r}")
    out: dict[str, Any] = {"record": type(record).__name__}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if value is None:
            continue
        if isinstance(value, Provenance):
            out["source.path"] = value.path
            if value.line is not None:
                out["source.line"] = value.line
            if value.offset is not None:
                out["source.offset"] = value.offset
            continue
        out[f.name] = _plain(value)
    return out


def record_json_line(record: Any) -> str:
    """Render a record as one JSON line (with the trailing newline)."""
    return json.dumps(record_dict(record), separators=(",", ":"), ensure_ascii=False) + "\n"
