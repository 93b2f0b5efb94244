"""Evaluation over literal windows tables and a small inventory: matches, evidence, risk."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from egress.inventory import Inventory
from egress.signatures.compile import Signature
from egress.signatures.evaluate import evaluate
from egress.signatures.load import load_signatures
from egress.signatures.match import (
    CountryShare,
    FactEvidence,
    MetricEvidence,
    RiskFactor,
    StepMatch,
)
from tests.signatures.builders import (
    TB,
    inventory,
    signature_text,
    utc,
    window,
    windows_table,
    write_signature,
)

AMPLIFIERS = """\
risk:
  amplifiers:
    - {name: crypto payment, when: tenant.payment == crypto, points: 15, reason: hides payer}
    - {name: weak KYC, when: tenant.kyc <= basic, points: 10}
"""


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    return inventory(tmp_path)


def sigs(tmp_path: Path, *texts: str) -> tuple[Signature, ...]:
    directory = tmp_path / "sigs"
    for text in texts:
        write_signature(directory, text)
    return load_signatures(directory)


def test_metric_match_with_evidence_and_risk(tmp_path: Path, inv: Inventory) -> None:
    table = windows_table([
        window("t-old", "24h", utc(2026, 3, 10), bytes_in=70 * TB),
        window("t-new", "24h", utc(2026, 3, 10), bytes_in=50 * TB),  # exactly the threshold
        window("t-new", "24h", utc(2026, 3, 11), bytes_in=50 * TB - 1),
        window("t-new", "7d", utc(2026, 3, 4), bytes_in=900 * TB),  # other span
    ])
    (signature,) = sigs(tmp_path, signature_text("bulk", extra=AMPLIFIERS))
    matches = list(evaluate([signature], table, inv))
    assert [(m.tenant, m.window_start) for m in matches] == [
        ("t-new", utc(2026, 3, 10)), ("t-old", utc(2026, 3, 10))]
    new, old = matches
    assert new.signature_id == "bulk" and new.title == "Test bulk" and new.version == 1
    assert new.severity == "medium" and new.attack == ("T1105",) and new.span == "24h"
    assert new.window_end == utc(2026, 3, 11)
    assert new.metrics == (MetricEvidence(
        step="match", metric="bytes_in", op=">=", value=50 * TB, threshold=50 * TB,
        threshold_text="50 TB", threshold_name="volume", kind="bytes", held=True),)
    assert new.facts == (
        FactEvidence(step="risk", fact="tenant.payment", test="tenant.payment == crypto",
                     value="crypto", detail=None, at=utc(2026, 3, 11), held=True),
        FactEvidence(step="risk", fact="tenant.kyc", test="tenant.kyc <= basic",
                     value="none", detail=None, at=utc(2026, 3, 11), held=True),
    )
    assert new.risk_score == 75
    assert new.risk_factors == (
        RiskFactor(name="severity medium", points=50, reason="base score of the signature"),
        RiskFactor(name="crypto payment", points=15, reason="hides payer"),
        RiskFactor(name="weak KYC", points=10, reason=None),
    )
    assert new.dedup_key == "bulk|t-new|24h|2026-03-10T00:00:00+00:00"
    assert new.steps == () and new.suppressed == 0 and new.countries == ()
    assert old.risk_score == 50
    assert [f.held for f in old.facts] == [False, False]


def test_context_facts(tmp_path: Path, inv: Inventory) -> None:
    cond = """condition:
  all:
    - bytes_in >= 1 TB
    - tenant.age < 30d
    - tenant.parent_country in concern_countries
    - tenant.country == site.country
    - tenant.gpus >= 2400
    - not: tenant.offboarded"""
    table = windows_table([
        window("t-new", "24h", utc(2026, 3, 10), bytes_in=2 * TB),  # age 9 days
        window("t-new", "24h", utc(2026, 4, 10), bytes_in=2 * TB),  # age 41 days
        window("t-new", "24h", utc(2026, 3, 3), bytes_in=2 * TB),  # before the allocation
        window("t-old", "24h", utc(2026, 3, 10), bytes_in=2 * TB),
        window("t-ghost", "24h", utc(2026, 3, 10), bytes_in=2 * TB),  # not in the inventory
    ])
    (signature,) = sigs(tmp_path, signature_text("ctx", condition=cond, thresholds=""))
    matches = list(evaluate([signature], table, inv))
    assert [(m.tenant, m.window_start) for m in matches] == [("t-new", utc(2026, 3, 10))]
    facts = {f.fact: (f.value, f.held) for f in matches[0].facts}
    assert facts == {
        "tenant.age": (864_000.0, True),
        "tenant.parent_country": ("CN", True),
        "tenant.country": ("MY", True),
        "tenant.gpus": (2400, True),
        "tenant.offboarded": (False, False),
    }


def test_unknown_tenant_matches_metric_only_signatures(tmp_path: Path, inv: Inventory) -> None:
    table = windows_table([window("t-ghost", "24h", utc(2026, 3, 10), bytes_in=60 * TB)])
    (signature,) = sigs(tmp_path, signature_text("bulk", extra=AMPLIFIERS))
    (match,) = evaluate([signature], table, inv)
    assert match.risk_score == 50
    assert match.facts[0].detail == "not in the inventory"


def test_identity_flags_and_kyc_order(tmp_path: Path, inv: Inventory) -> None:
    cond = """condition:
  all:
    - flows >= 1
    - any: [tenant.predecessor, tenant.shared_identity]
    - tenant.kyc >= basic
    - tenant.kyc < verified"""
    table = windows_table([
        window(t, "1h", utc(2026, 3, 10), flows=1) for t in ("t-new", "t-old", "t-prev", "t-succ")
    ])
    (signature,) = sigs(tmp_path, signature_text("sub", window="1h", condition=cond,
                                                 thresholds=""))
    matches = list(evaluate([signature], table, inv))
    # t-prev shares PAY-1 with t-succ too; t-new has kyc none, t-old is verified
    assert [m.tenant for m in matches] == ["t-prev", "t-succ"]
    succ = {f.fact: (f.value, f.detail) for f in matches[1].facts}
    assert succ["tenant.predecessor"] == (True, "t-prev")
    assert succ["tenant.shared_identity"] == (True, "t-prev (payment_ref:PAY-1)")
    prev = {f.fact: (f.value, f.detail) for f in matches[0].facts}
    assert prev["tenant.predecessor"] == (False, None)


def test_offboarded_flag(tmp_path: Path, inv: Inventory) -> None:
    table = windows_table([
        window("t-prev", "24h", utc(2026, 1, 30), flows=1),  # ends 01-31: still active
        window("t-prev", "24h", utc(2026, 1, 31), flows=1),  # ends 02-01: offboarded then
    ])
    (signature,) = sigs(tmp_path, signature_text(
        "off", condition="condition: {all: [flows > 0, tenant.offboarded]}", thresholds=""))
    (match,) = evaluate([signature], table, inv)
    assert match.window_start == utc(2026, 1, 31)
    assert match.facts[0].detail == "2026-02-01T00:00:00+00:00"


CORE = """\
sequence:
  within: 30d
  steps:
    - name: large allocation
      allocation:
        all:
          - allocation.gpus >= 256
          - allocation.gpu_model in [H100, B200]
  final: bulk arrival
