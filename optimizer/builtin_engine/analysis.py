"""The built-in engine's first two stages: deconstruct a prompt, then diagnose it; and "Auto", which
picks techniques from the diagnosis and the type, saying why.

Both read the prompt through ``reading.read`` (its language, persona, material, what it states), in
any of the languages the engine knows. Outputs are plain dicts shaped like the LLM engine's
structured answers (see ``optimizer.engines``), so the rest of the pipeline cannot tell the engines
apart. An issue is raised only where it applies to this kind of prompt: a persona is not asked for
an output format, a JSON spec is not asked for a length.
"""

import functools
import itertools
import re

from optimizer.builtin_engine import lexicon
from optimizer.builtin_engine.catalogue import TECHNIQUES
from optimizer.builtin_engine.language import WRITTEN, language_name
from optimizer.builtin_engine.patterns import case_insensitive
from optimizer.builtin_engine.questions import build_questions
from optimizer.builtin_engine.reading import (
    CREATIVE_FORM,
    LIST_ITEM,
    Reading,
    content_words,
    first_match,
    material_name,
    read,
)
from optimizer.builtin_engine.spans import protected_spans

ISSUE_FIX = {
    "no-task": ("high", "No clear task", "State in one sentence what the model must do, starting with a verb."),
    "ambiguous": ("medium", "Ambiguous wording", "Replace vague words with concrete requirements."),
    "too-short": ("medium", "Too little to go on", "Add what the answer is for, what to cover, and its form."),
    "missing-context": ("low", "Missing context", "Say what the answer is for and any background it needs."),
    "no-role": ("low", "No role", "Name the expertise the task calls for."),
    "no-audience": ("low", "No audience", "Say who will read the answer, to set depth and vocabulary."),
    "no-output-format": ("medium", "No output format", "Say what form the answer takes (list, table, JSON...)."),
    "unbounded-length": ("low", "Unbounded length", "Bound the answer's length in words, items or sentences."),
    "conflicting": ("high", "Conflicting instructions", "Decide which instruction wins and say so."),
    "no-examples": ("low", "No examples", "Show one input and the answer you want for it."),
    "buried-instructions": ("medium", "Instructions buried in data", "Put instructions first; wrap data in tags."),
    "undelimited-data": ("medium", "Data not delimited", "Wrap the material in tags so it is not read as instructions."),
    "negative-instructions": ("low", "Mostly negative instructions", "Say what to do instead of only what not to do."),
    "no-reasoning": ("low", "No reasoning support", "Ask for a plan or step-by-step reasoning before the answer."),
    "wall-of-text": ("low", "Wall of text", "Break the prompt into paragraphs: the task, the rules, the format."),
    "no-constraints": ("low", "No constraints", "State the rules the answer must follow."),
}  # fmt: skip
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}


def deconstruct(text: str, prompt_type: str) -> dict:
    """Goal, task verb, role, audience, inputs and placeholders, constraints, output format,
    language and missing information of ``text``."""
    reading = read(text)
    missing = [
        name
        for name, key in (("role", "role"), ("audience", "audience"), ("output format", "format"),
                          ("length", "length"), ("context or purpose", "purpose"))
        if not reading.states(key) and not (key == "format" and _named_form(reading))
    ]  # fmt: skip
    if prompt_type in ("data", "coding") and not reading.states("examples"):
        missing.append("examples")
    verb = lexicon.TASK_VERB.search(reading.task) if reading.task else None
    return {
        "goal": _clip(reading.task or text, 240),
        "task_verb": _verb(reading.task, verb),
        "role": _clip(_persona_sentence(reading) or _first(lexicon.ROLE, text), 240),
        "audience": _clip(_match(lexicon.AUDIENCE, text), 120),
        "inputs": [f"<{item.tag}> ({item.end - item.start:,} characters)" for item in reading.material],
        "placeholders": [span.text for span in protected_spans(text) if span.kind == "placeholder"][:100],
        "constraints": [_clip(s, 200) for s in itertools.islice(filter(_is_rule, reading.sentences), 30)],
        "output_format": _clip(_sentence_with(lexicon.FORMAT, reading) or _named_form(reading), 240),
        "language": language_name(reading.language),
        "missing": missing,
    }


