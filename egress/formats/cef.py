"""Findings as ArcSight Common Event Format (CEF:0) lines.

``CEF:0|egress|egress|<egress version>|<signature id>|<title>|<severity 0-10>|<extension>``.
Header fields escape ``\\`` and ``|``; extension values escape ``\\``, ``=`` and line breaks
(``\\n``, ``\\r``), as the CEF specification requires; other control characters
except tab become spaces. Severity: informational 1, low 3,
medium 5, high 8, critical 10.

Extension keys: ``rt`` (the window's end, epoch milliseconds, as ``@timestamp`` in ECS),
``start``/``end`` (the window), ``externalId`` (finding id), ``msg``, ``cat`` (ATT&CK
techniques), ``act`` (``alert``), ``deviceDirection`` (0 inbound, 1 outbound), ``in``/``out``
(the main byte metric, by direction), ``src`` or ``dst`` (the dominant remote address, see
:func:`egress.formats.ecs.dominant_transfer`), and custom strings/numbers with labels:
``cs1`` tenant, ``cs2`` tenant name, ``cs3`` case id, ``cs4`` span, ``cs5`` signature
severity, ``cs6`` dominant remote country, ``cn1`` risk score, ``cn2`` signature version.
"""

from __future__ import annotations

import re

from egress import __version__ as _egress_version
from egress.findings import Case, Finding
from egress.formats.ecs import dominant_transfer, main_metric

#: CEF severity (0-10) of each finding severity.
CEF_SEVERITY = {"informational": 1, "low": 3, "medium": 5, "high": 8, "critical": 10}

# Other control characters (not tab) become spaces: syslog receivers choke on them.
_CONTROLS = {c: " " for c in (*range(0x20), 0x7F) if c != 0x09}
_HEADER = str.maketrans({**_CONTROLS, "\\": "\\\\", "|": "\\|"})
_EXTENSION = str.maketrans({**_CONTROLS, "\\": "\\\\", "=": "\\=", "\n": "\\n",
                            "\r": "\\r"})


_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]").search


def header_escape(text: str) -> str:
    """Escape a header field: ``\\`` and ``|``; control characters but tab become spaces."""
    if _CONTROL(text):
        return text.translate(_HEADER)
    return text.replace("\\", "\\\\").replace("|", "\\|")


def extension_escape(text: str) -> str:
    """Escape an extension value: ``\\``, ``=``, line breaks; other controls (not tab) become
    spaces."""
    if _CONTROL(text):
        return text.translate(_EXTENSION)
    return text.replace("\\", "\\\\").replace("=", "\\=")


def _ms(finding_time: float) -> str:
    return str(round(finding_time * 1000))


def cef_line(finding: Finding, case: Case | None = None, *, version: str = _egress_version
             ) -> str:
    """One finding as one CEF line (no trailing newline)."""
    head = "|".join((
        "CEF:0", "egress", "egress", header_escape(version), header_escape(finding.signature_id),
        header_escape(finding.title), str(CEF_SEVERITY[finding.severity])))
    ext: list[tuple[str, str]] = [
        ("rt", _ms(finding.window_end.timestamp())),
        ("start", _ms(finding.window_start.timestamp())),
        ("end", _ms(finding.window_end.timestamp())),
        ("externalId", finding.id),
        ("act", "alert"),
        ("deviceDirection", "1" if finding.direction == "outbound" else "0"),
    ]
    if finding.attack:
        ext.append(("cat", ",".join(finding.attack)))
    main = main_metric(finding)
    if main is not None and main.kind == "bytes":
        ext.append(("out" if finding.direction == "outbound" else "in", str(int(main.value))))
    top = dominant_transfer(finding, main)
    if top is not None and top.remote_addr is not None:
        ext.append(("dst" if finding.direction == "outbound" else "src", top.remote_addr))
    ext += [("cs1", finding.tenant), ("cs1Label", "tenant")]
    if finding.tenant_name is not None:
        ext += [("cs2", finding.tenant_name), ("cs2Label", "tenantName")]
    if case is not None:
        ext += [("cs3", case.id), ("cs3Label", "caseId")]
    ext += [("cs4", finding.span), ("cs4Label", "span"),
            ("cs5", finding.signature_severity), ("cs5Label", "signatureSeverity")]
    if top is not None and top.remote_country is not None:
        ext += [("cs6", top.remote_country), ("cs6Label", "remoteCountry")]
    ext += [("cn1", str(finding.risk_score)), ("cn1Label", "riskScore"),
            ("cn2", str(finding.signature_version)), ("cn2Label", "signatureVersion"),
            ("msg", finding.message)]
    return head + "|" + " ".join(f"{k}={extension_escape(v)}" for k, v in ext)
