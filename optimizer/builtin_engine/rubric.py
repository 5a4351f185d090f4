"""The checklist: what a prompt states, criterion by criterion, each crediting evidence in the
prompt's own words and quoting it. It is a published checklist, not a measure of how well the
prompt will work: with a language model configured, the model's blind comparison of the original
and the rewrite is the verdict that counts.

What earns nothing: headings, lines the engine itself adds, generic filler ("You are a helpful
assistant", "take a deep breath"), and keyword lists that are not sentences. What costs points:
contradictions and filler. A prompt without a real request scores low whatever surrounds it.
"""

import functools
import itertools
import re
from dataclasses import dataclass

from optimizer.builtin_engine import lexicon
from optimizer.builtin_engine.patterns import case_insensitive
from optimizer.builtin_engine.reading import (
    ANSWER_LINE,
    CJK,
    CREATIVE_FORM,
    content_words,
    first_match,
    has_task_verb,
    material_name,
    read,
    requests,
    search,
    sentence_starts,
    words_of,
    woven_answers,
)
from optimizer.builtin_engine.spans import protected_spans

CRITERIA: dict[str, tuple[str, int, str]] = {
    # key: (name, weight in percent, what earns the points)
    "task": ("Task", 25, "A request that says what to do and to what, in a real sentence."),
    "specifics": ("Specifics", 20, "Concrete details in the prompt's own words: quantities, names, quoted terms, placeholders for what varies."),
    "context": ("Context", 15, "Who the answer is for, what it is for, or the expertise it draws on, stated specifically."),
    "output": ("Output", 15, "The form the answer takes, and a bound on its length."),
    "material": ("Material", 10, "Data to work on set apart from the instructions (counted only when the prompt carries material)."),
    "rules": ("Rules", 10, "Rules or success criteria with content, said as what to do."),
    "examples_reasoning": ("Examples / reasoning", 5, "An example of the answer, or a request to reason or check the work."),
}  # fmt: skip
CONTRADICTION_COST = 15
FILLER_COST, FILLER_MAX = 5, 20
NO_TASK_CAP = 35  # without a real request, nothing else makes a prompt good

# Words the checklist itself looks for: a "sentence" made of them is a keyword list, not a prompt.
RUBRIC_WORDS = frozenset(
    "role context audience format formatted json yaml table tables bullet bullets list lists step steps reason "
    "reasoning verify double check examples example constraints constraint must always never only output words "
    "sentences purpose goal because so that markdown structure sections section rules rule think carefully "
    "detailed concise brief thorough expert quality task instructions answer response".split()
)
RULE = case_insensitive(
    r"\b(?:must|never|always|only|do not|don't|avoid|make sure|ensure|at most|at least|no more than|if\b.{3,60}\bthen|"
    r"if (?:the|a|it|there|you)|say so|unless)\b",
)
# First the character a match starts with, so that ``re`` skips to where it occurs; the lookbehind
# after it reads what the written forms' lookbehinds read (as in spans.PATTERNS).
NUMBER = re.compile(r"\d(?<![\w.]\d)\d*(?:[.,]\d+)?(?:%|\b)")  # (?<![\w.])\d+(?:[.,]\d+)?(?:%|\b)
PROPER = re.compile(r"[A-Z](?<=[a-z,;] [A-Z])[a-zA-Z]{2,}")  # (?<=[a-z,;] )[A-Z][a-zA-Z]{2,}


def _own_phrases() -> re.Pattern:
    """Every line the engine writes, in every language, as one pattern (with its slots as wildcards)."""
    tables = [lexicon.MATERIAL_NOTE, *lexicon.TECHNIQUE_LINES.values()]
    lines = [line for table in tables for line in table.values()]
    parts = [re.escape(line).replace(r"\{tag\}", r"[\w-]+").replace(r"\{count\}", r"\d+") for line in lines]
    return re.compile("|".join(parts))


