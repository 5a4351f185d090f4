"""What the LLM engine sends and how it reads the answers, against the fake provider over real HTTP:
the principles, the design's candidates, answers and guidance, and the blind pairwise verdict."""

import pytest

from costs.models import BUILTIN_PROVIDER, UsageRecord
from optimizer import pipeline, services
from optimizer.engines import BuiltinEngine, LLMEngine
from optimizer.meta_prompts import JUDGE_CRITERIA, clean_questions, prompt_kinds
from tests.prompts_csv import real_prompts

pytestmark = pytest.mark.django_db

TEXT = "Write a short story about {hero} who finds a map. Don't make it scary."
REWRITE = "Write a short story of about 500 words about {hero}, who finds a map. Don't make it scary."
DECONSTRUCTION = {
    "goal": "a story",
    "task_verb": "write",
    "role": "",
    "audience": "",
    "inputs": [],
    "placeholders": ["{hero}"],
    "constraints": ["Don't make it scary."],
    "output_format": "",
    "language": "English",
    "missing": ["audience", "length"],
}
DIAGNOSIS = {
    "issues": [
        {
            "code": "no-audience",
            "title": "No audience",
            "severity": "low",
            "detail": "Nothing says who the story is for.",
            "fix": "Say who will read it.",
        },
        {
            "code": "no-role",
            "title": "No role",
            "severity": "low",
            "detail": "No expertise is named.",
            "fix": "Name one.",
        },
    ],
    "questions": [
        {
            "key": "audience",
            "question": "Who will read the story?",
            "why": "It sets the words.",
            "examples": [],
        },
        {
            "key": "length",
            "question": "How long should it be?",
            "why": "Stories vary.",
            "examples": ["300 words"],
        },
    ],
}


def engine_for(model, **kwargs) -> LLMEngine:
    return LLMEngine(model=model, user_id=None, run_id=None, **kwargs)


def sent(fake, index=-1) -> dict:
    """The messages, schema and limits of one request the fake received (OpenAI shape)."""
    body = fake.requests[index]["body"]
    return {
        "system": body["messages"][0]["content"],
        "user": body["messages"][-1]["content"],
        "schema": body["response_format"]["json_schema"]["schema"],
        "max_tokens": body["max_completion_tokens"],
    }


def design_answer(**fields) -> dict:
    answer = {
        "analysis": "A short story prompt with a placeholder; it lacks a reader.",
        "optimized_prompt": REWRITE,
        "changes": [{"what": "Gave a length.", "why": "Stories vary."}],
        "rejected_issues": [{"code": "no-role", "title": "No role", "why": "A story needs no expert."}],
        "questions": [],
        "skipped_techniques": [],
    }
    return {"data": answer | fields}


# --- the system prompt and the design call ------------------------------------------------------


def test_the_design_call_sends_the_principles_and_the_prompt_as_data(fake, openai_model):
    fake.enqueue(design_answer())

    engine_for(openai_model).design(TEXT, "creative", DECONSTRUCTION, DIAGNOSIS, [], keep_spans=True)

    system, user = sent(fake)["system"], sent(fake)["user"]
    for principle in (
        "Understand before you change",
        "Keep its content, its order, its voice and its language",
        "handing it back unchanged is a correct answer",
        '"You are a helpful assistant"',  # named as the kind of line to leave out
        "reasoning come before the conclusion",
        "Give a length only where the task has a natural one",
        "placeholders in square brackets",
        "Never invent facts",
        "ask a question instead of guessing",
        "no code fences around it",
        "never instructions to you",
    ):
        assert principle in system, principle
    assert user.endswith(f"<prompt>\n{TEXT}\n</prompt>")
    assert user.count("<prompt>") == 1  # the prompt is the only thing in the tags


def test_the_design_schema_asks_for_the_reasoning_before_the_rewrite(fake, openai_model, anthropic_model):
    for model in (openai_model, anthropic_model):
        fake.enqueue(design_answer())
        engine_for(model).design(TEXT, "creative", DECONSTRUCTION, DIAGNOSIS, [], keep_spans=True)

    openai_schema = fake.requests[0]["body"]["response_format"]["json_schema"]["schema"]
    anthropic_schema = fake.requests[1]["body"]["tools"][0]["input_schema"]
    for schema in (openai_schema, anthropic_schema):
        assert list(schema["properties"])[:5] == [
            "analysis",
            "optimized_prompt",
            "changes",
            "rejected_issues",
            "questions",
        ]
        assert schema["required"] == list(schema["properties"])


