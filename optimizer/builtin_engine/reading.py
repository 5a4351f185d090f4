"""What a prompt contains, read once: its language, whether it is a persona with a first request, a
JSON or YAML body, its own headings, the material it carries (pasted text, rows, a placeholder
standing for a document) and where that material sits, and what it already states (a task, a
length, a format, an audience, a purpose).

Every later stage reads this; nothing here changes the text.
"""

import functools
import json
import re
from dataclasses import dataclass, field

from optimizer.builtin_engine import lexicon
from optimizer.builtin_engine.language import detect
from optimizer.builtin_engine.patterns import case_insensitive

HEADING = re.compile(r"^#{1,6}[ \t]+\S", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```[ \t]*$", re.DOTALL | re.MULTILINE)
TAGGED = re.compile(
    r"^<(?P<tag>[A-Za-z][\w-]{0,30})>[ \t]*\n.*?\n</(?P=tag)>[ \t]*$", re.DOTALL | re.MULTILINE
)
LIST_ITEM = re.compile(r"^[ \t]*(?:[-*•]|\d{1,3}[.)])[ \t]+", re.MULTILINE)
PLACEHOLDER_ALONE = re.compile(
    r"^[ \t]*(?:\{\{?[^{}\n]{1,60}\}\}?|\[[^\[\]\n]{1,60}\]|<[A-Za-z_][\w .-]{0,40}>|\$\{?\w+\}?)[ \t]*$"
)
SENTENCE = re.compile(r"[^.!?。！？\n]+(?:[.!?。！？]+|$)", re.MULTILINE)
WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
NOT_MATERIAL = case_insensitive(
    r"\b(?:rules?|steps?|instructions?|guidelines?|requirements?|format|structure|criteria|questions?|points?|"
    r"sections?|template|examples?|options?|constraints?|tips|topics?|categories|fields?|columns?|parameters?|"
    r"reglas|pasos|règles|étapes|regeln|schritte|regras|passos|regole|passi|правил\w*|шаг\w*)\b",
)
# A paragraph after the material that speaks to the model again.
INSTRUCTS_AGAIN = case_insensitive(
    r"(?:now|then|finally|also|next|after that|remember|important|note)\b|" + lexicon.IMPERATIVE.pattern,
)
ALREADY_SET_APART = re.compile(
    r"[ \t]*(?:<[\w-]+>[ \t]*\n|```|"
    + "|".join(re.escape(note.split("{tag}")[0]) for note in lexicon.MATERIAL_NOTE.values())
    + ")"
)
STRUCTURE_LINE = re.compile(r"[ \t]*(?:[-*•+]|\d{1,3}[.)]|#{1,6}|\|)[ \t]")
ROW_LOG = re.compile(
    r"^\s*(?:\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|\[?\d{2}:\d{2}:\d{2}|\[?(?:INFO|WARN|WARNING|ERROR|DEBUG|TRACE|FATAL)\b)"
)
CODE_TASK = case_insensitive(
    r"\b(?:write|implement|create|build|develop|code|generate)\b[^.\n]{0,60}\b(?:function|script|class|program|"
    r"module|endpoint|api|query|regex|component|cli|test|method|algorithm|game|app|application|website|web app|"
    r"extension|plugin|bot|tool|library|package|service|dashboard|page)\b",
)
CREATIVE_FORM = case_insensitive(
    r"\b(?:poem|poetry|haiku|story|stories|song|lyrics|tweet|tweets|email|e-mail|letter|essay|article|blog post|"
    r"post|caption|slogan|tagline|joke|script|screenplay|limerick|sonnet|speech|toast|headline|bio|image|picture|"
    r"photo|illustration|logo|poema|cuento|canción|poème|histoire|chanson|gedicht|geschichte|lied|poesia|"
    r"correo|carta|mensaje|courriel|lettre|nachricht|mensagem|lettera|messaggio|"
    r"história|canção|storia|canzone|стих\w*|рассказ\w*|песн\w*|письм\w*)\b|诗|故事|歌|詩|物語",
)
TONE = case_insensitive(
    r"\b(?:tone|voice|style|formal|informal|casual|friendly|playful|humorous|funny|serious|warm|professional|"
    r"tono|estilo|ton|style|stil|tom|тон\w*|стил\w*)\b|语气|口吻|風格|トーン|口調",
)


@dataclass(frozen=True)
class Material:
    """A block of the prompt that is data to work on: ``start:end`` of the text, the tag it gets,
    and whether the author already set it apart (tags or a code fence)."""

    start: int
    end: int
    tag: str
    delimited: bool


