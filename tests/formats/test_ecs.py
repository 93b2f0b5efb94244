"""ECS alert documents: exact fields, and every field known to ECS 9.4 with its type."""

from __future__ import annotations

import json
from typing import Any

import pytest

from egress.formats.ecs import ECS_VERSION, ecs_dict, ecs_json, severity_id
from tests.formats.test_alerts import SHARED, sample

ECS_FLAT = SHARED / "schemas" / "ecs_flat.yml"
needs_schema = pytest.mark.skipif(not ECS_FLAT.exists(),
                                  reason=f"{ECS_FLAT} absent (../shared not checked out)")


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_required_fields_inbound() -> None:
    findings, cases = sample()
    flat = flatten(ecs_dict(findings[0], cases[0]))
    assert {k: v for k, v in flat.items() if not k.startswith("egress.")} == {
        "@timestamp": "2026-03-11T00:00:00Z", "ecs.version": "9.4.0",
        "event.kind": "alert", "event.category": ["intrusion_detection", "network"],
        "event.type": ["info"], "event.id": findings[0].id, "event.severity": 4,
        "event.risk_score": 75.0, "event.start": "2026-03-10T00:00:00Z",
        "event.end": "2026-03-11T00:00:00Z", "event.duration": 86_400 * 10**9,
        "event.dataset": "egress.finding", "event.module": "egress",
        "rule.id": "bulk-inbound-24h", "rule.name": "Bulk inbound volume to one tenant in a day",
        "rule.version": "1", "rule.ruleset": "egress", "message": findings[0].message,
        "cloud.account.id": "t-new", "cloud.account.name": "New Rental Ltd",
        "observer.vendor": "egress", "observer.product": "egress", "observer.type": "ids",
        "network.direction": "inbound", "network.bytes": 412 * 10**12,
        # 300 TB of 412 TB came over one connection: it dominates.
        "source.ip": "198.18.0.7", "source.geo.country_iso_code": "CN",
        "threat.framework": "MITRE ATT&CK", "threat.technique.id": ["T1105"],
        "threat.technique.name": ["Ingress Tool Transfer"],
        "threat.technique.reference": ["https://attack.mitre.org/techniques/T1105/"],
        "threat.tactic.id": ["TA0011"], "threat.tactic.name": ["Command and Control"],
        "threat.tactic.reference": ["https://attack.mitre.org/tactics/TA0011/"],
    }
    assert flat["egress.case_id"] == cases[0].id
    assert flat["egress.transfers"][0]["where"] == "conn.log:12"
    assert [m["metric"] for m in flat["egress.metrics"]] == ["bytes_in"]
    assert flat["egress.metrics"][0]["threshold_text"] == "50 TB"


def test_outbound_puts_the_remote_in_destination() -> None:
    findings, _ = sample()
    doc = ecs_dict(findings[1])
    assert doc["network"] == {"direction": "outbound", "bytes": 2 * 10**12}
    assert doc["destination"] == {"ip": "2001:db8::5", "geo": {"country_iso_code": "SG"}}
    assert "source" not in doc and "case_id" not in doc["egress"]
    assert doc["event"]["severity"] == 5


def test_no_dominant_source_without_transfers() -> None:
    doc = ecs_dict(sample()[0][2])
    assert "source" not in doc and "destination" not in doc


def test_severity_ids() -> None:
    assert [severity_id(s) for s in ("informational", "low", "medium", "high", "critical")
            ] == [1, 2, 3, 4, 5]


def test_one_line() -> None:
    text = ecs_json(sample()[0][2])
    assert "\n" not in text
    assert json.loads(text)["message"] == sample()[0][2].message


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "keyword": (str,), "constant_keyword": (str,), "wildcard": (str,), "text": (str,),
    "match_only_text": (str,), "ip": (str,), "date": (str,), "long": (int,),
    "integer": (int,), "short": (int,), "byte": (int,), "unsigned_long": (int,),
    "float": (int, float), "scaled_float": (int, float), "double": (int, float),
    "boolean": (bool,), "flattened": (dict,), "object": (dict,),
}


@needs_schema
def test_every_field_is_in_ecs_with_its_type() -> None:
    import yaml

    schema: dict[str, Any] = yaml.safe_load(ECS_FLAT.read_text(encoding="utf-8"))
    assert f"ECS {ECS_VERSION}" in (ECS_FLAT.parent / "SOURCES.md").read_text(encoding="utf-8")
    findings, cases = sample()
    seen: set[str] = set()
    for finding in findings:
        for name, value in flatten(ecs_dict(finding, cases[0])).items():
            if name.startswith("egress."):
                continue
            seen.add(name)
            assert name in schema, f"{name} is not an ECS field"
            spec = schema[name]
            values = value if isinstance(value, list) else [value]
            if isinstance(value, list):
                assert "array" in spec["normalize"], f"{name} is not an array in ECS"
            for item in values:
                assert isinstance(item, _JSON_TYPES[spec["type"]]), (name, item, spec["type"])
                if spec["type"] in ("long", "float") and not isinstance(item, float):
                    assert not isinstance(item, bool)
            allowed = [a["name"] for a in spec.get("allowed_values", [])]
            if allowed:
                assert set(values) <= set(allowed), (name, values)
            expected = spec.get("expected_values")
            if expected:
                assert set(values) <= set(expected), (name, values)
    # event.type values must be expected for each category given.
    categories = {a["name"]: a.get("expected_event_types", [])
                  for a in schema["event.category"]["allowed_values"]}
    for finding in findings:
        event = ecs_dict(finding)["event"]
        for category in event["category"]:
            assert set(event["type"]) <= set(categories[category]), category
    assert {"source.ip", "destination.ip", "network.bytes", "threat.tactic.id"} <= seen


def test_iso_times() -> None:
    from datetime import UTC, datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    from egress.formats.ecs import iso

    assert iso(datetime(2026, 3, 10, 5, 6, 7, tzinfo=ZoneInfo("UTC"))) == "2026-03-10T05:06:07Z"
    assert iso(datetime(2026, 3, 10, 5, 6, 7, 5, tzinfo=UTC)) == (
        "2026-03-10T05:06:07.000005Z")
    assert iso(datetime(2026, 3, 10, tzinfo=timezone(timedelta(0)))) == "2026-03-10T00:00:00Z"
    assert iso(datetime(2026, 3, 10, 5, tzinfo=timezone(timedelta(hours=8)))) == (
        "2026-03-10T05:00:00+08:00")
    with pytest.raises(ValueError, match="naive datetime"):
        iso(datetime(2026, 3, 10))


def test_orjson_writes_what_the_stdlib_writes() -> None:
    orjson = pytest.importorskip("orjson", reason="orjson (optional accelerator) not installed")
    from egress.formats.ecs import stdlib_encode_json

    findings, cases = sample()
    for finding in findings:
        doc = ecs_dict(finding, cases[0])
        assert orjson.dumps(doc).decode() == stdlib_encode_json(doc)
    assert ecs_json(findings[0]) == stdlib_encode_json(ecs_dict(findings[0]))
