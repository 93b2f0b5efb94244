"""Loading signature and override files: compiled values and exact file:line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from egress.errors import SignatureError
from egress.signatures.compile import (
    AllocationStep,
    AllOf,
    AnyOf,
    FactCondition,
    MetricCondition,
    NotOf,
    WindowStep,
)
from egress.signatures.load import load_overrides, load_signatures
from tests.signatures.builders import TB, signature_text, write_signature

GOOD = """\
id: core
title: New tenant, big allocation, bulk arrival
description: test
severity: high
version: 3
status: experimental
references: [https://example.org/report]
attack: [T1105, T1567.002]
window: 7d
thresholds:
  young: {value: 90d, reason: new}
  gpus: {value: 256, reason: many}
  arrival: {value: 1.5 TiB, reason: corpus}
  level: {value: basic, reason: weak}
sequence:
  within: 30d
  steps:
    - name: allocation
      allocation: allocation.gpus >= $gpus
    - name: first arrival
      window: 24h
      condition: bytes_in > 1 TB
  final: arrival
condition:
  all:
    - tenant.age < $young
    - any:
        - bytes_in >= $arrival
        - peak_rate_in_bps >= 5 Gbit/s
    - not: tenant.country in concern_countries
    - tenant.payment in [crypto, other]
risk:
  base: 60
  amplifiers:
    - {name: weak KYC, when: tenant.kyc <= $level, points: 10, reason: unverified}
dedup:
  key: [signature, tenant]
  suppress: 7d
"""


def load_one(tmp_path: Path, text: str, name: str = "a") -> None:
    write_signature(tmp_path, text, name)
    load_signatures(tmp_path)


def test_good_file_compiles_exactly(tmp_path: Path) -> None:
    write_signature(tmp_path, GOOD)
    (sig,) = load_signatures(tmp_path)
    assert (sig.id, sig.severity, sig.version, sig.status, sig.span) == (
        "core", "high", 3, "experimental", "7d")
    assert sig.attack == ("T1105", "T1567.002")
    assert sig.references == ("https://example.org/report",)
    assert sig.threshold("arrival").value == 1_649_267_441_664
    assert sig.threshold("young").value == 7_776_000
    assert sig.threshold("level").value == "basic"
    assert sig.base_risk == 60
    assert sig.dedup_key == ("signature", "tenant")
    assert sig.suppress_s == 604_800
    assert sig.unused_thresholds == ()
    assert sig.sequence is not None
    assert sig.sequence.within_s == 2_592_000
    assert sig.sequence.final == "arrival"
    first, second = sig.sequence.steps
    assert isinstance(first, AllocationStep)
    assert first.condition == FactCondition(
        fact="allocation.gpus", kind="number", op=">=", value=256, ref=None, threshold="gpus",
        source="allocation.gpus >= $gpus", line=19)
    assert isinstance(second, WindowStep) and second.span == "24h"
    assert second.condition == MetricCondition(
        metric="bytes_in", op=">", value=TB, kind="bytes", text="1 TB", threshold=None,
        source="bytes_in > 1 TB", line=22)
    assert isinstance(sig.condition, AllOf)
    age, either, negated, payment = sig.condition.children
    assert isinstance(age, FactCondition) and age.value == 7_776_000 and age.line == 26
    assert isinstance(either, AnyOf)
    assert either.children[1] == MetricCondition(
        metric="peak_rate_in_bps", op=">=", value=5e9, kind="rate", text="5 Gbit/s",
        threshold=None, source="peak_rate_in_bps >= 5 Gbit/s", line=29)
    assert negated == NotOf(FactCondition(
        fact="tenant.country", kind="country", op="in", value=None, ref="concern_countries",
        threshold=None, source="tenant.country in concern_countries", line=30))
    assert isinstance(payment, FactCondition) and payment.value == ("crypto", "other")
    assert sig.amplifiers[0].points == 10


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (signature_text("a", extra="colour: red\n"), "a.yaml:12: colour: unknown key"),
        (signature_text("a", severity="severe"),
         "a.yaml:4: severity: must be one of 'informational', 'low', 'medium', 'high' or "
         "'critical'"),
        (signature_text("a", condition="condition:\n  all:\n    - bytes_in >= 1 TB\n"
                                       "    - byte_in >= 2 TB"),
         "a.yaml:14: condition.all[1]: unknown metric or fact 'byte_in' "
         "(did you mean bytes_in?)"),
        (signature_text("a", thresholds="thresholds:\n  volume: {value: 5 Gbit/s, reason: r}\n"),
         "a.yaml:10: thresholds.volume: unit mismatch: bytes_in takes bytes (50 TB), "
         "'5 Gbit/s' is a rate value (used at condition)"),
        (signature_text("a", condition="condition: peak_rate_in_bps >= 50 TB"),
         "a.yaml:11: condition: unit mismatch: peak_rate_in_bps takes a rate (5 Gbit/s), "
         "'50 TB' is a bytes value"),
        (signature_text("a", condition="condition: bytes_in >= $vol"),
         "a.yaml:11: condition: unknown threshold $vol (defined: volume)"),
        (signature_text("a", extra="window: 7d\n"),
         "a.yaml:12: not valid YAML: duplicate key 'window'"),
        (signature_text("a", extra="references: [a\n"),
         "a.yaml:13: not valid YAML: expected ',' or ']', but got '<stream end>'"),
        (signature_text("a").replace("[T1105]", "[t1105]"),
         r"a.yaml:7: attack[0]: 't1105' does not match ^T\d{4}(\.\d{3})?$"),
        (signature_text("a", condition="condition: tenant.kyc <= superb"),
         "a.yaml:11: condition: tenant.kyc is one of none, basic, verified, enhanced; "
         "got 'superb'"),
        (signature_text("a", condition="condition: tenant.predecessor == yes"),
         "a.yaml:11: condition: tenant.predecessor is a flag: write it alone, or under not"),
        (signature_text("a", extra="risk:\n  amplifiers:\n"
                                   "    - {name: x, when: bytes_in > 0, points: 5}\n"),
         "a.yaml:14: risk.amplifiers[0].when: bytes_in: window metrics are not allowed here"),
        (signature_text("a", condition="condition: allocation.gpus >= 5"),
         "a.yaml:11: condition: allocation.gpus is only known in allocation steps"),
        (signature_text("a", extra="sequence:\n  within: soon\n  steps:\n"
                                   "    - {name: big, allocation: allocation.gpus >= 256}\n"),
         "a.yaml:13: sequence.within: unit mismatch: sequence.within takes a duration (14d), "
         "'soon' is a word"),
        (signature_text("a", extra="sequence:\n  within: 3d\n  steps:\n"
                                   "    - {name: big, window: 2h, condition: flows > 1}\n"),
         "a.yaml:15: sequence.steps[0].window: must be one of '1h', '24h', '7d' or "
         "'cumulative'"),
        (signature_text("a", condition="condition: {all: [bytes_in >= 1 TB], any: [flows > 1]}"),
         "a.yaml:11: condition: a condition is a string such as 'bytes_in >= 50 TB' or a "
         "mapping with one key: all, any or not"),
        (signature_text("a").replace("title: Test a\n", ""),
         "a.yaml:1: title: required key is missing"),
        (signature_text("a", condition="condition: tenant.age < 30"),
         "a.yaml:11: condition: unit mismatch: tenant.age takes a duration (30d), '30' is a "
         "number without unit"),
        (signature_text("a", condition="condition: tenant.country == Malaysia"),
         "a.yaml:11: condition: tenant.country compares with a country code (two capitals), "
         "site.country or concern_countries; got 'Malaysia'"),
        (signature_text("a", condition="condition: tenant.payment > card"),
         "a.yaml:11: condition: tenant.payment takes ==, !=, in or not in"),
        (signature_text("a", condition="condition: bytes_in"),
         "a.yaml:11: condition: bytes_in needs a comparison: >=, >, <=, <, == or !="),
        (signature_text("a", condition="condition: {all: []}"),
         "a.yaml:11: condition.all: all takes a non-empty list"),
        (signature_text("b"), "a.yaml:1: id: id 'b' differs from the file name 'a'"),
        ("", "a.yaml: the file is empty"),
        ("- a\n", "a.yaml:1: a signature file holds one mapping"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path: Path, text: str, error: str) -> None:
    write_signature(tmp_path, text, "a")
    with pytest.raises(SignatureError) as caught:
        load_signatures(tmp_path)
    assert str(caught.value) == f"{tmp_path}/{error}"


def test_duplicate_ids(tmp_path: Path) -> None:
    write_signature(tmp_path, signature_text("a"))
    (tmp_path / "a.yml").write_text(signature_text("a"), encoding="utf-8")
    with pytest.raises(SignatureError) as caught:
        load_signatures(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path}/a.yml:1: duplicate signature id 'a' (also {tmp_path}/a.yaml)")


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match=r"/nope: not a directory of signatures$"):
        load_signatures(tmp_path / "nope")


# -- overrides ----------------------------------------------------------------------------


def overrides_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_override_replaces_a_threshold(tmp_path: Path) -> None:
    sigs = tmp_path / "sigs"
    write_signature(sigs, signature_text("bulk"))
    write_signature(sigs, signature_text("other"))
    site = overrides_file(tmp_path, "# site kul-1\nbulk:\n  volume: 80 TB\n")
    bulk, other = load_signatures(sigs, overrides=site)
    assert bulk.threshold("volume").value == 80 * TB
    assert bulk.threshold("volume").overridden is True
    assert (bulk.threshold("volume").path, bulk.threshold("volume").line) == (site, 3)
    assert bulk.condition == MetricCondition(
        metric="bytes_in", op=">=", value=80 * TB, kind="bytes", text="80 TB",
        threshold="volume", source="bytes_in >= $volume", line=11)
    assert other.threshold("volume").value == 50 * TB
    assert other.threshold("volume").overridden is False


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("bulk:\n  volume: 80 Gbit/s\n",
         "site.yaml:2: volume: unit mismatch: bytes_in takes bytes (50 TB), '80 Gbit/s' is a "
         "rate value (used at condition)"),
        ("bulk:\n  volum: 80 TB\n",
         "site.yaml:2: bulk: no threshold 'volum' (thresholds: volume)"),
        ("bulk:\n  volume: 80 TB\nbluk:\n  volume: 1 TB\n",
         "site.yaml:3: unknown signature 'bluk'"),
        ("bulk:\n  volume: [1, 2]\n",
         "site.yaml:2: bulk.volume: a threshold value is a number or a string"),
        ("bulk: 80 TB\n", "site.yaml:1: bulk: give a mapping of threshold names to values"),
        ("bulk:\n  volume: 80 XB\n",
         "site.yaml:2: volume: unknown unit 'XB' in '80 XB' (known: B, kB, MB, GB, TB, PB, EB, "
         "KiB, MiB, GiB, TiB, PiB, bit/s, kbit/s, Mbit/s, Gbit/s, Tbit/s, s, m, h, d, w)"),
        ("[bulk]\n", "site.yaml:1: an overrides file maps signature ids to thresholds"),
    ],
)
def test_bad_overrides_name_file_and_line(tmp_path: Path, text: str, error: str) -> None:
    sigs = tmp_path / "sigs"
    write_signature(sigs, signature_text("bulk"))
    site = overrides_file(tmp_path, text)
    with pytest.raises(SignatureError) as caught:
        load_signatures(sigs, overrides=site)
    assert str(caught.value) == f"{tmp_path}/{error}"


def test_overrides_keep_their_places(tmp_path: Path) -> None:
    site = overrides_file(tmp_path, "a:\n  x: 1\nb:\n  y: 2 TB\n  z: basic\n")
    loaded = load_overrides(site)
    assert loaded.lines == {"a": 1, "b": 3}
    assert [(k, v.value, v.line) for k, v in loaded.values["b"].items()] == [
        ("y", "2 TB", 4), ("z", "basic", 5)]