"""


def test_allocation_then_arrival(tmp_path: Path, inv: Inventory) -> None:
    table = windows_table([
        window("t-new", "7d", utc(2026, 2, 25), bytes_in=300 * TB),  # ends 03-04: before
        window("t-new", "7d", utc(2026, 3, 13), bytes_in=300 * TB),  # 8 days after
        window("t-new", "7d", utc(2026, 4, 10), bytes_in=300 * TB),  # 36 days after
        window("t-old", "7d", utc(2026, 3, 13), bytes_in=300 * TB),  # only 64 GPUs
    ])
    (signature,) = sigs(tmp_path, signature_text(
        "core", window="7d", condition="condition: bytes_in >= 100 TB", thresholds="",
        extra=CORE))
    (match,) = evaluate([signature], table, inv)
    assert (match.tenant, match.window_start) == ("t-new", utc(2026, 3, 13))
    assert match.steps == (
        StepMatch(name="large allocation", kind="allocation", start=utc(2026, 3, 5),
                  end=utc(2026, 3, 5), span=None, detail="2400 H100 GPUs on h100-a"),
        StepMatch(name="bulk arrival", kind="window", start=utc(2026, 3, 13),
                  end=utc(2026, 3, 20), span="7d", detail=None),
    )
    assert match.metrics[0].step == "bulk arrival"


def test_allocation_inside_the_arrival_window_counts(tmp_path: Path, inv: Inventory) -> None:
    table = windows_table([window("t-new", "7d", utc(2026, 3, 1), bytes_in=300 * TB)])
    (signature,) = sigs(tmp_path, signature_text(
        "core", window="7d", condition="condition: bytes_in >= 100 TB", thresholds="",
        extra=CORE))
    (match,) = evaluate([signature], table, inv)
    assert match.steps[0].start == utc(2026, 3, 5)


FOLLOW_ON = """\
sequence:
  within: 14d
  steps:
    - name: arrival
      window: 24h
      condition: bytes_in >= 50 TB
  final: outbound
