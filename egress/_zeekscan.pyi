"""Type stub of the compiled Zeek TSV tokenizer (sources in csrc/zeekscan/)."""

from collections.abc import Sequence

KIND_TIME: int
KIND_UINT: int
KIND_INT: int
KIND_DOUBLE: int
KIND_BOOL: int
KIND_STRING: int
KIND_ADDR: int
KIND_SET: int

class Buffer:
    """Read-only memory filled by the scanner (buffer protocol; wrap with pa.py_buffer)."""

    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

# (null count, set elements, validity, values, offsets, data, child offsets)
Column = tuple[int, int, Buffer | None, Buffer | None, Buffer | None, Buffer | None,
               Buffer | None]

def count_byte(data: bytes | bytearray | memoryview, start: int, end: int, byte: int, /) -> int:
    """Occurrences of ``byte`` in ``data[start:end]`` (indices clamped as slicing does)."""

def scan_tsv(
    data: bytes | bytearray | memoryview,
    start: int,
    end: int,
    first_line: int,
    n_lines: int,
    *,
    separator: bytes,
    unset: bytes,
    empty: bytes,
    set_separator: bytes,
    n_fields: int,
    plan: Sequence[tuple[int, int, int, int, int, int]],
) -> tuple[int, Buffer, list[Column], dict[str, tuple[int, list[int]]]] | None:
    """Parse the ``n_lines`` complete lines ``data[start:end]``, numbered from ``first_line``.

    ``plan`` gives, per output column, (field index, KIND_*, byte width, most digits,
    low, high). Returns (rows kept, int64 line numbers, one Column per plan entry,
    issue kind -> (count, first line numbers)), or ``None`` if the slow path must
    parse this input (a separator of more than one byte, an escaped set element
    that is not UTF-8, more than 2 GiB of one column's strings).
    """
