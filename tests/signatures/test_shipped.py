"""The shipped signatures on small literal cases: which fire, and which stay quiet."""

from __future__ import annotations

from pathlib import Path

import pytest

from egress.inventory import Inventory
from egress.signatures.compile import Signature
from egress.signatures.evaluate import evaluate
from egress.signatures.load import load_signatures
from tests.conftest import REPO
from tests.signatures.builders import TB, inventory, utc, window, windows_table

PB = 1000 * TB


@pytest.fixture(scope="module")
def shipped() -> tuple[Signature, ...]:
    return load_signatures(REPO / "signatures")


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    return inventory(tmp_path)


def test_every_shipped_file_documents_its_thresholds(shipped: tuple[Signature, ...]) -> None:
    assert len(shipped) == 13
    for signature in shipped:
        assert signature.path.stem == signature.id
        assert all(t.reason.strip() for t in signature.thresholds)
        assert signature.unused_thresholds == ()


def test_crypto_paid_rental(shipped: tuple[Signature, ...], inv: Inventory) -> None:
    table = windows_table([
        window("t-new", "24h", utc(2026, 3, 12), bytes_in=60 * TB, concern_bytes_in=60 * TB,
               hours_above_rate=24, peak_rate_in_bps=40e9),
        window("t-new", "7d", utc(2026, 3, 6), bytes_in=300 * TB, concern_bytes_in=280 * TB),
        window("t-new", "24h", utc(2026, 3, 20), bytes_out=2 * TB),
    ])
    matches = list(evaluate(shipped, table, inv))
    assert sorted(m.signature_id for m in matches) == [
        "bulk-inbound-24h",
        "bulk-inbound-7d",
        "concern-country-arrival",
        "follow-on-outbound",
        "gpu-expansion-bulk-arrival",
        "new-tenant-gpu-bulk-arrival",
        "sustained-high-rate-inbound",
    ]
    core = next(m for m in matches if m.signature_id == "new-tenant-gpu-bulk-arrival")
    assert core.risk_score == 100
    assert [(f.name, f.points) for f in core.risk_factors] == [
        ("severity high", 75), ("crypto payment", 15), ("weak KYC", 10)]
    concern = next(m for m in matches if m.signature_id == "concern-country-arrival")
    assert concern.risk_score == 85  # 50 + crypto 15 + KYC none 10 + parent in CN 10


def test_drive_courier_successor(shipped: tuple[Signature, ...], inv: Inventory) -> None:
    table = windows_table([
        window("t-succ", "7d", utc(2026, 3, 1), drives_attached=60,
               drive_capacity_bytes=60 * 80 * TB, bytes_copied=4 * PB),
    ])
    found = sorted(m.signature_id for m in evaluate(shipped, table, inv))
    assert found == ["drive-ingest-burst", "entity-substitution-arrival"]


def test_busy_established_tenant_stays_quiet(
    shipped: tuple[Signature, ...], inv: Inventory
) -> None:
    table = windows_table([
        window("t-old", "24h", utc(2026, 3, 10), bytes_in=20 * TB, object_put_bytes=5 * TB,
               object_puts=10_000, max_transfer_duration_s=3600.0),
        window("t-old", "7d", utc(2026, 3, 4), bytes_in=140 * TB),
        window("t-old", "cumulative", utc(2023, 1, 1), end=utc(2026, 3, 11), bytes_in=2 * PB),
    ])
    assert list(evaluate(shipped, table, inv)) == []
