"""The native JSON form: orjson's output equals the stdlib's, byte for byte."""

from __future__ import annotations

import json

from egress.formats.findings_json import finding_dict, finding_json_line
from tests.formats.test_alerts import sample


def test_orjson_and_stdlib_write_the_same_line() -> None:
    findings, _ = sample()
    assert len(findings) == 3
    for finding in findings:
        slow = json.dumps(finding_dict(finding), separators=(",", ":"), ensure_ascii=False)
        assert finding_json_line(finding) == slow + "\n"
        assert json.loads(slow)["id"] == finding.id
