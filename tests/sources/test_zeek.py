"""Zeek log reader: corpus logs and generated logs, exact outputs.

Corpus cases (skipped when ../shared is absent) pin row counts, column sums,
line numbers and issues for every conn.log of the zeek__* btest baselines (ts
masked by btest: kept as null, counted as ``masked_ts``), zat's old Bro TSV
logs (gzip, corrupt gzip, empty log), Slips' hand-edited JSON directory and
Filebeat's JSON rows (ISO ts, no trailing newline). Generated logs cover long
connections (a week-long upload), rotated directories, repeated headers, set /
empty / unset fields and every kind of bad input.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from egress.columns import (
    CONN_SCHEMA,
    DELTA_COLUMNS,
    ENRICHED_CONN_SCHEMA,
    TOTAL_COLUMNS,
    batch_log,
    batch_path,
)
from egress.errors import SourceError
from egress.formats.zeek_conn import (
    STANDARD_CONN_FIELDS,
    conn_footer,
    conn_header,
    conn_line,
    json_line,
)
from egress.records import Flow, Issue
from egress.sources.zeek import (
    Enrichment,
    EnrichmentIndex,
    HttpRequest,
    ZeekLogReader,
    attach_enrichment,
    detect_zeek_log,
    read_enrichment,
)
from egress.sources.zeek_files import CONN_LOGS, log_files

CONN_FIELDS = tuple(name for name, _ in STANDARD_CONN_FIELDS)
CONN_TYPES = tuple(kind for _, kind in STANDARD_CONN_FIELDS)
T0 = 1_714_521_600  # 2024-05-01 00:00:00 UTC


def header(path: str = "conn", fields: Sequence[str] = CONN_FIELDS,
           types: Sequence[str] = CONN_TYPES) -> str:
    return ("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
            f"#path\t{path}\n#open\t2024-05-01-00-00-00\n#fields\t" + "\t".join(fields)
            + "\n#types\t" + "\t".join(types) + "\n")


def row(ts: float, uid: str, *, orig: str = "10.0.0.5", resp: str = "192.0.2.80",
        resp_p: int = 443, duration: str = "1.000000", orig_bytes: str = "100",
        resp_bytes: str = "2000", orig_pkts: str = "3", orig_ip: str = "300",
        resp_pkts: str = "4", resp_ip: str = "2200", service: str = "ssl",
        tunnel: str = "-", state: str = "SF") -> str:
    return "\t".join((f"{ts:.6f}", uid, orig, "40000", resp, str(resp_p), "tcp", service,
                      duration, orig_bytes, resp_bytes, state, "T", "F", "0", "ShADadFf",
                      orig_pkts, orig_ip, resp_pkts, resp_ip, tunnel, "6")) + "\n"


def write(path: Path, text: str | bytes, *, gz: bool = False) -> Path:
    data = text.encode() if isinstance(text, str) else text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def read(paths: Iterable[Path | str], **kwargs: object) -> tuple[pa.Table, ZeekLogReader]:
    reader = ZeekLogReader(**kwargs)  # type: ignore[arg-type]
    batches = list(reader.read_conn(paths))
    table = (pa.Table.from_batches(batches) if batches
             else CONN_SCHEMA.empty_table())
    return table, reader


def issues(reader: ZeekLogReader) -> list[tuple[str, str, int, int | None, str]]:
    return [(Path(i.path).name, i.kind, i.count, i.first_offset, i.detail)
            for i in reader.stats.issues]


def ts(seconds: float) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=round(seconds * 1e6))


# ------------------------------------------------------------------ corpus: btest baselines

# case: (rows, sum orig_ip_bytes, sum resp_ip_bytes, sum orig_bytes, rows with duration);
# cross-checked against a plain split of each file.
BTEST = {
    "zeek__cisco-fabric-path/conn.log": (64, 5120, 0, 0, 64),
    "zeek__dhcp-all-msg-types/conn.log": (4, 2056, 790, 1560, 1),
    "zeek__ftp-gridftp/conn.log": (2, 8124, 11275, 6600, 2),
    "zeek__ftp-ipv6/conn.log": (6, 6705, 7870, 729, 6),
    "zeek__http-concurrent-range-requests/conn.log": (3, 1993, 32240, 345, 3),
    "zeek__http-no-crlf/conn.log": (1, 52601, 1528477, 36349, 1),
    "zeek__modbus-and-non-modbus-p502/conn.log": (8, 2954, 1754, 502, 8),
    "zeek__pcapng-multi-interface/conn.log": (3, 194, 520, 110, 3),
    "zeek__pop3-basic/conn.log": (11, 2800, 23243, 344, 11),
    "zeek__pppoe-over-qinq/conn.log": (1, 25283, 13001, 11352, 1),
    "zeek__q-in-q/conn.log": (2, 700, 0, 588, 2),
    "zeek__q-in-q/conn.vlan-logging.log": (2, 700, 0, 588, 2),
    "zeek__ssh-basic/conn.log": (25, 108321, 1157950, 60961, 23),
    "zeek__ssh-half-duplex-client/conn.log": (25, 98131, 0, 54315, 25),
    "zeek__tunnels-gre-in-gre/conn.log": (3, 31528, 31200, 22680, 3),
    "zeek__tunnels-gre/conn.log": (7, 2448, 2763, 1508, 7),
    "zeek__tunnels-teredo/conn.log": (21, 8681, 28978, 6181, 13),
    "zeek__tunnels-vxlan/conn.log": (5, 1564, 336, 1072, 3),
    "zeek__unknown-ip-protocol-sctp/conn.log": (1, 33256, 33524, 0, 1),
    "zeek__wikipedia/conn.log": (34, 13571, 9325, 9609, 28),
}


def test_every_btest_conn_log_is_listed(corpus: Path) -> None:
    found = {str(p.relative_to(corpus)) for p in corpus.glob("zeek__*/conn*.log")}
    assert found == set(BTEST)


@pytest.mark.parametrize("case", sorted(BTEST))
def test_btest_baseline(corpus: Path, case: str) -> None:
    table, reader = read([corpus / case])
    rows, orig_ip, resp_ip, orig_bytes, with_duration = BTEST[case]
    assert table.num_rows == rows
    assert pc.sum(table["orig_ip_bytes"]).as_py() == orig_ip
    assert (pc.sum(table["resp_ip_bytes"]).as_py() or 0) == resp_ip
    assert (pc.sum(table["orig_bytes"]).as_py() or 0) == orig_bytes
    assert pc.count(table["duration_s"]).as_py() == with_duration
    # btest masks ts: kept as null (never 1970), each counted; line 1 is btest's banner.
    assert table["ts"].null_count == rows
    assert table["line"].to_pylist() == list(range(10, 10 + rows))
    assert issues(reader) == [("conn" + case.split("/conn")[1], "masked_ts", rows, 10,
                               "lines " + ", ".join(map(str, range(10, 10 + min(rows, 5)))))]
    # Without interim records, each record counts in full.
    for total, delta in zip(TOTAL_COLUMNS, DELTA_COLUMNS, strict=True):
        assert table[delta].equals(table[total])
    assert reader.stats.interim_rows == 0


def test_btest_wikipedia_rows(corpus: Path) -> None:
    table, _ = read([corpus / "zeek__wikipedia/conn.log"])
    first = table.slice(0, 1).to_pylist()[0]
    assert first == {
        "ts": None, "uid": "CHhAvVGS1DHFjwGM9", "orig_h": "141.142.220.202", "orig_p": 5353,
        "resp_h": "224.0.0.251", "resp_p": 5353, "proto": "udp", "service": "dns",
        "duration_s": None, "orig_bytes": None, "resp_bytes": None, "conn_state": "S0",
        "local_orig": False, "local_resp": True, "missed_bytes": 0, "history": "D",
        "orig_pkts": 1, "orig_ip_bytes": 73, "resp_pkts": 0, "resp_ip_bytes": 0,
        "tunnel_parents": None, "ip_proto": 17, "community_id": None, "vlan": None,
        "delta_since": None,
        "inner_vlan": None, "vni": None, "interim": False, "delta_orig_bytes": None,
        "delta_resp_bytes": None, "delta_orig_pkts": 1, "delta_resp_pkts": 0,
        "delta_orig_ip_bytes": 73, "delta_resp_ip_bytes": 0, "line": 10,
    }
    last = table.slice(33, 1).to_pylist()[0]
    assert (last["uid"], last["history"], last["orig_pkts"], last["resp_ip_bytes"],
            last["line"]) == ("CFSwNi4CNGxcuffo49", "^h", 0, 48, 43)


def test_btest_vlan_logging_and_tunnel_parents(corpus: Path) -> None:
    table, _ = read([corpus / "zeek__q-in-q/conn.vlan-logging.log"])
    assert table.select(["orig_h", "resp_h", "vlan", "inner_vlan", "ip_proto"]).to_pylist() == [
        {"orig_h": "172.19.51.37", "resp_h": "172.19.51.63", "vlan": 13, "inner_vlan": 10,
         "ip_proto": 17},
        {"orig_h": "193.1.186.60", "resp_h": "224.2.127.254", "vlan": 13, "inner_vlan": 10,
         "ip_proto": 17},
    ]
    table, _ = read([corpus / "zeek__tunnels-vxlan/conn.log"])
    assert table["tunnel_parents"].to_pylist() == [
        ["CUM0KZ3MLUfNB0cl11", "C4J4Th3PJpwUYZZ6gc"], None, None, None, None]


# ------------------------------------------------------------------ corpus: zat (old Bro TSV)


def test_zat_conn_old_bro_header(corpus: Path) -> None:
    table, reader = read([corpus / "zat__data-tsv/conn.log"])
    assert table.num_rows == 360
    assert pc.sum(table["orig_ip_bytes"]).as_py() == 231691
    assert pc.sum(table["resp_ip_bytes"]).as_py() == 5267302
    assert pc.sum(table["orig_bytes"]).as_py() == 105343
    assert pc.count(table["duration_s"]).as_py() == 211
    # 20-column layout: no local_resp, no ip_proto; sets typed table[string], all (empty).
    assert table["local_resp"].null_count == 360
    assert table["ip_proto"].null_count == 360
    assert set(map(tuple, table["tunnel_parents"].to_pylist())) == {()}
    assert table.slice(0, 1).select(
        ["ts", "uid", "resp_h", "duration_s", "orig_bytes", "resp_bytes", "conn_state",
         "local_orig", "history", "line"]).to_pylist() == [{
            "ts": datetime(2013, 9, 15, 23, 44, 27, 706265, tzinfo=UTC),
            "uid": "CoyZrY2g74UvMMgp4a", "resp_h": "54.245.228.191", "duration_s": 0.44746,
            "orig_bytes": 601, "resp_bytes": 38393, "conn_state": "RSTO", "local_orig": None,
            "history": "ShADadR", "line": 9}]
    assert issues(reader) == []


def test_zat_conn_date_issue(corpus: Path) -> None:
    table, reader = read([corpus / "zat__data-tsv/conn_date_issue.log"])
    assert table.select(["ts", "uid", "service", "duration_s", "resp_bytes", "conn_state",
                         "tunnel_parents", "line"]).to_pylist() == [
        {"ts": datetime(2022, 3, 17, 8, 7, 36, 38126, tzinfo=UTC), "uid": "CLZwfq2hHnVH2XKvQg",
         "service": None, "duration_s": None, "resp_bytes": None, "conn_state": "SH",
         "tunnel_parents": None, "line": 9},
        {"ts": datetime(2022, 3, 17, 8, 7, 40, 20920, tzinfo=UTC), "uid": "CQ9qtc4cGl2PUgVkma",
         "service": "dns", "duration_s": None, "resp_bytes": None, "conn_state": "S0",
         "tunnel_parents": None, "line": 10},
        {"ts": datetime(2022, 3, 17, 8, 7, 59, 519793, tzinfo=UTC), "uid": "Ch22k1203r7uCUhZ6a",
         "service": "ssl", "duration_s": 1.235504, "resp_bytes": 5256, "conn_state": "SF",
         "tunnel_parents": None, "line": 11},
    ]
    assert issues(reader) == []


def test_zat_gzip_corrupt_gzip_and_empty_log(corpus: Path) -> None:
    from egress.sources.zeek_fields import HTTP_SPEC

    data = corpus / "zat__data-tsv"
    reader = ZeekLogReader()
    logs = frozenset({"http"})

    def http(name: str) -> pa.Table:
        batches = list(reader.read_log([data / name], HTTP_SPEC, logs))
        return pa.Table.from_batches(batches) if batches else HTTP_SPEC.schema.empty_table()

    plain = http("http.log")
    assert plain.num_rows == 150
    assert http("http.log.gz").equals(plain)
    broken = http("http.log.corrupt.gz")  # everything before the break is kept
    assert broken.num_rows == 150 and broken["uid"].equals(plain["uid"])
    assert http("http_empty.log").num_rows == 0
    assert issues(reader) == [("http.log.corrupt.gz", "truncated_gzip", 1, 159, "lines 159")]
    assert plain.slice(0, 1).to_pylist() == [{
        "ts": datetime(2013, 9, 15, 23, 44, 27, 668082, tzinfo=UTC), "uid": "CyIaMO7IheOh38Zsi",
        "trans_depth": 1, "method": "GET", "host": "guyspy.com", "uri": "/",
        "request_body_len": 0, "line": 9}]


def test_zat_other_logs_are_refused_by_read_conn(corpus: Path) -> None:
    with pytest.raises(SourceError, match=r"dns\.log: holds the Zeek 'dns' log"):
        read([corpus / "zat__data-tsv/dns.log"])


def test_detect_zeek_log_corpus(corpus: Path) -> None:
    got = {f"{p.parent.name}/{p.name}": detect_zeek_log(p)
           for case in ("zat__data-tsv", "slips__test9-mixed-zeek-dir",
                        "elastic-beats__zeek-connection-json")
           for p in sorted((corpus / case).iterdir()) if ".log" in p.name}
    assert got == {
        "zat__data-tsv/app_stats.log": "app_stats", "zat__data-tsv/conn.log": "conn",
        "zat__data-tsv/conn_date_issue.log": "conn", "zat__data-tsv/dhcp.log": "dhcp",
        "zat__data-tsv/dhcp.log.gz": "dhcp", "zat__data-tsv/dhcp_002.log": "dhcp",
        "zat__data-tsv/dhcp_002.log.gz": "dhcp", "zat__data-tsv/dns.log": "dns",
        "zat__data-tsv/files.log": "files", "zat__data-tsv/ftp.log": "ftp",
        "zat__data-tsv/http.log": "http", "zat__data-tsv/http.log.corrupt.gz": "http",
        "zat__data-tsv/http.log.gz": "http", "zat__data-tsv/http_empty.log": "http",
        "zat__data-tsv/notice.log": "notice", "zat__data-tsv/smtp.log": "smtp",
        "zat__data-tsv/ssl.log": "ssl", "zat__data-tsv/tor_ssl.log": "ssl",
        "zat__data-tsv/weird.log": "weird", "zat__data-tsv/x509.log": "x509",
        "slips__test9-mixed-zeek-dir/arp.log": "arp",
        "slips__test9-mixed-zeek-dir/conn.log": "conn",
        "slips__test9-mixed-zeek-dir/dhcp.log": "dhcp",
        "slips__test9-mixed-zeek-dir/dns.log": "dns",
        "slips__test9-mixed-zeek-dir/files.log": "files",
        "slips__test9-mixed-zeek-dir/http.log": "http",
        "slips__test9-mixed-zeek-dir/loaded_scripts.log": None,  # JSON without ts
        "slips__test9-mixed-zeek-dir/notice.log": "notice",
        "slips__test9-mixed-zeek-dir/packet_filter.log": "packet_filter",
        "slips__test9-mixed-zeek-dir/pe.log": "pe",
        "slips__test9-mixed-zeek-dir/smtp.log": "smtp",
        "slips__test9-mixed-zeek-dir/software.log": "software",
        "slips__test9-mixed-zeek-dir/ssl.log": "ssl",
        "slips__test9-mixed-zeek-dir/x509.log": "x509",
        "elastic-beats__zeek-connection-json/conn.log": "conn",
        "elastic-beats__zeek-connection-json/connection-json.log": "conn",
    }


# ------------------------------------------------------------------ corpus: JSON


def test_slips_json_directory(corpus: Path) -> None:
    table, reader = read([corpus / "slips__test9-mixed-zeek-dir"])
    assert table.num_rows == 576
    assert pc.sum(table["orig_ip_bytes"]).as_py() == 1304232
    assert pc.sum(table["resp_ip_bytes"]).as_py() == 62341836
    assert pc.count(table["service"]).as_py() == 532
    assert pc.count(table["duration_s"]).as_py() == 566
    assert pc.count(table["history"]).as_py() == 570
    # One hand-edited row carries local_orig/local_resp (and l2 addresses, ignored).
    assert table.filter(pc.is_valid(table["local_orig"]))["line"].to_pylist() == [5]
    # ts are small relative values in this data set: kept as logged.
    assert pc.min(table["ts"]).as_py() == datetime(1970, 1, 1, 0, 0, 18, 836741, tzinfo=UTC)
    assert table["line"].to_pylist() == list(range(1, 577))
    assert table.slice(0, 1).select(["uid", "orig_h", "resp_h", "resp_p", "proto",
                                     "duration_s", "orig_bytes"]).to_pylist() == [
        {"uid": "C6ce9q3xECAsonga21", "orig_h": "fe80::1cf4:44d2:904a:14f7",
         "resp_h": "ff02::1:3", "resp_p": 5355, "proto": "udp",
         "duration_s": 0.09628199999999865, "orig_bytes": 50}]
    assert issues(reader) == []
    assert {batch_log(b) for b in ZeekLogReader().read_conn(
        [corpus / "slips__test9-mixed-zeek-dir"])} == {"conn"}


def test_filebeat_json_iso_ts_and_no_trailing_newline(corpus: Path) -> None:
    case = corpus / "elastic-beats__zeek-connection-json"
    table, reader = read([case / "connection-json.log", case / "conn.log"])
    assert table.select(["ts", "uid", "proto", "service", "duration_s", "history",
                         "orig_pkts", "tunnel_parents", "line"]).to_pylist() == [
        {"ts": ts(1547188415.857497), "uid": "CAcJw21BbVedgFnYH3", "proto": "udp",
         "service": "dns", "duration_s": 0.076967, "history": "Dd", "orig_pkts": 1,
         "tunnel_parents": [], "line": 1},
        {"ts": ts(1547188416.857497), "uid": "CAcJw21BbVedgFnYH4", "proto": "udp",
         "service": "dns", "duration_s": 0.076967, "history": "Dd", "orig_pkts": 1,
         "tunnel_parents": [], "line": 2},
        {"ts": ts(1547188417.857497), "uid": "CAcJw21BbVedgFnYH5", "proto": "udp",
         "service": "dns", "duration_s": 0.076967, "history": "Dd", "orig_pkts": 1,
         "tunnel_parents": [], "line": 3},
        {"ts": ts(1551399000.57855), "uid": "Cc6NJ3GRlfjE44I3h", "proto": "icmp",
         "service": None, "duration_s": None, "history": None, "orig_pkts": 1,
         "tunnel_parents": [], "line": 4},
        {"ts": datetime(2021, 6, 9, 20, 55, 13, 160328, tzinfo=UTC), "uid": "C2KP1V3alRLoxl4JB9",
         "proto": "tcp", "service": None, "duration_s": None, "history": "C", "orig_pkts": 0,
         "tunnel_parents": None, "line": 5},
        {"ts": ts(1546981792.481978), "uid": "Cu00My2F0RlLbdpIhj", "proto": "tcp",
         "service": "ssl", "duration_s": 20.022134, "history": "ShADadFf", "orig_pkts": 22,
         "tunnel_parents": [], "line": 1},
        {"ts": ts(1546982038.618205), "uid": "CbA8BR3y7005dXdMLc", "proto": "tcp",
         "service": None, "duration_s": None, "history": "S", "orig_pkts": 1,
         "tunnel_parents": [], "line": 2},
    ]
    assert issues(reader) == []


def test_corpus_enrichment(corpus: Path) -> None:
    enrichment = read_enrichment([corpus / "slips__test9-mixed-zeek-dir"])
    assert len(enrichment) == 315
    assert sum(1 for e in enrichment.values() if e.server_name) == 205
    assert sum(len(e.http) for e in enrichment.values()) == 516
    table, _ = read([corpus / "slips__test9-mixed-zeek-dir"])
    index = EnrichmentIndex(enrichment)
    enriched = pa.Table.from_batches([attach_enrichment(b, index) for b in table.to_batches()])
    assert enriched.schema.remove_metadata() == ENRICHED_CONN_SCHEMA
    hit = enriched.filter(pc.equal(enriched["uid"], "CeXwwk4XHhkKHn7kag"))
    assert hit.select(["server_name", "http_methods", "http_hosts",
                       "http_request_body_len"]).to_pylist() == [
        {"server_name": None, "http_methods": ["GET"], "http_hosts": ["103.41.26.58"],
         "http_request_body_len": 0}]


# ------------------------------------------------------------------ generated: long connections


def test_week_long_upload_deltas_sum_to_final_totals(tmp_path: Path) -> None:
    """conn_long every hour for a week, then conn.log's final record, in rotated directories."""
    uid = "CUPLOAD0000001"
    hours = 7 * 24
    # Irregular running totals: never a round multiple, sometimes flat.
    totals = [(h * 1_234_567_891 + (h % 7) * 13, h * 11_111 + h // 5, h * 911_000_123,
               h * 700_001 + 3, h * 950_000_001 + 7, h * 20_000 + 1) for h in range(1, hours + 1)]
    final = (hours * 1_234_567_891 + 999, hours * 11_111 + 77, hours * 911_000_123 + 5,
             hours * 700_001 + 9, hours * 950_000_001 + 41, hours * 20_000 + 12)
    for h in range(hours):
        day = (datetime(2024, 5, 1, tzinfo=UTC) + timedelta(hours=h))
        name = f"{day:%H}:00:00-{(day + timedelta(hours=1)):%H}:00:00"
        folder = tmp_path / f"{day:%Y-%m-%d}"
        rb, ob, rip, oip, rp, op = totals[h]
        long_row = row(T0 + 5, uid, duration=f"{(h + 1) * 3600.0:.6f}", orig_bytes=str(ob),
                       resp_bytes=str(rb), orig_ip=str(oip), resp_ip=str(rip),
                       orig_pkts=str(op), resp_pkts=str(rp))
        write(folder / f"conn_long.{name}.log.gz", header("conn_long") + long_row
              + "#close\t2024-05-01-01-00-00\n", gz=True)
        short = row(T0 + h * 3600 + 60, f"CSHORT{h:05d}", resp_bytes="10", resp_ip="50")
        write(folder / f"conn.{name}.log.gz", header() + short + "#close\tx\n", gz=True)
    rb, ob, rip, oip, rp, op = final
    write(tmp_path / "conn.log", header() + row(
        T0 + 5, uid, duration=f"{hours * 3600 + 1800.0:.6f}", orig_bytes=str(ob),
        resp_bytes=str(rb), orig_ip=str(oip), resp_ip=str(rip), orig_pkts=str(op),
        resp_pkts=str(rp)))  # live file: no #close
    files = log_files(tmp_path, {"conn", "conn_long"})
    assert [f.name for f in files[:3]] == [
        "conn_long.00:00:00-01:00:00.log.gz", "conn.00:00:00-01:00:00.log.gz",
        "conn_long.01:00:00-02:00:00.log.gz"]
    assert files[-1] == tmp_path / "conn.log" and len(files) == 2 * hours + 1

    table, reader = read([tmp_path])
    upload = table.filter(pc.equal(table["uid"], uid))
    assert upload.num_rows == hours + 1
    assert upload["interim"].to_pylist() == [True] * hours + [False]
    for total, delta in zip(TOTAL_COLUMNS, DELTA_COLUMNS, strict=True):
        assert pc.sum(upload[delta]).as_py() == upload[total][-1].as_py()
    assert upload["resp_bytes"][-1].as_py() == final[0]
    assert upload["delta_resp_bytes"].to_pylist()[:2] == [totals[0][0],
                                                          totals[1][0] - totals[0][0]]
    assert upload["delta_resp_bytes"][-1].as_py() == final[0] - totals[-1][0]
    short = table.filter(pc.invert(pc.equal(table["uid"], uid)))
    assert short.num_rows == hours and pc.sum(short["delta_resp_bytes"]).as_py() == 10 * hours
    stats = reader.stats
    assert (stats.rows, stats.files, stats.interim_rows, stats.long_conn_states_open,
            stats.long_conn_states_expired, stats.issues) == (2 * hours + 1, 2 * hours + 1,
                                                              hours, 0, 0, ())
    batches = list(ZeekLogReader().read_conn([tmp_path]))
    assert batch_path(batches[0]) == str(files[0]) and batch_log(batches[0]) == "conn_long"
    assert batch_path(batches[-1]) == str(tmp_path / "conn.log")


