"""Findings as Elastic Common Schema (ECS 9.4) alert documents, one JSON object per finding.

Field choices (issue 6, point 4):

- ``@timestamp`` is the window's end: the earliest moment the finding could be made, and the
  same on every run over the same input (the run's own clock would break dedup).
  ``event.start``/``event.end`` are the window; ``event.created`` is not set (same reason).
- ``event.kind: alert``; ``event.category`` is ``intrusion_detection`` plus ``network`` when the
  finding's held metrics are network metrics; ``event.type: [info]`` (allowed for both).
- ``event.severity`` is OCSF's ``severity_id`` (1 informational .. 5 critical) of the
  finding's (effective) severity; ``event.risk_score`` the risk score (0-100).
- ``network.bytes`` is the main metric's value when it counts bytes (the main metric is the
  first held metric of the final step).
- ``source.*`` (inbound) or ``destination.*`` (outbound): the remote address and country of the
  largest evidence transfer when it carries more than half of the main metric's bytes.
  ``network.community_id`` is that transfer's Community ID when the source gave one (Zeek's
  ``community_id`` field, egress's own flows).
- ``threat.*``: MITRE ATT&CK techniques of the signature (names from :data:`ATTACK`; an id
  not in that table is its own name), with their tactics.
- ``egress.*`` (custom, not in ECS): ``case_id`` (when a case is given), ``tenant_name``,
  ``signature_severity``, ``span``, ``dedup_key``, ``suppressed``, ``risk_factors`` (name,
  points), ``metrics`` (step, metric, op, value against threshold, held), ``facts`` (fact,
  test, value, held, detail), ``steps`` (name, kind, start, end when not start, detail),
  ``countries`` and ``transfers`` (times, bytes, remote, ``where``: file and line, ``ref``:
  Zeek uid or path, ``quality`` only when marked). Unset values are omitted, never invented.
  The alert keeps what an analyst reads; the whole record (reasons, threshold names, each
  fact's time) is the native ``json`` format.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

from egress.findings import SEVERITY_ORDER, Case, Finding, Transfer
from egress.signatures.match import MetricEvidence

#: The ECS release the documents follow (``../shared/schemas/ecs_flat.yml``).
ECS_VERSION = "9.4.0"

#: ATT&CK technique id -> (name, tactic id, tactic name) for the shipped signatures' tags.
ATTACK: dict[str, tuple[str, str, str]] = {
    "T1105": ("Ingress Tool Transfer", "TA0011", "Command and Control"),
    "T1200": ("Hardware Additions", "TA0001", "Initial Access"),
    "T1567": ("Exfiltration Over Web Service", "TA0010", "Exfiltration"),
    "T1048": ("Exfiltration Over Alternative Protocol", "TA0010", "Exfiltration"),
    "T1585": ("Establish Accounts", "TA0042", "Resource Development"),
    "T1537": ("Transfer Data to Cloud Account", "TA0010", "Exfiltration"),
}

_NETWORK_METRICS = frozenset({
    "bytes_in", "bytes_out", "cross_border_bytes_in", "cross_border_bytes_out",
    "concern_bytes_in", "concern_bytes_out", "peak_rate_in_bps", "peak_rate_out_bps",
    "hours_above_rate", "max_transfer_duration_s", "remote_addrs", "remote_asns", "flows"})


def severity_id(severity: str) -> int:
    """OCSF ``severity_id`` of a severity name: 1 informational .. 5 critical."""
    return SEVERITY_ORDER.index(severity) + 1


_ZONE_UTC = ZoneInfo("UTC")  # what pyarrow gives for timestamp[us, tz=UTC] (cached by key)
_DAYS: dict[int, str] = {}  # proleptic ordinal -> "YYYY-MM-DDT" (the days alerts mention)


def iso(moment: datetime) -> str:
    """ISO 8601 with ``Z`` for UTC (microseconds only when not zero); other offsets kept.

    Alerts carry a dozen times each; building the date part once per day halves the cost of
    ``datetime.isoformat`` (see benchmarks/README.md). The orjson path of the JSON formats
    leaves UTC times to orjson, which writes them as this does (:func:`native_time`)."""
    tz = moment.tzinfo
    if tz is not _ZONE_UTC and tz is not UTC:
        if tz is None:
            raise ValueError(f"naive datetime {moment!r}: egress times are UTC-aware")
        if moment.utcoffset():
            return moment.isoformat()
    day = _DAYS.get(ordinal := moment.toordinal())
    if day is None:
        if len(_DAYS) > 100_000:
            _DAYS.clear()
        day = _DAYS[ordinal] = moment.date().isoformat() + "T"
    return day + moment.time().isoformat() + "Z"


def technique_url(technique: str) -> str:
    """The ATT&CK page of a technique (``T1567.002`` -> ``.../T1567/002/``)."""
    return "https://attack.mitre.org/techniques/" + technique.replace(".", "/") + "/"


def main_metric(finding: Finding) -> MetricEvidence | None:
    """The first held metric of the final step (the one the message leads with)."""
    final = finding.steps[-1].name if finding.steps else "match"
    for m in finding.metrics:
        if m.held and m.step == final:
            return m
    return None


def dominant_transfer(finding: Finding, main: MetricEvidence | None = None
                      ) -> Transfer | None:
    """The largest evidence transfer when it carries more than half of the main byte metric
    (``main``: :func:`main_metric`, computed when not given)."""
    main = main if main is not None else main_metric(finding)
    if main is None or main.kind != "bytes" or not finding.transfers or main.value <= 0:
        return None
    top = finding.transfers[0]
    moved = top.bytes_out if finding.direction == "outbound" else top.bytes_in
    return top if moved * 2 > main.value else None


#: How a builder writes a time: :func:`iso` (a string), or :func:`native_time` (the
#: datetime itself when orjson writes it as :func:`iso` would, for :func:`native_json`).
When: TypeAlias = Callable[[datetime], str | datetime]


def native_time(moment: datetime) -> str | datetime:
    """``moment`` itself when UTC (orjson's ``OPT_UTC_Z`` writes it byte for byte as
    :func:`iso`, tested), else :func:`iso` of it."""
    tz = moment.tzinfo
    return moment if tz is UTC or tz is _ZONE_UTC else iso(moment)


def _transfers(transfers: tuple[Transfer, ...], when: When) -> list[dict[str, Any]]:
    rows = []
    for t in transfers:  # one loop, no call per transfer: the bulk of a document
        row: dict[str, Any] = {"kind": t.kind, "start": when(t.start), "end": when(t.end),
                               "bytes_in": t.bytes_in, "bytes_out": t.bytes_out}
        if (value := t.remote_addr) is not None:
            row["remote_addr"] = value
        if (value := t.remote_country) is not None:
            row["remote_country"] = value
        if (value := t.where) is not None:
            row["where"] = value
        if (value := t.ref) is not None:
            row["ref"] = value
        if t.quality:
            row["quality"] = True
        if (value := t.community_id) is not None:
            row["community_id"] = value
        rows.append(row)
    return rows


def transfer_dict(t: Transfer) -> dict[str, Any]:
    """An evidence transfer; unset address, country, position or reference are omitted."""
    return _transfers((t,), iso)[0]


def _egress(finding: Finding, case: Case | None, transfers: bool, native: bool
            ) -> dict[str, Any]:
    when = native_time if native else iso
    out: dict[str, Any] = {}
    if case is not None:
        out["case_id"] = case.id
    if finding.tenant_name is not None:
        out["tenant_name"] = finding.tenant_name
    out["signature_severity"] = finding.signature_severity
    out["span"] = finding.span
    out["dedup_key"] = finding.dedup_key
    out["suppressed"] = finding.suppressed
    out["risk_factors"] = [{"name": r.name, "points": r.points} for r in finding.risk_factors]
    metrics = []
    for m in finding.metrics:
        metric = {"step": m.step, "metric": m.metric, "op": m.op, "value": m.value,
                  "kind": m.kind, "threshold": m.threshold,
                  "threshold_text": m.threshold_text, "held": m.held}
        if m.threshold_name is not None:
            metric["threshold_name"] = m.threshold_name
        metrics.append(metric)
    out["metrics"] = metrics
    facts = []
    for f in finding.facts:
        fact: dict[str, Any] = {"step": f.step, "fact": f.fact, "test": f.test,
                                "value": f.value, "held": f.held}
        if f.detail is not None:
            fact["detail"] = f.detail
        facts.append(fact)
    out["facts"] = facts
    steps = []
    for s in finding.steps:
        step: dict[str, Any] = {"name": s.name, "kind": s.kind, "start": when(s.start)}
        if s.end != s.start:
            step["end"] = when(s.end)
        if s.detail is not None:
            step["detail"] = s.detail
        steps.append(step)
    out["steps"] = steps
    # dicts even where a record has the same fields: orjson writes a dict ~7x faster
    out["countries"] = [{"country": c.country, "bytes_in": c.bytes_in, "bytes_out": c.bytes_out,
                         "remote_addrs": c.remote_addrs} for c in finding.countries]
    if transfers:
        out["transfers"] = _transfers(finding.transfers, when)
    return out


def egress_fields(finding: Finding, case: Case | None = None, *, transfers: bool = True,
                  native: bool = False) -> dict[str, Any]:
    """The documented custom ``egress`` object (module doc); ``transfers=False`` leaves the
    evidence transfers out (OCSF carries them as ``evidences``). ``native=True``: for
    :func:`native_json` only, UTC times left as datetimes (requires orjson)."""
    return _egress(finding, case, transfers, native)


def _threat(attack: tuple[str, ...]) -> dict[str, Any]:
    known = [ATTACK.get(t.split(".", maxsplit=1)[0]) for t in attack]
    tactics = dict.fromkeys((k[1], k[2]) for k in known if k is not None)
    threat: dict[str, Any] = {"framework": "MITRE ATT&CK", "technique": {
        "id": list(attack),
        "name": [k[0] if k is not None else t for t, k in zip(attack, known, strict=True)],
        "reference": [technique_url(t) for t in attack]}}
    if tactics:
        threat["tactic"] = {
            "id": [t for t, _ in tactics], "name": [n for _, n in tactics],
            "reference": [f"https://attack.mitre.org/tactics/{t}/" for t, _ in tactics]}
    return threat


def _document(finding: Finding, case: Case | None, native: bool) -> dict[str, Any]:
    """The ECS document, plain (:func:`ecs_dict`) or native (:func:`ecs_native`)."""
    when = native_time if native else iso
    main = main_metric(finding)
    start, end = when(finding.window_start), when(finding.window_end)
    tenant_name = finding.tenant_name
    doc: dict[str, Any] = {
        "@timestamp": end,
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "alert",
            "category": (["intrusion_detection", "network"]
                         if main is not None and main.metric in _NETWORK_METRICS
                         else ["intrusion_detection"]),
            "type": ["info"],
            "id": finding.id,
            "severity": severity_id(finding.severity),
            "risk_score": float(finding.risk_score),
            "start": start,
            "end": end,
            "duration": int((finding.window_end - finding.window_start).total_seconds()) * 10**9,
            "dataset": "egress.finding",
            "module": "egress",
        },
        "rule": {"id": finding.signature_id, "name": finding.title,
                 "version": str(finding.signature_version), "ruleset": "egress"},
        "message": finding.message,
        "cloud": {"account": {"id": finding.tenant} if tenant_name is None
                  else {"id": finding.tenant, "name": tenant_name}},
        "observer": {"vendor": "egress", "product": "egress", "type": "ids"},
    }
    net: dict[str, Any] = {"direction": finding.direction}
    if main is not None and main.kind == "bytes":
        net["bytes"] = int(main.value)
    doc["network"] = net
    top = dominant_transfer(finding, main)
    if top is not None:
        if top.community_id is not None:
            net["community_id"] = top.community_id
        if top.remote_addr is not None:
            peer: dict[str, Any] = {"ip": top.remote_addr}
            if top.remote_country is not None:
                peer["geo"] = {"country_iso_code": top.remote_country}
            doc["destination" if finding.direction == "outbound" else "source"] = peer
    if finding.attack:
        doc["threat"] = (_threat_fragment if native else _threat)(finding.attack)
    doc["egress"] = _egress(finding, case, True, native)
    return doc


def ecs_dict(finding: Finding, case: Case | None = None) -> dict[str, Any]:
    """One finding as an ECS document (nested objects, module doc for the choices)."""
    return _document(finding, case, False)


#: Compact UTF-8 JSON; the documents are trees, so the circular-reference check is skipped.
stdlib_encode_json: Callable[[Any], str] = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


def _encoder() -> Callable[[Any], str]:
    """orjson (a dependency: ten times the stdlib encoder), else the stdlib.

    Both write the same compact UTF-8 JSON for alert documents (floats may differ in form,
    ``1e+16`` against ``1e16``, never in value); a document orjson refuses (a lone surrogate,
    an integer beyond 64 bits) goes to the stdlib encoder."""
    if _dumps is None:
        return stdlib_encode_json
    dumps = _dumps

    def encode(doc: Any) -> str:
        try:
            return dumps(doc).decode()
        except _Refused:
            return stdlib_encode_json(doc)
    return encode


class _NoOrjson(Exception):
    """Never raised: stands for orjson's ``JSONEncodeError`` when orjson is absent."""


