"""Text lines assembled by numpy from byte-string pieces, a column of pieces at a time.

A line is the concatenation of its pieces; each piece is a numpy bytes array ("S" dtype, one entry per
line, empty where a line has nothing there). Fixed texts, numbers with a fixed number of digits,
look-ups in small tables and per-person strings all become such arrays without a Python loop per line,
and the joined lines come back as one list of bytes. JSON texts must be encoded (orjson) before they
become pieces: nothing is escaped here, and no piece may hold a NUL or newline byte.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import orjson

CHUNK = 8_192  # lines joined at a time: a small matrix reuses freed memory (fresh pages are slow here)


def table(texts: Sequence[bytes]) -> np.ndarray:
    """A look-up table of pieces (index it with an array)."""
    return np.array(list(texts), dtype=bytes)


_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')


def json_strings(texts: Sequence[str]) -> np.ndarray:
    """Each text as a JSON string literal, quotes included, exactly as orjson writes it."""
    quoted = [orjson.dumps(text).decode() if _NEEDS_ESCAPE.search(text) else f'"{text}"' for text in texts]
    try:
        return np.array(quoted, dtype="S")  # ASCII: numpy encodes in C
    except UnicodeEncodeError:
        return np.array([text.encode() for text in quoted], dtype=bytes)


def digits(values: np.ndarray, width: int) -> np.ndarray:
    """Non-negative integers as exactly `width` decimal digits with leading zeros (like f"{v:0{width}d}")."""
    values = np.asarray(values, dtype=np.int64)
    if len(values) and (values.min() < 0 or values.max() >= 10**width):
        raise ValueError(f"a value does not fit {width} digits")
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    matrix = (48 + values[:, None] // powers % 10).astype(np.uint8)
    return np.ascontiguousarray(matrix).view(f"S{width}").ravel()


def constant(text: bytes, n: int) -> np.ndarray:
    return np.full(n, text, dtype=f"S{max(1, len(text))}")


def join(pieces: Sequence[np.ndarray]) -> list[bytes]:
    """The lines: piece 0 + piece 1 + ... for each row."""
    n = len(pieces[0])
    out: list[bytes] = []
    for first in range(0, n, CHUNK):
        out.extend(_join_chunk([piece[first : first + CHUNK] for piece in pieces]))
    return out


def _join_chunk(pieces: Sequence[np.ndarray]) -> list[bytes]:
    # numpy pads "S" entries with NUL bytes, which no piece contains (JSON escapes NUL): laying the
    # pieces side by side and dropping every NUL byte leaves exactly the concatenated lines
    n = len(pieces[0])
    if n == 0:
        return []
    widths = [piece.dtype.itemsize for piece in pieces]
    record = np.empty(n, dtype=[(f"p{k}", f"V{w}") for k, w in enumerate(widths)] + [("end", "S1")])
    for k, piece in enumerate(pieces):
        record[f"p{k}"] = np.ascontiguousarray(piece).view(f"V{widths[k]}")
    record["end"] = b"\n"
    flat = record.view(np.uint8)
    return flat[flat != 0].tobytes().split(b"\n")[:-1]
