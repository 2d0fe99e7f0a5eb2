"""Rows for `COPY ... (format binary)` built with numpy, a column at a time, with no Python per cell.

The big shop tables (orders and order items: tens of millions of rows at a million customers) go this
way: the server reads binary integers, timestamps and numerics several times faster than their text,
and the client builds a whole batch with a handful of array operations. A cell is a byte matrix (one
row per table row) plus, for variable-length values, how many of its bytes count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg

HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
TRAILER = b"\xff\xff"
PG_EPOCH_MS = 946_684_800_000  # 2000-01-01T00:00:00Z, where binary timestamps count from
ROWS_PER_WRITE = 32_768


@dataclass(frozen=True)
class Cells:
    data: np.ndarray  # one fixed-size record per row (any dtype), the field's length word first
    used: np.ndarray | None = None  # bytes of each row's record that count (None: all of them)


def _fields(n: int, payload: str | tuple) -> np.ndarray:
    """Records of a 4-byte length word and a payload of numpy type `payload`, the length filled in."""
    cells = np.empty(n, dtype=[("length", ">i4"), ("value", payload)])
    cells["length"] = cells.dtype["value"].itemsize
    return cells


def int8(values: np.ndarray) -> Cells:
    cells = _fields(len(values), ">i8")
    cells["value"] = values
    return Cells(cells)


def int4(values: np.ndarray) -> Cells:
    cells = _fields(len(values), ">i4")
    cells["value"] = values
    return Cells(cells)


def timestamptz(ms: np.ndarray) -> Cells:
    return int8((np.asarray(ms, dtype=np.int64) - PG_EPOCH_MS) * 1000)


def money(cents: np.ndarray) -> Cells:
    """numeric with two decimals from non-negative cents, up to 10^12 - 1 whole units.

    Binary numeric is base-10000 digits: three for the whole part (weight 2), one for the cents
    (cents * 100 fills the first four decimal places); the server drops the zero digits.
    """
    cents = np.asarray(cents, dtype=np.int64)
    whole = cents // 100
    cells = _fields(len(cents), (">i2", (8,)))
    words = cells["value"]
    words[:, 0], words[:, 1], words[:, 2], words[:, 3] = 4, 2, 0, 2  # ndigits, weight, sign +, dscale
    words[:, 4] = whole // 100_000_000
    words[:, 5] = whole // 10_000 % 10_000
    words[:, 6] = whole % 10_000
    words[:, 7] = cents % 100 * 100
    return Cells(cells)


def text_choice(index: np.ndarray, choices: Sequence[str]) -> Cells:
    """Text cells from a small vocabulary: row k holds choices[index[k]]."""
    encoded = [choice.encode() for choice in choices]
    width = 4 + max(map(len, encoded))
    table = np.array([len(raw).to_bytes(4, "big") + raw.ljust(width - 4, b"\0") for raw in encoded])
    lengths = np.array([4 + len(raw) for raw in encoded])
    index = np.asarray(index, dtype=np.int64)
    same = len(set(lengths.tolist())) == 1
    return Cells(table.view(f"V{width}")[index], None if same else lengths[index])


def rows(columns: Sequence[Cells]) -> bytes:
    """The binary COPY tuples of the columns' rows (without header and trailer)."""
    n = len(columns[0].data)
    widths = [c.data.dtype.itemsize for c in columns]
    record = np.empty(n, dtype=[("count", ">i2"), *((f"c{k}", f"V{w}") for k, w in enumerate(widths))])
    record["count"] = len(columns)
    for k, c in enumerate(columns):
        record[f"c{k}"] = np.ascontiguousarray(c.data).view(f"V{widths[k]}")
    if all(c.used is None for c in columns):
        return record.tobytes()
    matrix = record.view(np.uint8).reshape(n, record.dtype.itemsize)
    keep = np.ones(matrix.shape, dtype=bool)
    offset = 2
    for c, width in zip(columns, widths, strict=True):
        if c.used is not None:
            keep[:, offset : offset + width] = np.arange(width) < c.used[:, None]
        offset += width
    return matrix[keep].tobytes()


def copy(conn: psycopg.Connection, table: str, columns: Sequence[str], cells: Sequence[Cells]) -> None:
    """COPY the cells' rows into `table`, a block of rows at a time (small blocks reuse freed memory)."""
    n = len(cells[0].data)
    statement = f"copy {table} ({', '.join(columns)}) from stdin (format binary)"
    with conn.cursor() as cur, cur.copy(statement) as stream:
        stream.write(HEADER)
        for first in range(0, n, ROWS_PER_WRITE):
            block = slice(first, first + ROWS_PER_WRITE)
            stream.write(
                rows([Cells(c.data[block], None if c.used is None else c.used[block]) for c in cells])
            )
        stream.write(TRAILER)