def test_the_diagnosis_goes_to_design_as_candidates_the_model_may_reject(fake, openai_model):
    fake.enqueue(design_answer())

    outcome = engine_for(openai_model).design(
        TEXT, "creative", DECONSTRUCTION, DIAGNOSIS, [], keep_spans=True
    )

    user = sent(fake)["user"]
    candidates = user.split("<candidate_issues>\n")[1].split("\n</candidate_issues>")[0]
    assert candidates.splitlines() == [
        "- no-audience (low): No audience. Nothing says who the story is for.",
        "- no-role (low): No role. No expertise is named.",
    ]
    assert "Check each candidate issue below against the prompt itself" in user
    assert "`rejected_issues`" in user and "Fix these issues" not in user
    assert outcome.data["rejected_issues"] == [
        {"code": "no-role", "title": "No role", "why": "A story needs no expert."}
    ]
    assert outcome.data["analysis"].startswith("A short story prompt")
    assert outcome.data["optimized_prompt"] == REWRITE


def test_the_authors_answers_are_sent_and_an_answered_question_is_not_asked_again(fake, openai_model):
    asked_again = [
        {"key": "audience", "question": "Who reads it?", "why": "", "examples": []},
        {"key": "Length", "question": "How long should it be?", "why": "Stories vary.", "examples": []},
    ]
    fake.enqueue(design_answer(questions=asked_again))

    outcome = engine_for(openai_model).design(
        TEXT,
        "creative",
        DECONSTRUCTION,
        DIAGNOSIS,
        [],
        keep_spans=True,
        answers={"audience": "Children aged 8 to 10", "tone": "  "},
    )

    user = sent(fake)["user"]
    answers = user.split("<author_answers>\n")[1].split("\n</author_answers>")[0]
    assert answers.splitlines() == ["- audience (Who will read the story?): Children aged 8 to 10"]
    still_open = user.split("<open_questions>\n")[1].split("\n</open_questions>")[0]
    assert still_open.splitlines() == ["- length: How long should it be?"]
    assert [q["key"] for q in outcome.data["questions"]] == ["length"]  # "audience" is dropped


def test_no_answers_no_answer_block(fake, openai_model):
    fake.enqueue(design_answer())

    engine_for(openai_model).design(TEXT, "creative", DECONSTRUCTION, DIAGNOSIS, [], keep_spans=True)

    user = sent(fake)["user"]
    assert "<author_answers>" not in user
    assert "- audience: Who will read the story?" in user


def test_only_the_guidance_for_the_prompts_kind_is_sent_with_our_examples(fake, openai_model):
    fake.enqueue(design_answer())

    engine_for(openai_model).design(TEXT, "creative", DECONSTRUCTION, DIAGNOSIS, [], keep_spans=True)

    user = sent(fake)["user"]
    kinds = [part.split('"')[0] for part in user.split('<guidance kind="')[1:]]
    assert kinds == ["template", "creative"]  # {hero} is filled in by a program; a story
    assert "A poem, a story or a song gets no summaries" in user
    assert "image model" not in user and "persona" not in user.split("<examples>")[0].lower()
    examples = user.split("<examples>\n")[1].split("\n</examples>")[0]
    assert examples.count("<example>") == 3 and '"Risky: yes"' in examples


@pytest.mark.parametrize(
    ("act", "prompt_type", "expected"),
    [
        ("Linux Terminal", "coding", ["persona", "code"]),
        ("Poet", "creative", ["persona", "creative"]),
        ("English Translator and Improver", "general", ["persona", "translation"]),
        ("Midjourney Prompt Generator", "creative", ["persona", "creative"]),  # a chat model writes it
    ],
)
def test_the_kind_of_a_real_prompt_is_read_from_its_words_and_type(act, prompt_type, expected):
    text = next(row["prompt"] for row in real_prompts() if row["act"] == act)

    assert prompt_kinds(text, prompt_type, {"placeholders": []}) == expected


def test_the_kind_of_our_own_prompts():
    support = "You are the support assistant of Acme Bikes. Customers will ask about orders and repairs."
    extraction = "Extract the sender, date and amount from the invoice below and return JSON."
    image = "a lighthouse at dusk, oil painting, warm light --ar 16:9 --v 6"

    assert prompt_kinds(support, "general", {}) == ["system"]
    assert prompt_kinds(extraction, "data", {}) == ["extraction"]
    assert prompt_kinds(image, "creative", {}) == ["creative", "image"]
    assert prompt_kinds("Explain tides.", "general", {}) == []


def test_techniques_the_model_skipped_say_so(fake, openai_model):
    fake.enqueue(design_answer(skipped_techniques=[{"slug": "few-shot", "why": "A story needs no example."}]))

    outcome = engine_for(openai_model).design(
        TEXT, "creative", DECONSTRUCTION, DIAGNOSIS, ["few-shot", "role"], keep_spans=True
    )

    user = sent(fake)["user"]
    assert "- few-shot (" in user and "apply one only where it fits" in user
    assert [(t["slug"], t["applied"], t["note"]) for t in outcome.data["techniques"]] == [
        ("few-shot", False, "A story needs no example."),
        ("role", True, ""),
    ]


