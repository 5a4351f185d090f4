"""Case-insensitive patterns regrouped by first letter match exactly what they match as written."""

import re

import pytest

from optimizer.builtin_engine import builtin  # noqa: F401 - compiles every pattern of the engine
from optimizer.builtin_engine.patterns import AS_WRITTEN, _starts, case_insensitive, regrouped
from tests.prompts_csv import real_prompts


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("write|explain|wait", "w(?:rite|ait)|explain"),
        ("Write|wait", "W(?:rite|ait)"),  # one case-insensitive letter
        ("ab|(?:x|y)|ac", "ab|(?:x|y)|ac"),  # never across an alternative that is not led by a letter
        ("e?mail|ex|e", "e?mail|e(?:x|)"),  # an optional first letter stays where it is
        (r"\b(?:for|from)\s+(?:two|ten)", r"\b(?:f(?:or|rom))\s+(?:t(?:wo|en))"),
        (r"(?<=ab|ac)x|(?P<n>yz|yx)", r"(?<=ab|ac)x|(?P<n>y(?:z|x))"),  # lookarounds as written
        (r"[(|]a|\(b|ac", r"[(|]a|\(b|ac"),
        # Three alternatives or more: a lookahead inside the group, which may still be skipped.
        (r"(?:one|two|six|ten)?x", r"(?:(?=[ost])(?:one|t(?:wo|en)|six))?x"),
    ],
)
def test_alternatives_are_grouped_by_first_letter_in_their_order(source, expected):
    assert regrouped(source) == expected


@pytest.mark.parametrize(
    ("source", "starts"),
    [
        (r"\bfoo|bar", {"f", "b"}),
        (r"^(?:task|goal)\s*:", {"t", "g"}),
        (r"(?=y)x|(?<!a)\d", {"x", r"\d"}),
        (r"[{\[<$]+x|受众", {r"[{\[<$]", "受"}),
        (r"(?:a|b)?c", None),
        (r"x*y", None),
        (r"(?:^|,)do", None),
        (r"[^a]b", None),
        (r".a", None),
        (r"\b", None),
    ],
)
def test_a_match_is_looked_ahead_for_only_by_the_characters_it_must_start_with(source, starts):
    assert _starts(source) == starts


def test_a_group_led_by_a_lookahead_may_still_be_skipped():
    pattern = case_insensitive(r"(?:one|two|six|ten)?x\b")

    assert [m.group() for m in pattern.finditer("x onex Tenx sixy twox")] == ["x", "onex", "Tenx", "twox"]


def test_the_lookahead_leaves_the_matches_as_they_were():
    pattern = case_insensitive(r"\b(?:one|two)\s+words?\b|ünder|К")

    assert pattern.pattern.startswith("(?=[")
    assert [m.group() for m in pattern.finditer("ONE word, Two Words, xone words, ÜNDER, к")] == [
        "ONE word",
        "Two Words",
        "ÜNDER",
        "к",
    ]


def test_letters_that_lead_alternatives_never_match_the_same_character():
    # The regrouping is exact only if letters with different lower cases match no character in
    # common (in re, "i" also matches the dotted capital I and the dotless small i), and the
    # lookahead only if a letter in a class matches what the letter alone matches.
    letters = sorted({c for source in AS_WRITTEN.values() for c in source if c.isalpha()})
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    classes = {}
    for letter in letters:
        classes[letter] = frozenset(re.findall(re.escape(letter), every, re.IGNORECASE))
        assert frozenset(re.findall(f"[{re.escape(letter)}]", every, re.IGNORECASE)) == classes[letter]
    by_lower: dict[str, set] = {}
    for letter in letters:
        by_lower.setdefault(letter.lower(), set()).add(classes[letter])
    assert all(len(found) == 1 for found in by_lower.values())
    groups = [found.pop() for found in by_lower.values()]
    assert sum(map(len, groups)) == len(frozenset().union(*groups))
    assert len(letters) > 100 and classes["i"] == set("iIİı")


def test_every_engine_pattern_matches_what_it_matches_as_written():
    rows = real_prompts()[::16]
    texts = [row["prompt"][:20_000] for row in rows]
    texts += [line for text in texts for line in text.splitlines() if line.strip()]
    texts += [text.upper() for text in texts[:200]] + [text.swapcase() for text in texts[:200]]
    assert len(AS_WRITTEN) > 40
    for compiled, written in AS_WRITTEN.items():
        as_written = re.compile(written, compiled.flags)
        for text in texts:
            found = [(m.span(), m.groups()) for m in compiled.finditer(text)]
            assert found == [(m.span(), m.groups()) for m in as_written.finditer(text)], (
                written[:60],
                text[:80],
            )
            assert bool(compiled.match(text)) == bool(as_written.match(text))
