import pytest

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