"""


def test_arrival_then_outbound(tmp_path: Path, inv: Inventory) -> None:
    table = windows_table([
        window("t-new", "24h", utc(2026, 3, 8), bytes_in=60 * TB),
        window("t-new", "24h", utc(2026, 3, 10), bytes_in=60 * TB, bytes_out=2 * TB),
        window("t-new", "24h", utc(2026, 3, 20), bytes_out=2 * TB),
        window("t-new", "24h", utc(2026, 3, 30), bytes_out=2 * TB),  # 20 days after
        window("t-old", "24h", utc(2026, 3, 10), bytes_in=60 * TB, bytes_out=2 * TB),  # same day
    ])
    (signature,) = sigs(tmp_path, signature_text(
        "follow", condition="condition: bytes_out >= 1 TB", thresholds="", extra=FOLLOW_ON))
    matches = list(evaluate([signature], table, inv))
    assert [(m.tenant, m.window_start) for m in matches] == [
        ("t-new", utc(2026, 3, 10)), ("t-new", utc(2026, 3, 20))]
    first, second = matches
    assert first.steps[0].start == utc(2026, 3, 8)  # the day before, not the same day
    assert second.steps[0] == StepMatch(name="arrival", kind="window", start=utc(2026, 3, 10),
                                        end=utc(2026, 3, 11), span="24h", detail=None)
    assert [(e.step, e.metric, e.value) for e in second.metrics] == [
        ("arrival", "bytes_in", 60 * TB), ("outbound", "bytes_out", 2 * TB)]


def test_suppression_folds_within_the_interval(tmp_path: Path, inv: Inventory) -> None:
    dedup = "dedup: {key: [signature, tenant], suppress: 7d}\n"
    start = utc(2026, 3, 1)
    table = windows_table([
        window("t-new", "7d", start + timedelta(days=d), bytes_in=300 * TB) for d in range(8)
    ])
    (signature,) = sigs(tmp_path, signature_text(
        "week", window="7d", condition="condition: bytes_in >= 200 TB", thresholds="",
        extra=dedup))
    matches = list(evaluate([signature], table, inv))
    assert [(m.window_start, m.suppressed, m.dedup_key) for m in matches] == [
        (start, 6, "week|t-new"), (start + timedelta(days=7), 0, "week|t-new")]


def test_same_key_without_suppression_is_kept(tmp_path: Path, inv: Inventory) -> None:
    table = windows_table([window("t-new", "24h", utc(2026, 3, d), bytes_in=60 * TB)
                           for d in (10, 11)])
    (signature,) = sigs(tmp_path, signature_text("bulk"))
    assert [m.suppressed for m in evaluate([signature], table, inv)] == [0, 0]


def test_risk_is_clamped(tmp_path: Path, inv: Inventory) -> None:
    table = windows_table([window("t-new", "24h", utc(2026, 3, 10), bytes_in=60 * TB)])
    (signature,) = sigs(tmp_path, signature_text("bulk", severity="critical", extra=AMPLIFIERS))
    (match,) = evaluate([signature], table, inv)
    assert match.risk_score == 100
    assert [(f.name, f.points) for f in match.risk_factors] == [
        ("severity critical", 90), ("crypto payment", 15), ("weak KYC", 10), ("clamp", -15)]


def test_integer_columns_compare_exactly(tmp_path: Path, inv: Inventory) -> None:
    big = 2**64 - 1
    table = windows_table([
        window("t-old", "1h", utc(2026, 3, 10), bytes_in=big, flows=3),
        window("t-old", "1h", utc(2026, 3, 10, 1), bytes_in=big - 1, flows=2),
    ])
    texts = [
        signature_text("top", window="1h", condition=f"condition: bytes_in >= {big}",
                       thresholds=""),
        signature_text("frac", window="1h", condition="condition: flows > 2.5", thresholds=""),
        signature_text("neg", window="1h", condition="condition: flows > -1", thresholds=""),
        signature_text("eq", window="1h", condition="condition: flows == 2.5", thresholds=""),
    ]
    found = [(m.signature_id, m.window_start.hour) for m in evaluate(sigs(tmp_path, *texts),
                                                                       table, inv)]
    assert found == [("frac", 0), ("neg", 0), ("neg", 1), ("top", 0)]


def test_countries_of_the_matched_window(tmp_path: Path, inv: Inventory) -> None:
    table = windows_table([window("t-new", "24h", utc(2026, 3, 10), bytes_in=60 * TB)])
    ts = pa.timestamp("us", tz="UTC")
    countries = pa.table({
        "tenant": ["t-new", "t-new", "t-new", "t-old"],
        "span": ["24h", "24h", "7d", "24h"],
        "window_start": pa.array([utc(2026, 3, 10)] * 4, ts),
        "window_end": pa.array([utc(2026, 3, 11)] * 4, ts),
        "country": ["SG", "CN", "CN", "CN"],
        "bytes_in": pa.array([10 * TB, 50 * TB, 1, 1], pa.uint64()),
        "bytes_out": pa.array([0, 5, 0, 0], pa.uint64()),
        "remote_addrs": pa.array([2, 38, 1, 1], pa.int64()),
    })
    (signature,) = sigs(tmp_path, signature_text("bulk"))
    (match,) = evaluate([signature], table, inv, countries=countries)
    assert match.countries == (
        CountryShare(country="CN", bytes_in=50 * TB, bytes_out=5, remote_addrs=38),
        CountryShare(country="SG", bytes_in=10 * TB, bytes_out=0, remote_addrs=2),
    )


def test_missing_column_is_named(tmp_path: Path, inv: Inventory) -> None:
    table = windows_table([]).drop_columns(["bytes_in"])
    (signature,) = sigs(tmp_path, signature_text("bulk"))
    with pytest.raises(ValueError, match=r"^windows table lacks column\(s\) bytes_in$"):
        evaluate([signature], table, inv)


def test_empty_table_and_inputs_untouched(tmp_path: Path, inv: Inventory) -> None:
    table = windows_table([window("t-new", "24h", utc(2026, 3, 10), bytes_in=60 * TB)])
    before = table.to_pylist()
    signatures = sigs(tmp_path, signature_text("bulk"))
    assert list(evaluate(signatures, windows_table([]), inv)) == []
    assert len(list(evaluate(signatures, table, inv))) == 1
    assert table.to_pylist() == before


def test_lists_and_negated_membership(tmp_path: Path, inv: Inventory) -> None:
    cond = """condition:
  all:
    - flows > 0
    - tenant.payment not in [card, invoice]
    - tenant.kyc in [none, basic]
    - tenant.country not in [SG]"""
    table = windows_table([
        window(t, "1h", utc(2026, 3, 10), flows=1) for t in ("t-new", "t-old", "t-prev", "t-succ")
    ])
    (signature,) = sigs(tmp_path, signature_text("lists", window="1h", condition=cond,
                                                 thresholds=""))
    assert [m.tenant for m in evaluate([signature], table, inv)] == ["t-new", "t-succ"]


def test_cumulative_rows_anchor_on_their_last_day(tmp_path: Path, inv: Inventory) -> None:
    seq = """sequence:
  within: 10d
  steps:
    - name: big
      allocation: allocation.gpus >= 256
