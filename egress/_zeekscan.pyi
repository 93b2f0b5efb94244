"""Type stub of the compiled Zeek TSV and JSON scanners (sources in csrc/zeekscan/)."""

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

def scan_json(
    data: bytes | bytearray | memoryview,
    start: int,
    end: int,
    first_line: int,
    n_lines: int,
    *,
    names: Sequence[bytes],
    plan: Sequence[tuple[int, int, int, int, int, int]],
) -> tuple[int, Buffer, list[Column], dict[str, tuple[int, list[int]]]] | None:
    """Parse the ``n_lines`` complete JSON lines ``data[start:end]`` (one flat object each).

    ``names`` gives the JSON key of each plan entry (whose field index is unused).
    Returns as :func:`scan_tsv` does (issues ``blank_line``, ``bad_json``,
    ``bad_value``, ``bad_address``), or ``None`` if the slow path must parse this
    input: an ISO-8601 ``ts`` string, ``NaN``/``Infinity``, a repeated or escaped
    key, a lone surrogate, nesting deeper than 64.
    """

def count_byte(data: bytes | bytearray | memoryview, start: int, end: int, byte: int, /) -> int:
    """Occurrences of ``byte`` in ``data[start:end]`` (``start`` below 0 counts from 0, ``end``
    past the data stops at its end)."""

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
    parse this input (an empty separator, an escaped set element that is not
    UTF-8, more than 2 GiB of one column's strings). A separator of several bytes
    splits as ``bytes.split`` does.
    """
