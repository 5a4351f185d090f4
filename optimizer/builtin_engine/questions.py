"""Clarifying questions: what only the author knows (who the answer is for, how long, in what form,
in what tone, what good looks like) is asked, never invented. At most five, most important first,
each with why it matters and example answers. An answer comes back as ``answers[key]`` and the
design stage weaves it in.
"""

import re

from optimizer.builtin_engine import lexicon
from optimizer.builtin_engine.patterns import case_insensitive
from optimizer.builtin_engine.question_texts import CONFLICT_NAMES, TEXTS
from optimizer.builtin_engine.reading import Reading

MAX_QUESTIONS = 5
ORDER = (
    "task",
    "facts",
    "conflict",
    "purpose",
    "audience",
    "format",
    "length",
    "tone",
    "examples",
    "role",
    "instead",
    "success",
)

# Techniques that need something only the author knows: they become the question on it.
QUESTION_FOR_TECHNIQUE = {
    "role": "role",
    "audience": "audience",
    "output-length": "length",
    "tone-style": "tone",
    "few-shot": "examples",
    "json-schema": "format",
    "meta-prompting": "format",
    "context-priming": "purpose",
    "emotional-stakes": "purpose",
    "positive-instructions": "instead",
    "constraints": "success",
}

PURPOSE_EXAMPLES = {
    "general": [
        "A slide for Monday's team meeting",
        "A first draft I will edit",
        "To decide between two suppliers",
    ],
    "creative": ["A reading at my sister's wedding", "A contest entry, 500 words at most"],
    "technical": ["A runbook the on-call team follows at night", "To choose between two designs"],
    "analytical": ["A recommendation the board votes on", "A first look before a deeper study"],
    "coding": ["A library other teams will import", "A one-off script for a data migration"],
    "data": ["Rows loaded into our CRM every night", "A one-off clean-up of an export"],
}
AUDIENCE_EXAMPLES = {
    "general": ["my colleagues at work", "customers with no technical background", "a curious 12-year-old"],
    "creative": ["adult readers of literary fiction", "children aged 6 to 8", "my friends on a group chat"],
    "technical": ["engineers new to this system", "the on-call operations team", "a non-technical manager"],
    "analytical": ["the leadership team deciding on budget", "analysts who will check the numbers"],
    "coding": ["developers who will maintain this code", "a beginner learning the language"],
    "data": ["a script that parses the output", "analysts who will load it into a spreadsheet"],
}
FORMAT_EXAMPLES = {
    "general": ["a numbered list of steps", "three short paragraphs", "a table with one row per option"],
    "creative": ["free verse in four stanzas", "a 300-word short story", "three alternatives to choose from"],
    "technical": ["numbered steps with the commands in code blocks", "a short explanation, then a table"],
    "analytical": ["the conclusion first, then the evidence as bullets", "a table comparing the options"],
    "coding": ["one code block, then a short explanation", "a diff against the original code"],
    "data": ["JSON with the fields name, date and amount", "CSV with a header row"],
}
LENGTH_EXAMPLES = {
    "general": ["under 150 words", "one paragraph", "five bullet points"],
    "creative": ["about 300 words", "14 lines", "under 280 characters"],
    "technical": ["under 300 words plus the code", "one screen"],
    "analytical": ["one page", "a one-line verdict, then up to 200 words"],
    "coding": ["the code only, no explanation", "the code plus at most five lines of explanation"],
    "data": ["every row of the input, nothing else", "at most 20 records"],
}


def build_questions(reading: Reading, prompt_type: str, issue_codes: set[str]) -> list[dict]:
    """The questions this prompt leaves open, most important first (at most five)."""
    keys = []
    if "no-task" in issue_codes or reading.empty_task:
        keys.append("task")
    if reading.owned and reading.language == "en":  # found by English words only
        keys.append("facts")
    if reading.conflicts:
        keys.append("conflict")
    if "missing-context" in issue_codes or "too-short" in issue_codes:
        keys.append("purpose")
    if "no-audience" in issue_codes:
        keys.append("audience")
    if "no-output-format" in issue_codes:
        keys.append("format")
    if "unbounded-length" in issue_codes:
        keys.append("length")
    if _wants_tone(reading, prompt_type):
        keys.append("tone")
    if "no-examples" in issue_codes:
        keys.append("examples")
    if "ambiguous" in issue_codes:
        keys.append("success")
    ordered = sorted(dict.fromkeys(keys), key=ORDER.index)
    return [q for q in (question_for(key, reading, prompt_type) for key in ordered) if q][:MAX_QUESTIONS]


def _wants_tone(reading: Reading, prompt_type: str) -> bool:
    if reading.states("tone") or reading.persona or reading.structured or reading.image:
        return False
    return prompt_type == "creative" or bool(
        re.search(r"\b(?:email|letter|post|tweet|message|reply|announcement|ad|copy)\b", reading.task, re.I)
    )


def question_for(key: str, reading: Reading, prompt_type: str = "general") -> dict | None:
    """The question on ``key`` for this prompt, in its language when the engine writes that language
    (English otherwise, the language of the page), or None when it does not apply."""
    english = _english_question(key, reading, prompt_type)
    if english is None or reading.language not in TEXTS.get("task", {}):
        return english
    text_key = "length_reply" if key == "length" and reading.persona else key
    question, why, examples = TEXTS[text_key][reading.language]
    if key == "conflict":
        what = reading.conflicts[0] if reading.conflicts else ""
        question = question.format(what=CONFLICT_NAMES.get(what, {}).get(reading.language, what))
    if key == "instead":
        question = question.format(rule=_negative_rule(reading))
    if key == "facts":
        thing = reading.owned.split(" ", 1)[-1]  # the thing, without the English determiner
        question, why = question.format(thing=thing), why.format(thing=thing)
        examples = [example.format(thing=thing) for example in examples]
    return _q(key, question, why, examples)


