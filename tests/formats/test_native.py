"""The native (orjson) path of ECS, OCSF and HEC writes what the plain dicts and the stdlib
encoder write, byte for byte, including the times orjson formats itself."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from egress.findings import Case, Finding, Transfer
from egress.formats.ecs import ecs_dict, ecs_json, iso, native_time, stdlib_encode_json
from egress.formats.ocsf import ocsf_dict, ocsf_json
from egress.formats.splunk_hec import hec_envelope, hec_json
from egress.signatures.match import StepMatch
from tests.formats.test_alerts import sample

_UTC_Z = orjson.OPT_UTC_Z
_ZONES = [UTC, ZoneInfo("UTC"), timezone(timedelta(0)), timezone(timedelta(hours=8)),
          timezone(timedelta(hours=-5, minutes=-30)), ZoneInfo("Europe/London")]


def written(moment: datetime) -> str:
    """How the native path writes ``moment`` (orjson, UTC as ``Z``)."""
    return str(orjson.loads(orjson.dumps(native_time(moment), option=_UTC_Z)))


@pytest.mark.parametrize(("moment", "expected"), [
    (datetime(2026, 3, 10, tzinfo=UTC), "2026-03-10T00:00:00Z"),
    (datetime(2026, 3, 10, 5, 6, 7, 5, tzinfo=ZoneInfo("UTC")), "2026-03-10T05:06:07.000005Z"),
    (datetime(2024, 2, 29, 23, 59, 59, 100000, tzinfo=UTC), "2024-02-29T23:59:59.100000Z"),
    (datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "1969-12-31T23:59:59.999999Z"),
    (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z"),
    (datetime(999, 6, 1, 1, 2, 3, tzinfo=UTC), "0999-06-01T01:02:03Z"),
    (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "9999-12-31T23:59:59.999999Z"),
    (datetime(2026, 3, 10, tzinfo=timezone(timedelta(0))), "2026-03-10T00:00:00Z"),
    (datetime(2026, 3, 10, 5, tzinfo=timezone(timedelta(hours=8))), "2026-03-10T05:00:00+08:00"),
    (datetime(2026, 7, 1, 12, tzinfo=ZoneInfo("Europe/London")), "2026-07-01T12:00:00+01:00"),
    (datetime(2026, 1, 1, 12, tzinfo=ZoneInfo("Europe/London")), "2026-01-01T12:00:00Z"),
])
def test_times_exact(moment: datetime, expected: str) -> None:
    assert iso(moment) == expected
    assert written(moment) == expected


def test_only_utc_is_left_to_orjson() -> None:
    utc = datetime(2026, 3, 10, tzinfo=UTC)
    assert native_time(utc) is utc
    assert native_time(datetime(2026, 3, 10, tzinfo=ZoneInfo("UTC"))) == datetime(
        2026, 3, 10, tzinfo=UTC)
    assert native_time(datetime(2026, 1, 10, tzinfo=ZoneInfo("Europe/London"))) == (
        "2026-01-10T00:00:00Z")
    with pytest.raises(ValueError, match="naive datetime"):
        native_time(datetime(2026, 3, 10))


@settings(max_examples=400, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
       st.sampled_from(_ZONES))
@example(datetime(1970, 1, 1), UTC)
@example(datetime(2000, 2, 29, 0, 0, 0, 1), ZoneInfo("UTC"))
def test_times_differential(local: datetime, zone: timezone | ZoneInfo) -> None:
    moment = local.replace(tzinfo=zone)
    assert written(moment) == iso(moment)
    if zone in (UTC, _ZONES[1]):  # what iso() promises: isoformat, Z for UTC
        assert iso(moment) == moment.isoformat().removesuffix("+00:00") + "Z"


def variants() -> list[Finding]:
    """The sample findings, and ones that take every branch of the builders."""
    findings, _ = sample()
    first = findings[0]
    odd = Transfer(kind="object", start=datetime(2026, 3, 10, 1, tzinfo=ZoneInfo("UTC")),
                   end=datetime(2026, 3, 10, 9, 30, tzinfo=timezone(timedelta(hours=8))),
                   bytes_in=0, bytes_out=5, remote_addr=None, remote_country=None, where=None,
                   ref=None, quality=True, community_id="1:abc=")
    before_1970 = datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC)
    drive = StepMatch(name="drive", kind="allocation", start=before_1970, end=before_1970,
                      span=None, detail="x")
    steps = (drive, *first.steps)
    return [*findings,
            dataclasses.replace(first, transfers=(odd, *first.transfers), steps=steps,
                                attack=("T1567.002", "T9999"), tenant_name=None),
            dataclasses.replace(first, attack=(), countries=(), facts=(), risk_factors=(),
                                window_start=datetime(2024, 2, 29, tzinfo=ZoneInfo("UTC")),
                                window_end=datetime(2024, 3, 1, 0, 0, 0, 1, tzinfo=UTC))]


def plain_lines(finding: Finding, case: Case | None) -> list[str]:
    return [stdlib_encode_json(ecs_dict(finding, case)),
            stdlib_encode_json(ocsf_dict(finding, case)),
            stdlib_encode_json(hec_envelope(finding, case, index="sec"))]


def test_native_lines_are_the_plain_lines() -> None:
    _, cases = sample()
    for finding in variants():
        for case in (None, cases[0]):
            native = [ecs_json(finding, case), ocsf_json(finding, case),
                      hec_json(finding, case, index="sec")]
            assert native == plain_lines(finding, case)
            assert [ecs_json(finding, case, newline=True), ocsf_json(finding, case, newline=True),
                    hec_json(finding, case, index="sec", newline=True)] == [
                        line + "\n" for line in native]


def test_what_orjson_refuses_goes_to_the_stdlib() -> None:
    first = sample()[0][0]
    huge = dataclasses.replace(first.metrics[0], value=2**70)

    class Moment(datetime):
        """A datetime subclass: orjson refuses it, iso() writes it."""

    sub = Moment(2026, 3, 10, tzinfo=UTC)
    for finding in (dataclasses.replace(first, metrics=(huge,)),
                    dataclasses.replace(first, window_start=sub)):
        lines = [ecs_json(finding), ocsf_json(finding), hec_json(finding, index="sec")]
        assert lines == plain_lines(finding, None)
    assert json.loads(ecs_json(dataclasses.replace(first, metrics=(huge,))))[
        "network"]["bytes"] == 2**70


def test_without_orjson_the_lines_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    from egress.formats import ecs, ocsf, splunk_hec

    findings, cases = sample()
    native = [(ecs_json(f, cases[0], newline=True), ocsf_json(f, cases[0], newline=True),
               hec_json(f, cases[0], newline=True)) for f in findings]
    for module in (ecs, ocsf, splunk_hec):
        monkeypatch.setattr(module, "HAS_NATIVE", False)
    assert [(ecs_json(f, cases[0], newline=True), ocsf_json(f, cases[0], newline=True),
             hec_json(f, cases[0], newline=True)) for f in findings] == native
    assert all(line.endswith("}\n") for lines in native for line in lines)