def test_long_conn_state_expires_after_ttl(tmp_path: Path) -> None:
    path = write(tmp_path / "conn_long.log", header("conn_long")
                 + row(T0, "CSTALE", duration="3600.000000", resp_bytes="500")
                 + row(T0 + 10, "COPEN", duration="3600.000000", resp_bytes="700"))
    later = write(tmp_path / "conn.log", header()
                  + row(T0 + 3 * 3600, "COPEN", duration="7200.000000", resp_bytes="900")
                  + row(T0 + 30 * 3600, "CNEW", resp_bytes="1")
                  + row(T0, "CSTALE", duration="108000.000000", resp_bytes="800"))
    table, reader = read([path, later], long_conn_state_ttl_s=86400)
    assert table.select(["uid", "interim", "resp_bytes", "delta_resp_bytes"]).to_pylist() == [
        {"uid": "CSTALE", "interim": True, "resp_bytes": 500, "delta_resp_bytes": 500},
        {"uid": "COPEN", "interim": True, "resp_bytes": 700, "delta_resp_bytes": 700},
        {"uid": "COPEN", "interim": False, "resp_bytes": 900, "delta_resp_bytes": 200},
        {"uid": "CNEW", "interim": False, "resp_bytes": 1, "delta_resp_bytes": 1},
        # Its state expired 24 h of log time after its last update: counted in full.
        {"uid": "CSTALE", "interim": False, "resp_bytes": 800, "delta_resp_bytes": 800},
    ]
    assert reader.stats.long_conn_states_expired == 1
    assert reader.stats.long_conn_states_open == 0


