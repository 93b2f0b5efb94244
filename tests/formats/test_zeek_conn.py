"""Golden output of the conn.log and JSON renderers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from egress.formats.zeek_conn import conn_footer, conn_header, conn_line, conn_log, json_line
from egress.records import Flow

FLOW = Flow(
    uid="C00000000001", start=datetime(2026, 5, 20, 8, 0, 0, 123456, tzinfo=UTC),
    duration_s=12.5, orig_h="203.0.113.50", orig_p=51234, resp_h="10.42.7.15", resp_p=443,
    proto="tcp", ip_proto=6, conn_state="SF", history="ShADadFf",
    orig_pkts=10, orig_ip_bytes=5400, orig_bytes=5000, resp_pkts=8, resp_ip_bytes=320,
    resp_bytes=0, community_id="1:abc=", vni=4242, vlan=None, inner_vlan=None,
    tunnel_parents=("C0000000000A", "C0000000000B"),
)
SINGLE = Flow(
    uid="C00000000002", start=datetime(2026, 5, 20, 8, 0, 1, tzinfo=UTC), duration_s=0.0,
    orig_h="10.0.0.1", orig_p=0, resp_h="10.0.0.2", resp_p=0, proto="unknown_transport",
    ip_proto=132, conn_state="OTH", history="", orig_pkts=1, orig_ip_bytes=64, orig_bytes=0,
    resp_pkts=0, resp_ip_bytes=0, resp_bytes=0, community_id="1:def=", vlan=10, inner_vlan=20,
)
OPENED = datetime(2026, 11, 27, 5, 0, 0, tzinfo=UTC)


def test_conn_line_is_zeek_tsv() -> None:
    assert conn_line(FLOW) == (
        "1779264000.123456\tC00000000001\t203.0.113.50\t51234\t10.42.7.15\t443\ttcp\t-\t"
        "12.500000\t5000\t0\tSF\t-\t-\t-\tShADadFf\t10\t5400\t8\t320\t"
        "C0000000000A,C0000000000B\t6\t1:abc=\t-\t-\t4242\tF\n"
    )


def test_zero_duration_leaves_duration_and_bytes_unset_as_zeek_does() -> None:
    assert conn_line(SINGLE) == (
        "1779264001.000000\tC00000000002\t10.0.0.1\t0\t10.0.0.2\t0\tunknown_transport\t-\t"
        "-\t-\t-\tOTH\t-\t-\t-\t-\t1\t64\t0\t0\t-\t132\t1:def=\t10\t20\t-\tF\n"
    )


def test_header_and_footer() -> None:
    header = conn_header(opened=OPENED).splitlines()
    assert header[:6] == [
        "#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-",
        "#path\tconn", "#open\t2026-11-27-05-00-00",
    ]
    fields = header[6].split("\t")
    types = header[7].split("\t")
    assert fields[0] == "#fields" and types[0] == "#types"
    assert len(fields) == len(types) == 28
    assert fields[1:7] == ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"]
    assert conn_footer(closed=OPENED) == "#close\t2026-11-27-05-00-00\n"
    assert len(conn_line(FLOW).split("\t")) == len(fields) - 1


def test_conn_log_joins_the_parts() -> None:
    text = conn_log([FLOW, SINGLE], opened=OPENED, closed=OPENED)
    assert text.count("\n") == 8 + 2 + 1
    assert text.endswith("#close\t2026-11-27-05-00-00\n")


def test_json_line_uses_zeek_names_and_omits_unset() -> None:
    assert json.loads(json_line(FLOW)) == {
        "ts": 1779264000.123456, "uid": "C00000000001", "id.orig_h": "203.0.113.50",
        "id.orig_p": 51234, "id.resp_h": "10.42.7.15", "id.resp_p": 443, "proto": "tcp",
        "duration": 12.5, "orig_bytes": 5000, "resp_bytes": 0, "conn_state": "SF",
        "history": "ShADadFf", "orig_pkts": 10, "orig_ip_bytes": 5400, "resp_pkts": 8,
        "resp_ip_bytes": 320, "tunnel_parents": ["C0000000000A", "C0000000000B"],
        "ip_proto": 6, "community_id": "1:abc=", "vni": 4242, "interim": False,
    }
    single = json.loads(json_line(SINGLE))
    assert "duration" not in single and "history" not in single and "vni" not in single
    assert (single["vlan"], single["inner_vlan"]) == (10, 20)
