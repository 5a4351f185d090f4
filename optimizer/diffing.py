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
    """Word-level pieces. A change is shown as one deletion then one insertion: a space or a short
    word that happens to match in the middle of a rewritten passage is folded into it, so the reader
    sees "old sentence → new sentence" rather than words of both interleaved."""
    left, right = TOKEN.findall(original), TOKEN.findall(optimized)
    if max(len(left), len(right)) > WORD_DIFF_LIMIT:
        left, right = original.splitlines(keepends=True), optimized.splitlines(keepends=True)
    opcodes = difflib.SequenceMatcher(a=left, b=right, autojunk=False).get_opcodes()
    pieces: list[Piece] = []
    deleted: list[str] = []
    inserted: list[str] = []

    def flush() -> None:
        if deleted:
            pieces.append(Piece("delete", "".join(deleted)))
        if inserted:
            pieces.append(Piece("insert", "".join(inserted)))
        deleted.clear()
        inserted.clear()

    for index, (op, a1, a2, b1, b2) in enumerate(opcodes):
        if op != "equal":
            deleted.extend(left[a1:a2])
            inserted.extend(right[b1:b2])
            continue
        same = left[a1:a2]
        between_changes = (deleted or inserted) and index + 1 < len(opcodes)
        if between_changes and _trivial(same):
            deleted.extend(same)
            inserted.extend(same)
            continue
        flush()
        pieces.append(Piece("equal", "".join(same)))
    flush()
    return pieces


def _trivial(tokens: list[str]) -> bool:
    """Too little to read as "unchanged" between two changes: blanks, punctuation, one short word."""
    words = [token for token in tokens if token.strip()]
    return len(words) <= 1 and sum(len(word) for word in words) <= 3


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