def test_totals_going_backwards_count_nothing_twice(tmp_path: Path) -> None:
    path = write(tmp_path / "open_conn.log", header("open_conn")
                 + row(T0, "CBACK", resp_bytes="900", orig_bytes="-"))
    final = write(tmp_path / "conn.log", header() + row(T0, "CBACK", resp_bytes="800",
                                                        orig_bytes="50"))
    table, reader = read([path, final])
    assert table.select(["interim", "delta_resp_bytes", "delta_orig_bytes"]).to_pylist() == [
        {"interim": True, "delta_resp_bytes": 900, "delta_orig_bytes": None},
        {"interim": False, "delta_resp_bytes": 0, "delta_orig_bytes": 50},
    ]
    assert reader.stats.totals_decreased == 1


def test_egress_written_conn_log_round_trip(tmp_path: Path) -> None:
    """egress's own conn.log writer (interim column) read back, TSV and JSON."""
    start = datetime(2026, 5, 20, 8, 0, 0, 123456, tzinfo=UTC)
    flows = [
        Flow(uid="C1", start=start, duration_s=3600.0, orig_h="203.0.113.50", orig_p=51234,
             resp_h="10.42.7.15", resp_p=443, proto="tcp", ip_proto=6, conn_state="S1",
             history="ShAD", orig_pkts=10, orig_ip_bytes=5400, orig_bytes=5000, resp_pkts=8,
             resp_ip_bytes=320, resp_bytes=0, community_id="1:abc=", vni=4242,
             tunnel_parents=("CA", "CB"), interim=True),
        Flow(uid="C1", start=start, duration_s=4000.5, orig_h="203.0.113.50", orig_p=51234,
             resp_h="10.42.7.15", resp_p=443, proto="tcp", ip_proto=6, conn_state="SF",
             history="ShADFf", orig_pkts=25, orig_ip_bytes=9400, orig_bytes=8800, resp_pkts=9,
             resp_ip_bytes=372, resp_bytes=0, community_id="1:abc=", vni=4242,
             tunnel_parents=("CA", "CB")),
        Flow(uid="C2", start=start, duration_s=0.0, orig_h="2001:db8::1", orig_p=0,
             resp_h="2001:db8::2", resp_p=0, proto="unknown_transport", ip_proto=132,
             conn_state="OTH", history="", orig_pkts=1, orig_ip_bytes=64, orig_bytes=0,
             resp_pkts=0, resp_ip_bytes=0, resp_bytes=0, community_id="1:def=", vlan=10,
             inner_vlan=20),
    ]
    tsv = write(tmp_path / "egress.log", conn_header(opened=start) + "".join(map(conn_line, flows))
                + conn_footer(closed=start))
    jsn = write(tmp_path / "conn.json", "".join(map(json_line, flows)))
    cols = ["uid", "orig_h", "resp_p", "proto", "duration_s", "orig_bytes", "history",
            "tunnel_parents", "ip_proto", "community_id", "vlan", "inner_vlan", "vni",
            "interim", "delta_orig_bytes", "delta_orig_ip_bytes"]
    expected = [
        {"uid": "C1", "orig_h": "203.0.113.50", "resp_p": 443, "proto": "tcp",
         "duration_s": 3600.0, "orig_bytes": 5000, "history": "ShAD",
         "tunnel_parents": ["CA", "CB"], "ip_proto": 6, "community_id": "1:abc=",
         "vlan": None, "inner_vlan": None, "vni": 4242, "interim": True,
         "delta_orig_bytes": 5000, "delta_orig_ip_bytes": 5400},
        {"uid": "C1", "orig_h": "203.0.113.50", "resp_p": 443, "proto": "tcp",
         "duration_s": 4000.5, "orig_bytes": 8800, "history": "ShADFf",
         "tunnel_parents": ["CA", "CB"], "ip_proto": 6, "community_id": "1:abc=",
         "vlan": None, "inner_vlan": None, "vni": 4242, "interim": False,
         "delta_orig_bytes": 3800, "delta_orig_ip_bytes": 4000},
        {"uid": "C2", "orig_h": "2001:db8::1", "resp_p": 0, "proto": "unknown_transport",
         "duration_s": None, "orig_bytes": None, "history": None, "tunnel_parents": None,
         "ip_proto": 132, "community_id": "1:def=", "vlan": 10, "inner_vlan": 20,
         "vni": None, "interim": False, "delta_orig_bytes": None, "delta_orig_ip_bytes": 64},
    ]
    for path in (tsv, jsn):
        table, reader = read([path])
        assert table.select(cols).to_pylist() == expected
        assert table["ts"].to_pylist() == [start] * 3
        assert issues(reader) == []


