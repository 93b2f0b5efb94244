"""Flows as Parquet, written in row groups so memory stays bounded.

Uses pyarrow, imported only when Parquet is written. Column names follow Zeek's conn.log
with dots replaced by underscores (``id_orig_h``), as Zeek-to-Parquet tools do.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from egress.errors import ConfigError
from egress.formats.records_json import record_dict
from egress.records import Flow

ROW_GROUP = 65536


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError("Parquet output needs pyarrow (pip install pyarrow)") from exc
    return pa, pq


def flow_schema() -> Any:
    """The Arrow schema of a flow table."""
    pa, _ = _pyarrow()
    return pa.schema([
        ("ts", pa.timestamp("us", tz="UTC")), ("uid", pa.string()),
        ("id_orig_h", pa.string()), ("id_orig_p", pa.uint16()),
        ("id_resp_h", pa.string()), ("id_resp_p", pa.uint16()),
        ("proto", pa.string()), ("duration", pa.float64()),
        ("orig_bytes", pa.uint64()), ("resp_bytes", pa.uint64()),
        ("conn_state", pa.string()), ("history", pa.string()),
        ("orig_pkts", pa.uint64()), ("orig_ip_bytes", pa.uint64()),
        ("resp_pkts", pa.uint64()), ("resp_ip_bytes", pa.uint64()),
        ("tunnel_parents", pa.list_(pa.string())), ("ip_proto", pa.uint8()),
        ("community_id", pa.string()), ("vlan", pa.int32()), ("inner_vlan", pa.int32()),
        ("vni", pa.uint32()), ("interim", pa.bool_()),
    ])


def _columns(flows: list[Flow]) -> dict[str, list[Any]]:
    return {
        "ts": [f.start for f in flows], "uid": [f.uid for f in flows],
        "id_orig_h": [f.orig_h for f in flows], "id_orig_p": [f.orig_p for f in flows],
        "id_resp_h": [f.resp_h for f in flows], "id_resp_p": [f.resp_p for f in flows],
        "proto": [f.proto for f in flows], "duration": [f.duration_s for f in flows],
        "orig_bytes": [f.orig_bytes for f in flows], "resp_bytes": [f.resp_bytes for f in flows],
        "conn_state": [f.conn_state for f in flows], "history": [f.history for f in flows],
        "orig_pkts": [f.orig_pkts for f in flows],
        "orig_ip_bytes": [f.orig_ip_bytes for f in flows],
        "resp_pkts": [f.resp_pkts for f in flows],
        "resp_ip_bytes": [f.resp_ip_bytes for f in flows],
        "tunnel_parents": [list(f.tunnel_parents) for f in flows],
        "ip_proto": [f.ip_proto for f in flows],
        "community_id": [f.community_id for f in flows], "vlan": [f.vlan for f in flows],
        "inner_vlan": [f.inner_vlan for f in flows], "vni": [f.vni for f in flows],
        "interim": [f.interim for f in flows],
    }


class FlowParquetWriter:
    """Append flows to a Parquet file; call :meth:`close` (or use ``with``) to finish it."""

    def __init__(self, path: Path) -> None:
        pa, pq = _pyarrow()
        self._pa = pa
        self._schema = flow_schema()
        self._writer = pq.ParquetWriter(str(path), self._schema)
        self._pending: list[Flow] = []

    def write(self, flows: Iterable[Flow]) -> None:
        """Buffer flows and write full row groups."""
        for flow in flows:
            self._pending.append(flow)
            if len(self._pending) >= ROW_GROUP:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            table = self._pa.Table.from_pydict(_columns(self._pending), schema=self._schema)
            self._writer.write_table(table)
            self._pending = []

    def close(self) -> None:
        """Write what is buffered and close the file."""
        self._flush()
        self._writer.close()

    def __enter__(self) -> FlowParquetWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_records_parquet(records: Iterable[object], out: Path) -> list[Path]:
    """Write records of any type to Parquet, one file per record type; return the files.

    With one record type the file is ``out``; with several, ``out`` gets the type
    name before its suffix (``read.Flow.parquet``, ``read.DriveAttach.parquet``).
    Columns are those of :func:`egress.formats.records_json.record_dict`.
    """
    pa, pq = _pyarrow()
    rows: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        row = record_dict(record)
        rows.setdefault(row.pop("record"), []).append(row)
    written = []
    for name, table_rows in rows.items():
        path = out if len(rows) == 1 else out.with_suffix(f".{name}{out.suffix}")
        pq.write_table(pa.Table.from_pylist(table_rows), str(path))
        written.append(path)
    return written