@dataclass(frozen=True)
class Reading:
    text: str
    language: str  # ISO 639-1 code, or "unknown"
    words: int
    structured: bool  # the whole prompt is JSON or YAML: a spec, not prose
    image: bool  # a description of an image to generate
    persona: bool
    first_request: str  # the persona's first request, verbatim, or ""
    task: str  # the first sentence that asks for something, or ""
    empty_task: bool  # it asks for nothing specific ("Do it.")
    code_task: bool
    owned: str  # the author's own thing the task is about ("resume", "product"), when the prompt does not carry it
    creative_form: bool  # it names the form of the piece (a poem, an email...)
    material: tuple[Material, ...] = ()
    buried: bool = False  # an instruction follows the material
    conflicts: tuple[str, ...] = ()
    mentions: frozenset[str] = field(default_factory=frozenset)  # what it states: length, format...
    sentences: tuple[str, ...] = ()

    def states(self, what: str) -> bool:
        return what in self.mentions

    @property
    def loose_material(self) -> tuple[Material, ...]:
        return tuple(item for item in self.material if not item.delimited)


def words_of(text: str) -> list[str]:
    return list(_words(text))


@functools.lru_cache(maxsize=4096)
def _words(text: str) -> tuple[str, ...]:
    """Cached: the checklist counts a sentence's words, then weighs its content words."""
    found = WORD.findall(text)
    return tuple(found + CJK.findall(text) if CJK.search(text) else found)


def sentences_of(text: str) -> list[str]:
    return [match.group().strip() for match in SENTENCE.finditer(text) if match.group().strip()]


def sentence_starts(text: str) -> list[tuple[str, int]]:
    """``sentences_of(text)``, each with where it starts in ``text``."""
    found = []
    for match in SENTENCE.finditer(text):
        whole = match.group()
        if sentence := whole.strip():
            found.append((sentence, match.start() + len(whole) - len(whole.lstrip())))
    return found


def is_structured(text: str) -> bool:
    body = text.strip()
    if body.startswith(("{", "[")):
        try:
            json.loads(body)
        except ValueError:
            return body.startswith("{") and body.endswith("}") and body.count('":') >= 3
        return True
    if body.startswith("---\n") and re.search(r"^\w[\w-]*:", body[4:200], re.MULTILINE):
        return True
    lines = [line for line in body.splitlines() if line.strip()]
    keyed = len([line for line in lines if YAML_LINE.match(line)])
    return keyed >= 5 and keyed >= 0.4 * len(lines)  # a YAML-like spec of keys and values


YAML_LINE = re.compile(r"^[ \t]*(?:- )?[\w\u00c0-\uffff][\w\u00c0-\uffff -]{0,40}:(?:[ \t]|$)")
IMAGE = case_insensitive(
    r"\b(?:image|photo|photograph|picture|illustration|render(?:ed|ing)?|4k|8k|hdr|octane|unreal engine|"
    r"midjourney|dall-?e|stable diffusion|cinematic|bokeh|lens|aperture|f/\d|depth of field|lighting|"
    r"aspect ratio|--ar|portrait|photorealistic|hyper-?realistic|wallpaper|poster|logo|selfie|shot on|video|"
    r"footage|camera|close-up|wide shot|frames?|fps|animation|animated)\b",
)


@functools.lru_cache(maxsize=64)
def read(text: str) -> Reading:
    """``text`` read once; every stage of one run asks for the same text, so this is cached."""
    language = detect(text)
    sentences = sentences_of(text)
    structured = is_structured(text)
    persona = bool(lexicon.PERSONA.search(text[:600]))
    first = lexicon.FIRST_REQUEST.search(text)
    first_request = text[first.start() :].split("\n\n")[0].strip() if persona and first else ""
    material = () if structured else _material(text)
    instructions = sentences_of(_without(text, material)) if material else sentences
    task = next((s for s in instructions if _asks(s)), "")
    words = len(words_of(text))
    answered = set(woven_answers(text))
    mentions = {
        name
        for name, pattern in (
            ("length", lexicon.LENGTH),
            ("format", lexicon.FORMAT),
            ("audience", lexicon.AUDIENCE),
            ("purpose", lexicon.PURPOSE),
            ("role", lexicon.ROLE),
            ("examples", lexicon.EXAMPLE),
            ("reasoning", lexicon.REASONING),
            ("answer_only", lexicon.ANSWER_ONLY),
            ("tone", TONE),
        )
        if first_match(pattern, text)
    } | answered
    if persona:
        mentions.add("role")
    return Reading(
        text=text,
        language=language,
        words=words,
        structured=structured,
        image=_visual(text, task),
        persona=persona,
        first_request=first_request,
        task=task,
        empty_task=bool(task) and _empty(instructions),
        code_task=bool(CODE_TASK.search(text)),
        owned=_owned(task, material, text, words),
        creative_form=bool(CREATIVE_FORM.search(task or text[:400])),
        material=material,
        buried=_buried(text, material),
        conflicts=tuple(
            what for first_, second, what in lexicon.CONFLICTS if first_.search(text) and second.search(text)
        ),
        mentions=frozenset(mentions),
        sentences=tuple(sentences),
    )