# ------------------------------------------------------------------ generated: TSV headers


def test_repeated_headers_with_changed_fields_and_no_close(tmp_path: Path) -> None:
    short_fields = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto",
                    "orig_ip_bytes", "resp_ip_bytes")
    short_types = ("time", "string", "addr", "port", "addr", "port", "enum", "count", "count")
    text = (header() + row(T0, "CA") + "#close\t2024-05-01-01-00-00\n"
            + header(fields=short_fields, types=short_types)
            + f"{T0 + 1}.000000\tCB\t10.0.0.9\t1\t192.0.2.1\t2\tudp\t77\t88\n"
            + "#separator \\x7c\n#set_separator|;\n#empty_field|EMPTY\n#unset_field|NONE\n"
            + "#path|conn\n#fields|ts|uid|id.orig_h|id.orig_p|id.resp_h|id.resp_p|proto|service"
            + "|tunnel_parents\n#types|time|string|addr|port|addr|port|enum|string|set[string]\n"
            + f"{T0 + 2}.5|CC|::1|3|::2|4|tcp|NONE|x;y\n"
            + f"{T0 + 3}.25|CD|::1|5|::2|6|tcp|EMPTY|EMPTY\n")  # live: no #close
    path = write(tmp_path / "conn.log", text)
    for chunk in (1024, 1 << 20):  # headers inside chunks and across chunk boundaries
        table, reader = read([path], chunk_bytes=chunk)
        assert table.select(["ts", "uid", "orig_h", "resp_p", "proto", "service",
                             "orig_ip_bytes", "tunnel_parents", "line"]).to_pylist() == [
            {"ts": ts(T0), "uid": "CA", "orig_h": "10.0.0.5", "resp_p": 443, "proto": "tcp",
             "service": "ssl", "orig_ip_bytes": 300, "tunnel_parents": None, "line": 9},
            {"ts": ts(T0 + 1), "uid": "CB", "orig_h": "10.0.0.9", "resp_p": 2, "proto": "udp",
             "service": None, "orig_ip_bytes": 77, "tunnel_parents": None, "line": 19},
            {"ts": ts(T0 + 2.5), "uid": "CC", "orig_h": "::1", "resp_p": 4, "proto": "tcp",
             "service": None, "orig_ip_bytes": None, "tunnel_parents": ["x", "y"], "line": 27},
            {"ts": ts(T0 + 3.25), "uid": "CD", "orig_h": "::1", "resp_p": 6, "proto": "tcp",
             "service": "", "orig_ip_bytes": None, "tunnel_parents": [], "line": 28},
        ]
        assert issues(reader) == []


