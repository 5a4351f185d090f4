"""Reading a prompt into parts, and writing parts back as a sectioned prompt.

A prompt is split into units: code blocks, list blocks, paragraphs and sentences. A split never
falls inside a protected span (a placeholder, a quoted literal...), so moving units between
sections keeps every span whole. Each unit is classified (role, task, context, input, constraint,
output format, example, approach, verification); a prompt that already has headings keeps its
sections, and our own headings are read back exactly, so optimizing an optimized prompt does not
inflate it.
"""

import functools
import re
from dataclasses import dataclass, field

from optimizer.engine.spans import protected_ranges

SECTIONS: dict[str, str] = {
    # key: heading, in the order sections are written
    "role": "Role",
    "context": "Context",
    "task": "Task",
    "input": "Input",
    "approach": "Approach",
    "constraints": "Constraints",
    "output": "Output format",
    "examples": "Examples",
    "verification": "Check before answering",
}
BULLETED = {"approach", "constraints", "verification"}

HEADING_SYNONYMS: dict[str, str] = {
    "role": "role",
    "persona": "role",
    "identity": "role",
    "context": "context",
    "background": "context",
    "purpose": "context",
    "audience": "context",
    "task": "task",
    "tasks": "task",
    "instructions": "task",
    "instruction": "task",
    "objective": "task",
    "goal": "task",
    "request": "task",
    "input": "input",
    "inputs": "input",
    "data": "input",
    "text": "input",
    "source": "input",
    "sources": "input",
    "approach": "approach",
    "method": "approach",
    "steps": "approach",
    "process": "approach",
    "constraints": "constraints",
    "rules": "constraints",
    "requirements": "constraints",
    "guidelines": "constraints",
    "restrictions": "constraints",
    "output": "output",
    "output format": "output",
    "format": "output",
    "response format": "output",
    "examples": "examples",
    "example": "examples",
    "check before answering": "verification",
    "verification": "verification",
    "checks": "verification",
}

HEADING = re.compile(
    r"^(?:#{1,6}[ \t]+(?P<md>[^\n#]{1,60}?)[ \t]*#*|(?P<colon>[A-Z][A-Za-z ]{1,30}):)[ \t]*$"
)
LIST_ITEM = re.compile(r"^[ \t]*(?:[-*•]|\d{1,3}[.)])[ \t]+")
TAG_BLOCK = re.compile(r"^<(?P<tag>[a-z][a-z_-]{0,30})>\n.*\n</(?P=tag)>$", re.DOTALL)

ROLEPLAY = re.compile(
    r"\b(?:act as|acting as|pretend to be|imagine you are|play the role|role-?play)\b", re.I
)
ROLE = re.compile(
    r"^(?:(?:i want|i'd like|i would like) you to act as|act as|you are\b|you're\b|pretend to be|"
    r"imagine you are|as an? \w+|your role is|i want you to (?:be|play|become))",
    re.IGNORECASE,
)
OUTPUT = re.compile(
    r"\b(?:format|formatted|json|yaml|csv|markdown|table|bullet(?:ed)? (?:list|points)|numbered list|"
    r"reply (?:with|only|in)|respond (?:with|only|in)|answer (?:with|only|in)|output|"
    r"return (?:only|a|the|it)|code block|in (?:\d+|one|two|three|a few) (?:words|sentences|paragraphs|"
    r"lines|bullets)|(?:under|at most|no more than|maximum of|up to|fewer than|less than) \d+ "
    r"(?:words|sentences|paragraphs|characters|lines|tokens|bullets|items))\b",
    re.IGNORECASE,
)
CONSTRAINT = re.compile(
    r"(?:^|\b)(?:do not|don't|dont|never|must|must not|should not|shouldn't|avoid|only|always|"
    r"make sure|ensure|be sure|without|no more than|at most|at least|limit|keep it|keep the|"
    r"refrain|unless|exclusively)\b",
    re.IGNORECASE,
)
CONTEXT = re.compile(
    r"\b(?:the aim|stay in (?:this|the|your) role|because|so that|the goal|my goal|our goal|purpose|background|context|for my|for our|"
    r"i am a|i'm a|we are a|i work|audience|readers?|for (?:beginners|children|kids|students|experts|"
    r"developers|executives|customers|clients))\b",
    re.IGNORECASE,
)
EXAMPLE = re.compile(r"^(?:for example|e\.g\.|example(?: \d+)?:|for instance|such as:|input:|output:)", re.I)
INPUT_LEAD = re.compile(
    r"^(?:my first (?:request|sentence|command|question|suggestion|task|prompt|word|text|line|statement|"
    r"message|query|code|topic|problem|poem|story|input|step)|the (?:text|article|data|code|document|"
    r"email|input|passage) (?:is|follows|below)|here is|here's|text:|input:|data:|article:|code:|"
    r"document:|passage:|email:)",
    re.IGNORECASE,
)
APPROACH = re.compile(
    r"\b(?:step by step|step-by-step|think (?:through|carefully)|first,|then,|plan)\b", re.I
)
IMPERATIVE = re.compile(
    r"^(?:please\s+)?(?:write|explain|summari[sz]e|translate|generate|create|list|analy[sz]e|classify|extract|"
    r"rewrite|review|answer|design|plan|compare|describe|convert|fix|debug|refactor|suggest|draft|outline|"
    r"compose|build|implement|develop|prepare|produce|find|identify|evaluate|calculate|solve|teach|tell|"
    r"give|provide|recommend|brainstorm|proofread|edit|correct|improve|help|make)\b",
    re.IGNORECASE,
)
VERIFY = re.compile(r"\b(?:double-check|verify|check (?:your|the) (?:answer|work|draft)|review your)\b", re.I)


