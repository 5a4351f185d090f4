"""Prompt types, the technique catalogue and the presets.

A technique is data: its name, what it is, the prompt types it suits, what it does to a prompt, and
the instruction lines the built-in engine adds for it (into the named section of the optimized
prompt). The LLM engine receives the same names and effects as guidance.
"""

from dataclasses import dataclass

TYPES: dict[str, str] = {
    "general": "General",
    "creative": "Creative",
    "technical": "Technical",
    "analytical": "Analytical",
    "coding": "Coding",
    "data": "Data",
}
ALL_TYPES = tuple(TYPES)


@dataclass(frozen=True)
class Technique:
    slug: str
    name: str
    description: str
    suits: tuple[str, ...]
    effect: str  # what applying it does to the prompt, shown in the UI and the change list
    section: str  # the section of the optimized prompt its lines go into
    lines: tuple[str, ...]


def _t(slug, name, description, suits, effect, section, *lines) -> Technique:
    return Technique(slug, name, description, tuple(suits), effect, section, tuple(lines))


_REASONING = ("analytical", "technical", "coding", "data")
TECHNIQUES: dict[str, Technique] = {
    t.slug: t
    for t in (
        _t(
            "zero-shot-cot",
            "Zero-shot chain of thought",
            "Asks the model to reason step by step before answering.",
            (*_REASONING, "general"),
            "Adds an instruction to work through the problem step by step before the final answer.",
            "approach",
            "Think through the problem step by step before giving the final answer.",
        ),
        _t(
            "few-shot",
            "Few-shot examples",
            "Shows worked input/output pairs so the model copies their form and level.",
            ALL_TYPES,
            "Shows an input and the answer wanted for it. The built-in engine asks you rather than guess.",
            "examples",
            "Follow the form and level of detail of these examples (replace them with real ones):",
            "Input: <an example input>\nOutput: <the answer you would want for it>",
        ),
        _t(
            "self-consistency",
            "Self-consistency",
            "Has the model solve the task several ways and keep the answer most paths agree on.",
            ("analytical", "technical", "data"),
            "Asks for several independent solutions and the answer most of them agree on.",
            "approach",
            "Solve the task in three independent ways; if they disagree, report the answer most of them "
            "reach and say why the others differ.",
        ),
        _t(
            "tree-of-thoughts",
            "Tree of thoughts",
            "Explores several lines of reasoning, evaluates them and continues with the best.",
            ("analytical", "creative", "technical"),
            "Asks for several candidate approaches, a short evaluation of each, and pursuing the best.",
            "approach",
            "Propose two or three different approaches, weigh each in a sentence, then carry out the most "
            "promising one.",
        ),
        _t(
            "react",
            "ReAct (reason + act)",
            "Interleaves reasoning with actions such as searches or tool calls and their observations.",
            ("technical", "coding", "data", "analytical"),
            "Adds a Thought / Action / Observation loop for tasks that use tools or look things up.",
            "approach",
            "Work in Thought / Action / Observation steps: state what you need, take one action (a lookup, "
            "a calculation, a tool call), note what it showed, and repeat until you can answer.",
        ),
        _t(
            "step-back",
            "Step-back prompting",
            "First asks for the general principle behind the question, then applies it.",
            ("analytical", "technical", "general"),
            "Asks the model to state the underlying principle before solving the specific case.",
            "approach",
            "Before answering, state the general principle or concept this question depends on, then apply "
            "it to the specific case.",
        ),
        _t(
            "least-to-most",
            "Least-to-most",
            "Breaks a hard problem into simpler sub-problems solved in order, each using the last.",
            ("analytical", "coding", "technical", "data"),
            "Asks to list sub-problems from simplest to hardest and solve them in that order.",
            "approach",
            "List the sub-problems from simplest to hardest, then solve them in that order, using each "
            "answer in the next.",
        ),
        _t(
            "plan-and-solve",
            "Plan-and-solve",
            "Makes a plan first, then carries it out step by step.",
            ALL_TYPES,
            "Asks for a short plan before carrying it out.",
            "approach",
            "First write a short plan (three to five steps), then carry it out step by step.",
        ),
        _t(
            "role",
            "Role / persona",
            "Gives the model an expert identity that sets vocabulary, depth and judgment.",
            ALL_TYPES,
            "Names the expertise the task calls for. The built-in engine asks you rather than guess.",
            "role",
        ),
        _t(
            "delimiters",
            "Delimiters / XML tags",
            "Separates instructions from data with tags so data is never read as instructions.",
            ALL_TYPES,
            "Moves input data into tagged blocks and refers to them by name.",
            "input",
        ),
        _t(
            "json-schema",
            "Structured output with a JSON schema",
            "Asks for JSON matching a stated schema, so the answer can be parsed.",
            ("data", "coding", "technical", "analytical"),
            "Asks for JSON that matches a stated schema. The built-in engine asks you rather than guess.",
            "output",
            "Return only JSON, no prose around it, matching this schema (adjust the fields to your "
            'needs): {"answer": string, "reasoning_summary": string, "confidence": "low" | "medium" | '
            '"high"}.',
        ),
        _t(
            "constraints",
            "Explicit constraints",
            "States the rules the answer must respect instead of leaving them implied.",
            ALL_TYPES,
            "States the rules the answer must follow, and which wins when two conflict. The built-in engine asks you rather than guess.",
            "constraints",
            "If something needed is missing or unclear, say what and state the assumption you made.",
        ),
        _t(
            "audience",
            "Audience",
            "Names who the answer is for, which sets vocabulary and depth.",
            ALL_TYPES,
            "Adds who the answer is for. The built-in engine asks you rather than guess.",
            "context",
        ),
        _t(
            "tone-style",
            "Tone and style",
            "States the voice, register and style the answer should have.",
            ("creative", "general"),
            "Adds the tone and style the answer should have. The built-in engine asks you rather than guess.",
            "constraints",
        ),
        _t(
            "output-length",
            "Output length",
            "Bounds the length of the answer.",
            ALL_TYPES,
            "Adds a length bound suited to the type of prompt. The built-in engine asks you rather than guess.",
            "output",
        ),
        _t(
            "chain-of-density",
            "Chain of density",
            "Writes a summary, then rewrites it denser several times without making it longer.",
            ("analytical", "general", "data"),
            "Asks for iterative densification of a summary at a fixed length.",
            "approach",
            "Write a first version, then rewrite it twice, each time adding the most important missing "
            "details without making it longer. Give only the final version.",
        ),
        _t(
            "self-critique",
            "Self-critique / reflexion",
            "Has the model review its draft against the requirements and fix what falls short.",
            ALL_TYPES,
            "Adds a review pass of the draft against the requirements before answering.",
            "verification",
            "Before finishing, check the draft against every requirement above and fix anything that falls "
            "short.",
        ),
        _t(
            "rephrase-and-respond",
            "Rephrase and respond",
            "Has the model restate the question in its own words before answering it.",
            ("general", "analytical", "technical"),
            "Asks to restate the task in one sentence before answering.",
            "approach",
            "Restate the task in one sentence in your own words, then answer it.",
        ),
        _t(
            "clarifying-questions",
            "Ask clarifying questions first",
            "Lets the model ask for missing information instead of guessing.",
            ALL_TYPES,
            "Allows the model to ask up to three questions when essential information is missing.",
            "approach",
            "If essential information is missing, ask up to three short clarifying questions first and wait "
            "for the answers.",
        ),
        _t(
            "meta-prompting",
            "Meta-prompting",
            "Describes the structure of a good answer rather than its content.",
            ("technical", "analytical", "coding", "general"),
            "Describes the structure the answer must follow. The built-in engine asks you rather than guess.",
            "output",
            "Structure the answer as: a one-line summary, the main part, then any caveats.",
        ),
        _t(
            "decomposition",
            "Decomposition",
            "Has the model answer each part of a multi-part request in order, none skipped.",
            ALL_TYPES,
            "Asks to answer each of the requests in order, each under its own heading.",
            "task",
        ),
        _t(
            "context-priming",
            "Context priming",
            "Gives the background the model needs before the task.",
            ALL_TYPES,
            "Says what the answer is for and the background it needs. The built-in engine asks you rather than guess.",
            "context",
        ),
        _t(
            "positive-instructions",
            "Negative instructions rewritten as positive ones",
            "Says what to do instead of only what not to do; models follow positive instructions better.",
            ALL_TYPES,
            "Rewrites 'do not X' rules so each says what to do. The built-in engine asks you rather than guess.",
            "constraints",
        ),
        _t(
            "grounding",
            "Grounding in provided sources",
            "Bases the answer on the material given and keeps it apart from the model's own inference.",
            ("analytical", "technical", "data"),
            "Asks to base the answer on the provided material and say which points come from it.",
            "constraints",
            "Base the answer only on the provided material; quote or cite the part each claim comes from, "
            "and say so when the material does not contain the answer.",
        ),
        _t(
            "verification",
            "Verification / chain of verification",
            "Checks each item of the drafted answer against the source and corrects what it does not support.",
            ("analytical", "technical", "data", "coding"),
            "Adds a pass that checks the draft against the source before answering.",
            "verification",
            "After drafting, write two or three questions that would expose an error in the draft, answer "
            "each independently, and correct the draft where they disagree.",
        ),
        _t(
            "emotional-stakes",
            "State the stakes",
            "Says why the task matters and what a good result enables.",
            ("general", "creative", "analytical"),
            "Adds why the result matters, which helps the model weigh trade-offs. The built-in engine asks you rather than guess.",
            "context",
        ),
        _t(
            "test-first",
            "Tests and edge cases first",
            "For code: lists edge cases and tests before writing the implementation.",
            ("coding",),
            "Asks to list edge cases and tests before the code.",
            "approach",
            "List the edge cases and the tests that would prove the code right before writing it; make "
            "the code pass them.",
        ),
    )
}

