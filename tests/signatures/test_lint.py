"""Lint: the planted faults of a bad signature set, and a clean set."""

from __future__ import annotations

from pathlib import Path

from egress.signatures.lint import LintFinding, lint_directory
from tests.signatures.builders import signature_text, write_signature


def lines(findings: list[LintFinding], root: Path) -> list[str]:
    return [str(f).replace(f"{root}/", "") for f in findings]


def test_planted_faults(tmp_path: Path) -> None:
    d = tmp_path / "bad"
    write_signature(d, signature_text("dup"), "dup")
    (d / "dup.yml").write_text(signature_text("dup"), encoding="utf-8")
    write_signature(d, signature_text("other-name"), "misnamed")
    write_signature(d, signature_text("never", condition="condition: bytes_in < 0"))
    write_signature(d, signature_text("range", condition="condition:\n  all:\n"
                                      "    - bytes_in >= $volume\n    - bytes_in < 10 TB"))
    write_signature(d, signature_text("kyc", condition="condition:\n  all:\n"
                                      "    - flows > 0\n    - tenant.kyc < none"))
    write_signature(d, signature_text("rate", condition="condition: peak_rate_in_bps >= 5 TB",
                                      thresholds=""))
    write_signature(d, signature_text("metric", condition="condition: bytes_inn >= 5 TB",
                                      thresholds=""))
    write_signature(d, signature_text("twin", thresholds="thresholds:\n"
                                      "  volume: {value: 80 TB, reason: r}\n"))
    write_signature(d, signature_text("spare", window="1h", thresholds="thresholds:\n"
                                      "  volume: {value: 1 TB, reason: r}\n"
                                      "  extra: {value: 3, reason: r}\n"))
    write_signature(d, signature_text("untagged", window="7d", severity="high").replace(
        "attack: [T1105]\n", ""))
    assert lines(lint_directory(d), d) == [
        "dup.yml:1: error: duplicate-id: id 'dup' is also used by dup.yaml",
        "kyc.yaml:10: warning: unused-threshold: threshold 'volume' (50 TB) is not used "
        "by any condition",
        "kyc.yaml:14: error: never-holds: condition can never hold: 'tenant.kyc < none' "
        "can never hold",
        "metric.yaml:9: error: invalid: condition: unknown metric or fact 'bytes_inn' "
        "(did you mean bytes_in?)",
        "misnamed.yaml:1: error: id-mismatch: id 'other-name' differs from the file name "
        "'misnamed'",
        "misnamed.yaml:11: warning: overlap: same window (24h) and condition structure "
        "as 'dup' (dup.yaml): one of them may be redundant",
        "never.yaml:10: warning: unused-threshold: threshold 'volume' (50 TB) is not "
        "used by any condition",
        "never.yaml:11: error: never-holds: condition can never hold: 'bytes_in < 0' can "
        "never hold",
        "range.yaml:14: error: never-holds: condition can never hold: all of 'bytes_in "
        ">= $volume' and 'bytes_in < 10 TB' cannot hold together",
        "rate.yaml:9: error: invalid: condition: unit mismatch: peak_rate_in_bps takes a "
        "rate (5 Gbit/s), '5 TB' is a bytes value",
        "spare.yaml:11: warning: unused-threshold: threshold 'extra' (3) is not used by "
        "any condition",
        "twin.yaml:11: warning: overlap: same window (24h) and condition structure as "
        "'dup' (dup.yaml): one of them may be redundant",
        "untagged.yaml:1: warning: no-attack: no ATT&CK technique for a high signature",
    ]


def test_any_of_never_holding_children(tmp_path: Path) -> None:
    d = tmp_path / "sigs"
    write_signature(d, signature_text("any-never", window="1h", thresholds="",
                                      condition="condition: {any: [flows < 0, remote_addrs < 0]}"))
    assert lines(lint_directory(d), d) == [
        "any-never.yaml:9: error: never-holds: condition can never hold: "
        "'flows < 0' can never hold"]


