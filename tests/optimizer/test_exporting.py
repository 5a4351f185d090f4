"""The streamed CSV: whole rows in pieces of about 64 KiB, formulas escaped, the same text however
it is cut."""

import csv
import io
from decimal import Decimal

import pytest

from optimizer.exporting import CHUNK_CHARS, csv_cell, csv_stream, read_ahead


def test_rows_go_out_in_pieces_of_many_lines_and_read_back_whole():
    rows = [(n, f"=cmd{n}", Decimal("0.00012000"), 'say "hi",\nthen go') for n in range(5_000)]

    pieces = list(csv_stream(["n", "text", "cost", "note"], rows))
    text = "".join(pieces)

    assert 1 < len(pieces) <= len(text) // CHUNK_CHARS + 1  # not a piece per line
    assert all(piece.endswith("\r\n") for piece in pieces)  # a piece never cuts a row
    read = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert read[0] == ["n", "text", "cost", "note"] and len(read) == 5_001
    assert read[4_000] == ["3999", "'=cmd3999", "0.00012", 'say "hi",\nthen go']


def test_a_short_export_is_one_piece():
    assert list(csv_stream(["a"], [("x",)])) == ["\ufeffa\r\nx\r\n"]


def test_read_ahead_raises_before_the_response_starts_and_loses_no_row():
    def failing():
        raise RuntimeError("database gone")
        yield

    with pytest.raises(RuntimeError, match="database gone"):
        read_ahead(failing())
    assert list(read_ahead(iter([1, 2, 3]))) == [1, 2, 3]
    assert list(read_ahead([])) == []


def test_numbers_stay_numbers_and_text_that_looks_like_a_formula_does_not():
    assert [csv_cell(value) for value in (-3, -0.5, Decimal("-0.25"), 7, True)] == [
        "-3",
        "-0.5",
        "-0.25",
        "7",
        "True",
    ]
    assert [csv_cell(value) for value in ("-3", "=SUM(A1)", "+1", "@x", "plain")] == [
        "'-3",
        "'=SUM(A1)",
        "'+1",
        "'@x",
        "plain",
    ]
