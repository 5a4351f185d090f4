"""The built-in engine's third stage: keep the author's prompt, then add only what fits it.

The author's text stays verbatim and in its order: nothing moves between sections, nothing is
reworded. Structure goes around it: material to work on is put between tags with one line saying
it is data, and additions go after the author's text (the author's answers on what to do, before
it). An addition is made only when the diagnosis found the thing missing, it is written in the
prompt's language, and it cannot contradict what the prompt says; what only the author knows is
asked, not invented. Lines already present are not added again, so a second pass changes nothing.
"""

from dataclasses import dataclass, field

from optimizer.builtin_engine import lexicon
from optimizer.builtin_engine.catalogue import TECHNIQUES
from optimizer.builtin_engine.language import WRITTEN, language_name
from optimizer.builtin_engine.questions import QUESTION_FOR_TECHNIQUE, question_for
from optimizer.builtin_engine.reading import Reading, read
from optimizer.builtin_engine.spans import missing_spans, protected_spans

ANSWER_BEFORE = ("task", "role")  # answers that say what the prompt is: they lead it
# Techniques whose catalogue line is English only: written in English prompts, noted elsewhere.
ENGLISH_ONLY = (
    "self-consistency", "tree-of-thoughts", "react", "step-back", "least-to-most", "chain-of-density",
    "rephrase-and-respond",
)  # fmt: skip
THINKING = ("zero-shot-cot", "plan-and-solve", "self-consistency", "tree-of-thoughts", "react", "step-back",
            "least-to-most", "rephrase-and-respond")  # fmt: skip


@dataclass
class _Draft:
    reading: Reading
    answers: dict[str, str]
    wraps: list = field(default_factory=list)  # materials to put between tags
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    changes: list[dict] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)  # question keys a technique turned into questions

    @property
    def language(self) -> str:
        return self.reading.language

    @property
    def writes(self) -> bool:
        """The engine writes prose only in a language it has words for, and never into a JSON or YAML spec."""
        return self.language in WRITTEN and not self.reading.structured

    def present(self, line: str) -> bool:
        return _norm(line) in _norm(self.reading.text) or any(_norm(line) == _norm(x) for x in self.after)

    def add_after(self, line: str) -> bool:
        if self.present(line):
            return False
        self.after.append(line)
        return True

    def change(self, what: str, why: str) -> None:
        self.changes.append({"what": what, "why": why})


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def design(
    text: str,
    prompt_type: str,
    deconstruction: dict,
    techniques: list[str],
    *,
    keep_spans: bool = True,
    diagnosis: dict | None = None,
    answers: dict | None = None,
) -> dict:
    """The optimized prompt, the change list made from this run's edits, each requested technique with
    whether it was applied (and why not), and the questions still open."""
    reading = read(text)
    draft = _Draft(reading, {k: v.strip() for k, v in (answers or {}).items() if v and v.strip()})
    applied = []
    for slug in techniques:
        note = _apply(slug, draft, prompt_type)
        applied.append(
            {"slug": slug, "name": TECHNIQUES[slug].name, "applied": note is None, "note": note or ""}
        )
    _weave_answers(draft)
    optimized = _render(draft)
    if keep_spans and (lost := missing_spans(text, optimized, protected_spans(text))):
        # The text is kept whole, so only a tag put inside a span could split it: keep the original.
        optimized = text
        draft.changes = [
            {
                "what": "Kept your prompt as written.",
                "why": f"Setting the material apart would have split {lost[0].text!r}.",
            }
        ]
    questions = _open_questions(draft, diagnosis)
    if questions:
        draft.change(
            "Asked " + _count(len(questions), "question") + " only you can answer: "
            + ", ".join(q["key"] for q in questions) + ".",
            "Answer them below the result to get a new version with your answers woven in; nothing was invented meanwhile.",
        )  # fmt: skip
    if not draft.wraps and not draft.before and not draft.after:
        draft.changes.insert(
            0,
            {
                "what": "Kept your prompt as written.",
                "why": "Nothing was found that the engine could add without guessing.",
            },
        )
    return {
        "optimized_prompt": optimized,
        "changes": draft.changes,
        "techniques": applied,
        "questions": questions,
    }


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' if number != 1 else ''}"


def _open_questions(draft: _Draft, diagnosis: dict | None) -> list[dict]:
    questions = list((diagnosis or {}).get("questions", []))
    keys = {q["key"] for q in questions}
    for key in draft.asked:
        if key not in keys and len(questions) < 5:
            question = question_for(key, draft.reading)
            if question:
                questions.append(question)
                keys.add(key)
    return [q for q in questions if q["key"] not in draft.answers][:5]