def test_set_empty_unset_and_escapes(tmp_path: Path) -> None:
    path = write(tmp_path / "conn.log", header()
                 + row(T0, "C1", tunnel="-", service="-")
                 + row(T0, "C2", tunnel="(empty)", service="(empty)")
                 + row(T0, "C3", tunnel="Ca,Cb,Cc", service="ssl,http")
                 + row(T0, "C4", tunnel="C\\x2cd", service="a\\x09b"))
    table, reader = read([path])
    assert table.select(["uid", "service", "tunnel_parents"]).to_pylist() == [
        {"uid": "C1", "service": None, "tunnel_parents": None},
        {"uid": "C2", "service": "", "tunnel_parents": []},
        {"uid": "C3", "service": "ssl,http", "tunnel_parents": ["Ca", "Cb", "Cc"]},
        {"uid": "C4", "service": "a\tb", "tunnel_parents": ["C,d"]},
    ]
    assert issues(reader) == []


# ------------------------------------------------------------------ generated: bad input


def test_malformed_tsv_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    good = [row(T0 + i, f"CG{i}") for i in range(4)]
    lines = [
        good[0],
        "too\tfew\tcolumns\n",                                   # line 10
        row(T0, "CBADNUM", orig_bytes="12x"),                    # line 11
        good[1],
        "\n",                                                    # line 13
        row(T0, "CBADADDR", resp="not-an-ip"),                   # line 14
        row(T0, "CBIGPORT", resp_p=70000),                       # line 15
        row(T0, "CBADADDR2", orig="10.0.0.1/24"),                # line 16
        good[2],
        row(T0, "CBADNUM2", resp_pkts="-3"),                     # line 18
        "bogus " + good[3],                                      # line 19
        good[3],
    ]
    path = write(tmp_path / "conn.log", header() + "".join(lines))
    table, reader = read([path])
    assert table["uid"].to_pylist() == ["CG0", "CG1", "CG2", "CG3"]
    assert table["line"].to_pylist() == [9, 12, 17, 20]
    assert sorted(issues(reader)) == [
        ("conn.log", "bad_address", 2, 14, "lines 14, 16"),
        ("conn.log", "bad_value", 4, 11, "lines 11, 15, 18, 19"),
        ("conn.log", "blank_line", 1, 13, "lines 13"),
        ("conn.log", "wrong_column_count", 1, 10, "lines 10"),
    ]
    assert reader.stats.skipped == 8