def _verb(task: str, match: re.Match | None) -> str:
    """The verb that asks ("write", "act as"), not the phrase around it ("i want you to")."""
    if match is None:
        return ""
    found = match.group().strip(" .!?:;\n").lower()
    if persona := lexicon.PERSONA.search(task):
        return persona.group().lower().removeprefix("i want you to ").strip()[:40]
    rest = task[match.end() :].lstrip()
    following = (
        lexicon.IMPERATIVE.match(rest)
        if found.startswith(
            (
                "i want",
                "i need",
                "i'd like",
                "can you",
                "could you",
                "you will",
                "you must",
                "you should",
                "help me",
            )
        )
        else None
    )
    return (following.group().lower() if following else found)[:40]


def _persona_sentence(reading: Reading) -> str:
    if not reading.persona:
        return ""
    return next((s for s in reading.sentences if lexicon.PERSONA.search(s)), "")


def _first(pattern: re.Pattern, text: str) -> str:
    match = first_match(pattern, text)
    if not match:
        return ""
    start = text.rfind("\n", 0, match.start()) + 1
    end = min(
        (p for p in (text.find("\n", match.end()), text.find(". ", match.end())) if p >= 0), default=len(text)
    )
    return text[start : end + 1].strip()


def _match(pattern: re.Pattern, text: str) -> str:
    match = first_match(pattern, text)
    return match.group().strip() if match else ""


def _named_form(reading: Reading) -> str:
    """The piece a request names ("a blog post", "an email") is its form."""
    match = CREATIVE_FORM.search(reading.task) if reading.task else None
    return match.group() if match else ""


def _sentence_with(pattern: re.Pattern, reading: Reading) -> str:
    return next((s for s in reading.sentences if pattern.search(s)), "")


RULE = case_insensitive(
    r"\b(?:must|never|always|only|do not|don't|avoid|make sure|ensure|at most|at least|no more than)\b"
)


@functools.lru_cache(maxsize=4096)
def _is_rule(sentence: str) -> bool:
    return len(sentence) < 300 and bool(RULE.search(sentence) or lexicon.NEGATIVE.search(sentence))


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _issue(code: str, detail: str) -> dict:
    severity, title, fix = ISSUE_FIX[code]
    return {"code": code, "title": title, "severity": severity, "detail": detail, "fix": fix}


def diagnose(text: str, prompt_type: str, deconstruction: dict) -> dict:
    """What is wrong with ``text``: issues with a severity and a one-line fix each, and the
    questions only its author can answer."""
    reading = read(text)
    issues = [_issue(code, detail) for code, detail in _findings(reading, prompt_type)]
    issues.sort(key=lambda issue: SEVERITY_ORDER[issue["severity"]])
    codes = {issue["code"] for issue in issues}
    return {"issues": issues, "questions": build_questions(reading, prompt_type, codes)}


