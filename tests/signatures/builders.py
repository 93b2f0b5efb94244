"""Small literal inputs for signature tests: windows tables, inventories, signature files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from egress.inventory import Inventory, load_inventory

TB = 10**12
SPAN_LENGTH = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}

#: The windows contract's columns (egress.windows produces them for issue 6).
WINDOW_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("tenant", pa.string()),
    ("span", pa.string()),
    ("window_start", pa.timestamp("us", tz="UTC")),
    ("window_end", pa.timestamp("us", tz="UTC")),
    ("bytes_in", pa.uint64()),
    ("bytes_out", pa.uint64()),
    ("cross_border_bytes_in", pa.uint64()),
    ("cross_border_bytes_out", pa.uint64()),
    ("concern_bytes_in", pa.uint64()),
    ("concern_bytes_out", pa.uint64()),
    ("remote_addrs", pa.int64()),
    ("remote_asns", pa.int64()),
    ("flows", pa.int64()),
    ("peak_rate_in_bps", pa.float64()),
    ("peak_rate_out_bps", pa.float64()),
    ("hours_above_rate", pa.int64()),
    ("object_put_bytes", pa.uint64()),
    ("object_puts", pa.int64()),
    ("drives_attached", pa.int64()),
    ("drive_capacity_bytes", pa.uint64()),
    ("bytes_copied", pa.uint64()),
    ("max_transfer_duration_s", pa.float64()),
    ("quality_marked", pa.int64()),
]


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def window(tenant: str, span: str, start: datetime, **metrics: Any) -> dict[str, Any]:
    """One windows row; metrics not given are zero."""
    end = start + SPAN_LENGTH[span] if span in SPAN_LENGTH else metrics.pop("end")
    row: dict[str, Any] = {"tenant": tenant, "span": span, "window_start": start,
                           "window_end": end}
    for name, kind in WINDOW_COLUMNS[4:]:
        row[name] = metrics.pop(name, 0.0 if pa.types.is_floating(kind) else 0)
    assert not metrics, f"unknown metrics {sorted(metrics)}"
    return row


def windows_table(rows: list[dict[str, Any]]) -> pa.Table:
    schema = pa.schema([pa.field(name, kind) for name, kind in WINDOW_COLUMNS])
    return pa.Table.from_pylist(rows, schema=schema)


INVENTORY = """\
site: {name: kul-1, country: MY, networks: [10.0.0.0/8]}
concern_countries: [CN, MO]
tenants:
  - id: t-new
    name: New Rental Ltd
    registered: 2026-03-01
    country: MY
    parent_country: CN
    kyc: none
    payment: crypto
    allocations:
      - {cluster: h100-a, gpu_model: H100, gpus: 2400, from: 2026-03-05}
  - id: t-old
    name: Old Analytics Bhd
    registered: 2023-01-01
    country: MY
    kyc: verified
    payment: invoice
    allocations:
      - {cluster: h100-b, gpu_model: H100, gpus: 64, from: 2023-02-01}
  - id: t-prev
    name: Gone Subsidiary Ltd
    registered: 2025-01-01
    country: SG
    kyc: basic
    payment: card
    identifiers: {payment_ref: PAY-1}
    offboarded: 2026-02-01
  - id: t-succ
    name: Local Successor Sdn Bhd
    registered: 2026-02-20
    country: MY
    kyc: basic
    payment: wire
    predecessor: t-prev
    identifiers: {payment_ref: PAY-1}
"""


def inventory(tmp_path: Path, text: str = INVENTORY) -> Inventory:
    path = tmp_path / "inventory.yaml"
    path.write_text(text, encoding="utf-8")
    return load_inventory(path)


def write_signature(directory: Path, text: str, name: str | None = None) -> Path:
    """Write a signature file named after its ``id:`` line (or ``name``)."""
    directory.mkdir(parents=True, exist_ok=True)
    if name is None:
        first = next(line for line in text.splitlines() if line.startswith("id:"))
        name = first.split(":", 1)[1].strip()
    path = directory / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def signature_text(
    sig_id: str = "bulk",
    *,
    window: str = "24h",
    condition: str = "condition: bytes_in >= $volume",
    extra: str = "",
    thresholds: str = "thresholds:\n  volume: {value: 50 TB, reason: big}\n",
    severity: str = "medium",
) -> str:
    return (
        f"id: {sig_id}\ntitle: Test {sig_id}\ndescription: test signature\n"
        f"severity: {severity}\nversion: 1\nstatus: test\nattack: [T1105]\n"
        f"window: {window}\n{thresholds}{condition}\n{extra}"
    )