try:
    _orjson: Any = importlib.import_module("orjson")
except ImportError:  # pragma: no cover - orjson is a dependency
    _orjson = None
_dumps: Callable[..., bytes] | None = None if _orjson is None else _orjson.dumps
_Refused: type[Exception] = _NoOrjson if _orjson is None else _orjson.JSONEncodeError
#: Whether orjson is importable (:func:`native_json`, :func:`ecs_native` work).
HAS_NATIVE = _dumps is not None
#: orjson options of the native path: UTC datetimes as ``...Z`` (what :func:`iso` writes).
_TEXT = 0 if _orjson is None else _orjson.OPT_UTC_Z
_LINE = 0 if _orjson is None else _orjson.OPT_UTC_Z | _orjson.OPT_APPEND_NEWLINE

#: The JSON encoder of the alert formats (:func:`_encoder`).
encode_json = _encoder()


def native_json(doc: Any, *, newline: bool) -> str | None:
    """``doc`` (a document whose times may be UTC datetimes, :func:`native_time`) as compact
    JSON, ``newline`` appending one; ``None`` when orjson is absent or refuses the document
    (the caller then encodes the plain document with :data:`stdlib_encode_json`)."""
    if _dumps is None:
        return None
    try:
        return _dumps(doc, option=_LINE if newline else _TEXT).decode()
    except _Refused:
        return None


@functools.lru_cache(maxsize=1024)
def _threat_fragment(attack: tuple[str, ...]) -> Any:
    """The ``threat`` object of ``attack`` as an ``orjson.Fragment`` (encoded once)."""
    return _orjson.Fragment(_orjson.dumps(_threat(attack)))


def ecs_native(finding: Finding, case: Case | None = None) -> dict[str, Any]:
    """The ECS document for :func:`native_json` only: UTC times left as datetimes, ``threat``
    an ``orjson.Fragment`` (shared between documents: never modify it). Requires orjson."""
    return _document(finding, case, True)


def ecs_json(finding: Finding, case: Case | None = None, *, newline: bool = False) -> str:
    """One finding as one ECS JSON line (no newline inside; one at the end if ``newline``)."""
    if HAS_NATIVE:
        text = native_json(_document(finding, case, True), newline=newline)
        if text is not None:
            return text
    text = stdlib_encode_json(ecs_dict(finding, case))
    return text + "\n" if newline else text