def test_malformed_json_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    base = {"ts": T0, "uid": "C0", "id.orig_h": "10.0.0.1", "id.orig_p": 1,
            "id.resp_h": "192.0.2.1", "id.resp_p": 443, "proto": "tcp", "conn_state": "SF",
            "orig_ip_bytes": 10, "resp_ip_bytes": 20}

    def obj(**changes: object) -> str:
        return json.dumps({**base, **changes}) + "\n"

    lines = [obj(uid="CG1"), "{not json\n", obj(uid="CBAD", orig_ip_bytes="ten"),
             obj(uid="CG2", ts="2024-05-01T00:00:01.5Z"), obj(uid="CADDR", **{"id.resp_h": "x"}),
             "[1, 2]\n", obj(uid="CPORT", **{"id.resp_p": 65536}), obj(uid="CG3"),
             '{"ts": 1, "uid": "CHALF", "id.orig_h": "10.']  # half-written last line
    path = write(tmp_path / "conn.log", "".join(lines))
    table, reader = read([path])
    assert table.select(["uid", "ts", "line"]).to_pylist() == [
        {"uid": "CG1", "ts": ts(T0), "line": 1},
        {"uid": "CG2", "ts": ts(T0 + 1.5), "line": 4},
        {"uid": "CG3", "ts": ts(T0), "line": 8},
    ]
    assert sorted(issues(reader)) == [
        ("conn.log", "bad_address", 1, 5, "lines 5"),
        ("conn.log", "bad_json", 2, 2, "lines 2, 6"),
        ("conn.log", "bad_value", 2, 3, "lines 3, 7"),
        ("conn.log", "partial_last_line", 1, 9, "lines 9"),
    ]


def test_tsv_half_written_last_line_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "conn.log", header() + row(T0, "C1") + row(T0, "C2")[:40])
    table, reader = read([path])
    assert table["uid"].to_pylist() == ["C1"]
    assert issues(reader) == [("conn.log", "partial_last_line", 1, 10, "lines 10")]


