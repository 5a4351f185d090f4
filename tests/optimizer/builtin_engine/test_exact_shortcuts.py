"""The engine's shortcuts find exactly what the plain searches find (issue 14, p95 per prompt): each is
checked against the plain form over the real prompts and over texts made to hit its edges. Nothing
here is timed."""

import copy
import random
import re

import pytest

from optimizer.builtin_engine import analysis, builtin, lexicon, reading, rubric, spans
from optimizer.builtin_engine.patterns import AS_WRITTEN
from tests.prompts_csv import real_prompts

# The patterns as first written, before each was led by the character its matches start with.
WRITTEN = {
    "url": r"\bhttps?://[^\s<>\"'`)\]]+",
    "{placeholder}": r"(?<![{$])\{[^{}\n\"]{1,80}\}(?!\})",
    "$placeholder": r"(?<![\w$])\$[A-Za-z_]\w{0,60}",
    "number": r"(?<![\w.])\d+(?:[.,]\d+)*(?:%|\b)",
    "checklist number": r"(?<![\w.])\d+(?:[.,]\d+)?(?:%|\b)",
    "proper name": r"(?<=[a-z,;] )[A-Z][a-zA-Z]{2,}",
}
REWRITTEN = {
    "url": spans.PATTERNS[2][1],
    "{placeholder}": spans.PATTERNS[5][1],
    "$placeholder": spans.PATTERNS[9][1],
    "number": spans.PATTERNS[11][1],
    "checklist number": rubric.NUMBER,
    "proper name": rubric.PROPER,
}
PIECES = [
    "under", "no more than", "not  more\tthan", "a few", "three", "3", "12-15", "words", "bullet points",
    "points", "brief", " ", "  ", "\n", "\n\n", "x", "someone", "in", "of", "maximum of", "max.", "up to",
    "at most", "ten", "lines", "{word_count}", "简短", "5字", "Words", "ſentences", "İn", "одна", "слов",
    "до", ".", ",", "-", "(", "words2", "_", "$", "{", "}", "{{", "http://a.b/c", "xhttps://d", "1.5",
    "2,000", "v2", "a, Bob", "x; Ann", "The", "'", '"', "$x", "${y}", "%",
]  # fmt: skip


def _made_texts(count: int, seed: int = 14) -> list[str]:
    rng = random.Random(seed)
    return [
        "".join(rng.choice(PIECES) + rng.choice(("", " ", "  ", "\n")) for _ in range(rng.randint(1, 30)))
        for _ in range(count)
    ]


def _real_texts() -> list[str]:
    return [row["prompt"] for row in real_prompts()]


def _same(found, expected) -> bool:
    if found is None or expected is None:
        return found is expected
    return (found.span(), found.group()) == (expected.span(), expected.group())


@pytest.mark.parametrize("name", WRITTEN)
def test_a_pattern_led_by_its_first_character_finds_what_it_found_as_written(name):
    written = re.compile(WRITTEN[name])
    texts = _real_texts() + _made_texts(20_000)
    for text in texts:
        expected = [match.span() for match in written.finditer(text)]
        assert [match.span() for match in REWRITTEN[name].finditer(text)] == expected, (name, text[:80])


