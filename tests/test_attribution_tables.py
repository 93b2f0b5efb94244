"""The tables compiled attribution is built from: what it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from egress._wincore import Ipv4Attributor
from egress.attribution_batch import _OUTCOMES
from egress.attribution_tables import Prefixes, Ranges, Spans, compiled_attributor
from egress.inventory_index import Timeline


def tables(**changes: object) -> tuple[object, ...]:
    """The 26 tables of an attributor with one /24 held by tenant 0, with ``changes``."""
    spans = Spans.build([Timeline((0.0,), (10.0,), ("t",))], {"t": 0})
    attributor = compiled_attributor(
        outcomes=_OUTCOMES, site=Ranges.build([]), private=Ranges.build([]),
        prefixes=Prefixes.build({(24, 0x0A0102): 0}), nets=spans,
        vni_keys=np.zeros(0, np.int64), vnis=Spans.build([], {}), geo=None)
    assert isinstance(attributor, Ipv4Attributor)
    names = ["outcomes", "site", "private", "lengths", "offsets", "keys", "values", "bases",
             "dense_offsets", "dense", "first", "count", "starts", "ends", "owners"]
    values: list[object] = [
        np.ascontiguousarray(_OUTCOMES), np.zeros(0, np.uint64), np.zeros(0, np.uint64),
        np.array([24], np.int64), np.array([0, 1], np.int64), np.array([0x0A0102], np.uint64),
        np.array([0], np.int64), np.array([0x0A0102], np.uint64), np.array([0, 1], np.int64),
        np.array([0], np.int64), np.array([0], np.int64), np.array([1], np.int64),
        np.array([0.0]), np.array([10.0]), np.array([0], np.int64)]
    empty = np.zeros(0, np.int64)
    rest: list[object] = [empty, empty, empty, np.zeros(0), np.zeros(0), empty,
                          np.zeros(0, np.uint64), np.zeros(0, np.uint64), empty, empty, empty]
    by_name = dict(zip(names, values, strict=True))
    for name, value in changes.items():
        by_name[name] = value
    return (*by_name.values(), *rest)


def test_good_tables_are_taken() -> None:
    assert isinstance(Ipv4Attributor(tables()), Ipv4Attributor)


@pytest.mark.parametrize(("change", "message"), [
    ({"outcomes": np.zeros(10, np.int8)}, "inconsistent tables"),
    ({"count": np.array([2], np.int64)}, "network timeline 0: spans out of range"),
    ({"values": np.array([5], np.int64)}, "names a timeline that does not exist"),
    ({"dense": np.array([3], np.int64)}, "names a timeline that does not exist"),
    ({"lengths": np.array([33], np.int64)}, "prefix level 0 out of range"),
    ({"offsets": np.array([0, 2], np.int64)}, "prefix level 0 out of range"),
    ({"site": np.zeros(3, np.uint64)}, "inconsistent tables"),
    ({"ends": np.zeros(2)}, "network spans: tables of different lengths"),
    ({"starts": np.zeros(3, np.uint8)}, "not a whole number of items"),
])
def test_inconsistent_tables_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Ipv4Attributor(tables(**change))


def test_columns_of_the_wrong_length_are_refused() -> None:
    attributor = Ipv4Attributor(tables())
    strings = (np.zeros(3, np.int32).tobytes(), b"", 0, 2)
    columns = [np.zeros(2, np.int64), None, None, None, None, np.zeros(2, np.int64),
               np.zeros(2, np.uint64), np.zeros(1, np.uint64)] + [np.zeros(2, np.int64)] * 12
    with pytest.raises(ValueError, match="bytes_resp: 8 bytes, expected 16"):
        attributor.solve(strings, strings, tuple(columns))
    with pytest.raises(ValueError, match="expected 20 columns"):
        attributor.solve(strings, strings, tuple(columns[:5]))
