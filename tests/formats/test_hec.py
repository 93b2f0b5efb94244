"""Splunk HEC envelopes around the ECS document."""

from __future__ import annotations

import json

from egress.formats.ecs import ecs_dict
from egress.formats.splunk_hec import hec_envelope, hec_json
from tests.formats.test_alerts import sample


def test_envelope() -> None:
    findings, cases = sample()
    env = hec_envelope(findings[0], cases[0], host="kul-1-egress", index="security")
    assert {k: v for k, v in env.items() if k != "event"} == {
        "time": 1773187200.0, "host": "kul-1-egress", "source": "egress",
        "sourcetype": "egress:finding", "index": "security"}
    assert env["event"] == ecs_dict(findings[0], cases[0])


def test_no_index_unless_given_and_batches_concatenate() -> None:
    findings, _ = sample()
    lines = [hec_json(f) for f in findings]
    assert all("\n" not in line and "\r" not in line for line in lines)
    assert "index" not in json.loads(lines[2])
    decoder = json.JSONDecoder()
    body, pos, ids = "".join(lines), 0, []
    while pos < len(body):
        obj, pos = decoder.raw_decode(body, pos)
        ids.append(obj["event"]["event"]["id"])
    assert ids == [f.id for f in findings]
