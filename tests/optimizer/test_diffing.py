import pytest

from optimizer import diffing
from optimizer.builtin_engine import builtin
from optimizer.diffing import inline_diff, side_by_side

EXAMPLES = [
    ("write a blog post about {topic} for our website. dont make it too long. include 3 tips.", "general"),
    ("Summarize the report below in 5 bullet points.\n\nREPORT:\n{report}", "analytical"),
    ("You are a SQL expert. Given the schema `users(id, name)`, write a query for {question}.", "coding"),
    ("", "general"),
]


def rebuilt(pieces, keep: str) -> str:
    return "".join(piece.text for piece in pieces if piece.op in ("equal", keep))


@pytest.mark.parametrize(("text", "prompt_type"), EXAMPLES)
def test_the_inline_diff_rebuilds_both_texts_exactly(text, prompt_type):
    optimized = builtin.optimize(text, prompt_type)["design"]["optimized_prompt"] if text else "New text."
    pieces = inline_diff(text, optimized)

    assert rebuilt(pieces, "delete") == text
    assert rebuilt(pieces, "insert") == optimized


def test_a_rewritten_passage_reads_as_one_deletion_then_one_insertion():
    pieces = inline_diff("Keep it short and do not ramble on.", "Keep it short: at most 100 words.")

    assert [(piece.op, piece.text) for piece in pieces] == [
        ("equal", "Keep it short"), ("delete", " and do not ramble on"), ("insert", ": at most 100 words"),
        ("equal", "."),
    ]  # fmt: skip


def test_an_unchanged_sentence_between_two_changes_stays_unchanged():
    pieces = inline_diff(
        "Old start. The middle sentence stays. Old end.", "New start. The middle sentence stays. New end."
    )

    assert any(piece.op == "equal" and "The middle sentence stays." in piece.text for piece in pieces)


def test_side_by_side_pairs_lines():
    rows = side_by_side("a\nb\nc", "a\nB\nc\nd")

    assert [(row.left, row.right, row.op) for row in rows] == [
        ("a", "a", "equal"), ("b", "B", "replace"), ("c", "c", "equal"), (None, "d", "insert"),
    ]  # fmt: skip


ADVERSARIAL = [
    ("x\n" * 24999 + "x", "y\n" + "x\n" * 24999 + "x"),  # repeated lines, one changed at the start
    ("x\ny\n" * 12500, "y\nx\n" * 12500),  # nothing in common at either end: all middle
    ("```\n" * 12500, "```\n" * 6250 + "note\n" + "```\n" * 6250),  # repeated fences
    ("word " * 10000, "word " * 9999 + "words"),  # one huge line
    (" \t\n" * 16000, "\n\t " * 16000),  # whitespace only
]


@pytest.mark.parametrize(
    ("original", "optimized"), ADVERSARIAL, ids=["lines", "alternating", "fences", "line", "blanks"]
)
def test_a_diff_of_adversarial_50000_character_texts_stays_within_its_budget_and_exact(original, optimized):
    """The quadratic part (difflib) only ever sees a changed middle within DIFF_BUDGET; beyond it the
    middle is one replacement. Either way both texts are rebuilt exactly."""
    left, right = diffing.TOKEN.findall(original), diffing.TOKEN.findall(optimized)
    start, a2, b2 = diffing._common_ends(left, right)
    if (a2 - start) * (b2 - start) > diffing.DIFF_BUDGET:
        assert diffing._opcodes(left, right) is None  # the word diff refuses: lines or plain instead
    pieces = inline_diff(original, optimized)
    rows = side_by_side(original, optimized)

    assert rebuilt(pieces, "delete") == original and rebuilt(pieces, "insert") == optimized
    assert [row.left for row in rows if row.left is not None] == original.splitlines()
    assert [row.right for row in rows if row.right is not None] == optimized.splitlines()


def test_a_diff_is_computed_once_per_pair_of_texts():
    original, optimized = "x\ny\n" * 12500, "y\nx\n" * 12500
    assert inline_diff(original, optimized) is inline_diff(original, optimized)
    assert side_by_side(original, optimized) is side_by_side(original, optimized)
