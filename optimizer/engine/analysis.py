"""The built-in engine's first two stages: deconstruct a prompt, then diagnose it; and "Auto", which
picks techniques from the diagnosis and the type, saying why.

Outputs are plain dicts shaped like the LLM engine's structured answers (see ``schemas``), so the
rest of the pipeline cannot tell the engines apart.
"""

import re

from optimizer.engine.catalogue import TECHNIQUES
from optimizer.engine.language import detect_language
from optimizer.engine.spans import protected_spans
from optimizer.engine.structure import LIST_ITEM, OUTPUT, ROLEPLAY, Parsed, parse

TASK_VERBS = (
    "act as",
    "analyze",
    "analyse",
    "answer",
    "assess",
    "brainstorm",
    "build",
    "calculate",
    "check",
    "classify",
    "compare",
    "compose",
    "convert",
    "correct",
    "create",
    "critique",
    "debug",
    "define",
    "describe",
    "design",
    "develop",
    "draft",
    "edit",
    "evaluate",
    "explain",
    "extract",
    "find",
    "fix",
    "generate",
    "give",
    "help",
    "identify",
    "implement",
    "improve",
    "list",
    "make",
    "optimize",
    "outline",
    "plan",
    "predict",
    "prepare",
    "produce",
    "proofread",
    "provide",
    "recommend",
    "refactor",
    "reply",
    "respond",
    "review",
    "rewrite",
    "solve",
    "suggest",
    "summarize",
    "summarise",
    "teach",
    "tell",
    "test",
    "translate",
    "write",
)
TASK_VERB = re.compile(r"\b(" + "|".join(re.escape(v) for v in TASK_VERBS) + r")\b", re.IGNORECASE)
VAGUE = re.compile(
    r"\b(?:something|stuff|things?|some|somehow|etc|whatever|good|nice|better|interesting|various|"
    r"a bit|kind of|sort of|maybe|probably|appropriate|relevant|properly)\b",
    re.IGNORECASE,
)
AUDIENCE = re.compile(
    r"\b(?:for (?:an? |the |my |our )?(?:(?:[\w-]+ )?(?:beginners?|children|kids|students?|developers?|visitors?|"
    r"tourists?|parents?|adults?|seniors?|"
    r"engineers?|executives?|managers?|customers?|clients?|experts?|novices?|readers?|users?|"
    r"audience|team|investors?|patients?|teachers?|professionals?|non-technical \w+))|"
    r"audience is [^.\n]{1,80}|(?:the )?readers? (?:is|are) [^.\n]{1,80}|who (?:will )?reads? [^.\n]{1,60})",
    re.IGNORECASE,
)
LENGTH = re.compile(
    r"\b(?:(?:under|at most|no more than|more than|maximum(?: of)?|up to|fewer than|less than|about|around|exactly|"
    r"within|in) (?:\d+|one|two|three|four|five|ten) (?:words|sentences|paragraphs|characters|lines|"
    r"tokens|bullets|items|pages)|one (?:sentence|paragraph|line|word)|(?:brief|short|concise|succinct)"
    r"(?:ly)?|one[- ]liner|single (?:sentence|paragraph|word|line))\b",
    re.IGNORECASE,
)
NEGATIVE = re.compile(r"(?:^|[.;:!?]\s+|\b)(?:do not|don't|dont|never)\b", re.IGNORECASE)
REASONING = re.compile(
    r"\b(?:step by step|step-by-step|reason|think (?:through|carefully|aloud)|show your work|explain "
    r"your reasoning|plan|verify|double-check|check your|sub-problems?)\b",
    re.IGNORECASE,
)
CONFLICTS = (
    (re.compile(r"\b(?:brief|short|concise|succinct)\b", re.I), re.compile(r"\b(?:detailed|in[- ]depth|comprehensive|thorough|exhaustive)\b", re.I), "brevity and exhaustive detail"),
    (re.compile(r"\bformal\b", re.I), re.compile(r"\b(?:casual|informal|slang)\b", re.I), "a formal and a casual tone"),
    (re.compile(r"\bonly (?:reply|respond|answer) with\b|\bnothing else\b", re.I), re.compile(r"\bexplain (?:why|your|each)\b", re.I), "answer-only output and explanations"),
)  # fmt: skip