def _apply(slug: str, draft: _Draft, prompt_type: str) -> str | None:
    """Apply one technique to the draft; None when applied, else why it was not."""
    reading = draft.reading
    if slug == "delimiters":
        return _delimit(draft)
    if slug in QUESTION_FOR_TECHNIQUE:
        key = QUESTION_FOR_TECHNIQUE[slug]
        if slug == "constraints" and reading.conflicts:
            key = "conflict"
        if slug == "positive-instructions" and not any(map(lexicon.prohibition, reading.sentences)):
            return "The prompt has no 'do not' rule to turn around."
        if reading.states(key) and key not in draft.answers:
            return f"The prompt already states its {key}."
        if key in draft.answers:
            return None  # woven in with the answers
        if slug == "role" and reading.persona:
            return "The prompt already gives a persona; it stays the role."
        draft.asked.append(key)
        return f"Which {key} fits is yours to say, so it is asked rather than guessed: see the questions."
    if reading.structured:
        return "The prompt is a JSON or YAML spec; prose added to it could break it, so it is left whole."
    if slug in THINKING or slug in ("self-critique", "verification"):
        if reading.persona:
            return "A persona answers in character; a reasoning or review step would break the role."
        if reading.states("answer_only"):
            return "The prompt asks for the answer only; a reasoning step would contradict it."
    if slug in THINKING and reading.states("reasoning"):
        return "The prompt already asks for reasoning."
    if slug in THINKING and reading.states("length"):
        return "The prompt bounds the answer's length; a written-out reasoning step would break the bound."
    if slug == "grounding":
        tags = [item.tag for item in reading.material]
        if not tags:
            return "There is no material in the prompt to base the answer on."
        return _add_line(draft, slug, tag=tags[0])
    if slug == "test-first" and not reading.code_task:
        return "The prompt does not ask for code to be written."
    if slug == "verification" and not reading.material:
        return "There is no source in the prompt to check the answer against."
    if slug == "decomposition":
        requests = [s for s in reading.sentences if lexicon.TASK_VERB.search(s)]
        if len(requests) < 3 or reading.states("format"):
            return "The task is a single request, or its format already orders the answer."
        return _add_line(draft, slug, count=len(requests))
    if slug in lexicon.TECHNIQUE_LINES:
        return _add_line(draft, slug)
    if slug in ENGLISH_ONLY:
        if draft.language != "en":
            return f"The engine has no {language_name(draft.language)} wording for it, so nothing was added."
        line = TECHNIQUES[slug].lines[0]
        if not draft.add_after(line):
            return "Already present."
        draft.change(f"Added after your text: “{line}”", TECHNIQUES[slug].description)
        return None
    return "Nothing in this prompt calls for it."


def _add_line(draft: _Draft, slug: str, **values) -> str | None:
    if not draft.writes:
        return f"The engine has no {language_name(draft.language)} wording for it, so nothing was added."
    template = lexicon.phrase(lexicon.TECHNIQUE_LINES[slug], draft.language)
    line = template.format(**values)
    if not draft.add_after(line):
        return "Already present."
    draft.change(f"Added after your text: “{line}”", TECHNIQUES[slug].description)
    return None


def _delimit(draft: _Draft) -> str | None:
    loose = draft.reading.loose_material
    if not loose:
        return (
            "The material is already set apart."
            if draft.reading.material
            else "There is no material to set apart."
        )
    draft.wraps = list(loose)
    names = ", ".join(f"<{item.tag}>" for item in loose)
    draft.change(
        f"Put the material between tags ({names})" + (" and said it is data." if draft.writes else "."),
        "Tags keep the material apart from your instructions, so a sentence inside it is read, not obeyed.",
    )
    return None


def _weave_answers(draft: _Draft) -> None:
    if not draft.answers:
        return
    language = draft.language if draft.language in lexicon.ANSWER_LABELS else "en"
    labels = lexicon.ANSWER_LABELS[language]
    colon = lexicon.COLON.get(language, ": ")
    for key, answer in draft.answers.items():
        line = f"{labels.get(key, key.capitalize())}{colon}{answer}"
        if draft.present(line):
            continue
        (draft.before if key in ANSWER_BEFORE else draft.after).append(line)
        draft.change(
            f"Added your answer on {key}: “{answer}”", "You answered it, so it is yours, not a guess."
        )


def _render(draft: _Draft) -> str:
    text = draft.reading.text
    if not (draft.wraps or draft.before or draft.after):
        return text  # nothing added: the author's prompt exactly as it came
    body = text
    for item in sorted(draft.wraps, key=lambda m: m.start, reverse=True):
        inner = text[item.start : item.end].strip("\n")
        note = lexicon.phrase(lexicon.MATERIAL_NOTE, draft.language) if draft.writes else None
        # The lead-in stays right before its material; the line saying it is data follows the block.
        block = f"<{item.tag}>\n{inner}\n</{item.tag}>" + (f"\n{note.format(tag=item.tag)}" if note else "")
        prefix = body[: item.start]
        if prefix and not prefix.endswith("\n"):
            prefix += "\n"  # the material followed its lead-in on the same line
        body = prefix + block + body[item.end :]
    body = body.rstrip()
    if draft.before:
        body = "\n".join(draft.before) + "\n\n" + body
    if draft.after:
        body = _insert_after(draft, body, "\n".join(draft.after))
    return body + "\n"


def _insert_after(draft: _Draft, body: str, block: str) -> str:
    """After the author's text; before a persona's first request when it starts a paragraph, so
    the request stays the last thing, the user's first turn."""
    first = draft.reading.first_request
    if first:
        position = body.rfind(first)
        if position > 0 and body[position - 1] == "\n":
            return body[:position].rstrip() + "\n\n" + block + "\n\n" + body[position:]
    return body + "\n\n" + block
