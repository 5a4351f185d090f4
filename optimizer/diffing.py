"""Differences between an original prompt and its optimized version, for display: word by word
(inline) or line by line (side by side).

The cost is bounded whatever the input: the common start and end are matched in linear time, and
difflib (quadratic at worst, on repeated lines or fences) only runs on what lies between them when
that is small enough; a larger middle is shown by lines, and past that as one deletion and one
insertion. Each result is kept per process, so a page shown again does not recompute it.
"""

import difflib
import functools
import re
from dataclasses import dataclass

TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
# difflib's work on the changed middle is at worst about len(a) * len(b): 1,000,000 is ~0.1 s.
DIFF_BUDGET = 1_000_000


def _common_ends(left: list[str], right: list[str]) -> tuple[int, int, int]:
    """Where the changed middle starts, and where it ends in each sequence: a linear scan."""
    start, limit = 0, min(len(left), len(right))
    while start < limit and left[start] == right[start]:
        start += 1
    end = 0
    while end < limit - start and left[-1 - end] == right[-1 - end]:
        end += 1
    return start, len(left) - end, len(right) - end


def _opcodes(left: list[str], right: list[str]) -> list[tuple[str, int, int, int, int]] | None:
    """difflib's opcodes over the whole sequences, or None when the changed middle is over budget."""
    start, a2, b2 = _common_ends(left, right)
    if (a2 - start) * (b2 - start) > DIFF_BUDGET:
        return None
    middle = difflib.SequenceMatcher(a=left[start:a2], b=right[start:b2], autojunk=False).get_opcodes()
    codes = [("equal", 0, start, 0, start)]
    codes += [(op, i1 + start, i2 + start, j1 + start, j2 + start) for op, i1, i2, j1, j2 in middle]
    codes.append(("equal", a2, len(left), b2, len(right)))
    return [code for code in codes if code[1] != code[2] or code[3] != code[4]]


def _plain(left: list[str], right: list[str]) -> list[tuple[str, int, int, int, int]]:
    """Over budget: the start and end still match; the middle is one replacement."""
    start, a2, b2 = _common_ends(left, right)
    codes = [
        ("equal", 0, start, 0, start),
        ("replace", start, a2, start, b2),
        ("equal", a2, len(left), b2, len(right)),
    ]
    return [code for code in codes if code[1] != code[2] or code[3] != code[4]]


@dataclass(frozen=True)
class Piece:
    op: str  # "equal", "insert", "delete"
    text: str


@functools.lru_cache(maxsize=64)
def inline_diff(original: str, optimized: str) -> tuple["Piece", ...]:
    """Word-level pieces (lines for a large change). A change is shown as one deletion then one
    insertion: a space or a short word that happens to match in the middle of a rewritten passage is
    folded into it, so the reader sees "old sentence → new sentence" rather than both interleaved."""
    left, right = TOKEN.findall(original), TOKEN.findall(optimized)
    opcodes = _opcodes(left, right)
    if opcodes is None:
        left, right = original.splitlines(keepends=True), optimized.splitlines(keepends=True)
        opcodes = _opcodes(left, right) or _plain(left, right)
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
    return tuple(pieces)


def _trivial(tokens: list[str]) -> bool:
    """Too little to read as "unchanged" between two changes: blanks, punctuation, one short word."""
    words = [token for token in tokens if token.strip()]
    return len(words) <= 1 and sum(len(word) for word in words) <= 3


@dataclass(frozen=True)
class Row:
    left: str | None
    right: str | None
    op: str  # "equal", "replace", "delete", "insert"


@functools.lru_cache(maxsize=64)
def side_by_side(original: str, optimized: str) -> tuple["Row", ...]:
    left, right = original.splitlines(), optimized.splitlines()
    rows: list[Row] = []
    for op, a1, a2, b1, b2 in _opcodes(left, right) or _plain(left, right):
        old, new = left[a1:a2], right[b1:b2]
        for index in range(max(len(old), len(new))):
            rows.append(
                Row(
                    old[index] if index < len(old) else None,
                    new[index] if index < len(new) else None,
                    op,
                )
            )
    return tuple(rows)