def test_truncated_gzip_keeps_every_complete_line(tmp_path: Path) -> None:
    text = header() + "".join(row(T0 + i, f"C{i:06d}") for i in range(20000))
    packed = gzip.compress(text.encode())
    path = write(tmp_path / "conn.log.gz", packed[: len(packed) * 2 // 3])
    table, reader = read([path], chunk_bytes=64 * 1024)
    n = table.num_rows
    assert 0 < n < 20000
    assert table["uid"].to_pylist() == [f"C{i:06d}" for i in range(n)]
    assert table["line"].to_pylist() == list(range(9, 9 + n))
    assert issues(reader) == [("conn.log.gz", "truncated_gzip", 1, 9 + n, f"lines {9 + n}")]


@pytest.mark.parametrize(("name", "content"), [
    ("capture.pcap", b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(100)),
    ("flows.csv", b"ts,src,dst\n1,10.0.0.1,10.0.0.2\n"),
    ("array.json", b"[{\"ts\": 1}]\n"),
    ("syslog.log", b"Nov 27 05:00:00 host kernel: hello\n"),
])
def test_not_a_zeek_log_raises_naming_the_file(tmp_path: Path, name: str,
                                                content: bytes) -> None:
    path = write(tmp_path / name, content)
    assert detect_zeek_log(path) is None
    with pytest.raises(SourceError, match=rf"{name}: not a Zeek log"):
        read([path])


def test_unreadable_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"missing\.log: cannot open Zeek log"):
        read([tmp_path / "missing.log"])
    table, reader = read([write(tmp_path / "conn.log", b"")])
    assert table.num_rows == 0
    assert issues(reader) == [("conn.log", "empty_file", 1, None, "")]


def test_files_before_a_bad_file_are_yielded(tmp_path: Path) -> None:
    good = write(tmp_path / "conn.log", header() + row(T0, "C1"))
    bad = write(tmp_path / "notes.txt", "hello\n")
    reader = ZeekLogReader()
    got: list[str] = []
    with pytest.raises(SourceError, match=r"notes\.txt"):
        for batch in reader.read_conn([good, bad]):
            got.extend(batch.column("uid").to_pylist())
    assert got == ["C1"]


# ------------------------------------------------------------------ generated: batches


def test_batches_schema_slicing_and_provenance(tmp_path: Path) -> None:
    path = write(tmp_path / "conn.log", header() + "".join(row(T0 + i, f"C{i}")
                                                           for i in range(5)))
    reader = ZeekLogReader(batch_rows=2)
    batches = list(reader.read_conn([path]))
    assert [b.num_rows for b in batches] == [2, 2, 1]
    for batch in batches:
        assert batch.schema.remove_metadata() == CONN_SCHEMA
        assert batch.schema.metadata == {b"egress.path": str(path).encode(),
                                         b"egress.log": b"conn", b"egress.format": b"tsv"}
    assert [b.column("line").to_pylist() for b in batches] == [[9, 10], [11, 12], [13]]
    one, _ = read([path], workers=1, chunk_bytes=1024)
    two, _ = read([path], workers=2)
    assert one.equals(two)


def test_reader_options_are_validated() -> None:
    with pytest.raises(ValueError, match="batch_rows"):
        ZeekLogReader(batch_rows=0)
    with pytest.raises(ValueError, match="ttl_s"):
        ZeekLogReader(long_conn_state_ttl_s=0)
    with pytest.raises(ValueError, match="workers"):
        ZeekLogReader(workers=0)
    with pytest.raises(ValueError, match="read_ahead"):
        ZeekLogReader(read_ahead=0)


def test_reading_ahead_changes_nothing_but_timing(tmp_path: Path) -> None:
    # 400 rows in 1 KiB chunks: about 60 chunks, parsed up to 1 or 32 ahead
    path = write(tmp_path / "conn.log", header() + "".join(row(T0 + i, f"C{i}")
                                                           for i in range(400)))
    near, _ = read([path], workers=2, chunk_bytes=1024, read_ahead=1)
    far, _ = read([path], workers=2, chunk_bytes=1024, read_ahead=32)
    assert near.num_rows == 400
    assert near.column("uid").to_pylist() == [f"C{i}" for i in range(400)]
    assert near.column("line").to_pylist() == list(range(9, 409))
    assert far.equals(near)


# ------------------------------------------------------------------ generated: enrichment

SSL_FIELDS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "version",
              "server_name", "established")
SSL_TYPES = ("time", "string", "addr", "port", "addr", "port", "string", "string", "bool")
HTTP_FIELDS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "trans_depth",
               "method", "host", "uri", "request_body_len", "status_code")
HTTP_TYPES = ("time", "string", "addr", "port", "addr", "port", "count", "string", "string",
              "string", "count", "count")


def test_enrichment_from_ssl_and_http(tmp_path: Path) -> None:
    def ssl(t: int, uid: str, sni: str) -> str:
        return f"{t}.000000\t{uid}\t10.0.0.5\t40000\t192.0.2.80\t443\tTLSv13\t{sni}\tT\n"

    def http(t: int, uid: str, depth: int, method: str, host: str, uri: str, body: str) -> str:
        return (f"{t}.000000\t{uid}\t10.0.0.5\t40001\t192.0.2.81\t80\t{depth}\t{method}\t{host}"
                f"\t{uri}\t{body}\t200\n")

    write(tmp_path / "ssl.log", header("ssl", SSL_FIELDS, SSL_TYPES)
          + ssl(T0, "CS1", "upload.example.net") + ssl(T0 + 1, "CS1", "other.example")
          + ssl(T0 + 2, "CS2", "-") + ssl(T0 + 9000, "CLATE", "late.example"))
    write(tmp_path / "http.log", header("http", HTTP_FIELDS, HTTP_TYPES)
          + http(T0, "CH1", 1, "PUT", "bucket.example", "/a", "1000")
          + http(T0 + 1, "CH1", 2, "POST", "bucket.example", "/b?x=1", "-")
          + http(T0 + 2, "CH1", 3, "PUT", "bucket\\x2eexample", "/c", "24"))
    write(tmp_path / "open_http.log", header("open_http", HTTP_FIELDS, HTTP_TYPES)
          + http(T0, "CH1", 1, "PUT", "bucket.example", "/a", "1000")  # repeated: kept once
          + http(T0 + 5, "CH2", 1, "GET", "-", "/", "0"))
    enrichment = read_enrichment([tmp_path])
    # CS2's only TLS record has no SNI: nothing to add, so no entry.
    assert enrichment == {
        "CS1": Enrichment(server_name="upload.example.net"),  # the first SNI wins
        "CLATE": Enrichment(server_name="late.example"),
        "CH1": Enrichment(http=(
            HttpRequest(method="PUT", host="bucket.example", uri="/a", request_body_len=1000),
            HttpRequest(method="POST", host="bucket.example", uri="/b?x=1",
                        request_body_len=None),
            HttpRequest(method="PUT", host="bucket.example", uri="/c", request_body_len=24))),
        "CH2": Enrichment(http=(HttpRequest(method="GET", host=None, uri="/",
                                            request_body_len=0),)),
    }
    window = read_enrichment([tmp_path], since=pa.scalar(ts(T0 + 1)),
                             until=pa.scalar(ts(T0 + 3)))
    assert window == {
        "CS1": Enrichment(server_name="other.example"),
        "CH1": Enrichment(http=(
            HttpRequest(method="POST", host="bucket.example", uri="/b?x=1",
                        request_body_len=None),
            HttpRequest(method="PUT", host="bucket.example", uri="/c", request_body_len=24))),
    }
    reader = ZeekLogReader()
    capped = reader.read_enrichment([tmp_path / "ssl.log"], max_uids=1)
    assert capped == {"CS1": Enrichment(server_name="upload.example.net")}
    assert issues(reader) == [("enrichment", "enrichment_uids_dropped", 1, None, "")]

    conns = write(tmp_path / "conn.log", header() + row(T0, "CS1") + row(T0, "CH1")
                  + row(T0, "CNONE") + row(T0, "CH2"))
    batch = next(ZeekLogReader().read_conn([conns]))
    enriched = attach_enrichment(batch, enrichment)
    assert enriched.schema.remove_metadata() == ENRICHED_CONN_SCHEMA
    assert batch_path(enriched) == str(conns)
    assert enriched.select(["uid", "server_name", "http_methods", "http_hosts",
                            "http_request_body_len"]).to_pylist() == [
        {"uid": "CS1", "server_name": "upload.example.net", "http_methods": None,
         "http_hosts": None, "http_request_body_len": None},
        {"uid": "CH1", "server_name": None, "http_methods": ["PUT", "POST", "PUT"],
         "http_hosts": ["bucket.example"] * 3, "http_request_body_len": 1024},
        {"uid": "CNONE", "server_name": None, "http_methods": None, "http_hosts": None,
         "http_request_body_len": None},
        {"uid": "CH2", "server_name": None, "http_methods": ["GET"], "http_hosts": [None],
         "http_request_body_len": 0},
    ]