PRESETS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # slug: (name, description, techniques)
    "lite": (
        "Lite",
        "Small, safe improvements: a role, clear sections, delimiters, a format.",
        ("role", "delimiters", "output-length", "constraints"),
    ),
    "reasoning": (
        "Reasoning",
        "For problems that need thinking: plan, step-by-step reasoning, verification.",
        ("role", "delimiters", "plan-and-solve", "zero-shot-cot", "step-back", "verification", "constraints"),
    ),
    "creative": (
        "Creative",
        "For writing: persona, audience, tone and style, options to choose from, a review pass.",
        ("role", "audience", "tone-style", "tree-of-thoughts", "self-critique", "output-length"),
    ),
    "production": (
        "Production",
        "For prompts that run unattended: strict structure, JSON output, explicit rules, checks.",
        ("role", "delimiters", "json-schema", "constraints", "positive-instructions", "self-critique"),
    ),
    "research": (
        "Research",
        "For answers that must be right: grounding in sources, verification, stated uncertainty.",
        ("role", "context-priming", "grounding", "step-back", "verification", "clarifying-questions"),
    ),
    "data": (
        "Data-centric",
        "For data work: delimiters around data, a schema for the output, examples, validation.",
        ("role", "delimiters", "json-schema", "few-shot", "least-to-most", "verification"),
    ),
}