def test_overrides_are_linted(tmp_path: Path) -> None:
    d = tmp_path / "sigs"
    write_signature(d, signature_text("bulk"))
    site = tmp_path / "site.yaml"
    site.write_text("bulk:\n  volume: 0 TB\nghost:\n  x: 1\n", encoding="utf-8")
    assert lines(lint_directory(d, overrides=site), tmp_path) == [
        "site.yaml:3: error: unknown-signature: no signature 'ghost' to override"]
    site.write_text("bulk:\n  volume: 5 Gbit/s\n", encoding="utf-8")
    assert lines(lint_directory(d, overrides=site), tmp_path) == [
        "site.yaml:2: error: invalid: volume: unit mismatch: bytes_in takes bytes (50 TB), "
        "'5 Gbit/s' is a rate value (used at condition)"]


def test_missing_directory(tmp_path: Path) -> None:
    assert lines(lint_directory(tmp_path / "none"), tmp_path) == [
        "none: error: invalid: not a directory of signatures"]


def test_shipped_signatures_lint_clean() -> None:
    shipped = Path(__file__).resolve().parents[2] / "signatures"
    assert lint_directory(shipped) == []


def test_never_holding_steps_and_amplifiers(tmp_path: Path) -> None:
    d = tmp_path / "sigs"
    write_signature(d, signature_text("steps", thresholds="", condition="condition: flows > 0",
                                      extra="sequence:\n  within: 3d\n  steps:\n"
                                      "    - {name: a, window: 1h, condition: "
                                      "'all: x' }\n"), "steps")
    write_signature(d, signature_text("amp", thresholds="", condition="condition: flows > 0",
                                      window="1h",
                                      extra="risk:\n  amplifiers:\n"
                                      "    - {name: x, when: tenant.gpus < 0, points: 5}\n"))
    assert lines(lint_directory(d), d) == [
        "amp.yaml:12: error: never-holds: condition can never hold: "
        "'tenant.gpus < 0' can never hold",
        "steps.yaml:13: error: invalid: sequence.steps[0].condition: cannot read condition "
        "'all: x' (OPERAND [OP VALUE])",
    ]


BAD = Path(__file__).resolve().parent / "bad"


def test_checked_in_bad_set() -> None:
    """tests/signatures/bad: each file names its planted fault in its first line, and lint
    reports exactly those faults (weekly-arrival.yaml is the clean reference)."""
    planted = {p.name: p.read_text().splitlines()[0] for p in sorted(BAD.glob("*.yaml"))}
    assert len(planted) == 8
    assert all(line.startswith("# Planted fault: ") for line in planted.values())
    assert lines(lint_directory(BAD), BAD) == [
        "duplicate-id.yaml:2: error: id-mismatch: id 'weekly-arrival' differs from the file "
        "name 'duplicate-id'",
        "misnamed.yaml:2: error: id-mismatch: id 'misnamed-arrival' differs from the file "
        "name 'misnamed'",
        "never-holds.yaml:16: error: never-holds: condition can never hold: all of 'bytes_in "
        ">= $volume' and 'bytes_in < 50 TB' cannot hold together",
        "overlap.yaml:15: warning: overlap: same window (7d) and condition structure as "
        "'weekly-arrival' (duplicate-id.yaml): one of them may be redundant",
        "undefined-threshold.yaml:13: error: invalid: condition: unknown threshold $volum "
        "(defined: volume)",
        "unit-mismatch.yaml:12: error: invalid: thresholds.peak: unit mismatch: "
        "peak_rate_in_bps takes a rate (5 Gbit/s), '10 TB' is a bytes value (used at "
        "condition.all[0])",
        "unknown-metric.yaml:13: error: invalid: condition: unknown metric or fact "
        "'concern_bytes' (did you mean concern_bytes_in?)",
        "weekly-arrival.yaml:2: error: duplicate-id: id 'weekly-arrival' is also used by "
        "duplicate-id.yaml",
    ]