def test_issue_type_is_the_shared_record() -> None:
    assert ZeekLogReader().stats.issues == ()
    assert Issue(path="x", kind="k", count=1).first_offset is None


def test_projected_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "conn.log", header() + row(T0, "C1", resp_ip="70")
                 + row(T0 + 1, "C2", resp="192.0.2.9", resp_ip="80"))
    reader = ZeekLogReader(columns=["resp_h", "delta_resp_ip_bytes"])
    table = pa.Table.from_batches(list(reader.read_conn([path])))
    assert table.schema.remove_metadata() == pa.schema([
        CONN_SCHEMA.field("resp_h"), CONN_SCHEMA.field("delta_resp_ip_bytes"),
        CONN_SCHEMA.field("line")])
    assert table.to_pylist() == [
        {"resp_h": "192.0.2.80", "delta_resp_ip_bytes": 70, "line": 9},
        {"resp_h": "192.0.2.9", "delta_resp_ip_bytes": 80, "line": 10}]
    with pytest.raises(ValueError, match="not conn columns: bogus"):
        ZeekLogReader(columns=["bogus"])


def test_log_files_layouts_and_gzip_members(tmp_path: Path) -> None:
    for name in ("2024-05-02/conn.00:00:00-01:00:00.log.gz", "2024-05-01/conn.log.gz",
                 "2024-05-01/dns.23:00:00-00:00:00.log.gz",
                 "2024-05-01/open_conn.23:00:00-00:00:00.log.gz",
                 "2024-05-01/conn.23:00:00-00:00:00.log.gz",
                 "conn.2024-05-01-22-00-00.log.gz", "current/conn.log", "conn_long.log",
                 "notes/conn.log"):
        write(tmp_path / name, "")
    assert [str(p.relative_to(tmp_path)) for p in log_files(tmp_path, CONN_LOGS)] == [
        "conn.2024-05-01-22-00-00.log.gz",
        "2024-05-01/open_conn.23:00:00-00:00:00.log.gz",
        "2024-05-01/conn.23:00:00-00:00:00.log.gz",
        "2024-05-02/conn.00:00:00-01:00:00.log.gz",
        "conn_long.log",
        "current/conn.log",
    ]
    members = gzip.compress((header() + row(T0, "C1")).encode()) + gzip.compress(
        row(T0 + 1, "C2").encode())
    table, reader = read([write(tmp_path / "two-members.log.gz", members)])
    assert table.select(["uid", "line"]).to_pylist() == [{"uid": "C1", "line": 9},
                                                         {"uid": "C2", "line": 10}]
    assert issues(reader) == []


def test_blank_line_and_bad_value_in_one_segment(tmp_path: Path) -> None:
    path = write(tmp_path / "conn.log", header() + row(T0, "C1") + "\n"
                 + row(T0, "CBAD", resp_bytes="many") + row(T0, "C2"))
    table, reader = read([path])
    assert table.select(["uid", "line"]).to_pylist() == [{"uid": "C1", "line": 9},
                                                         {"uid": "C2", "line": 12}]
    assert sorted(issues(reader)) == [("conn.log", "bad_value", 1, 11, "lines 11"),
                                      ("conn.log", "blank_line", 1, 10, "lines 10")]


# ------------------------------------------------------------------ chunked reading


def test_plain_file_reads_as_its_gzip_copy(tmp_path: Path) -> None:
    # A plain file and its gzip copy, read in chunks of chunk_bytes (a line longer than a
    # chunk among them): the same rows, lines and issues, whatever the chunk size.
    rows = [row(T0 + i, f"C{i}", orig_bytes=str(i * 7919)) for i in range(300)]
    rows[123] = "x" * 5000 + "\n"  # a line longer than a chunk: the window grows
    rows[200] = row(T0, "Cbad", orig_bytes="12x")
    text = header() + "".join(rows) + header() + row(T0, "Clast") + row(T0, "Ctail")[:30]
    plain = write(tmp_path / "a" / "conn.log", text)
    packed = write(tmp_path / "b" / "conn.log.gz", text, gz=True)
    for chunk in (1024, 3000, 1 << 20):
        table, reader = read([plain], chunk_bytes=chunk, workers=2)
        expected, gz_reader = read([packed], chunk_bytes=chunk, workers=2)
        assert table.num_rows == 299
        assert table.to_pylist() == expected.to_pylist()
        assert table["uid"].to_pylist()[-1] == "Clast"
        assert table["line"].to_pylist()[-1] == 9 + 300 + 8
        assert sorted(issues(reader)) == [
            ("conn.log", "bad_value", 1, 9 + 200, f"lines {9 + 200}"),
            ("conn.log", "partial_last_line", 1, 9 + 300 + 9, f"lines {9 + 300 + 9}"),
            ("conn.log", "wrong_column_count", 1, 9 + 123, f"lines {9 + 123}"),
        ]
        assert [i[1:] for i in issues(gz_reader)] == [i[1:] for i in issues(reader)]


def test_lines_appended_while_reading_are_read(tmp_path: Path) -> None:
    # What a live writer adds after the read started is read on.
    path = write(tmp_path / "conn.log", header() + "".join(row(T0 + i, f"C{i}")
                                                           for i in range(100)))
    reader = ZeekLogReader(chunk_bytes=1024, workers=1)
    batches = reader.read_conn([path])
    first = next(batches)
    with path.open("a") as f:
        f.write(row(T0 + 100, "Cnew") + row(T0 + 101, "Cpart")[:20])
    uids = first["uid"].to_pylist() + [u for b in batches for u in b["uid"].to_pylist()]
    assert uids == [f"C{i}" for i in range(100)] + ["Cnew"]
    assert issues(reader) == [("conn.log", "partial_last_line", 1, 110, "lines 110")]