@functools.lru_cache(maxsize=1024)
def first_match(pattern: re.Pattern, text: str) -> re.Match | None:
    """``pattern.search(text)``, once per text: the reading, the deconstruction and the checklist
    look for the same things in the same prompt."""
    return search(pattern, text)


# Patterns with a faster way to find exactly what their ``search`` finds.
FASTER_SEARCH = {lexicon.LENGTH: lexicon.length_search}


def search(pattern: re.Pattern, text: str, pos: int = 0) -> re.Match | None:
    """``pattern.search(text, pos)``, by the faster way where ``FASTER_SEARCH`` has one."""
    faster = FASTER_SEARCH.get(pattern)
    return pattern.search(text, pos) if faster is None else faster(text, pos)


def _empty(sentences: list[str]) -> bool:
    """Every request in it is empty: "Do it.", or a verb with nothing but vague words after it."""
    asking = [s for s in sentences if _asks(s)]
    return all(lexicon.EMPTY_TASK.match(s) or not content_words(s) for s in asking)


OWNED = case_insensitive(
    r"\b(?:my|our)\s+(?:new\s+|current\s+|own\s+)?(?P<thing>resume|cv|cover letter|product|company|startup|"
    r"business|app|website|essay|paper|thesis|article|blog post|code|project|service|brand|shop|store|"
    r"restaurant|book|novel|course|talk|presentation|pitch|proposal|business plan|report|profile|bio|"
    r"portfolio|campaign|newsletter|podcast|speech|policy|draft|letter)\b",
)


def _owned(task: str, material: tuple["Material", ...], text: str, words: int) -> str:
    """What the prompt works on but does not carry, as it names it ("your resume", "the current
    code"), when it gives no placeholder for it either: the model would have to invent it."""
    if material or "```" in text or re.search(r"\{\{?\w|\$\{|\[[A-Z]|<[A-Za-z_]", text):
        return ""
    if words <= 40 and (match := OWNED.search(task)):
        return "your " + match.group("thing").lower()
    if _visual(text, task):
        return ""  # an image prompt's "uploaded photo" comes with it
    match = ASSUMED.search(text)
    return f"the {match.group('what').lower()}" if match else ""


# Material a prompt takes for granted: "the current code", "the existing theme", "the provided data".
ASSUMED = case_insensitive(
    r"\b(?:the|my|our|your)\s+(?P<what>(?:current|existing|provided|attached|uploaded|given|specified|latest|"
    r"real-time)\s+(?:[\w-]+\s+)?(?:code|codebase|theme|design|data|dataset|dimensions|measurements|colou?rs?|"
    r"palette|brand guidelines|guidelines|files?|document|documents|docs|spreadsheet|report|schema|api|"
    r"implementation|version|text|content|logo|website|app|application|project|repository|repo))\b",
)


def _visual(text: str, task: str) -> bool:
    """A description of an image or a video to make or edit: it names two visual things, or one that
    the request itself is about ("Edit the uploaded photo...") or with no request in words."""
    if TEXT_TASK.match(task):
        return False  # "Explain how a camera lens works" asks for words about a visual thing
    named = _visual_words(text)
    return len(named) >= 2 or (len(named) == 1 and (not task or bool(IMAGE.search(task))))


@functools.lru_cache(maxsize=64)
def _visual_words(text: str) -> frozenset[str]:
    """The visual things the start of the text names (the reading asks twice, the material once)."""
    return frozenset(m.group().lower() for m in IMAGE.finditer(text[:4000]))


TEXT_TASK = case_insensitive(
    r"^\W*(?:please\s+)?(?:explain|write|describe|summari[sz]e|list|tell|teach|compare|analy[sz]e|review|discuss|"
    r"outline|translate|answer|give me)\b(?!.{0,40}\b(?:image|photo|picture|illustration|prompt)\b)",
)


def _asks(sentence: str) -> bool:
    """A sentence that asks the model for something (not a line of dialogue quoted in a story)."""
    if sentence.startswith(('"', "“", "«", "„", "'", "‘")):
        return False
    return requests(sentence)