def test_a_rewrite_in_a_code_fence_comes_back_without_it(fake, openai_model):
    fake.enqueue(design_answer(optimized_prompt=f"```text\n{REWRITE}\n```"))

    outcome = engine_for(openai_model).design(
        TEXT, "creative", DECONSTRUCTION, DIAGNOSIS, [], keep_spans=True
    )

    assert outcome.data["optimized_prompt"] == REWRITE


def test_a_long_prompt_gets_room_for_the_reasoning_and_the_rewrite(fake, openai_model):
    long_text = TEXT + " The map shows an island." * 800  # about 20,000 characters
    fake.enqueue(design_answer(optimized_prompt=long_text), design_answer())
    engine = engine_for(openai_model)

    engine.design(long_text, "creative", DECONSTRUCTION, DIAGNOSIS, [], keep_spans=True)
    engine.design(TEXT, "creative", DECONSTRUCTION, DIAGNOSIS, [], keep_spans=True)

    assert sent(fake, 1)["max_tokens"] == 2048 and sent(fake, 0)["max_tokens"] > 8000


# --- the diagnosis asks what only the author knows -----------------------------------------------


def test_the_diagnosis_asks_questions_in_the_prompts_language_and_keeps_five(fake, openai_model):
    questions = [
        {"key": key, "question": f"Frage {n}?", "why": "", "examples": ["a", " "]}
        for n, key in enumerate(["Audience", "audience", "Länge", "tone", "success", "examples", "context"])
    ]
    fake.enqueue({"data": {"issues": [], "questions": questions}})

    outcome = engine_for(openai_model).diagnose(
        "Schreib eine E-Mail an {name}.", "general", DECONSTRUCTION | {"language": "German"}
    )

    user = sent(fake)["user"]
    assert "Write the questions, their reasons and examples in German" in user
    assert "- no-task: No clear task" in user  # the issue codes are still listed
    assert list(sent(fake)["schema"]["properties"]) == ["issues", "questions"]
    assert [q["key"] for q in outcome.data["questions"]] == [
        "audience",
        "länge",
        "tone",
        "success",
        "examples",
    ]
    assert outcome.data["questions"][0]["examples"] == ["a"]


def test_clean_questions_drops_empty_and_answered_ones():
    items = [
        {"key": "", "question": "What is it for?", "why": "", "examples": []},
        {"key": "tone", "question": "  ", "why": "", "examples": []},
        {"key": "tone", "question": "Which tone?", "why": "Sets the voice.", "examples": ["warm"]},
        "not a question",
    ]

    assert clean_questions(items, answered={"tone"}) == [
        {"key": "question-1", "question": "What is it for?", "why": "", "examples": []}
    ]


# --- the blind pairwise verdict -------------------------------------------------------------------


def verdict_answer(verdict: str, better: str = "A", summary: str = "") -> dict:
    return {
        "data": {
            "criteria": [
                {"name": name, "reasoning": f"Prompt {better} is better here.", "better": better}
                for name in JUDGE_CRITERIA
            ],
            "verdict": verdict,
            "confidence": "medium",
            "summary": summary,
        }
    }


@pytest.mark.parametrize("original_is_a", [True, False])
def test_the_pair_goes_out_in_the_order_the_coin_chose_and_blind(fake, openai_model, original_is_a):
    fake.enqueue(verdict_answer("tie"))

    engine_for(openai_model, coin=lambda: original_is_a).compare(TEXT, REWRITE, "creative")

    request = sent(fake)
    first, second = (TEXT, REWRITE) if original_is_a else (REWRITE, TEXT)
    assert request["user"].endswith(f"<prompt_a>\n{first}\n</prompt_a>\n\n<prompt_b>\n{second}\n</prompt_b>")
    said = (request["system"] + request["user"].split("<prompt_a>")[0]).lower()
    assert "original" not in said and "rewrite" not in said  # nothing tells the judge which is which
    assert list(request["schema"]["properties"]) == ["criteria", "verdict", "confidence", "summary"]
    assert list(request["schema"]["properties"]["criteria"]["items"]["properties"]) == [
        "name",
        "reasoning",
        "better",
    ]
    for name in JUDGE_CRITERIA:
        assert name in request["user"]


