"""Findings as OCSF 1.8.0 Detection Finding events (class 2004, category Findings).

Each finding is one ``Create`` event (``activity_id`` 1, ``type_uid`` 200401), ``status_id``
1 (New), ``is_alert`` true. Times are epoch milliseconds: ``time`` is the window's end (as
ECS ``@timestamp``), ``start_time``/``end_time`` the window. ``severity_id`` 1-5 from the
finding's severity; ``risk_score`` the risk score, ``risk_level_id`` its severity (0 Info ..
4 Critical).

- ``finding_info``: ``uid`` (the stable finding id), ``title``, ``desc`` (the message),
  ``analytic`` (the signature: rule, its id and version), ``attacks`` (ATT&CK technique and
  tactic), ``first_seen_time``/``last_seen_time`` (the window).
- ``metadata``: OCSF ``version`` 1.8.0, ``product`` egress, ``uid`` the finding id,
  ``correlation_uid`` the case id when a case is given.
- ``resources``: the tenant (``type`` ``tenant``).
- ``evidences``: the evidence transfers, largest first: the remote endpoint (``src_endpoint``
  inbound, ``dst_endpoint`` outbound) with its country, and ``data`` with kind, times, bytes
  and where it was read (``where``: file:line); ``uid`` is its reference (Zeek uid or path).
- ``unmapped``: the ``egress`` object of :mod:`egress.formats.ecs` (metrics, facts, steps...)
  without the transfers (they are the evidences).
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from egress import __version__ as _egress_version
from egress.findings import SEVERITY_ORDER, Case, Finding, Transfer
from egress.formats.ecs import (
    ATTACK,
    HAS_NATIVE,
    egress_fields,
    iso,
    native_json,
    native_time,
    stdlib_encode_json,
    technique_url,
)

OCSF_VERSION = "1.8.0"
CLASS_UID = 2004
CATEGORY_UID = 2
ACTIVITY_CREATE = 1
_SEVERITY_CAPTION = {"informational": "Informational", "low": "Low", "medium": "Medium",
                     "high": "High", "critical": "Critical"}
_TYPE_UID = CLASS_UID * 100 + ACTIVITY_CREATE
_PRODUCT = {"name": "egress", "vendor_name": "egress", "version": _egress_version}
_orjson: Any = importlib.import_module("orjson") if HAS_NATIVE else None
#: ``metadata.product`` of the native path, encoded once.
_PRODUCT_JSON: Any = _orjson.Fragment(_orjson.dumps(_PRODUCT)) if HAS_NATIVE else None
_RISK_CAPTION = ("Info", "Low", "Medium", "High", "Critical")


def _attack(technique: str) -> dict[str, Any]:
    known = ATTACK.get(technique.split(".", maxsplit=1)[0])
    out: dict[str, Any] = {"technique": {
        "uid": technique, "name": known[0] if known else technique,
        "src_url": technique_url(technique)}}
    if known is not None:
        out["tactic"] = {"uid": known[1], "name": known[2],
                         "src_url": f"https://attack.mitre.org/tactics/{known[1]}/"}
    return out


def _attacks(attack: tuple[str, ...]) -> list[dict[str, Any]]:
    return [_attack(t) for t in attack]


@functools.lru_cache(maxsize=1024)
def _attacks_fragment(attack: tuple[str, ...]) -> Any:
    """``finding_info.attacks`` of ``attack`` as an ``orjson.Fragment`` (encoded once)."""
    return _orjson.Fragment(_orjson.dumps(_attacks(attack)))


_LOCATIONS: dict[str, Any] = {}  # country -> its ``location`` as an orjson.Fragment


def _location(country: str, native: bool) -> Any:
    """An evidence endpoint's ``location``: a new dict, or (``native``) a shared fragment."""
    if not native:
        return {"country": country}
    location = _LOCATIONS.get(country)
    if location is None:
        if len(_LOCATIONS) > 10_000:
            _LOCATIONS.clear()
        location = _LOCATIONS[country] = _orjson.Fragment(_orjson.dumps({"country": country}))
    return location