def test_the_length_search_finds_the_match_the_plain_search_finds():
    texts = _real_texts()
    texts += [text.upper() for text in texts[::5]] + _made_texts(50_000)
    # A unit whose five words before it do not fit the window; a bound far before its count.
    texts += ["x" * 300 + " 5 words", "y " * 300 + "x" * 300 + "5 words", "under" + " " * 400 + "5 words"]
    texts += ["a b c d e f g " * 30 + "no more than   a few words", " " * 500 + "five    words"]
    searches = 0
    for text in texts:
        for pos in (0, 1, len(text) // 3):
            assert _same(lexicon.length_search(text, pos), lexicon.LENGTH.search(text, pos)), (text[:80], pos)
            searches += 1
        match = lexicon.LENGTH.search(text)
        while match:  # each later search the checklist makes, from the next sentence on
            expected = lexicon.LENGTH.search(text, match.start() + 1)
            assert _same(lexicon.length_search(text, match.start() + 1), expected), text[:80]
            match, searches = expected, searches + 1
    assert searches > 150_000


def test_a_counted_length_holds_no_more_whitespace_runs_than_the_search_reads_back():
    # Bound and count are literal words: spaces only, no \s, so their runs are counted by their spaces.
    for part in (lexicon._LENGTH_BOUND, lexicon._LENGTH_COUNT):
        assert r"\s" not in part and "\t" not in part
    bound = max(alternative.count(" ") for alternative in lexicon._LENGTH_BOUND.split("|"))
    count = max(alternative.count(" ") for alternative in lexicon._LENGTH_COUNT.split("|"))
    # Runs inside the bound, after it, inside the count, before the unit.
    assert bound + 1 + count + 1 == lexicon.COUNTED_WORDS
    assert AS_WRITTEN[lexicon.LENGTH] == lexicon._LENGTH_COUNTED + "|" + lexicon._LENGTH_OTHER
    assert AS_WRITTEN[lexicon.COUNTED_LENGTH] == lexicon._LENGTH_COUNTED
    assert AS_WRITTEN[lexicon.OTHER_LENGTH] == lexicon._LENGTH_OTHER


def test_the_reading_and_the_checklist_search_length_the_fast_way():
    assert reading.FASTER_SEARCH[lexicon.LENGTH] is lexicon.length_search
    text = "Summarize the report for the board in at most five bullet points."
    reading.first_match.cache_clear()
    assert reading.first_match(lexicon.LENGTH, text).group() == "at most five bullet points"
    assert reading.search(lexicon.LENGTH, text, 40).group() == "five bullet points"


def test_the_checks_before_a_search_skip_only_texts_it_cannot_match():
    sentences = [s for text in _real_texts()[::3] for s in reading.sentences_of(text)] + _made_texts(5_000)
    sentences += ["What is it?", "Audience: new hires", "Audience：新员工", "Which one: this?"]
    for sentence in sentences:
        expected = bool(reading.has_task_verb(sentence) or lexicon.QUESTION.search(sentence))
        assert reading.requests(sentence) == expected, sentence[:80]
        lines = reversed(list(reading.ANSWER_LINE.finditer(sentence)))  # the first of a key counts
        assert reading.woven_answers(sentence) == {reading.LABEL_KEYS[m.group(1)]: m.group(2) for m in lines}
        for word in reading.words_of(sentence):
            assert reading.vague_word(word) == bool(lexicon.VAGUE.fullmatch(word))


def test_each_word_is_weighed_against_the_vague_words_once():
    for cached in (reading.vague_word, reading.read, rubric._scored, rubric._substance, reading.first_match):
        cached.cache_clear()
    text = next(t for t in _real_texts() if len(t) > 8_000)
    builtin.optimize(text, "general")
    words = {word for s in reading.sentences_of(text) for word in reading.words_of(s)}
    assert 0 < reading.vague_word.cache_info().misses <= len(words)
    assert reading.vague_word.cache_info().hits > 0  # a word weighed again is not searched again


def test_only_a_line_ending_in_a_colon_can_announce_material():
    lines = [line.strip() for text in _real_texts() for line in text.splitlines()] + _made_texts(5_000)
    lines += ["Summarize this review:", "Texto:", "以下の文章：", "Here is the email: ", "Review this:\n"]
    leads = [line.strip() for line in lines if lexicon.MATERIAL_LEAD.search(line.strip())]
    assert len(leads) > 50
    assert all(lead.endswith((":", "：")) for lead in leads)


def _readable_as_written(sentence: str) -> bool:
    if reading.CJK.search(sentence):
        return len(reading.CJK.findall(sentence)) >= 4
    words = [w.lower() for w in reading.words_of(sentence)]
    if not words:
        return False
    meaningful = [w for w in words if w not in lexicon.FUNCTION_WORDS]
    if meaningful and sum(w in rubric.RUBRIC_WORDS for w in meaningful) / len(meaningful) > 0.6:
        return False
    if len(words) >= 8:
        return sum(w in lexicon.FUNCTION_WORDS for w in words) / len(words) >= 0.12
    return True


def test_a_sentence_is_readable_exactly_when_it_was():
    sentences = [s for text in _real_texts() for s in reading.sentences_of(text)] + _made_texts(5_000)
    assert sum(map(rubric._readable, sentences)) > 10_000
    for sentence in sentences:
        assert rubric._readable(sentence) == _readable_as_written(sentence), sentence[:80]


def test_a_score_is_a_full_copy_of_the_checklists_scan():
    for text in _real_texts()[::50]:
        scored, copied = rubric._scored(text), rubric.score(text)
        assert copied == copy.deepcopy(scored)
        assert copied is not scored
        assert all(a is not b for a, b in zip(copied["criteria"], scored["criteria"], strict=True))
        assert all(a is not b for a, b in zip(copied["penalties"], scored["penalties"], strict=True))
        values = [v for item in copied["criteria"] + copied["penalties"] for v in item.values()]
        assert all(isinstance(v, str | int) for v in values)  # nothing deeper to copy


def test_the_cheap_condition_first_keeps_each_rule_and_role_the_checklist_found():
    # _substance is cached (the checklist weighed every sentence by it already), so it goes first.
    def weighty(s):
        return len(rubric._substance(s)) >= 2

    def is_rule(s):
        return rubric.RULE.search(s) and weighty(s) and not lexicon.FIRST_REQUEST.search(s)

    def is_role(s):
        return (lexicon.ROLE.search(" " + s) or lexicon.PERSONA.search(s)) and weighty(s)

    for text in _real_texts()[::4]:
        evidence = rubric._evidence(text, filler_free=False)
        rules = [s for s in evidence.sentences if is_rule(s)]
        found = rubric._rules(evidence.sentences)[1]
        if rules:
            assert found.startswith(f"{len(rules)} rule") and rubric._quote(rules[0], 50) in found
        else:
            assert found.startswith("No rule")
        role = next((s for s in evidence.sentences if is_role(s)), None)
        context = rubric._context(reading.read(text), evidence, {})[1]
        assert (role is None) == ("the expertise in" not in context)
        if role:
            assert rubric._quote(role, 50) in context
        for sentence in reading.sentences_of(text):
            written = bool(analysis.RULE.search(sentence) or lexicon.NEGATIVE.search(sentence))
            assert analysis._is_rule(sentence) == (written and len(sentence) < 300)
