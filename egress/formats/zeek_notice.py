"""Findings as Zeek ``notice.log`` lines (TSV, with the header Zeek 6/7 write).

The columns are Zeek's default notice.log columns, in Zeek's order, so zeek-cut, zat and
SIEM Zeek parsers read the file as they read Zeek's own. A finding fills:

- ``ts``: the window's end; ``note``: ``Egress::<SignatureInCamelCase>``
  (``bulk-inbound-24h`` -> ``Egress::BulkInbound24h``); ``msg``: the message;
  ``sub``: ``tenant=<id> risk=<score> severity=<severity> id=<finding id>``;
- ``uid``/``id.*``/``proto``/``src``/``dst``/``remote_location.country_code``: from the
  dominant evidence transfer (:func:`egress.formats.ecs.dominant_transfer`): its Zeek uid
  (``ref``) when it is a network transfer, the remote address as ``src`` (inbound) or ``dst``
  (outbound), its country; ports, protocol and the local address are not known and stay unset;
- ``n``: the main byte metric; ``actions``: ``Notice::ACTION_LOG``; ``suppress_for``: unset.

Values are escaped as Zeek's ASCII writer does: the separator (tab), ``\\`` and
non-printable characters as ``\\xNN``; a string equal to ``-`` or ``(empty)`` has its first
character escaped; ``,`` inside a set element as ``\\x2c``.
"""

from __future__ import annotations

from datetime import datetime

from egress.findings import Case, Finding
from egress.formats.ecs import dominant_transfer, main_metric

NOTICE_FIELDS: tuple[tuple[str, str], ...] = (
    ("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
    ("id.resp_h", "addr"), ("id.resp_p", "port"), ("fuid", "string"),
    ("file_mime_type", "string"), ("file_desc", "string"), ("proto", "enum"),
    ("note", "enum"), ("msg", "string"), ("sub", "string"), ("src", "addr"), ("dst", "addr"),
    ("p", "port"), ("n", "count"), ("peer_descr", "string"), ("actions", "set[enum]"),
    ("email_dest", "set[string]"), ("suppress_for", "interval"),
    ("remote_location.country_code", "string"), ("remote_location.region", "string"),
    ("remote_location.city", "string"), ("remote_location.latitude", "double"),
    ("remote_location.longitude", "double"),
)
UNSET = "-"
EMPTY = "(empty)"

_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, ord("\\"))}
_ESCAPE = str.maketrans(_ESCAPES)
_SET_ESCAPE = str.maketrans({**_ESCAPES, ord(","): "\\x2c"})


def zeek_escape(text: str, *, in_set: bool = False) -> str:
    """Escape a string value as Zeek's ASCII writer does (module doc)."""
    out = text.translate(_SET_ESCAPE if in_set else _ESCAPE)
    if not out:
        return EMPTY  # Zeek writes an empty string as the empty-field marker
    if out in (UNSET, EMPTY):
        return f"\\x{ord(out[0]):02x}{out[1:]}"
    return out


def note_name(signature_id: str) -> str:
    """``Egress::`` and the signature id in CamelCase (``-``/``_`` separate words)."""
    words = signature_id.replace("_", "-").split("-")
    return "Egress::" + "".join(w[:1].upper() + w[1:] for w in words if w)


def _zeek_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d-%H-%M-%S")


def notice_header(*, opened: datetime) -> str:
    """The header block of a notice.log opened at ``opened``."""
    names = "\t".join(name for name, _ in NOTICE_FIELDS)
    types = "\t".join(kind for _, kind in NOTICE_FIELDS)
    return ("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
            f"#path\tnotice\n#open\t{_zeek_time(opened)}\n#fields\t{names}\n#types\t{types}\n")


def notice_footer(*, closed: datetime) -> str:
    """The ``#close`` line Zeek writes when a log is complete."""
    return f"#close\t{_zeek_time(closed)}\n"


def notice_line(finding: Finding, case: Case | None = None) -> str:
    """One finding as one notice.log line (with its trailing newline)."""
    main = main_metric(finding)
    top = dominant_transfer(finding, main)
    uid = src = dst = country = UNSET
    if top is not None:
        if top.kind == "network" and top.ref is not None:
            uid = zeek_escape(top.ref)
        if top.remote_addr is not None:
            if finding.direction == "outbound":
                dst = top.remote_addr
            else:
                src = top.remote_addr
        if top.remote_country is not None:
            country = zeek_escape(top.remote_country)
    n = str(int(main.value)) if main is not None and main.kind == "bytes" else UNSET
    sub = (f"tenant={finding.tenant} risk={finding.risk_score} severity={finding.severity} "
           f"id={finding.id}" + (f" case={case.id}" if case is not None else ""))
    cols = (
        f"{finding.window_end.timestamp():.6f}", uid, UNSET, UNSET, UNSET, UNSET, UNSET, UNSET,
        UNSET, UNSET, note_name(finding.signature_id),
        zeek_escape(finding.message), zeek_escape(sub), src, dst, UNSET, n, UNSET,
        "Notice::ACTION_LOG", EMPTY, UNSET, country, UNSET, UNSET, UNSET, UNSET,
    )
    return "\t".join(cols) + "\n"