def _findings(reading: Reading, prompt_type: str):
    spec = reading.structured or reading.image  # a spec or an image description: its form is given
    prose = not spec and not reading.persona
    readable = reading.language in WRITTEN  # a request in a language the engine cannot read is not missing
    if not reading.task and not reading.persona and not spec and reading.words < 60 and readable:
        yield "no-task", "No sentence asks for something (write, explain, list...)."
    elif reading.empty_task and not spec:
        yield "no-task", f"The request “{_clip(reading.task, 60)}” does not say what to do or to what."
    for what in reading.conflicts:
        yield "conflicting", f"The prompt asks for both {what}."
    vague = sorted({m.group().lower() for m in lexicon.VAGUE.finditer(reading.task)})
    if len(vague) >= 2:
        yield "ambiguous", "Vague words in the request: " + ", ".join(vague[:6]) + "."
    if reading.words < 8 and not spec:
        yield "too-short", f"Only {reading.words} words."
    elif (
        prose
        and reading.words < 25
        and not reading.states("purpose")
        and not CONTENT_CLAUSE.search(reading.task)
    ):
        yield "missing-context", "Nothing says what the answer is for or what it builds on."
    if reading.buried:
        yield "buried-instructions", "An instruction comes after a long block of material."
    loose = reading.loose_material
    if loose:
        names = ", ".join(material_name(item.tag) for item in loose)
        yield "undelimited-data", f"Material to work on is not set apart from the instructions: {names}."
    if (
        prose
        and not reading.states("format")
        and not reading.creative_form
        and not _prose_length(reading)
        and reading.task
    ):
        yield "no-output-format", "Nothing says what form the answer should take."
    if (
        prose
        and not reading.code_task
        and not reading.states("length")
        and not reading.states("answer_only")
        and reading.task
    ):
        yield "unbounded-length", "No length is given, so the answer may be any length."
    if (
        prose
        and not reading.code_task
        and reading.task
        and prompt_type in ("general", "creative", "analytical", "technical")
        and not reading.states("audience")
    ):
        yield "no-audience", "Nothing says who the answer is for."
    if (
        prompt_type in ("data", "coding")
        and prose
        and not reading.states("examples")
        and _transforms(reading)
    ):
        yield "no-examples", "An example input and output would fix the form of the answer."
    if (
        prompt_type == "coding"
        and reading.code_task  # answered by writing the tests first; elsewhere a generic line would be filler
        and prose
        and not reading.states("reasoning")
        and not reading.states("answer_only")
        and reading.task
        and len(content_words(reading.task)) >= 2
    ):
        yield "no-reasoning", "Nothing asks the model to plan or reason before answering."
    negatives = sum(1 for s in reading.sentences if lexicon.prohibition(s))
    if negatives >= 3 and negatives * 2 > len([s for s in reading.sentences if _is_rule(s)]):
        yield "negative-instructions", f"{negatives} rules say only what not to do."
    text = reading.text
    if reading.words > 200 and "\n\n" not in text.strip() and not LIST_ITEM.search(text) and not spec:
        yield "wall-of-text", f"{reading.words} words in one block, with no paragraphs or lists."


PROSE_LENGTH = case_insensitive(
    r"\b(?:sentences?|paragraphs?|words?|lines?|characters?|frases|phrases|sätze|frasi|предложени\w*)\b"
)


def _prose_length(reading: Reading) -> bool:
    """A length in sentences, paragraphs or words already says the answer is prose."""
    match = first_match(lexicon.LENGTH, reading.text)
    return bool(match and PROSE_LENGTH.search(match.group()))


TRANSFORM = case_insensitive(
    r"\b(?:extract|classify|convert|parse|format|tag|label|categori[sz]e|map|normali[sz]e|transform)\b"
)


# "..., that I will be late", "about remote work": the request says what the answer is about.
CONTENT_CLAUSE = case_insensitive(
    r"\b(?:that|about|on|regarding|dass|über|que|sobre|sur|à propos|che|su|sull\w*|что|о|об)\b"
)


def _transforms(reading: Reading) -> bool:
    return bool(TRANSFORM.search(reading.task))


# Which techniques answer which issues; the first one suited to the type is picked.
REMEDIES = {
    "no-task": (),
    "ambiguous": ("constraints",),
    "too-short": ("context-priming",),
    "missing-context": ("context-priming",),
    "no-audience": ("audience",),
    "no-output-format": ("json-schema", "meta-prompting"),
    "unbounded-length": ("output-length",),
    "conflicting": ("constraints",),
    "no-examples": ("few-shot",),
    "buried-instructions": ("delimiters",),
    "undelimited-data": ("delimiters",),
    "negative-instructions": ("positive-instructions",),
    "no-reasoning": ("test-first",),  # a generic "think step by step" is added only when picked
    "wall-of-text": (),
}


