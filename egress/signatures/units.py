"""Quantities with units in signatures: bytes (``50 TB``), rates (``5 Gbit/s``), durations (``7d``).

Bytes are decimal SI (``kB`` = 1000 B ... ``PB``) or binary (``KiB`` = 1024 B ... ``PiB``) and
come out as exact integers (rounded down to whole bytes). Rates are bits per second
(``bit/s``, ``kbit/s``, ``Mbit/s``, ``Gbit/s``, ``Tbit/s``). Durations take ``s``, ``m``, ``h``,
``d``, ``w`` and come out in seconds. A bare number has no unit (kind ``number``).
Every parser raises :class:`ValueError` with the offending text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

Kind = Literal["bytes", "rate", "duration", "number"]

BYTE_UNITS: dict[str, int] = {
    "B": 1,
    "kB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "PB": 10**15,
    "EB": 10**18,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
    "PiB": 2**50,
}
RATE_UNITS: dict[str, int] = {
    "bit/s": 1,
    "kbit/s": 10**3,
    "Mbit/s": 10**6,
    "Gbit/s": 10**9,
    "Tbit/s": 10**12,
}
DURATION_UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

_QUANTITY = re.compile(r"^\s*(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?P<unit>[A-Za-z/]*)\s*$")


@dataclass(frozen=True, slots=True)
class Quantity:
    """A parsed value: bytes (int), rate (bits/s), duration (seconds) or a bare number."""

    kind: Kind
    value: float | int
    text: str


def _split(text: str) -> tuple[Fraction, str]:
    found = _QUANTITY.match(text)
    if found is None:
        raise ValueError(f"not a number with an optional unit: {text!r}")
    return Fraction(found["number"]), found["unit"]


def _number(value: Fraction) -> float | int:
    return int(value) if value.denominator == 1 else float(value)


def parse_quantity(text: str | int | float) -> Quantity:
    """Parse ``50 TB``, ``1.5 TiB``, ``5 Gbit/s``, ``7d`` or a bare number."""
    if isinstance(text, bool):
        raise ValueError(f"not a number with an optional unit: {text!r}")
    if isinstance(text, int | float):
        return Quantity("number", text, str(text))
    number, unit = _split(text)
    if not unit:
        return Quantity("number", _number(number), text.strip())
    if unit in BYTE_UNITS:
        return Quantity("bytes", int(number * BYTE_UNITS[unit]), text.strip())
    if unit in RATE_UNITS:
        return Quantity("rate", float(number * RATE_UNITS[unit]), text.strip())
    if unit in DURATION_UNITS:
        return Quantity("duration", _number(number * DURATION_UNITS[unit]), text.strip())
    known = ", ".join([*BYTE_UNITS, *RATE_UNITS, *DURATION_UNITS])
    raise ValueError(f"unknown unit {unit!r} in {text!r} (known: {known})")


def _expect(text: str, kind: Kind) -> float | int:
    quantity = parse_quantity(text)
    if quantity.kind != kind:
        raise ValueError(f"{text!r} is not a {kind} value (it reads as {quantity.kind})")
    return quantity.value


def parse_bytes(text: str) -> int:
    """Bytes of ``50 TB`` (50_000_000_000_000) or ``1.5 TiB``; whole bytes, rounded down."""
    return int(_expect(text, "bytes"))


def parse_rate(text: str) -> float:
    """Bits per second of ``5 Gbit/s`` (5e9)."""
    return float(_expect(text, "rate"))


def parse_duration(text: str) -> float:
    """Seconds of ``7d``, ``12h``, ``30m``, ``45s``."""
    return float(_expect(text, "duration"))


def _scaled(value: float, units: dict[str, int], smallest: str) -> str:
    best = smallest
    for unit, factor in units.items():
        if factor <= abs(value) and factor >= units[best] and not unit.endswith("iB"):
            best = unit
    shown = value / units[best]
    return f"{shown:.4g} {best}"


def format_bytes(value: float) -> str:
    """``50000000000000`` -> ``50 TB`` (decimal SI, four significant digits)."""
    return _scaled(value, BYTE_UNITS, "B")


def format_rate(value: float) -> str:
    """``5e9`` -> ``5 Gbit/s``."""
    return _scaled(value, RATE_UNITS, "bit/s")


def format_duration(seconds: float) -> str:
    """``604800`` -> ``7d``; the largest unit that divides evenly, else seconds."""
    for unit in ("d", "h", "m"):
        factor = DURATION_UNITS[unit]
        if seconds and seconds % factor == 0:
            return f"{int(seconds // factor)}{unit}"
    return f"{seconds:g}s"


def format_value(kind: Kind, value: float) -> str:
    """Render a value of ``kind`` with its unit."""
    if kind == "bytes":
        return format_bytes(value)
    if kind == "rate":
        return format_rate(value)
    if kind == "duration":
        return format_duration(value)
    return f"{value:g}"
