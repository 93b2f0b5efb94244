"""OCSF Detection Findings: exact classification, and checked against the OCSF 1.8.0 files."""

from __future__ import annotations

import copy
import functools
from typing import Any

import pytest

from egress.formats.ocsf import ocsf_dict
from egress.formats.ocsf_check import OcsfSchema
from tests.formats.test_alerts import SHARED, sample

OCSF_DIR = SHARED / "schemas" / "ocsf"
needs_schema = pytest.mark.skipif(not OCSF_DIR.exists(),
                                  reason=f"{OCSF_DIR} absent (../shared not checked out)")


@functools.cache
def schema() -> OcsfSchema:
    return OcsfSchema(OCSF_DIR)


def test_classification() -> None:
    findings, cases = sample()
    event = ocsf_dict(findings[0], cases[0])
    assert {k: event[k] for k in (
        "class_uid", "category_uid", "activity_id", "type_uid", "severity_id", "severity",
        "status_id", "time", "start_time", "end_time", "risk_score", "risk_level_id")} == {
        "class_uid": 2004, "category_uid": 2, "activity_id": 1, "type_uid": 200401,
        "severity_id": 4, "severity": "High", "status_id": 1, "time": 1773187200000,
        "start_time": 1773100800000, "end_time": 1773187200000, "risk_score": 75,
        "risk_level_id": 3}
    assert event["metadata"]["version"] == "1.8.0"
    assert event["metadata"]["correlation_uid"] == cases[0].id
    info = event["finding_info"]
    assert (info["uid"], info["analytic"]) == (findings[0].id, {
        "uid": "bulk-inbound-24h", "name": "Bulk inbound volume to one tenant in a day",
        "type_id": 1, "type": "Rule", "version": "1"})
    assert info["attacks"] == [{
        "technique": {"uid": "T1105", "name": "Ingress Tool Transfer",
                      "src_url": "https://attack.mitre.org/techniques/T1105/"},
        "tactic": {"uid": "TA0011", "name": "Command and Control",
                   "src_url": "https://attack.mitre.org/tactics/TA0011/"}}]
    assert event["resources"] == [{"uid": "t-new", "type": "tenant", "name": "New Rental Ltd"}]
    assert event["evidences"][0]["src_endpoint"] == {"ip": "198.18.0.7",
                                                     "location": {"country": "CN"}}
    assert event["evidences"][0]["data"]["where"] == "conn.log:12"
    out = ocsf_dict(findings[1])
    assert out["evidences"][0]["dst_endpoint"]["ip"] == "2001:db8::5"
    assert "correlation_uid" not in out["metadata"] and "evidences" not in ocsf_dict(
        findings[2])


@needs_schema
def test_schema_version() -> None:
    assert schema().version == "1.8.0"


@needs_schema
def test_every_sample_conforms() -> None:
    findings, cases = sample()
    for finding in findings:
        assert schema().check(ocsf_dict(finding, cases[0])) == []
        assert schema().check(ocsf_dict(finding)) == []


def _broken(change: Any) -> list[str]:
    event = copy.deepcopy(ocsf_dict(sample()[0][0]))
    change(event)
    return schema().check(event)


@needs_schema
def test_the_checker_finds_faults() -> None:
    assert _broken(lambda e: e.pop("finding_info")) == [
        "finding_info: required attribute missing"]
    assert _broken(lambda e: e["finding_info"].pop("uid")) == [
        "finding_info.uid: required attribute missing"]
    assert _broken(lambda e: e.update(severity_id=7, severity="x")) == [
        "severity_id: 7 not in enum ['0', '1', '2', '3', '4', '5', '6', '99']"]
    assert _broken(lambda e: e.update(severity="Low")) == ["severity: 'Low' is not 'High'"]
    assert _broken(lambda e: e.update(type_uid=200402)) == [
        "type_uid: not class_uid * 100 + activity_id"]
    assert _broken(lambda e: e.update(time="2026-03-11")) == [
        "time: '2026-03-11' is not timestamp_t"]
    assert _broken(lambda e: e.update(bogus=1)) == ["bogus: not an attribute here"]
    assert _broken(lambda e: e["finding_info"]["analytic"].pop("type_id")) == [
        "finding_info.analytic.type_id: required attribute missing"]
    assert _broken(lambda e: e["evidences"][0].pop("src_endpoint") and e["evidences"][0].pop(
        "data")) == [
        "evidences[0].: needs at least one of actor, api, connection_info, data, database, "
        "databucket, device, dst_endpoint, email, file, process, query, resources, "
        "src_endpoint, url, user, job, script"]
    assert _broken(lambda e: e.update(cloud={"provider": "x"})) == [
        "cloud: profile cloud not applied"]
    assert _broken(lambda e: e["evidences"][0]["src_endpoint"].update(ip="not an ip")) == [
        "evidences[0].src_endpoint.ip: 'not an ip' does not match ip_t"]
    assert _broken(lambda e: e.update(type_name="x", class_name="y", category_name="z",
                                      activity_name="Update")) == [
        "category_name: 'z' is not 'Findings'", "class_name: 'y' is not 'Detection Finding'",
        "type_name: 'x' is not 'Detection Finding: Create'",
        "activity_name: 'Update' is not 'Create'"]
    assert _broken(lambda e: e.update(class_uid=9999)) == ["class_uid: no event class 9999"]