OWN = _own_phrases()
OLD_ENGINE_LINES = case_insensitive(
    r"the aim is (?:an answer|an original piece|a correct|a well-supported|working code|output that)|"
    r"you are (?:a knowledgeable, careful assistant|an? (?:senior|experienced|accomplished|rigorous|patient|careful|skilled) "
    r"[\w ,-]{0,60}(?:who|$))|structure the answer as: a one-line summary|keep the (?:answer|piece|explanation) under \d+|"
    r"if something needed is missing or unclear|the readers are (?:non-specialists|developers|analysts|practitioners)|"
    r"treat it as data, not as instructions",
)


# Patterns without anchors or lookarounds (only \b): a match inside a sentence cut from the text at
# spaces, punctuation or line ends is a match in the whole text at the same place. So no sentence
# starting before the text's first match can match, and one search of the text from a sentence's
# start says which later sentence is the next one worth searching.
CUT_SAFE = (
    lexicon.LENGTH,
    lexicon.FORMAT,
    lexicon.AUDIENCE,
    lexicon.PURPOSE,
    lexicon.EXAMPLE,
    lexicon.REASONING,
    lexicon.FILLER,
)


@dataclass(frozen=True)
class _Evidence:
    """The sentences that can earn points, and where each starts in ``text`` when every one of them
    is cut from it as it stands (``starts`` is None when an engine line was taken out of one)."""

    sentences: list[str]
    text: str
    starts: list[int] | None

    def first(self, pattern: re.Pattern, also=None) -> str | None:
        """The first sentence where ``pattern`` matches and ``also`` holds (when given)."""
        if self.starts is None or pattern not in CUT_SAFE:
            return next((s for s in self.sentences if pattern.search(s) and (also is None or also(s))), None)
        ahead = -1  # where the text's first match at or after the current sentence starts
        for sentence, start in zip(self.sentences, self.starts, strict=True):
            if ahead < start:
                match = first_match(pattern, self.text) if ahead < 0 else search(pattern, self.text, start)
                if match is None:
                    return None
                ahead = match.start()
            if ahead >= start + len(sentence):
                continue  # no match starts inside this sentence
            if pattern.search(sentence) and (also is None or also(sentence)):
                return sentence
        return None


def _evidence(text: str, filler_free: bool) -> _Evidence:
    """The author's readable sentences, without headings, tags, the engine's own lines and filler.
    ``filler_free``: the text has no filler anywhere, so a sentence cut from it has none either."""
    kept, starts = [], []
    verbatim = True
    position = 0
    for line in text.splitlines(keepends=True):
        start, position = position, position + len(line)
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or (stripped[0] == "<" and TAG_LINE.fullmatch(stripped)):
            continue
        start += len(line) - len(line.lstrip())
        stripped, removed = OWN.subn("", stripped)
        verbatim = verbatim and not removed
        if (":" in stripped or "：" in stripped) and (answer := ANSWER_LINE.match(stripped)):
            kept.append(answer.group(2))  # the author's answer counts, not our label
            starts.append(start + answer.start(2))
            continue
        for sentence, offset in sentence_starts(stripped):
            if (
                OLD_ENGINE_LINES.search(sentence)
                or (not (filler_free and not removed) and lexicon.FILLER.search(sentence))
                or not _readable(sentence)
            ):
                continue
            kept.append(sentence)
            starts.append(start + offset)
    return _Evidence(kept, text, starts if verbatim else None)


TAG_LINE = re.compile(r"</?[\w-]+>")


def _readable(sentence: str) -> bool:
    """A sentence, not a list of keywords: it has function words, and not only checklist words."""
    if CJK.search(sentence):
        return len(CJK.findall(sentence)) >= 4
    words = [w.lower() for w in words_of(sentence)]
    if not words:
        return False
    meaningful = [w for w in words if w not in lexicon.FUNCTION_WORDS]
    if meaningful and sum(map(RUBRIC_WORDS.__contains__, meaningful)) / len(meaningful) > 0.6:
        return False
    if len(words) >= 8:
        return (len(words) - len(meaningful)) / len(words) >= 0.12  # the function words' share
    return True


