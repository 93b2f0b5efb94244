"""Quantities with units: exact values and rejected text."""

from __future__ import annotations

import pytest

from egress.signatures.units import (
    Quantity,
    format_bytes,
    format_duration,
    format_rate,
    parse_bytes,
    parse_duration,
    parse_quantity,
    parse_rate,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("50 TB", 50_000_000_000_000),
        ("50TB", 50_000_000_000_000),
        ("1.5 TiB", 1_649_267_441_664),
        ("2 PB", 2_000_000_000_000_000),
        ("512 GiB", 549_755_813_888),
        ("1 kB", 1000),
        ("7 B", 7),
        ("0.1 kB", 100),
    ],
)
def test_bytes_are_exact_integers(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected
    assert isinstance(parse_bytes(text), int)


def test_rates_are_bits_per_second() -> None:
    assert parse_rate("5 Gbit/s") == 5e9
    assert parse_rate("40 Gbit/s") == 40_000_000_000.0
    assert parse_rate("100 Mbit/s") == 1e8
    assert parse_rate("1 bit/s") == 1.0


def test_durations_are_seconds() -> None:
    assert parse_duration("7d") == 604_800
    assert parse_duration("12h") == 43_200
    assert parse_duration("30m") == 1800
    assert parse_duration("45s") == 45
    assert parse_duration("1.5h") == 5400
    assert parse_duration("2w") == 1_209_600


def test_bare_numbers_have_no_unit() -> None:
    assert parse_quantity("256") == Quantity("number", 256, "256")
    assert parse_quantity(12) == Quantity("number", 12, "12")
    assert parse_quantity("0.5") == Quantity("number", 0.5, "0.5")


def test_rejected_text_is_named() -> None:
    with pytest.raises(ValueError, match=r"unknown unit 'TBB' in '50 TBB'"):
        parse_quantity("50 TBB")
    with pytest.raises(ValueError, match=r"not a number with an optional unit: 'lots'"):
        parse_quantity("lots")
    with pytest.raises(ValueError, match=r"'5 Gbit/s' is not a bytes value \(it reads as rate\)"):
        parse_bytes("5 Gbit/s")
    with pytest.raises(ValueError, match=r"'50 TB' is not a duration value"):
        parse_duration("50 TB")
    with pytest.raises(ValueError, match="not a number"):
        parse_quantity(True)


def test_formatting() -> None:
    assert format_bytes(50 * 10**12) == "50 TB"
    assert format_bytes(412.5 * 10**12) == "412.5 TB"
    assert format_bytes(999) == "999 B"
    assert format_rate(4e10) == "40 Gbit/s"
    assert format_duration(604_800) == "7d"
    assert format_duration(5400) == "90m"
    assert format_duration(45.5) == "45.5s"