@functools.lru_cache(maxsize=4096)
def requests(sentence: str) -> bool:
    """The sentence has a task verb or is a question put to the model. Cached: the reading and the
    checklist ask it of the same sentences, and it is the costliest search the engine makes."""
    # A question ends in "?": without one, QUESTION cannot match.
    return bool(has_task_verb(sentence) or ("?" in sentence and lexicon.QUESTION.search(sentence)))


@functools.lru_cache(maxsize=4096)
def has_task_verb(sentence: str) -> bool:
    return bool(lexicon.TASK_VERB.search(sentence))


def _without(text: str, material: tuple["Material", ...]) -> str:
    """The text with its material blanked out: what the author instructs."""
    for item in sorted(material, key=lambda m: m.start, reverse=True):
        text = text[: item.start] + "\n" + text[item.end :]
    return text


def content_words(sentence: str) -> list[str]:
    """The words that carry meaning: not function words, not vague words."""
    return [
        word
        for word in words_of(sentence)
        if word.lower() not in lexicon.FUNCTION_WORDS and not vague_word(word)
    ][1:]  # the first is the verb itself


@functools.lru_cache(maxsize=8192)
def vague_word(word: str) -> bool:
    """``lexicon.VAGUE.fullmatch(word)``, once per word: a prompt weighs the same words in many
    sentences (and the checklist again)."""
    return bool(lexicon.VAGUE.fullmatch(word))


def material_name(tag: str) -> str:
    """What a loose block of material is, in words ("the review"): its tag exists only once set apart."""
    base = re.sub(r"_\d+$", "", tag)
    return {"data": "the data rows", "log": "the log lines", "text": "the pasted text"}.get(
        base, f"the {base}"
    )


LABEL_KEYS = {label: key for labels in lexicon.ANSWER_LABELS.values() for key, label in labels.items()}
# A line the design stage wove in from an answer ("Audience: new hires"), in any language.
ANSWER_LINE = re.compile(
    r"^[ \t]*("
    + "|".join(sorted(map(re.escape, LABEL_KEYS), key=len, reverse=True))
    + r")\s*[:：]\s*(\S.*)$",
    re.MULTILINE,
)


def woven_answers(text: str) -> dict[str, str]:
    """The author's answers woven into ``text`` as labelled lines, by question key."""
    found: dict[str, str] = {}
    if ":" not in text and "：" not in text:
        return found  # every answer line has its colon
    for match in ANSWER_LINE.finditer(text):
        found.setdefault(LABEL_KEYS[match.group(1)], match.group(2))
    return found


def _material(text: str) -> tuple[Material, ...]:
    found: list[Material] = []
    for pattern in (FENCE, TAGGED):
        for match in pattern.finditer(text):
            tag = match.groupdict().get("tag") or "code"
            found.append(Material(match.start(), match.end(), tag, delimited=True))
    described = len(_visual_words(text)) >= 2 or lexicon.PERSONA.search(text[:600])
    if len(HEADING.findall(text)) < 2 and not described:
        found += _led_material(text, found)
        found += _rows(text, found)
    found.sort(key=lambda item: item.start)
    return tuple(_unique_tags(found))


def _inside(position: int, taken: list[Material]) -> bool:
    return any(item.start <= position < item.end for item in taken)


def _tag_for(lead: str) -> str:
    for tag, words in lexicon.TAG_NAMES:
        if re.search(rf"\b(?:{words})", lead, re.IGNORECASE):
            return tag
    return "text"


def _led_material(text: str, taken: list[Material]) -> list[Material]:
    """Material announced by a lead-in that stands on its own line ("Summarize this review:",
    "Text:"), up to the end of the text or to an instruction that follows it. Only what reads as
    something pasted in from outside counts: a placeholder standing for it, rows, or prose that gives
    no orders and has no structure of its own. The author's instructions, spec lines, examples and
    image descriptions are never taken for material, whatever precedes them."""
    found = []
    for line in re.finditer(r"^.*$", text, re.MULTILINE):
        lead = line.group().strip()
        if (
            not lead.endswith((":", "："))  # MATERIAL_LEAD ends in a colon: nothing else can be a lead
            or _inside(line.start(), taken + found)
            or len(lead) > 120
            or lexicon.FIRST_REQUEST.search(lead)
            or not lexicon.MATERIAL_LEAD.search(lead)
            or NOT_MATERIAL.search(lead)
        ):
            continue
        start = _next_content(text, line.end())
        if start is None or start >= len(text) or ALREADY_SET_APART.match(text, start):
            continue
        end = _material_end(text, start)
        body = text[start:end]
        first_paragraph = re.split(r"\n[ \t]*\n", body.strip(), maxsplit=1)[0]
        if PLACEHOLDER_ALONE.match(first_paragraph):
            end = start + body.find(first_paragraph) + len(first_paragraph)  # the placeholder is the material
            body = text[start:end]
        if body.strip() and _pasted(body):
            tag = "data" if _row_kind(body.strip().split("\n", 1)[0]) else _tag_for(lead)
            found.append(Material(start, end, tag, delimited=False))
    return found