@dataclass
class Parsed:
    """A prompt read into sections: each a list of units, verbatim text of the original."""

    sections: dict[str, list[str]] = field(default_factory=lambda: {key: [] for key in SECTIONS})
    headed: bool = False  # the prompt had headings of its own
    ours: bool = False  # the headings were exactly ours: a prompt this engine wrote

    def text_of(self, key: str) -> str:
        return "\n".join(self.sections[key])

    def has(self, key: str) -> bool:
        return bool(self.sections[key])


TAG_SPAN = re.compile(r"^<(?P<tag>[a-z][a-z_-]{0,30})>\n.*?\n</(?P=tag)>$", re.DOTALL | re.MULTILINE)


def _safe_split_points(text: str, pattern: re.Pattern) -> list[int]:
    blocked = [(start, end) for start, end, _ in protected_ranges(text)]
    blocked += [match.span() for match in TAG_SPAN.finditer(text)]
    points = []
    for match in pattern.finditer(text):
        cut = match.end()
        if not any(start < cut < end for start, end in blocked):
            points.append(cut)
    return points


def _split_at(text: str, points: list[int]) -> list[str]:
    pieces, last = [], 0
    for point in points:
        pieces.append(text[last:point])
        last = point
    pieces.append(text[last:])
    return [piece.strip() for piece in pieces if piece.strip()]


SENTENCE_END = re.compile(r"(?<=[.!?。！？])[\"”')\]]?[ \t]+(?=[\"“(\[A-Za-z0-9])")
ABBREVIATIONS = re.compile(
    r"(?:\b(?:e\.g|i\.e|etc|vs|mr|mrs|ms|dr|st|no|fig|approx|cf|al)|\b[A-Za-z])\.[\"”')\]]?[ \t]+$", re.I
)
BLOCK_BREAK = re.compile(r"\n[ \t]*\n")


def blocks(text: str) -> list[str]:
    """Paragraph-level blocks; a fenced code block or a tagged block stays one block."""
    return _split_at(text, _safe_split_points(text, BLOCK_BREAK))


def sentences(block: str) -> list[str]:
    points = _safe_split_points(block, SENTENCE_END)
    return _split_at(block, [p for p in points if not ABBREVIATIONS.search(block[max(0, p - 12) : p])])


def classify(unit: str) -> str:
    """The section a unit of a prompt without headings belongs to."""
    head = unit.lstrip()[:300]
    if unit.startswith("```") or TAG_BLOCK.match(unit) or INPUT_LEAD.match(head):
        return "input"
    if ROLE.match(head):
        return "role"
    if EXAMPLE.match(head):
        return "examples"
    if VERIFY.search(head):
        return "verification"
    if OUTPUT.search(head):
        return "output"
    if IMPERATIVE.match(head):
        return "task"
    if CONSTRAINT.search(head) and len(head) < 250:
        return "constraints"
    if CONTEXT.search(head):
        return "context"
    if APPROACH.search(head):
        return "approach"
    return "task"


def heading_key(line: str) -> str | None:
    match = HEADING.match(line.strip())
    if not match:
        return None
    title = (match.group("md") or match.group("colon") or "").strip().lower().rstrip(":")
    return HEADING_SYNONYMS.get(title, "other")


def _unbullet(line: str) -> str:
    return LIST_ITEM.sub("", line, count=1).strip()