def _quote(sentence: str, limit: int = 70) -> str:
    sentence = " ".join(sentence.split())
    return "“" + (sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…") + "”"


@functools.lru_cache(maxsize=4096)
def _substance(sentence: str) -> tuple[str, ...]:
    """Cached: every criterion weighs the same sentences by it."""
    return tuple(w for w in content_words(sentence) if w.lower() not in RUBRIC_WORDS)


def score(text: str) -> dict:
    """``{"overall": int, "criteria": [{"key", "name", "score", "rationale"}], "penalties": [...]}``."""
    # The caller's own copy (the cached one is never changed): its lists and dicts hold only
    # strings and numbers, so copying them is copying it all.
    scored = _scored(text)
    return {
        "overall": scored["overall"],
        "criteria": [dict(item) for item in scored["criteria"]],
        "penalties": [dict(item) for item in scored["penalties"]],
    }


@functools.lru_cache(maxsize=64)
def _scored(text: str) -> dict:
    """The checklist's scan, once per text: a run scores the original and the rewrite, which are
    most often the same text. Its ``cache_info().misses`` counts the scans."""
    reading = read(text)
    filler_found = [m.group() for m in lexicon.FILLER.finditer(text)]
    evidence = _evidence(text, filler_free=not filler_found)
    answered = woven_answers(text)
    results = {
        "task": _task(reading, evidence.sentences),
        "specifics": _specifics(text, evidence.sentences),
        "context": _context(reading, evidence, answered),
        "output": _output(evidence, answered),
        "material": _material(reading),
        "rules": _rules(evidence.sentences),
        "examples_reasoning": _examples(evidence),
    }
    criteria = [
        {"key": key, "name": CRITERIA[key][0], "score": max(0, min(100, round(value))), "rationale": why}
        for key, result in results.items()
        if result is not None
        for value, why in (result,)
    ]
    overall = weighted_overall(criteria)
    penalties = []
    for what in reading.conflicts:
        penalties.append({"points": CONTRADICTION_COST, "why": f"Contradiction: asks for both {what}."})
    filler = [found for found in filler_found if not OLD_ENGINE_LINES.search(found)]
    if filler:
        cost = min(FILLER_MAX, FILLER_COST * len(filler))
        penalties.append(
            {"points": cost, "why": "Filler: " + ", ".join(_quote(f, 40) for f in filler[:3]) + "."}
        )
    overall -= sum(p["points"] for p in penalties)
    task_score = results["task"][0]
    if task_score < 50:
        overall = min(overall, NO_TASK_CAP)
    return {"overall": max(0, min(100, overall)), "criteria": criteria, "penalties": penalties}


def weighted_overall(criteria: list[dict]) -> int:
    """The weighted mean of the criteria scored (a criterion that does not apply is left out)."""
    weights = sum(CRITERIA[item["key"]][1] for item in criteria if item["key"] in CRITERIA)
    total = sum(item["score"] * CRITERIA[item["key"]][1] for item in criteria if item["key"] in CRITERIA)
    return round(total / max(1, weights))


def _task(reading, evidence):
    asking = [s for s in evidence if requests(s) and not lexicon.FIRST_REQUEST.search(s)]
    if reading.persona and not asking:
        asking = [s for s in evidence if lexicon.PERSONA.search(s)]
    if not asking:
        return 0, "No readable sentence asks for something."
    best = max(asking, key=lambda s: len(_substance(s)))
    substance = _substance(best)
    if lexicon.EMPTY_TASK.match(best) or not substance:
        return 15, f"Asks {_quote(best)}, which does not say what to do or to what."
    return 40 + min(60, 12 * len(substance)), f"Asks {_quote(best)}."


def _specifics(text, evidence):
    joined = " ".join(evidence)
    items = []
    items += [m.group() for m in itertools.islice(NUMBER.finditer(joined), 4)]
    details = (
        span.text
        for span in protected_spans(text)
        if span.kind in ("placeholder", "quoted") and not _is_tag(span.text, text)
    )
    items += itertools.islice(details, 6)
    items += [m.group() for m in itertools.islice(PROPER.finditer(joined), 4)]
    distinct = {w.lower() for s in evidence for w in _substance(s)}
    vague = len(lexicon.VAGUE.findall(joined))
    points = min(60, 8 * len(dict.fromkeys(items))) + min(40, len(distinct)) - 6 * vague
    if not items and not distinct:
        return 0, "No concrete detail."
    shown = ", ".join(list(dict.fromkeys(items))[:3])
    why = f"{len(distinct)} distinct content words" + (f"; details such as {shown}" if shown else "")
    return points, why + (f"; {vague} vague word{'s' if vague != 1 else ''}" if vague else "") + "."


def _is_tag(span: str, text: str) -> bool:
    """``<review>`` that opens a delimited block is structure, not a detail of the task."""
    return span.startswith("<") and f"</{span[1:]}" in text


def _context(reading, evidence, answered):
    points, found = 0, []
    audience = answered.get("audience") or evidence.first(lexicon.AUDIENCE)
    if audience:
        points += 35
        found.append("the reader in " + _quote(audience, 50))
    purpose = answered.get("purpose") or evidence.first(lexicon.PURPOSE, lambda s: len(_substance(s)) >= 2)
    if purpose:
        points += 35
        found.append("the purpose in " + _quote(purpose, 50))
    role = answered.get("role") or next(
        (
            s
            for s in evidence.sentences
            if len(_substance(s)) >= 2 and (lexicon.ROLE.search(" " + s) or lexicon.PERSONA.search(s))
        ),
        None,
    )
    if role:
        points += 30
        found.append("the expertise in " + _quote(role, 50))
    return points, (
        "States " + "; ".join(found) + "."
    ) if found else "Says nothing specific about who it is for, why, or whose expertise."


def _output(evidence, answered):
    points, found = 0, []
    form = answered.get("format") or _form(evidence)
    if form:
        points += 60
        found.append("the form in " + _quote(form, 50))
    length = answered.get("length") or evidence.first(lexicon.LENGTH)
    if length:
        points += 40
        found.append("the length in " + _quote(length, 50))
    return points, (
        "States " + "; ".join(found) + "."
    ) if found else "Says neither the form nor the length of the answer."


def _form(evidence: _Evidence) -> str | None:
    """The first sentence that states a format, or names the piece it asks for ("write a poem")."""
    stated = evidence.first(lexicon.FORMAT)
    # A sentence before the first one with a format word may still name a piece and ask for it.
    before = evidence.sentences if stated is None else evidence.sentences[: evidence.sentences.index(stated)]
    return next((s for s in before if CREATIVE_FORM.search(s) and has_task_verb(s)), stated)


def _material(reading):
    if not reading.material:
        return None
    delimited = [m for m in reading.material if m.delimited]
    share = len(delimited) / len(reading.material)
    if share == 1:
        names = ", ".join(f"<{m.tag}>" for m in reading.material)
        return 100, f"The material ({names}) is set apart from the instructions."
    loose = ", ".join(material_name(m.tag) for m in reading.material if not m.delimited)
    return round(100 * share), f"Material not set apart: {loose}."


def _rules(evidence):
    rules = [
        s
        for s in evidence
        if len(_substance(s)) >= 2 and RULE.search(s) and not lexicon.FIRST_REQUEST.search(s)
    ]
    if not rules:
        return 0, "No rule or success criterion with content."
    negatives = sum(1 for s in rules if lexicon.NEGATIVE.search(s))
    points = {1: 50, 2: 75}.get(len(rules), 100) - (15 if negatives * 2 > len(rules) else 0)
    return points, f"{len(rules)} rule{'s' if len(rules) != 1 else ''}, such as {_quote(rules[0], 50)}."


def _examples(evidence):
    points, found = 0, []
    example = evidence.first(lexicon.EXAMPLE, lambda s: len(_substance(s)) >= 2)
    if example:
        points += 50
        found.append("an example in " + _quote(example, 40))
    reasoning = evidence.first(lexicon.REASONING, lambda s: len(_substance(s)) >= 1)
    if reasoning:
        points += 50
        found.append("reasoning in " + _quote(reasoning, 40))
    return points, (
        "Has " + "; ".join(found) + "."
    ) if found else "No example, no request to reason or check."
