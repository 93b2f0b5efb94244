"""The alert formats by name: each renders one finding (and its case, if known) as one line.

``FORMATS[name](finding, case)`` returns the line with its trailing newline; a file of alerts
is ``fmt.header(opened=...)``, the lines, then ``fmt.footer(closed=...)`` (both empty except
for ``notice``, whose header and ``#close`` line are Zeek's). Names: ``ecs`` (ECS JSON),
``ocsf`` (OCSF Detection Finding JSON), ``cef`` (ArcSight CEF), ``notice`` (Zeek notice.log),
``hec`` (Splunk HEC envelope around the ECS document), ``json`` (egress's own finding JSON).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from egress.findings import Case, Finding
from egress.formats.cef import cef_line
from egress.formats.ecs import ecs_json
from egress.formats.findings_json import finding_json_line
from egress.formats.ocsf import ocsf_json
from egress.formats.splunk_hec import hec_json
from egress.formats.zeek_notice import notice_footer, notice_header, notice_line


def _none(*, opened: datetime | None = None, closed: datetime | None = None) -> str:
    return ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertFormat:
    """One alert format: a line renderer and the file's header and footer."""

    name: str
    line: Callable[[Finding, Case | None], str]
    header: Callable[..., str] = _none
    footer: Callable[..., str] = _none
    media_type: str = "application/x-ndjson"

    def __call__(self, finding: Finding, case: Case | None = None) -> str:
        return self.line(finding, case)


def _newline(render: Callable[[Finding, Case | None], str]) -> Callable[[Finding, Case | None],
                                                                          str]:
    def line(finding: Finding, case: Case | None) -> str:
        return render(finding, case) + "\n"
    return line


FORMATS: dict[str, AlertFormat] = {
    "ecs": AlertFormat(name="ecs", line=functools.partial(ecs_json, newline=True)),
    "ocsf": AlertFormat(name="ocsf", line=functools.partial(ocsf_json, newline=True)),
    "cef": AlertFormat(name="cef", line=_newline(cef_line), media_type="text/plain"),
    "notice": AlertFormat(name="notice", line=notice_line, header=notice_header,
                          footer=notice_footer, media_type="text/tab-separated-values"),
    "hec": AlertFormat(name="hec", line=functools.partial(hec_json, newline=True)),
    "json": AlertFormat(name="json", line=lambda finding, case: finding_json_line(finding)),
}


def render(name: str, finding: Finding, case: Case | None = None) -> str:
    """One finding as one line of format ``name``; raises ``KeyError`` for an unknown name."""
    try:
        fmt = FORMATS[name]
    except KeyError:
        raise KeyError(f"unknown alert format {name!r} (known: {', '.join(FORMATS)})") from None
    return fmt(finding, case)
