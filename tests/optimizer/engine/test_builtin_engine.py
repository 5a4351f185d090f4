import pytest
from django.core.exceptions import ValidationError

from optimizer.engine import builtin
from optimizer.engine.analysis import deconstruct, diagnose, select_techniques
from optimizer.engine.catalogue import ALL_TYPES, PRESETS, TECHNIQUES
from optimizer.engine.language import detect_language
from optimizer.engine.rubric import CRITERIA, score
from optimizer.engine.spans import missing_spans
from optimizer.engine.structure import parse
from optimizer.forms import prompt_text_validate
from tests.prompts_csv import real_prompts

ISSUE_TECHNIQUES = (
    "zero-shot chain of thought", "few-shot", "self-consistency", "tree of thoughts", "react", "step-back",
    "least-to-most", "plan-and-solve", "role", "delimiters", "json schema", "explicit constraints",
    "audience", "tone and style", "output length", "chain of density", "self-critique",
    "rephrase and respond", "clarifying questions", "meta-prompting", "decomposition", "context priming",
    "positive", "grounding", "verification",
)  # fmt: skip


def test_the_catalogue_has_every_named_technique_with_its_description_types_and_effect():
    names = " | ".join(t.name.lower() for t in TECHNIQUES.values())
    assert len(TECHNIQUES) >= 25
    for wanted in ISSUE_TECHNIQUES:
        assert wanted in names, wanted
    for technique in TECHNIQUES.values():
        assert technique.description and technique.effect
        assert set(technique.suits) <= set(ALL_TYPES)


def test_every_preset_names_known_techniques():
    assert set(PRESETS) == {"lite", "reasoning", "creative", "production", "research", "data"}
    for _, _, slugs in PRESETS.values():
        assert slugs and set(slugs) <= set(TECHNIQUES)


def test_deconstruct_finds_role_task_audience_placeholders_format_and_what_is_missing():
    text = (
        "You are a travel agent. Write an itinerary for {city} for first-time visitors. "
        "Return a markdown table. Keep it under 200 words."
    )
    found = deconstruct(text, "general")

    assert found["role"] == "You are a travel agent."
    assert found["task_verb"] == "write"
    assert "{city}" in found["placeholders"]
    assert "first-time visitors" in found["audience"]
    assert "markdown table" in found["output_format"]
    assert "output format" not in found["missing"] and "length" not in found["missing"]
    assert found["language"] == "English"


def test_diagnose_a_vague_prompt_reports_the_problems_with_fixes_most_severe_first():
    text = "Write something good about stuff, etc."
    issues = diagnose(text, "general", deconstruct(text, "general"))["issues"]
    codes = [issue["code"] for issue in issues]

    assert {"ambiguous", "too-short", "no-output-format", "unbounded-length", "no-role"} <= set(codes)
    assert all(issue["fix"] for issue in issues)
    severities = [issue["severity"] for issue in issues]
    assert severities == sorted(severities, key=["high", "medium", "low"].index)


def test_conflicting_instructions_and_buried_instructions_are_found():
    data = "The quarterly report shows revenue of 10 million. " * 20
    text = f"Be brief.\n\n{data}\n\nGive a detailed and comprehensive summary of the text above, please."
    codes = {i["code"] for i in diagnose(text, "analytical", deconstruct(text, "analytical"))["issues"]}

    assert "conflicting" in codes
    assert "buried-instructions" in codes


def test_auto_picks_techniques_from_the_diagnosis_and_says_why():
    text = "Summarize this article"
    diagnosis = diagnose(text, "analytical", deconstruct(text, "analytical"))
    chosen = select_techniques("analytical", diagnosis)

    slugs = [item["slug"] for item in chosen]
    assert "role" in slugs and "output-length" in slugs
    assert all(item["reason"] for item in chosen)


def test_a_prompt_with_its_own_format_keeps_it():
    text = "Classify the sentiment of the review below. Reply with exactly one word: positive or negative."
    result = builtin.optimize(text, "data", ["json-schema", "role"])
    design = result["design"]

    assert "Return only JSON" not in design["optimized_prompt"]
    skipped = {t["slug"]: t for t in design["techniques"]}
    assert skipped["json-schema"]["applied"] is False
    assert "already sets an output format" in skipped["json-schema"]["note"]
    assert skipped["role"]["applied"] is True