@functools.lru_cache(maxsize=32)
def parse(text: str) -> Parsed:
    """``text`` read into sections. Every stage reads the same prompt, so the result is cached;
    callers treat it as read-only (the design stage copies the sections it changes)."""
    parsed = Parsed()
    lines = text.split("\n")
    heading_lines = [
        i for i, line in enumerate(lines) if line.lstrip().startswith("#") and heading_key(line) is not None
    ]
    if len(heading_lines) >= 2:
        _parse_headed(text, parsed)
    else:
        _parse_plain(text, parsed)
    return parsed


def _parse_headed(text: str, parsed: Parsed) -> None:
    parsed.headed = True
    ours = {f"## {title}" for title in SECTIONS.values()}
    current, buffer, preamble = "task", [], True
    all_ours = True
    in_code = in_tag = False

    def flush():
        body = "\n".join(buffer).strip()
        if body:
            _add_body(parsed, current, body)
        buffer.clear()

    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif re.fullmatch(r"</?[a-z][a-z_-]{0,30}>", line.strip()):
            in_tag = not line.strip().startswith("</")
        quoted = in_code or in_tag
        key = None if quoted or not line.lstrip().startswith("#") else heading_key(line)
        if key is None:
            buffer.append(line)
            continue
        if preamble and buffer and "\n".join(buffer).strip():
            _parse_plain("\n".join(buffer), parsed)
            buffer.clear()
        preamble = False
        flush()
        if key == "other":
            all_ours = False
            current = "task"
            buffer.append("### " + line.lstrip("# ").strip())
        else:
            all_ours = all_ours and line.strip() in ours
            current = key
    if preamble:
        _parse_plain(text, parsed)
        return
    flush()
    parsed.ours = all_ours


def _add_body(parsed: Parsed, key: str, body: str) -> None:
    if key in BULLETED:
        for block in blocks(body):
            if all(LIST_ITEM.match(line) for line in block.split("\n") if line.strip()):
                parsed.sections[key].extend(_unbullet(line) for line in block.split("\n") if line.strip())
            else:
                parsed.sections[key].append(block)
    else:
        parsed.sections[key].extend(blocks(body))


def _parse_plain(text: str, parsed: Parsed) -> None:
    """A short prompt is read sentence by sentence; a longer one block by block, in its own order,
    so the author's paragraphs and numbered parts stay together."""
    found = blocks(text)
    by_sentence = len(found) <= 2
    for position, block in enumerate(found):
        first_line, _, rest = block.partition("\n")
        key = heading_key(first_line)
        if block.startswith("```") or TAG_BLOCK.match(block) or INPUT_LEAD.match(block):
            parsed.sections["input"].append(block)
        elif key and key != "other" and rest.strip():
            _add_body(parsed, key, rest)  # "Rules:\n- a\n- b"
        elif len(block) > 600 and not rest and _is_data(block):
            parsed.sections["input"].append(block)
        elif by_sentence and not (rest and (LIST_ITEM.match(rest) or first_line.rstrip().endswith(":"))):
            _add_sentences(parsed, sentences(block))
        elif position == 0 and "\n" not in block:
            _add_sentences(parsed, sentences(block), rest_to="task")
        else:
            parsed.sections["task"].append(block)


def _add_sentences(parsed: Parsed, units: list[str], rest_to: str | None = None) -> None:
    """Classify each sentence; consecutive sentences of one section stay one paragraph. With
    ``rest_to``, only leading role sentences are taken out, the rest go there together."""
    previous = None
    for index, sentence in enumerate(units):
        key = classify(sentence)
        if rest_to and (key != "role" or previous not in (None, "role")):
            parsed.sections[rest_to].append(" ".join(units[index:]))
            return
        if key == previous and key not in BULLETED:
            parsed.sections[key][-1] += " " + sentence
        else:
            parsed.sections[key].append(sentence)
        previous = key


def _is_data(block: str) -> bool:
    """A long paragraph that reads as material to work on rather than instructions."""
    lowered = block[:400].lower()
    return not re.search(r"\b(?:you|your|please|i want|write|create|make|give)\b", lowered)


def render(sections: dict[str, list[str]]) -> str:
    parts = []
    for key, title in SECTIONS.items():
        units = sections.get(key) or []
        if not units:
            continue
        body = _bullets(units) if key in BULLETED else "\n\n".join(units)
        parts.append(f"## {title}\n{body}")
    return "\n\n".join(parts) + "\n"


def _bullets(units: list[str]) -> str:
    """One-line units as a bullet list; a multi-line unit as its own paragraph, so reading the
    section back gives the same units."""
    groups: list[list[str]] = []
    for unit in units:
        if "\n" in unit or not groups or "\n" in groups[-1][-1]:
            groups.append([unit])
        else:
            groups[-1].append(unit)
    return "\n\n".join(
        group[0] if "\n" in group[0] else "\n".join(f"- {unit}" for unit in group) for group in groups
    )
