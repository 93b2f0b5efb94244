"""Findings as Splunk HTTP Event Collector (HEC) event envelopes.

``{"time": <window end, epoch seconds>, "host": ..., "source": "egress",
"sourcetype": "egress:finding", "index": ... (only when given), "event": <ECS document>}``,
serialized without any newline so envelopes can be concatenated into one HEC batch body.
"""

from __future__ import annotations

from typing import Any

from egress.findings import Case, Finding
from egress.formats.ecs import (
    HAS_NATIVE,
    ecs_dict,
    ecs_native,
    native_json,
    stdlib_encode_json,
)

SOURCETYPE = "egress:finding"


def hec_envelope(finding: Finding, case: Case | None = None, *, host: str = "egress",
                 source: str = "egress", index: str | None = None) -> dict[str, Any]:
    """One finding wrapped for HEC's ``/services/collector/event`` endpoint."""
    return _envelope(finding, host, source, index, ecs_dict(finding, case))


def _envelope(finding: Finding, host: str, source: str, index: str | None, event: Any
              ) -> dict[str, Any]:
    out: dict[str, Any] = {"time": finding.window_end.timestamp(), "host": host,
                           "source": source, "sourcetype": SOURCETYPE}
    if index is not None:
        out["index"] = index
    out["event"] = event
    return out


def hec_json(finding: Finding, case: Case | None = None, *, host: str = "egress",
             source: str = "egress", index: str | None = None, newline: bool = False) -> str:
    """One HEC envelope as JSON on one line (no newline inside; one after if ``newline``)."""
    if HAS_NATIVE:
        text = native_json(_envelope(finding, host, source, index, ecs_native(finding, case)),
                           newline=newline)
        if text is not None:
            return text
    text = stdlib_encode_json(hec_envelope(finding, case, host=host, source=source,
                                           index=index))
    return text + "\n" if newline else text
