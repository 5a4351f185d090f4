"""The built-in engine does its costly work once per text (issue 14, item 3): the protected spans
and the checklist's scan are computed once however many stages ask, and a shortcut that skips
work finds exactly what the work would have found. Counted with the engine's own caches, never timed."""

import re._constants as sre
import re._parser as sre_parser

import pytest

from optimizer.builtin_engine import builtin, lexicon, reading, rubric, spans
from optimizer.builtin_engine.patterns import AS_WRITTEN, regrouped
from tests.prompts_csv import real_prompts

KEPT = "Explain how tides work to a ten-year-old in three short paragraphs, with one everyday example."
REWRITTEN = (
    "Summarize the following review in two sentences for our support team:\n\n"
    "The hotel was clean and the staff friendly, but the room was noisy and breakfast ended at nine."
)


def _fresh_caches():
    for cached in (spans._ranges, rubric._scored, reading.read, reading.first_match):
        cached.cache_clear()


@pytest.mark.parametrize(("text", "texts"), [(KEPT, 1), (REWRITTEN, 2)])
def test_a_run_finds_the_spans_and_scans_the_checklist_once_per_text(text, texts):
    _fresh_caches()

    result = builtin.optimize(text, "general")

    # Every stage (deconstruct, design, the span check, both scores) asks; each text is searched once.
    assert (result["design"]["optimized_prompt"] != text) == (texts == 2)
    assert spans._ranges.cache_info().misses == texts
    assert rubric._scored.cache_info().misses == texts
    assert reading.read.cache_info().misses == texts


def test_a_second_run_of_the_same_prompt_searches_nothing_again():
    _fresh_caches()
    first = builtin.optimize(REWRITTEN, "general")
    searches = (spans._ranges.cache_info().misses, rubric._scored.cache_info().misses)

    assert builtin.optimize(REWRITTEN, "general") == first
    assert (spans._ranges.cache_info().misses, rubric._scored.cache_info().misses) == searches


def test_each_score_is_the_callers_own_copy():
    first = rubric.score(KEPT)
    first["criteria"][0]["score"] = -1
    first["penalties"].append({"points": 99, "why": "changed by a caller"})

    again = rubric.score(KEPT)
    assert again["criteria"][0]["score"] >= 0
    assert all(p["points"] != 99 for p in again["penalties"])


def _zero_width(items) -> set:
    """The anchors and lookarounds anywhere in a parsed pattern (``\\b`` is not counted)."""
    found = set()
    for op, av in items:
        if op is sre.AT and av is not sre.AT_BOUNDARY:
            found.add(str(av))
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            found.add(str(op))
        if op is sre.SUBPATTERN:
            found |= _zero_width(av[3])
        elif op is sre.BRANCH:
            for alternative in av[1]:
                found |= _zero_width(alternative)
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            found |= _zero_width(av[2])
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            found |= _zero_width(av[1])
    return found


@pytest.mark.parametrize("pattern", rubric.CUT_SAFE, ids=lambda p: p.pattern[:30])
def test_the_patterns_the_checklist_skips_by_have_no_anchors_or_lookarounds(pattern):
    # What makes the shortcut exact: a match inside a sentence cut from the text is then a match
    # in the whole text, so a pattern absent from the text is absent from each of its sentences.
    # (The lookahead patterns.case_insensitive puts first reads only the match's first character.)
    written = AS_WRITTEN[pattern]
    assert _zero_width(sre_parser.parse(written, pattern.flags).data) == set()
    assert pattern.pattern in (written, regrouped(written)) or pattern.pattern.endswith(
        f")(?:{regrouped(written)})"
    )


def test_the_zero_width_check_sees_anchors_and_lookarounds():
    assert _zero_width(sre_parser.parse(r"\bword\b").data) == set()
    assert _zero_width(sre_parser.parse(r"(?:^|x)y").data)
    assert _zero_width(sre_parser.parse(r"a(?<!b)c|d$").data)
    assert _zero_width(sre_parser.parse(r"(?:x(?=y))+").data)


def test_the_checklists_shortcut_finds_the_sentence_a_search_of_every_sentence_finds():
    texts = [row["prompt"] for row in real_prompts() if len(row["prompt"]) <= 50_000]
    # The engine's own rewrites carry its lines, which the checklist takes out: no shortcut there.
    techniques = ["delimiters", "zero-shot-cot", "self-critique"]
    texts += [builtin.design(text, "general", {}, techniques)["optimized_prompt"] for text in texts[:300]]
    cut = rewritten = 0
    for text in texts:
        filler = [m.group() for m in lexicon.FILLER.finditer(text)]
        evidence = rubric._evidence(text, filler_free=not filler)
        assert evidence.sentences == rubric._evidence(text, filler_free=False).sentences
        if evidence.starts is None:
            rewritten += 1
        else:
            cut += 1
            assert all(
                text.startswith(s, at) for s, at in zip(evidence.sentences, evidence.starts, strict=True)
            )
        for pattern in rubric.CUT_SAFE:
            for also in (None, lambda s: len(rubric._substance(s)) >= 2):
                every = next(
                    (s for s in evidence.sentences if pattern.search(s) and (also is None or also(s))), None
                )
                assert evidence.first(pattern, also) == every, (pattern.pattern[:40], text[:80])
        stated = next(
            (
                s
                for s in evidence.sentences
                if lexicon.FORMAT.search(s)
                or (rubric.CREATIVE_FORM.search(s) and lexicon.TASK_VERB.search(s))
            ),
            None,
        )
        assert rubric._form(evidence) == stated
    assert cut > 1000 and rewritten > 50  # both kinds are checked
