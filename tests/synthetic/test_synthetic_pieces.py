"""The numpy line builder writes what per-line formatting would (the generator's ESP lines use it)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from dagster_project.synthetic import pieces


def test_json_strings_match_orjson_also_for_text_that_needs_escaping():
    texts = ["ann.lee1@example.com", 'say "hi"', "back\\slash", "tab\there", "line\n", "Müller", "\u2028"]
    assert [bytes(value) for value in pieces.json_strings(texts)] == [orjson.dumps(t) for t in texts]


def test_digits_pad_with_zeros_and_refuse_what_does_not_fit():
    assert pieces.digits(np.array([0, 7, 12345678]), 8).tolist() == [b"00000000", b"00000007", b"12345678"]
    with pytest.raises(ValueError, match="8 digits"):
        pieces.digits(np.array([100_000_000]), 8)


def test_join_concatenates_pieces_and_leaves_out_empty_ones(monkeypatch):
    monkeypatch.setattr(pieces, "CHUNK", 2)  # several chunks
    lines = pieces.join(
        [
            pieces.constant(b'{"n":', 3),
            pieces.digits(np.array([1, 2, 3]), 2),
            pieces.table([b"", b',"x":"long value"'])[np.array([0, 1, 0])],
            pieces.constant(b"}", 3),
        ]
    )
    assert lines == [b'{"n":01}', b'{"n":02,"x":"long value"}', b'{"n":03}']
