"""Flows as Zeek conn.log text (TSV with Zeek's header) and Zeek-style JSON lines.

Both keep Zeek's column names and conventions so any Zeek-log tool reads them:
``-`` for unset values, ``duration``/``orig_bytes``/``resp_bytes`` unset when
the duration is zero, ``(empty)`` for an empty set. egress adds the columns
``community_id`` (as Zeek's community-id policy does), ``vlan``/``inner_vlan``
(as its vlan-logging policy does), ``vni`` and ``interim``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from egress.records import Flow

CONN_FIELDS: tuple[tuple[str, str], ...] = (
    ("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
    ("id.resp_h", "addr"), ("id.resp_p", "port"), ("proto", "enum"), ("service", "string"),
    ("duration", "interval"), ("orig_bytes", "count"), ("resp_bytes", "count"),
    ("conn_state", "string"), ("local_orig", "bool"), ("local_resp", "bool"),
    ("missed_bytes", "count"), ("history", "string"), ("orig_pkts", "count"),
    ("orig_ip_bytes", "count"), ("resp_pkts", "count"), ("resp_ip_bytes", "count"),
    ("tunnel_parents", "set[string]"), ("ip_proto", "count"), ("community_id", "string"),
    ("vlan", "int"), ("inner_vlan", "int"), ("vni", "count"), ("interim", "bool"),
)
STANDARD_CONN_FIELDS = CONN_FIELDS[:22]
"""The (name, type) columns of Zeek's own conn.log, without egress's additions."""
UNSET = "-"
EMPTY = "(empty)"


def _zeek_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d-%H-%M-%S")


def conn_header(*, opened: datetime, path: str = "conn") -> str:
    """Return the header block of a conn.log opened at ``opened``."""
    names = "\t".join(name for name, _ in CONN_FIELDS)
    types = "\t".join(kind for _, kind in CONN_FIELDS)
    return (
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
        f"#path\t{path}\n#open\t{_zeek_time(opened)}\n#fields\t{names}\n#types\t{types}\n"
    )


def conn_footer(*, closed: datetime) -> str:
    """Return the ``#close`` line Zeek writes when a log is complete."""
    return f"#close\t{_zeek_time(closed)}\n"


def _opt(value: int | None) -> str:
    return UNSET if value is None else str(value)


def conn_line(flow: Flow) -> str:
    """Render one flow as a conn.log line (with its trailing newline)."""
    has_duration = flow.duration_s > 0
    cols = (
        f"{flow.start.timestamp():.6f}", flow.uid, flow.orig_h, str(flow.orig_p),
        flow.resp_h, str(flow.resp_p), flow.proto, UNSET,
        f"{flow.duration_s:.6f}" if has_duration else UNSET,
        str(flow.orig_bytes) if has_duration else UNSET,
        str(flow.resp_bytes) if has_duration else UNSET,
        flow.conn_state, UNSET, UNSET, UNSET, flow.history or UNSET,
        str(flow.orig_pkts), str(flow.orig_ip_bytes), str(flow.resp_pkts),
        str(flow.resp_ip_bytes), ",".join(flow.tunnel_parents) or UNSET, str(flow.ip_proto),
        flow.community_id, _opt(flow.vlan), _opt(flow.inner_vlan), _opt(flow.vni),
        "T" if flow.interim else "F",
    )
    return "\t".join(cols) + "\n"


def json_line(flow: Flow) -> str:
    """Render one flow as a Zeek-style JSON object on one line; unset fields are omitted."""
    record: dict[str, object] = {
        "ts": round(flow.start.timestamp(), 6), "uid": flow.uid,
        "id.orig_h": flow.orig_h, "id.orig_p": flow.orig_p,
        "id.resp_h": flow.resp_h, "id.resp_p": flow.resp_p, "proto": flow.proto,
    }
    if flow.duration_s > 0:
        record["duration"] = round(flow.duration_s, 6)
        record["orig_bytes"] = flow.orig_bytes
        record["resp_bytes"] = flow.resp_bytes
    record["conn_state"] = flow.conn_state
    if flow.history:
        record["history"] = flow.history
    record.update({
        "orig_pkts": flow.orig_pkts, "orig_ip_bytes": flow.orig_ip_bytes,
        "resp_pkts": flow.resp_pkts, "resp_ip_bytes": flow.resp_ip_bytes,
    })
    if flow.tunnel_parents:
        record["tunnel_parents"] = list(flow.tunnel_parents)
    record["ip_proto"] = flow.ip_proto
    record["community_id"] = flow.community_id
    for name in ("vlan", "inner_vlan", "vni"):
        value = getattr(flow, name)
        if value is not None:
            record[name] = value
    record["interim"] = flow.interim
    return json.dumps(record, separators=(",", ":")) + "\n"


def conn_log(flows: Iterable[Flow], *, opened: datetime, closed: datetime) -> str:
    """Render a whole conn.log (header, lines, close) as one string (small inputs)."""
    return conn_header(opened=opened) + "".join(map(conn_line, flows)) + conn_footer(closed=closed)