ISSUE_FIX = {
    "no-task": ("high", "No clear task", "State in one sentence what the model must do, starting with a verb."),
    "ambiguous": ("medium", "Ambiguous wording", "Replace vague words with concrete requirements."),
    "too-short": ("medium", "Too little to go on", "Add what the answer is for, what to cover, and its form."),
    "missing-context": ("medium", "Missing context", "Say what the answer is for and any background it needs."),
    "no-role": ("low", "No role", "Name the expertise the task calls for."),
    "no-audience": ("low", "No audience", "Say who will read the answer, to set depth and vocabulary."),
    "no-output-format": ("high", "No output format", "Say what form the answer takes (list, table, JSON...)."),
    "unbounded-length": ("medium", "Unbounded length", "Bound the answer's length in words, items or sentences."),
    "conflicting": ("high", "Conflicting instructions", "Decide which instruction wins and say so."),
    "no-examples": ("low", "No examples", "Show one input and the answer you want for it."),
    "buried-instructions": ("high", "Instructions buried in data", "Put instructions first; wrap data in tags."),
    "undelimited-data": ("medium", "Data not delimited", "Wrap the material in tags so it is not read as instructions."),
    "negative-instructions": ("low", "Mostly negative instructions", "Say what to do instead of only what not to do."),
    "no-reasoning": ("medium", "No reasoning support", "Ask for a plan or step-by-step reasoning before the answer."),
    "wall-of-text": ("medium", "Wall of text", "Split the prompt into sections: role, task, rules, format."),
    "no-constraints": ("low", "No constraints", "State the rules the answer must follow."),
}  # fmt: skip
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+(?:'[^\W_]+)?", text)


def deconstruct(text: str, prompt_type: str) -> dict:
    """Goal, task verb, role, audience, inputs and placeholders, constraints, output format,
    language and missing information of ``text``."""
    parsed = parse(text)
    task_text = parsed.text_of("task") or text
    verb_match = TASK_VERB.search(parsed.text_of("role") + " " + task_text) or TASK_VERB.search(text)
    audience = AUDIENCE.search(text)
    missing = []
    if not parsed.has("role"):
        missing.append("role")
    if not audience:
        missing.append("audience")
    if not (parsed.has("output") or OUTPUT.search(text)):
        missing.append("output format")
    if not LENGTH.search(text):
        missing.append("length")
    if not parsed.has("context"):
        missing.append("context or purpose")
    if not parsed.has("examples") and prompt_type in ("data", "coding"):
        missing.append("examples")
    first_task = next(iter(parsed.sections["task"]), "") or next(iter(parsed.sections["role"]), "")
    return {
        "goal": _clip(first_task or text, 240),
        "task_verb": verb_match.group(1).lower() if verb_match else "",
        "role": _clip(parsed.text_of("role"), 240),
        "audience": audience.group(0) if audience else "",
        "inputs": [_clip(unit, 120) for unit in parsed.sections["input"]],
        "placeholders": [span.text for span in protected_spans(text) if span.kind == "placeholder"][:100],
        "constraints": [_clip(unit, 200) for unit in parsed.sections["constraints"]][:30],
        "output_format": _clip(parsed.text_of("output"), 240),
        "language": detect_language(text),
        "missing": missing,
    }


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _issue(code: str, detail: str) -> dict:
    severity, title, fix = ISSUE_FIX[code]
    return {"code": code, "title": title, "severity": severity, "detail": detail, "fix": fix}


def diagnose(text: str, prompt_type: str, deconstruction: dict) -> dict:
    """What is wrong with ``text``: issues with a severity and a one-line fix each."""
    parsed = parse(text)
    words = _words(text)
    missing = set(deconstruction["missing"])
    issues = []
    if not deconstruction["task_verb"]:
        issues.append(_issue("no-task", "No instruction verb (write, explain, list...) was found."))
    vague = sorted({match.group(0).lower() for match in VAGUE.finditer(parsed.text_of("task"))})
    if len(vague) >= 2:
        issues.append(_issue("ambiguous", "Vague words: " + ", ".join(vague[:6]) + "."))
    if len(words) < 12:
        issues.append(_issue("too-short", f"Only {len(words)} words."))
    elif "context or purpose" in missing and not parsed.ours:
        issues.append(_issue("missing-context", "Nothing says what the answer is for or what it builds on."))
    if "role" in missing:
        issues.append(_issue("no-role", "The prompt does not say whose expertise to answer with."))
    roleplay = bool(ROLEPLAY.search(parsed.text_of("role")))
    if (
        "audience" in missing
        and prompt_type in ("general", "creative", "analytical", "technical")
        and not roleplay
    ):
        issues.append(_issue("no-audience", "Nothing says who the answer is for."))
    if "output format" in missing:
        issues.append(_issue("no-output-format", "Nothing says what form the answer should take."))
    if "length" in missing:
        issues.append(_issue("unbounded-length", "No length is given, so the answer may be any length."))
    for first, second, what in CONFLICTS:
        if first.search(text) and second.search(text):
            issues.append(_issue("conflicting", f"The prompt asks for both {what}."))
    if "examples" in missing:
        issues.append(_issue("no-examples", f"{prompt_type.capitalize()} prompts gain from an example."))
    issues.extend(_data_issues(text, parsed))
    negatives = len(NEGATIVE.findall(text))
    if negatives >= 2 and negatives * 2 > len(parsed.sections["constraints"]):
        issues.append(_issue("negative-instructions", f"{negatives} rules say only what not to do."))
    if prompt_type in ("analytical", "technical", "coding", "data") and not REASONING.search(text):
        issues.append(_issue("no-reasoning", "Nothing asks the model to plan or reason before answering."))
    if len(words) > 150 and not parsed.headed and "\n\n" not in text.strip() and not LIST_ITEM.search(text):
        issues.append(_issue("wall-of-text", f"{len(words)} words in one block, with no sections or lists."))
    if not parsed.has("constraints") and not parsed.ours:
        issues.append(_issue("no-constraints", "The prompt states no rules for the answer."))
    issues.sort(key=lambda issue: SEVERITY_ORDER[issue["severity"]])
    return {"issues": issues, "questions": []}


def _data_issues(text: str, parsed: Parsed) -> list[dict]:
    data_units = parsed.sections["input"]
    if not data_units:
        return []
    undelimited = [unit for unit in data_units if not (unit.startswith("```") or unit.startswith("<"))]
    position = max((text.find(unit) + len(unit) for unit in data_units), default=-1)
    after = text[position:] if position > 0 else ""
    if len(_words(after)) >= 5 and TASK_VERB.search(after) and sum(len(u) for u in data_units) > 300:
        return [_issue("buried-instructions", "Instructions follow a long block of data.")]
    if undelimited and not parsed.ours:
        return [_issue("undelimited-data", f"{len(undelimited)} block(s) of input are not set apart.")]
    return []


# Which techniques answer which issues; the first one suited to the type is picked.
REMEDIES = {
    "no-task": ("decomposition",),
    "ambiguous": ("clarifying-questions",),
    "too-short": ("context-priming", "clarifying-questions"),
    "missing-context": ("context-priming",),
    "no-role": ("role",),
    "no-audience": ("audience",),
    "no-output-format": ("json-schema", "meta-prompting", "output-length"),
    "unbounded-length": ("output-length",),
    "conflicting": ("constraints",),
    "no-examples": ("few-shot",),
    "buried-instructions": ("delimiters",),
    "undelimited-data": ("delimiters",),
    "negative-instructions": ("positive-instructions",),
    "no-reasoning": ("test-first", "plan-and-solve", "zero-shot-cot"),
    "wall-of-text": ("decomposition",),
    "no-constraints": ("constraints",),
}
TYPE_EXTRAS = {"creative": ("tone-style",), "analytical": ("step-back",), "data": ("verification",)}


def select_techniques(prompt_type: str, diagnosis: dict) -> list[dict]:
    """ "Auto": the techniques that answer the diagnosed issues, suited to the type, each with why."""
    chosen: dict[str, str] = {}
    for issue in diagnosis["issues"]:
        for slug in REMEDIES.get(issue["code"], ()):
            technique = TECHNIQUES[slug]
            if prompt_type not in technique.suits:
                continue
            if slug == "json-schema" and prompt_type not in ("data",):
                continue  # JSON only where the answer is data; elsewhere a described structure reads better
            chosen.setdefault(slug, f"{issue['title']}: {technique.effect[0].lower()}{technique.effect[1:]}")
            break
    needs_work = any(issue["severity"] != "low" for issue in diagnosis["issues"])
    for slug in TYPE_EXTRAS.get(prompt_type, ()) if needs_work else ():
        chosen.setdefault(slug, f"Suits {prompt_type} prompts: {TECHNIQUES[slug].effect[0].lower()}"
                                f"{TECHNIQUES[slug].effect[1:]}")  # fmt: skip
    return [{"slug": slug, "reason": reason} for slug, reason in chosen.items()]