SPEC_LINE = re.compile(r"^[ \t]*[\w\u00c0-\uffff][\w\u00c0-\uffff /()-]{0,30}[:：][ \t]", re.MULTILINE)


def _pasted(body: str) -> bool:
    """Whether a block reads as something pasted in to be worked on, not as more instructions."""
    first = body.strip().split("\n", 1)[0]
    if PLACEHOLDER_ALONE.match(body.strip()) or _row_kind(first):
        return True
    if STRUCTURE_LINE.match(body) or len(SPEC_LINE.findall(body)) >= 2 or "```" in body:
        return False
    if body.lstrip().startswith(('"', "“", "«", "'", "{", "[")):
        return False  # a literal to use as it is, or a structure of the author's
    orders = sum(
        1
        for sentence in sentences_of(body)
        if lexicon.IMPERATIVE.match(sentence)
        or lexicon.PROHIBITION.match(sentence)
        or ADDRESSED.match(sentence)
    )
    return orders < 2 and len(body) <= 20_000


ADDRESSED = re.compile(r"(?:you|your|you'll|you will)\b", re.I)


def _next_content(text: str, position: int) -> int | None:
    match = re.compile(r"\S").search(text, position)
    return None if match is None else text.rfind("\n", 0, match.start()) + 1


def _material_end(text: str, start: int) -> int:
    """The end of the material: the text's end, or the first later paragraph that instructs again
    ("Answer in French.", "Now ask me...")."""
    end = len(text.rstrip())
    for gap in re.finditer(r"\n[ \t]*\n", text[start:end]):
        paragraph = text[start + gap.end() : end].lstrip()
        if INSTRUCTS_AGAIN.match(paragraph) and not PLACEHOLDER_ALONE.match(paragraph.split("\n", 1)[0]):
            return start + gap.start()
    return end


def _rows(text: str, taken: list[Material]) -> list[Material]:
    """Three or more consecutive lines of CSV, TSV or log after a request: data, not instructions."""
    found = []
    lines = list(re.finditer(r"^.*$", text, re.MULTILINE))
    index = 0
    while index < len(lines):
        run = index
        kind = _row_kind(lines[index].group())
        while kind and run + 1 < len(lines) and _row_kind(lines[run + 1].group()) == kind:
            run += 1
        numeric = any(re.search(r"\d", lines[i].group()) for i in range(index, run + 1))
        if (
            kind
            and numeric
            and run - index >= 2
            and not _inside(lines[index].start(), taken)
            and lines[index].start() > 0
        ):
            found.append(
                Material(lines[index].start(), lines[run].end(), "log" if kind == "log" else "data", False)
            )
        index = run + 1  # a run is judged whole: a part of it is never a block of its own
    return found


def _row_kind(line: str) -> str:
    """ "log", or the shape of a CSV/TSV row ("csv3" for three separators), or "" for a line of prose."""
    if ROW_LOG.match(line):
        return "log"
    for separator, name in (("\t", "tsv"), (",", "csv")):
        fields = line.split(separator)
        if (
            len(fields) >= 3
            and len(line) < 300
            and not LIST_ITEM.match(line)
            and '":' not in line
            and sum(len(field.strip()) for field in fields) / len(fields) <= 20
            and sum(len(field.split()) > 3 for field in fields) == 0
        ):
            return f"{name}{len(fields)}"
    return ""


def _unique_tags(found: list[Material]) -> list[Material]:
    seen: dict[str, int] = {}
    named = []
    for item in found:
        if item.delimited:
            named.append(item)
            continue
        seen[item.tag] = seen.get(item.tag, 0) + 1
        tag = item.tag if seen[item.tag] == 1 else f"{item.tag}_{seen[item.tag]}"
        named.append(Material(item.start, item.end, tag, item.delimited))
    return named


def _buried(text: str, material: tuple[Material, ...]) -> bool:
    """A long block of material with the instructions after it."""
    if not material:
        return False
    last = max(material, key=lambda item: item.end)
    after = text[last.end :].strip()
    return last.end - last.start > 300 and bool(after) and bool(lexicon.TASK_VERB.search(after))