def test_design_keeps_placeholders_literals_numbers_urls_and_code():
    text = (
        'Act as a reviewer of [language] code. Start with "Verdict:" and list 3 issues. '
        "Follow https://example.com/style. Here is the code:\n```python\nprint({x})\n```"
    )
    result = builtin.optimize(text, "coding", list(PRESETS["production"][2]))

    assert missing_spans(text, result["design"]["optimized_prompt"]) == []
    assert "```python\nprint({x})\n```" in result["design"]["optimized_prompt"]


def test_negative_rules_are_reworded_without_changing_their_meaning():
    text = "Write a product description. Do not write more than 80 words. Do not include prices."
    optimized = builtin.optimize(text, "general", ["positive-instructions"])["design"]["optimized_prompt"]

    assert "Write at most 80 words." in optimized
    assert "Leave out prices." in optimized


def test_the_optimized_prompt_reads_back_as_the_same_sections():
    text = "I want you to act as a linux terminal. I will type commands. Do not write explanations."
    optimized = builtin.optimize(text, "general")["design"]["optimized_prompt"]
    parsed = parse(optimized)

    assert parsed.ours
    assert parsed.sections["role"] == ["I want you to act as a linux terminal."]


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Escribe un poema sobre el mar y la luna para los niños de la escuela", "Spanish"),
        ("Écris un poème sur la mer et la lune pour les enfants de l'école", "French"),
        ("Schreibe ein Gedicht über das Meer und den Mond für die Kinder", "German"),
        ("Напиши стихотворение о море", "Russian"),
        ("写一首关于大海的诗", "Chinese"),
        ("Write a poem about the sea and the moon for the children", "English"),
    ],
)
def test_language_detection(text, language):
    assert detect_language(text) == language


def test_a_prompt_in_another_language_asks_for_the_answer_in_it():
    text = "Escribe un poema sobre el mar y la luna para los niños de la escuela"
    assert "Write the answer in Spanish." in builtin.optimize(text, "creative")["design"]["optimized_prompt"]


def test_the_rubric_scores_every_criterion_with_a_rationale_and_a_weighted_overall():
    result = score("Write a poem.")
    assert [item["key"] for item in result["criteria"]] == list(CRITERIA)
    assert all(0 <= item["score"] <= 100 and item["rationale"] for item in result["criteria"])
    assert sum(weight for _, weight, _ in CRITERIA.values()) == 100
    assert result["overall"] == round(
        sum(item["score"] * CRITERIA[item["key"]][1] for item in result["criteria"]) / 100
    )


def test_an_optimized_prompt_scores_higher_than_a_rough_one():
    result = builtin.optimize("write a poem about love", "creative")
    assert result["after"]["overall"] > result["before"]["overall"] + 20


def test_the_engine_is_deterministic():
    text = "Explain quantum computing to a child in 3 sentences."
    assert builtin.optimize(text, "general") == builtin.optimize(text, "general")


def test_every_real_prompt_is_optimized_keeping_its_spans_and_not_inflated_on_a_second_pass():
    """All 1,529 prompts of ../shared/data: the over-limit ones are rejected with a clear message;
    every other one is optimized without error, keeps every placeholder and literal, scores no
    lower than before, and grows by at most 20% when its optimized version is optimized again."""
    rejected, optimized = 0, 0
    for row in real_prompts():
        text, prompt_type = row["prompt"], "coding" if row.get("for_devs") == "TRUE" else "general"
        if len(text) > 50_000:
            with pytest.raises(ValidationError, match="the limit is 50,000"):
                prompt_text_validate(text)
            rejected += 1
            continue
        first = builtin.optimize(text, prompt_type)
        once = first["design"]["optimized_prompt"]
        twice = builtin.optimize(once, prompt_type)["design"]["optimized_prompt"]

        assert missing_spans(text, once) == [], row["act"]
        assert missing_spans(text, twice) == [], row["act"]
        assert len(twice) <= 1.2 * len(once), row["act"]
        assert first["after"]["overall"] >= first["before"]["overall"], row["act"]
        optimized += 1
    assert rejected == 4
    assert optimized == 1525
