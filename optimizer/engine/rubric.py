"""The built-in rubric scorer: seven criteria, each 0-100 with a short rationale, and a weighted
overall score. It runs on every optimization, whatever the engine, so scores compare across runs.
The criteria and weights are published on the Optimize page.
"""

import re

from optimizer.engine.analysis import AUDIENCE, CONFLICTS, LENGTH, NEGATIVE, REASONING, TASK_VERB, VAGUE
from optimizer.engine.structure import LIST_ITEM, OUTPUT, TAG_BLOCK, parse

CRITERIA: dict[str, tuple[str, int, str]] = {
    # key: (name, weight in percent, what earns the points)
    "clarity": ("Clarity", 20, "A task stated with a verb, sentences of readable length, no vague words, no conflicts."),
    "specificity": ("Specificity", 15, "Concrete details: quantities, named inputs, enough words to pin the task down."),
    "context": ("Context", 15, "A role, an audience, and what the answer is for."),
    "structure": ("Structure", 15, "Sections or lists, and data set apart from instructions."),
    "output_format": ("Output format", 15, "The form of the answer, and a bound on its length."),
    "constraints": ("Constraints", 10, "Explicit rules, said as what to do."),
    "examples_reasoning": ("Examples / reasoning", 10, "Examples of the answer, and a request to plan, reason or check."),
}  # fmt: skip
PURPOSE = re.compile(
    r"\b(?:the aim|stay in this role|because|so that|in order to|purpose|goal|background|context|will be used|used (?:for|as|in))\b",
    re.I,
)


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text)


def score(text: str) -> dict:
    """``{"overall": int, "criteria": [{"key", "name", "score", "rationale"}]}`` for ``text``."""
    parsed = parse(text)
    words = _words(text)
    has = {key: parsed.has(key) for key in parsed.sections}
    results = {
        "clarity": _clarity(text, parsed),
        "specificity": _specificity(text, words, parsed),
        "context": _context(text, has),
        "structure": _structure(text, parsed, has),
        "output_format": _output(text, has),
        "constraints": _constraints(text, parsed),
        "examples_reasoning": _examples(text, has),
    }
    criteria = [
        {"key": key, "name": CRITERIA[key][0], "score": max(0, min(100, round(value))), "rationale": why}
        for key, (value, why) in results.items()
    ]
    return {"overall": weighted_overall(criteria), "criteria": criteria}


def weighted_overall(criteria: list[dict]) -> int:
    """The weighted mean of the criteria scored (all of them, for the built-in scorer; a model's
    evaluation may leave some out)."""
    weights = sum(CRITERIA[item["key"]][1] for item in criteria)
    return round(sum(item["score"] * CRITERIA[item["key"]][1] for item in criteria) / max(1, weights))


def _say(good: list[str], bad: list[str]) -> str:
    parts = []
    if good:
        parts.append("Has " + ", ".join(good) + ".")
    if bad:
        parts.append("Lacks " + ", ".join(bad) + ".")
    return " ".join(parts) or "Nothing to judge."


def _clarity(text, parsed):
    good, bad, points = [], [], 0.0
    if TASK_VERB.search(text):
        points += 40
        good.append("a task verb")
    else:
        bad.append("a clear task verb")
    prose = [s for units in parsed.sections.values() for s in units if not s.startswith(("```", "<"))]
    lengths = [len(_words(unit)) for unit in prose if "\n" not in unit] or [len(_words(text))]
    average = sum(lengths) / len(lengths)
    points += 20 if average <= 25 else max(0, 20 - (average - 25))
    (good if average <= 25 else bad).append("short sentences" if average <= 25 else "shorter sentences")
    vague = len(VAGUE.findall(parsed.text_of("task")))
    points += max(0, 20 - 7 * vague)
    if vague:
        bad.append(f"precise wording ({vague} vague word{'s' if vague > 1 else ''})")
    conflicts = sum(1 for first, second, _ in CONFLICTS if first.search(text) and second.search(text))
    points += 0 if conflicts else 20
    if conflicts:
        bad.append("consistent instructions")
    return points, _say(good, bad)


def _specificity(text, words, parsed):
    good, bad, points = [], [], 0.0
    count = len(words)
    points += min(45, count * 1.5) if count < 150 else 45
    (good if count >= 30 else bad).append(f"{count} words of detail" if count >= 30 else "detail (few words)")
    if re.search(r"\d", text):
        points += 20
        good.append("quantities")
    if parsed.sections["input"] or re.search(r"[{\[<`$]\w", text):
        points += 20
        good.append("named inputs")
    vague = len(VAGUE.findall(text))
    points += max(0, 15 - 3 * vague)
    if vague > 2:
        bad.append("concrete terms in place of vague ones")
    return points, _say(good, bad)


def _context(text, has):
    good, bad, points = [], [], 0.0
    for present, value, name in (
        (has["role"], 35, "a role"),
        (bool(AUDIENCE.search(text)) or has["context"], 30, "an audience or background"),
        (bool(PURPOSE.search(text)), 35, "a purpose"),
    ):
        points += value if present else 0
        (good if present else bad).append(name)
    return points, _say(good, bad)


def _structure(text, parsed, has):
    good, bad, points = [], [], 0.0
    filled = sum(1 for present in has.values() if present)
    if parsed.headed:
        points += 50
        good.append("sections")
    elif "\n\n" in text.strip():
        points += 25
        good.append("paragraphs")
        bad.append("labelled sections")
    else:
        bad.append("sections")
    if LIST_ITEM.search(text):
        points += 20
        good.append("lists")
    elif filled >= 3:
        points += 10
    inputs = parsed.sections["input"]
    if not inputs or all(
        unit.startswith("```") or TAG_BLOCK.match(unit) or unit.startswith("The material") for unit in inputs
    ):
        points += 30
        if inputs:
            good.append("delimited data")
    else:
        bad.append("delimiters around data")
    return points, _say(good, bad)


def _output(text, has):
    good, bad, points = [], [], 0.0
    if has["output"] or OUTPUT.search(text):
        points += 60
        good.append("an output format")
    else:
        bad.append("an output format")
    if LENGTH.search(text):
        points += 40
        good.append("a length bound")
    else:
        bad.append("a length bound")
    return points, _say(good, bad)


def _constraints(text, parsed):
    rules = len(parsed.sections["constraints"])
    points = {0: 0, 1: 50, 2: 75}.get(rules, 100)
    negatives = len(NEGATIVE.findall(text))
    if rules and negatives > rules / 2:
        points -= 15
    good = [f"{rules} rule{'s' if rules != 1 else ''}"] if rules else []
    bad = ([] if rules else ["explicit rules"]) + (
        ["positive wording"] if rules and negatives > rules / 2 else []
    )
    return points, _say(good, bad)


def _examples(text, has):
    good, bad, points = [], [], 0.0
    if has["examples"] or re.search(r"\b(?:for example|e\.g\.|for instance|example)\b", text, re.I):
        points += 50
        good.append("examples")
    else:
        bad.append("examples")
    if REASONING.search(text) or has["approach"] or has["verification"]:
        points += 50
        good.append("reasoning or checking support")
    else:
        bad.append("reasoning support")
    return points, _say(good, bad)
