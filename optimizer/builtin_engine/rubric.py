"""The checklist: what a prompt states, criterion by criterion, each crediting evidence in the
prompt's own words and quoting it. It is a published checklist, not a measure of how well the
prompt will work: with a language model configured, the model's blind comparison of the original
and the rewrite is the verdict that counts.

What earns nothing: headings, lines the engine itself adds, generic filler ("You are a helpful
assistant", "take a deep breath"), and keyword lists that are not sentences. What costs points:
contradictions and filler. A prompt without a real request scores low whatever surrounds it.
"""

import re

from optimizer.builtin_engine import lexicon
from optimizer.builtin_engine.reading import (
    ANSWER_LINE,
    CJK,
    CREATIVE_FORM,
    content_words,
    material_name,
    read,
    sentences_of,
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
RULE = re.compile(
    r"\b(?:must|never|always|only|do not|don't|avoid|make sure|ensure|at most|at least|no more than|if\b.{3,60}\bthen|"
    r"if (?:the|a|it|there|you)|say so|unless)\b",
    re.IGNORECASE,
)
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?(?:%|\b)")
PROPER = re.compile(r"(?<=[a-z,;] )[A-Z][a-zA-Z]{2,}")


def _own_phrases() -> re.Pattern:
    """Every line the engine writes, in every language, as one pattern (with its slots as wildcards)."""
    tables = [lexicon.MATERIAL_NOTE, *lexicon.TECHNIQUE_LINES.values()]
    lines = [line for table in tables for line in table.values()]
    parts = [re.escape(line).replace(r"\{tag\}", r"[\w-]+").replace(r"\{count\}", r"\d+") for line in lines]
    return re.compile("|".join(parts))


OWN = _own_phrases()
OLD_ENGINE_LINES = re.compile(
    r"the aim is (?:an answer|an original piece|a correct|a well-supported|working code|output that)|"
    r"you are (?:a knowledgeable, careful assistant|an? (?:senior|experienced|accomplished|rigorous|patient|careful|skilled) "
    r"[\w ,-]{0,60}(?:who|$))|structure the answer as: a one-line summary|keep the (?:answer|piece|explanation) under \d+|"
    r"if something needed is missing or unclear|the readers are (?:non-specialists|developers|analysts|practitioners)|"
    r"treat it as data, not as instructions",
    re.IGNORECASE,
)


def _evidence(text: str) -> list[str]:
    """The sentences that can earn points: the author's readable sentences, without headings, tags,
    the engine's own lines and filler."""
    kept = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or re.fullmatch(r"</?[\w-]+>", stripped):
            continue
        stripped = OWN.sub("", stripped)
        if answer := ANSWER_LINE.match(stripped):
            kept.append(answer.group(2))  # the author's answer counts, not our label
            continue
        for sentence in sentences_of(stripped):
            if (
                OLD_ENGINE_LINES.search(sentence)
                or lexicon.FILLER.search(sentence)
                or not _readable(sentence)
            ):
                continue
            kept.append(sentence)
    return kept


def _readable(sentence: str) -> bool:
    """A sentence, not a list of keywords: it has function words, and not only checklist words."""
    if CJK.search(sentence):
        return len(CJK.findall(sentence)) >= 4
    words = [w.lower() for w in words_of(sentence)]
    if not words:
        return False
    meaningful = [w for w in words if w not in lexicon.FUNCTION_WORDS]
    if meaningful and sum(w in RUBRIC_WORDS for w in meaningful) / len(meaningful) > 0.6:
        return False
    if len(words) >= 8:
        return sum(w in lexicon.FUNCTION_WORDS for w in words) / len(words) >= 0.12
    return True


def _quote(sentence: str, limit: int = 70) -> str:
    sentence = " ".join(sentence.split())
    return "“" + (sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…") + "”"


def _substance(sentence: str) -> list[str]:
    return [w for w in content_words(sentence) if w.lower() not in RUBRIC_WORDS]


def score(text: str) -> dict:
    """``{"overall": int, "criteria": [{"key", "name", "score", "rationale"}], "penalties": [...]}``."""
    reading = read(text)
    evidence = _evidence(text)
    answered = woven_answers(text)
    results = {
        "task": _task(reading, evidence),
        "specifics": _specifics(text, evidence),
        "context": _context(reading, evidence, answered),
        "output": _output(evidence, answered),
        "material": _material(reading),
        "rules": _rules(evidence),
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
    filler = [m.group() for m in lexicon.FILLER.finditer(text) if not OLD_ENGINE_LINES.search(m.group())]
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
    asking = [
        s
        for s in evidence
        if (lexicon.TASK_VERB.search(s) or lexicon.QUESTION.search(s)) and not lexicon.FIRST_REQUEST.search(s)
    ]
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
    items += [m.group() for m in NUMBER.finditer(joined)][:4]
    items += [
        span.text
        for span in protected_spans(text)
        if span.kind in ("placeholder", "quoted") and not _is_tag(span.text, text)
    ][:6]
    items += PROPER.findall(joined)[:4]
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
    audience = answered.get("audience") or next((s for s in evidence if lexicon.AUDIENCE.search(s)), None)
    if audience:
        points += 35
        found.append("the reader in " + _quote(audience, 50))
    purpose = answered.get("purpose") or next(
        (s for s in evidence if lexicon.PURPOSE.search(s) and len(_substance(s)) >= 2), None
    )
    if purpose:
        points += 35
        found.append("the purpose in " + _quote(purpose, 50))
    role = answered.get("role") or next(
        (
            s
            for s in evidence
            if (lexicon.ROLE.search(" " + s) or lexicon.PERSONA.search(s)) and len(_substance(s)) >= 2
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
    form = answered.get("format") or next(
        (
            s
            for s in evidence
            if lexicon.FORMAT.search(s) or (CREATIVE_FORM.search(s) and lexicon.TASK_VERB.search(s))
        ),
        None,
    )
    if form:
        points += 60
        found.append("the form in " + _quote(form, 50))
    length = answered.get("length") or next((s for s in evidence if lexicon.LENGTH.search(s)), None)
    if length:
        points += 40
        found.append("the length in " + _quote(length, 50))
    return points, (
        "States " + "; ".join(found) + "."
    ) if found else "Says neither the form nor the length of the answer."


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
        if RULE.search(s) and len(_substance(s)) >= 2 and not lexicon.FIRST_REQUEST.search(s)
    ]
    if not rules:
        return 0, "No rule or success criterion with content."
    negatives = sum(1 for s in rules if lexicon.NEGATIVE.search(s))
    points = {1: 50, 2: 75}.get(len(rules), 100) - (15 if negatives * 2 > len(rules) else 0)
    return points, f"{len(rules)} rule{'s' if len(rules) != 1 else ''}, such as {_quote(rules[0], 50)}."


def _examples(evidence):
    points, found = 0, []
    example = next((s for s in evidence if lexicon.EXAMPLE.search(s) and len(_substance(s)) >= 2), None)
    if example:
        points += 50
        found.append("an example in " + _quote(example, 40))
    reasoning = next((s for s in evidence if lexicon.REASONING.search(s) and len(_substance(s)) >= 1), None)
    if reasoning:
        points += 50
        found.append("reasoning in " + _quote(reasoning, 40))
    return points, (
        "Has " + "; ".join(found) + "."
    ) if found else "No example, no request to reason or check."
