"""Differences between an original prompt and its optimized version, for display: word by word
(inline) or line by line (side by side). Very long texts fall back to whole lines, which stays fast."""

import difflib
import re
from dataclasses import dataclass

TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
WORD_DIFF_LIMIT = 20_000  # tokens per side; beyond this the quadratic worst case is not worth it


@dataclass(frozen=True)
class Piece:
    op: str  # "equal", "insert", "delete"
    text: str


def inline_diff(original: str, optimized: str) -> list[Piece]:
    left, right = TOKEN.findall(original), TOKEN.findall(optimized)
    if max(len(left), len(right)) > WORD_DIFF_LIMIT:
        left, right = original.splitlines(keepends=True), optimized.splitlines(keepends=True)
    pieces: list[Piece] = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            pieces.append(Piece("equal", "".join(left[a1:a2])))
            continue
        if a2 > a1:
            pieces.append(Piece("delete", "".join(left[a1:a2])))
        if b2 > b1:
            pieces.append(Piece("insert", "".join(right[b1:b2])))
    return pieces


@dataclass(frozen=True)
class Row:
    left: str | None
    right: str | None
    op: str  # "equal", "replace", "delete", "insert"


def side_by_side(original: str, optimized: str) -> list[Row]:
    left, right = original.splitlines(), optimized.splitlines()
    rows: list[Row] = []
    for op, a1, a2, b1, b2 in difflib.SequenceMatcher(a=left, b=right, autojunk=False).get_opcodes():
        old, new = left[a1:a2], right[b1:b2]
        for index in range(max(len(old), len(new))):
            rows.append(
                Row(
                    old[index] if index < len(old) else None,
                    new[index] if index < len(new) else None,
                    op,
                )
            )
    return rows