def _evidences(transfers: tuple[Transfer, ...], outbound: bool, native: bool
               ) -> list[dict[str, Any]]:
    side = "dst_endpoint" if outbound else "src_endpoint"
    when = native_time if native else iso
    out = []
    for t in transfers:  # one loop, no call per transfer: the bulk of an event
        data: dict[str, Any] = {"start": when(t.start), "end": when(t.end),
                                "bytes_in": t.bytes_in, "bytes_out": t.bytes_out}
        if t.where is not None:
            data["where"] = t.where
        if t.quality:
            data["quality"] = True
        evidence: dict[str, Any] = {"name": t.kind, "data": data}
        if t.ref is not None:
            evidence["uid"] = t.ref
        if t.remote_addr is not None:
            evidence[side] = ({"ip": t.remote_addr} if t.remote_country is None else
                              {"ip": t.remote_addr,
                               "location": _location(t.remote_country, native)})
        out.append(evidence)
    return out


def _document(finding: Finding, case: Case | None, native: bool) -> dict[str, Any]:
    """The OCSF event, plain (:func:`ocsf_dict`) or for :func:`native_json`."""
    start = round(finding.window_start.timestamp() * 1000)  # epoch ms
    end = round(finding.window_end.timestamp() * 1000)
    level = SEVERITY_ORDER.index(finding.severity)
    metadata: dict[str, Any] = {
        "version": OCSF_VERSION, "uid": finding.id, "log_name": "findings",
        "product": _PRODUCT_JSON if native else dict(_PRODUCT)}
    if case is not None:
        metadata["correlation_uid"] = case.id
    info: dict[str, Any] = {
        "uid": finding.id, "title": finding.title, "desc": finding.message,
        "analytic": {"uid": finding.signature_id, "name": finding.title, "type_id": 1,
                     "type": "Rule", "version": str(finding.signature_version)},
        "first_seen_time": start, "last_seen_time": end,
    }
    if finding.attack:
        info["attacks"] = (_attacks_fragment if native else _attacks)(finding.attack)
    resource: dict[str, Any] = {"uid": finding.tenant, "type": "tenant"}
    if finding.tenant_name is not None:
        resource["name"] = finding.tenant_name
    out: dict[str, Any] = {
        "activity_id": ACTIVITY_CREATE, "activity_name": "Create",
        "category_uid": CATEGORY_UID, "category_name": "Findings",
        "class_uid": CLASS_UID, "class_name": "Detection Finding",
        "type_uid": _TYPE_UID, "type_name": "Detection Finding: Create",
        "severity_id": level + 1,
        "severity": _SEVERITY_CAPTION[finding.severity],
        "status_id": 1, "status": "New", "is_alert": True,
        "time": end, "start_time": start, "end_time": end, "duration": end - start,
        "timezone_offset": 0,
        "message": finding.message,
        "risk_score": finding.risk_score, "risk_level_id": level,
        "risk_level": _RISK_CAPTION[level],
        "metadata": metadata, "finding_info": info, "resources": [resource],
    }
    if finding.transfers:
        out["evidences"] = _evidences(finding.transfers, finding.direction == "outbound",
                                      native)
    out["unmapped"] = {"egress": egress_fields(finding, case, transfers=False, native=native)}
    return out


def ocsf_dict(finding: Finding, case: Case | None = None) -> dict[str, Any]:
    """One finding as an OCSF Detection Finding (module doc for the mapping)."""
    return _document(finding, case, False)


def ocsf_json(finding: Finding, case: Case | None = None, *, newline: bool = False) -> str:
    """One finding as one OCSF JSON line (no newline inside; one at the end if ``newline``)."""
    if HAS_NATIVE:
        text = native_json(_document(finding, case, True), newline=newline)
        if text is not None:
            return text
    text = stdlib_encode_json(ocsf_dict(finding, case))
    return text + "\n" if newline else text