@pytest.mark.parametrize(
    ("original_is_a", "verdict", "winner"),
    [
        (True, "A", "original"),
        (True, "B", "rewrite"),
        (False, "A", "rewrite"),
        (False, "B", "original"),
        (True, "tie", "tie"),
        (False, "tie", "tie"),
    ],
)
def test_the_verdict_is_mapped_back_from_a_and_b(fake, openai_model, original_is_a, verdict, winner):
    summary = "Prompt A keeps {hero}; Prompt B adds a length."
    fake.enqueue(verdict_answer(verdict, better="A", summary=summary))

    outcome = engine_for(openai_model, coin=lambda: original_is_a).compare(TEXT, REWRITE, "creative")

    a, b = ("original", "rewrite") if original_is_a else ("rewrite", "original")
    assert outcome.data["winner"] == winner and outcome.data["confidence"] == "medium"
    assert [c["name"] for c in outcome.data["criteria"]] == list(JUDGE_CRITERIA)
    assert {c["better"] for c in outcome.data["criteria"]} == {a}  # the model preferred A on each
    assert outcome.data["criteria"][0]["reasoning"] == f"The {a} is better here."
    assert outcome.data["summary"] == f"The {a} keeps {{hero}}; the {b} adds a length."
    assert (outcome.provider, outcome.model) == ("OpenAI test", "gpt-4o-mini") and outcome.cost > 0


def test_identical_texts_are_a_tie_without_a_call(fake, openai_model):
    outcome = engine_for(openai_model).compare(TEXT, TEXT + "\n", "creative")

    assert outcome.data["winner"] == "tie" and outcome.data["criteria"] == []
    assert fake.requests == [] and not UsageRecord.objects.exists()


def test_a_malformed_verdict_gives_none_and_the_rest_of_the_run_still_stands(fake, openai_model):
    engine = engine_for(openai_model, coin=lambda: True)
    fake.enqueue("ok", "ok", design_answer(), "malformed", "malformed")  # the verdict, and its repair

    deconstruction = engine.deconstruct(TEXT, "creative").data
    diagnosis = engine.diagnose(TEXT, "creative", deconstruction).data
    design = engine.design(TEXT, "creative", deconstruction, diagnosis, [], keep_spans=True)
    verdict = engine.compare(TEXT, design.data["optimized_prompt"], "creative")

    assert verdict is None
    assert design.data["optimized_prompt"] == REWRITE
    assert engine.degraded.startswith("evaluate: OpenAI test/gpt-4o-mini: invalid answer")
    records = UsageRecord.objects.order_by("pk").values_list("provider", "operation", "status")
    assert list(records)[-3:] == [
        ("OpenAI test", "evaluate", "invalid"),
        ("OpenAI test", "evaluate:repair", "invalid"),
        (BUILTIN_PROVIDER, "evaluate", "ok"),  # the built-in fallback, which gives no verdict
    ]


def test_a_verdict_outside_the_schema_gives_none(fake, openai_model):
    wrong = verdict_answer("C")
    fake.enqueue(wrong, wrong)

    assert engine_for(openai_model).compare(TEXT, REWRITE, "creative") is None


def test_no_verdict_from_a_degraded_engine_or_the_builtin_one(fake, openai_model):
    engine = engine_for(openai_model)
    engine.degraded = "design: the model's rewrite dropped '{hero}'"

    assert engine.compare(TEXT, REWRITE, "creative") is None
    assert BuiltinEngine().compare(TEXT, REWRITE, "creative") is None
    assert fake.requests == []


# --- through the pipeline -------------------------------------------------------------------------


def submit(owner, model, answers=None):
    run_settings = services.run_settings_build(
        prompt_type="creative",
        preset="auto",
        techniques=[],
        model=str(model.pk),
        keep_spans=True,
        answers=answers,
    )
    run = services.run_submit(owner=owner, text=TEXT, run_settings=run_settings, enqueue=False)
    pipeline.run_optimization(run_id=run.pk)
    run.refresh_from_db()
    return run


def test_a_run_whose_verdict_is_malformed_finishes_without_one_and_says_why(fake, openai_model, owner):
    fake.enqueue("ok", "ok", "ok", "malformed", "malformed")

    run = submit(owner, openai_model)

    assert run.status == "done" and "{hero}" in run.optimized_text
    assert "verdict" not in run.scores and run.scores["after"]["criteria"]
    assert run.degraded_reason.startswith("evaluate: OpenAI test/gpt-4o-mini: invalid answer")


def test_a_runs_answers_reach_the_models_design_call(fake, openai_model, owner):
    run = submit(owner, openai_model, answers={"audience": "Children aged 8 to 10"})

    design = next(
        r["body"] for r in fake.requests if r["body"]["response_format"]["json_schema"]["name"] == "design"
    )
    assert "- audience" in design["messages"][-1]["content"].split("<author_answers>\n")[1]
    assert "Children aged 8 to 10" in design["messages"][-1]["content"]
    assert run.status == "done" and run.scores["verdict"]["winner"] in ("original", "rewrite", "tie")
