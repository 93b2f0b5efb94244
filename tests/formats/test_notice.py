"""Zeek notice.log: exact header, escaping, and read back by zat and by egress's Zeek reader."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from egress.formats.zeek_notice import (
    NOTICE_FIELDS,
    note_name,
    notice_footer,
    notice_header,
    notice_line,
    zeek_escape,
)
from egress.sources.zeek import detect_zeek_log
from egress.sources.zeek_tsv import TsvHeader
from tests.formats.test_alerts import NASTY, all_lines, sample

OPENED = datetime(2026, 3, 26, tzinfo=UTC)

# The header Zeek 6/7 write for notice.log (default columns), verbatim.
ZEEK_HEADER = (
    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
    "#path\tnotice\n#open\t2026-03-26-00-00-00\n"
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tfuid\tfile_mime_type\t"
    "file_desc\tproto\tnote\tmsg\tsub\tsrc\tdst\tp\tn\tpeer_descr\tactions\temail_dest\t"
    "suppress_for\tremote_location.country_code\tremote_location.region\t"
    "remote_location.city\tremote_location.latitude\tremote_location.longitude\n"
    "#types\ttime\tstring\taddr\tport\taddr\tport\tstring\tstring\tstring\tenum\tenum\tstring\t"
    "string\taddr\taddr\tport\tcount\tstring\tset[enum]\tset[string]\tinterval\tstring\tstring\t"
    "string\tdouble\tdouble\n")


def test_header_is_zeeks() -> None:
    assert notice_header(opened=OPENED) == ZEEK_HEADER
    assert notice_footer(closed=OPENED) == "#close\t2026-03-26-00-00-00\n"


def test_note_names() -> None:
    assert note_name("bulk-inbound-24h") == "Egress::BulkInbound24h"
    assert note_name("new-tenant-gpu-bulk-arrival") == "Egress::NewTenantGpuBulkArrival"
    assert note_name("a_b") == "Egress::AB"


def test_escaping() -> None:
    assert zeek_escape("a\tb\nc\\d\x7f ü") == "a\\x09b\\x0ac\\x5cd\\x7f ü"
    assert zeek_escape("-") == "\\x2d"
    assert zeek_escape("(empty)") == "\\x28empty)"
    assert zeek_escape("") == "(empty)"
    assert zeek_escape("a,b", in_set=True) == "a\\x2cb"


def test_inbound_line() -> None:
    findings, cases = sample()
    cols = notice_line(findings[0], cases[0]).rstrip("\n").split("\t")
    assert len(cols) == len(NOTICE_FIELDS)
    row = dict(zip([n for n, _ in NOTICE_FIELDS], cols, strict=True))
    assert row == {
        "ts": "1773187200.000000", "uid": "CHhAvVGS1DHFjwGM9", "id.orig_h": "-",
        "id.orig_p": "-", "id.resp_h": "-", "id.resp_p": "-", "fuid": "-",
        "file_mime_type": "-", "file_desc": "-", "proto": "-",
        "note": "Egress::BulkInbound24h", "msg": findings[0].message,
        "sub": f"tenant=t-new risk=75 severity=high id={findings[0].id} case={cases[0].id}",
        "src": "198.18.0.7", "dst": "-", "p": "-", "n": "412000000000000", "peer_descr": "-",
        "actions": "Notice::ACTION_LOG", "email_dest": "(empty)", "suppress_for": "-",
        "remote_location.country_code": "CN", "remote_location.region": "-",
        "remote_location.city": "-", "remote_location.latitude": "-",
        "remote_location.longitude": "-"}


def test_egress_reader_reads_the_header(tmp_path: Path) -> None:
    path = tmp_path / "notice.log"
    path.write_text(all_lines("notice"), encoding="utf-8")
    assert detect_zeek_log(path) == "notice"
    header = TsvHeader()
    for line in path.read_bytes().splitlines():
        if line.startswith(b"#"):
            header = header.feed(line)
    assert header.path == "notice" and header.closed
    assert header.fields == tuple(n for n, _ in NOTICE_FIELDS)
    assert header.types == tuple(t for _, t in NOTICE_FIELDS)
    assert (header.conventions.unset, header.conventions.empty) == (b"-", b"(empty)")


def test_zat_reads_it_back(tmp_path: Path) -> None:
    zat = pytest.importorskip("zat.zeek_log_reader", reason="zat (bench extra) not installed")
    path = tmp_path / "notice.log"
    path.write_text(all_lines("notice"), encoding="utf-8")
    rows = list(zat.ZeekLogReader(str(path)).readrows())
    findings, _ = sample()
    assert [r["note"] for r in rows] == ["Egress::BulkInbound24h", "Egress::FollowOnOutbound",
                                         "Egress::BulkInbound24h"]
    assert rows[0]["src"] == "198.18.0.7"
    assert rows[1]["dst"] == "2001:db8::5"
    assert rows[0]["msg"] == findings[0].message
    assert rows[2]["msg"] == zeek_escape(NASTY)  # zat leaves Zeek's escapes as they are
    assert rows[0]["n"] == 412 * 10**12