"""
    table = windows_table([
        # registration 03-01; the rows end on 03-12 (day 03-11, 6 days after the allocation)
        # and 03-20 (day 03-19, 14 days after)
        window("t-new", "cumulative", utc(2026, 3, 1), end=utc(2026, 3, 12), bytes_in=600 * TB),
        window("t-new", "cumulative", utc(2026, 3, 1), end=utc(2026, 3, 20), bytes_in=600 * TB),
    ])
    (signature,) = sigs(tmp_path, signature_text(
        "cum", window="cumulative", condition="condition: bytes_in >= 500 TB", thresholds="",
        extra=seq))
    assert [m.window_end for m in evaluate([signature], table, inv)] == [utc(2026, 3, 12)]


def test_overridden_within(tmp_path: Path, inv: Inventory) -> None:
    sigs_dir = tmp_path / "sigs"
    write_signature(sigs_dir, signature_text(
        "core", window="7d", condition="condition: bytes_in >= 100 TB",
        thresholds="thresholds:\n  within: {value: 30d, reason: r}\n",
        extra=CORE.replace("within: 30d", "within: $within")))
    table = windows_table([window("t-new", "7d", utc(2026, 4, 10), bytes_in=300 * TB)])
    (default,) = load_signatures(sigs_dir)
    assert list(evaluate([default], table, inv)) == []  # 36 days after the allocation
    site = tmp_path / "site.yaml"
    site.write_text("core:\n  within: 45d\n", encoding="utf-8")
    (widened,) = load_signatures(sigs_dir, overrides=site)
    assert widened.sequence is not None and widened.sequence.within_s == 3_888_000
    assert [m.tenant for m in evaluate([widened], table, inv)] == ["t-new"]