def select_techniques(prompt_type: str, diagnosis: dict, text: str = "") -> list[dict]:
    """ "Auto": the techniques that answer the diagnosed issues, suited to the type and to this
    prompt, each with why."""
    reading = read(text) if text else None
    chosen: dict[str, str] = {}
    for issue in diagnosis["issues"]:
        for slug in REMEDIES.get(issue["code"], ()):
            technique = TECHNIQUES[slug]
            if prompt_type not in technique.suits:
                continue
            if slug == "json-schema" and prompt_type != "data":
                continue  # JSON only where the answer is data; elsewhere the form is asked
            if slug == "test-first" and not (reading and reading.code_task):
                continue
            chosen.setdefault(slug, f"{issue['title']}: {technique.effect[0].lower()}{technique.effect[1:]}")
            break
    codes = {issue["code"] for issue in diagnosis["issues"]}
    if (
        reading
        and "undelimited-data" in codes
        and prompt_type in ("analytical", "data", "technical")
        and not reading.persona
    ):
        chosen.setdefault("grounding", "The answer should come from the material the prompt carries.")
    if not any(issue["severity"] in ("high", "medium") for issue in diagnosis["issues"]):
        # Nothing serious: a good prompt is left alone; what is missing is only asked.
        chosen = {slug: why for slug, why in chosen.items() if slug not in WRITES_LINES}
    return [{"slug": slug, "reason": reason} for slug, reason in chosen.items()]


WRITES_LINES = ("zero-shot-cot", "test-first", "grounding", "decomposition")


# What each of the author's answers settles: the issues it resolves, the deconstruction field it fills.
ANSWER_SETTLES = {
    "task": (("no-task",), "goal", None),
    "conflict": (("conflicting",), None, None),
    "purpose": (("missing-context", "too-short"), None, "context or purpose"),
    "audience": (("no-audience",), "audience", "audience"),
    "format": (("no-output-format",), "output_format", "output format"),
    "length": (("unbounded-length",), None, "length"),
    "examples": (("no-examples",), None, "examples"),
    "role": (("no-role",), "role", "role"),
    "instead": (("negative-instructions",), None, None),
    "success": (("ambiguous",), None, None),
}


def with_answers(deconstruction: dict, diagnosis: dict, answers: dict | None) -> tuple[dict, dict]:
    """The analysis of a prompt once its author has answered some questions: the issues an answer
    settles move to ``resolved`` (saying by which answer), answered questions close, and the
    deconstruction shows the answers where it said "none"."""
    answers = {key: value for key, value in (answers or {}).items() if value}
    if not answers:
        return deconstruction, diagnosis
    settled = {code: key for key, (codes, _, _) in ANSWER_SETTLES.items() if key in answers for code in codes}
    if len(answers) >= 2:
        settled.setdefault("too-short", next(iter(answers)))  # two answers give it enough to go on
    issues = [issue for issue in diagnosis.get("issues", []) if issue.get("code") not in settled]
    resolved = [
        {**issue, "resolved_by": settled[issue["code"]]}
        for issue in diagnosis.get("issues", [])
        if issue.get("code") in settled
    ]
    questions = [q for q in diagnosis.get("questions", []) if q.get("key") not in answers]
    deconstruction = dict(deconstruction)
    missing = list(deconstruction.get("missing", []))
    for key, answer in answers.items():
        _, field, gap = ANSWER_SETTLES.get(key, ((), None, None))
        if field and not deconstruction.get(field):
            deconstruction[field] = answer
        if gap in missing:
            missing.remove(gap)
    deconstruction["missing"] = missing
    return deconstruction, {**diagnosis, "issues": issues, "resolved": resolved, "questions": questions}
