"""The string hash of csrc/wincore/text.h: the values distinct counts are made of."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from egress._wincore import hash_strings

MASK = (1 << 64) - 1


def reference_hash(data: bytes) -> int:
    """text.h's hash_bytes, word by word as written, in Python integers."""
    h = 0xCBF29CE484222325 ^ (len(data) * 0x9E3779B97F4A7C15 & MASK)
    whole = len(data) // 8 * 8
    for i in range(0, whole, 8):
        h = (h ^ int.from_bytes(data[i:i + 8], "little")) * 0xBF58476D1CE4E5B9 & MASK
        h ^= h >> 31
    h = (h ^ int.from_bytes(data[whole:], "little")) * 0x94D049BB133111EB & MASK
    h ^= h >> 29
    h = h * 0xBF58476D1CE4E5B9 & MASK
    return h ^ (h >> 32)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.binary(max_size=40), max_size=30), cut=st.integers(0, 3))
def test_hash_of_every_length_equals_the_reference(values: list[bytes], cut: int) -> None:
    array = pa.array(values, pa.binary()).slice(min(cut, len(values)))
    _, offsets, data = array.buffers()
    got = np.frombuffer(hash_strings(offsets, b"" if data is None else data, array.offset,
                                     len(array)), np.uint64)
    assert got.tolist() == [reference_hash(v) for v in values[min(cut, len(values)):]]


def test_known_values() -> None:
    """Hashes of addresses of each tail length stay what they were (kept sketches)."""
    texts = ["", "1", "10", "1.2", "1.2.", "1.2.3", "1.2.3.", "1.2.3.4", "10.26.51.109",
             "2001:db8::1"]
    array = pa.array(texts)
    _, offsets, data = array.buffers()
    got = np.frombuffer(hash_strings(offsets, data, 0, len(texts)), np.uint64).tolist()
    assert got == [reference_hash(t.encode()) for t in texts]