def _english_question(key: str, reading: Reading, prompt_type: str) -> dict | None:
    kind = prompt_type if prompt_type in AUDIENCE_EXAMPLES else "general"
    if kind in ("coding", "data") and not (reading.code_task or reading.material):
        kind = "general"  # examples about code only for a prompt about code
    if key == "task":
        return _q(
            key,
            "What should the model do with this prompt?",
            "No request was found (or only an empty one such as “Do it.”), so the model would have to guess the job.",
            [
                "Generate an image of this scene"
                if not lexicon.TASK_VERB.search(reading.text)
                else "Summarize it in five bullet points",
                "Write a short story from it",
                "Find the errors and list them",
            ],
        )
    if key == "facts":
        thing = reading.owned or "the subject"
        return _q(
            key,
            f"What should the model know about {thing}? Paste it, or say where it comes from.",
            f"The prompt works on {thing} but does not include it, so the model would have to invent it.",
            [f"({thing}, pasted here)", "the three facts that matter most, with figures"],
        )
    if key == "conflict":
        what = reading.conflicts[0] if reading.conflicts else "two instructions"
        return _q(
            key,
            f"The prompt asks for both {what}. Which should win?",
            "A model given two contradictory instructions picks one at random; you know which one matters.",
            ["Keep it short: at most 100 words", "Detail matters more than length"],
        )
    if key == "purpose":
        return _q(
            key,
            "What is the answer for, and what should it build on?",
            "The purpose decides what to include and what to leave out; it cannot be guessed from the request alone.",
            PURPOSE_EXAMPLES["coding" if reading.code_task else kind],
        )
    if key == "audience":
        return _q(
            key,
            "Who will read the answer?",
            "The reader sets the depth, the vocabulary and what can be assumed.",
            AUDIENCE_EXAMPLES[kind],
        )
    if key == "format":
        return _q(
            key,
            "What form should the answer take?",
            "Without a stated form the model picks one; a form you can use directly saves a rewrite.",
            FORMAT_EXAMPLES[kind],
        )
    if key == "length":
        persona = reading.persona
        return _q(
            key,
            "How long should each reply be?" if persona else "How long should the answer be?",
            "Without a bound the length drifts; the right one depends on where you will use it.",
            ["two or three sentences", "under 100 words"] if persona else LENGTH_EXAMPLES[kind],
        )
    if key == "tone":
        return _q(
            key,
            "What tone should it have?",
            "Tone is a choice about your readers and your voice; the model would otherwise default to a generic one.",
            ["warm and informal", "formal and concise", "playful, with light humour"],
        )
    if key == "examples":
        return _q(
            key,
            "Can you give one example input and the output you want for it?",
            "One real example fixes the form and level of detail better than any description.",
            [
                'Input: “2024-03-01, Acme, 120.50” → Output: {"date": "2024-03-01", "vendor": "Acme", "amount": 120.5}'
            ],
        )
    if key == "role":
        return _q(
            key,
            "Whose expertise should the answer draw on?",
            "A role only helps when it is the right one; you know which experience the task calls for.",
            _role_examples(reading),
        )
    if key == "instead":
        rule = _negative_rule(reading)
        if not rule:
            return None
        return _q(
            key,
            f"What should the model do instead of “{rule}”?"
            if rule
            else "What should the model do instead of what your rules forbid?",
            "A rule that says only what not to do leaves the model guessing what to do instead.",
            ["Use plain words a newcomer knows", "Give the figure and its source"],
        )
    if key == "success":
        return _q(
            key,
            "What would make an answer excellent rather than merely acceptable?",
            "Vague words (good, better, interesting) leave the bar unstated; your criteria make it checkable.",
            [
                "Every claim has a source",
                "A beginner can follow it without looking anything up",
                "It fits on one slide",
            ],
        )
    return None


def _q(key: str, question: str, why: str, examples: list[str]) -> dict:
    return {"key": key, "question": question, "why": why, "examples": examples}


ROLE_HINTS = (
    (case_insensitive(r"\b(?:python|javascript|typescript|java|rust|golang|sql|code|function|api|bug|regex)\b"), "a senior software engineer"),
    (case_insensitive(r"\b(?:marketing|seo|brand|campaign|advert\w*|copy)\b"), "a marketing copywriter"),
    (case_insensitive(r"\b(?:contract|legal|law|clause)\b"), "a contracts lawyer"),
    (case_insensitive(r"\b(?:medical|health|symptom|patient)\b"), "a clinician"),
    (case_insensitive(r"\b(?:lesson|students?|teach|course)\b"), "an experienced teacher"),
    (case_insensitive(r"\b(?:data|dataset|statistic\w*|spreadsheet)\b"), "a data analyst"),
)  # fmt: skip


def _role_examples(reading: Reading) -> list[str]:
    """Guesses from the prompt's topic, offered as examples of an answer, never written into the prompt."""
    guesses = [role for pattern, role in ROLE_HINTS if pattern.search(reading.text[:3000])]
    return [*guesses, "an editor at a newspaper", "a patient tutor"][:3]


def _negative_rule(reading: Reading) -> str:
    rule = next((rule for rule in map(lexicon.prohibition, reading.sentences) if rule), "")
    return rule if len(rule) <= 100 else rule[:99] + "…"
