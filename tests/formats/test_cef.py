"""CEF lines: exact text, escaping, and a round trip through a strict CEF reader."""

from __future__ import annotations

import re

import pytest

from egress.formats.cef import CEF_SEVERITY, cef_line, extension_escape, header_escape
from tests.formats.test_alerts import NASTY, sample


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """Split a CEF line as the specification reads it (test-side reader)."""
    fields: list[str] = []
    current, i = "", 0
    while len(fields) < 7:
        ch = line[i]
        if ch == "\\" and line[i + 1] in "\\|":
            current += line[i + 1]
            i += 2
            continue
        if ch == "|":
            fields.append(current)
            current = ""
        else:
            current += ch
        i += 1
    ext = line[i:]
    # Keys are word characters before an unescaped '='; values run to the next key.
    keys = list(re.finditer(r"(?:^| )([A-Za-z0-9_]+)=(?<!\\=)", ext))
    out: dict[str, str] = {}
    for k, nxt in zip(keys, [*keys[1:], None], strict=True):
        raw = ext[k.end(): nxt.start() if nxt else len(ext)]
        out[k.group(1)] = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(
            m.group(1), m.group(1)), raw)
    return fields, out


def test_escapes() -> None:
    assert header_escape("a|b\\c=d\ne") == "a\\|b\\\\c=d e"
    assert extension_escape("a|b\\c=d\ne\rf\tg\x00") == "a|b\\\\c\\=d\\ne\\rf\tg "


def test_inbound_line() -> None:
    findings, cases = sample()
    f = findings[0]
    assert cef_line(f, cases[0]) == (
        "CEF:0|egress|egress|0.1.0|bulk-inbound-24h|Bulk inbound volume to one tenant in a day|8|"
        f"rt=1773187200000 start=1773100800000 end=1773187200000 externalId={f.id} act=alert "
        "deviceDirection=0 cat=T1105 in=412000000000000 src=198.18.0.7 cs1=t-new "
        "cs1Label=tenant cs2=New Rental Ltd cs2Label=tenantName "
        f"cs3={cases[0].id} cs3Label=caseId cs4=24h cs4Label=span cs5=medium "
        "cs5Label=signatureSeverity cs6=CN cs6Label=remoteCountry cn1=75 cn1Label=riskScore "
        "cn2=1 cn2Label=signatureVersion msg=Tenant t-new (New Rental Ltd) received 412 TB "
        "from 30 addresses in CN between 2026-03-10 00:00 and 2026-03-11 00:00 UTC (1 day) "
        "(threshold bytes_in >\\= 50 TB).")


def test_outbound_uses_out_and_dst() -> None:
    _, ext = parse_cef(cef_line(sample()[0][1]))
    assert (ext["out"], ext["dst"], ext["deviceDirection"], ext["cat"]) == (
        "2000000000000", "2001:db8::5", "1", "T1567,T1048")
    assert "in" not in ext and "src" not in ext and "cs3" not in ext


def test_nasty_strings_round_trip() -> None:
    findings, _ = sample()
    line = cef_line(findings[2], version="1|2\\3")
    assert "\n" not in line and "\r" not in line and "\x01" not in line
    header, ext = parse_cef(line)
    assert header[3] == "1|2\\3"
    assert header[5] == NASTY.replace("\n", " ").replace("\r", " ").replace("\x01", " ")
    assert header[6] == str(CEF_SEVERITY["high"])
    assert ext["msg"] == NASTY.replace("\x01", " ")
    assert ext["cs2"] == ext["msg"]
    assert ext["externalId"] == "00000000-0000-5000-8000-000000000000"


@pytest.mark.parametrize(("severity", "expected"), sorted(CEF_SEVERITY.items()))
def test_severity_is_0_to_10(severity: str, expected: int) -> None:
    import dataclasses

    f = dataclasses.replace(sample()[0][0], severity=severity)
    assert parse_cef(cef_line(f))[0][6] == str(expected)
    assert 0 <= expected <= 10
