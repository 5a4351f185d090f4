"""The checklist credits evidence in the prompt's own words and cannot be gamed (issue 12, section B)."""

import pytest

from optimizer.builtin_engine import builtin
from optimizer.builtin_engine.rubric import CRITERIA, score, weighted_overall
from tests.optimizer.builtin_engine.rubric_cases import CODE_REVIEW_PROSE, GAMING_CASES, PAIRS


@pytest.mark.parametrize(("name", "text"), GAMING_CASES, ids=[name for name, _ in GAMING_CASES])
def test_gaming_does_not_pay(name, text):
    assert score(text)["overall"] < 50, name


@pytest.mark.parametrize(("name", "better", "worse"), PAIRS, ids=[name for name, _, _ in PAIRS])
def test_the_better_prompt_for_the_same_task_scores_higher(name, better, worse):
    assert score(better)["overall"] > score(worse)["overall"] + 10, name


def test_each_criterion_quotes_what_earned_it():
    result = score(CODE_REVIEW_PROSE)
    by_key = {item["key"]: item for item in result["criteria"]}

    assert "“Review the pull request diff below" in by_key["task"]["rationale"]
    assert "at most ten" in by_key["output"]["rationale"]
    assert "<diff>" in by_key["material"]["rationale"]
    assert result["overall"] >= 70


def test_headings_around_the_same_text_earn_nothing():
    plain = "Summarize the report below for the board in five bullet points.\n\n<report>\n{report}\n</report>"
    headed = (
        "## Role\n\n## Task\nSummarize the report below for the board in five bullet points.\n\n"
        "## Input\n<report>\n{report}\n</report>\n\n## Output format\n"
    )
    assert score(headed)["overall"] == score(plain)["overall"]


def test_the_engines_own_lines_and_generic_filler_earn_nothing():
    text = "Write a limerick about a cat who hates Mondays."
    padded = (
        "You are a knowledgeable, careful assistant. Take a deep breath. "
        + text
        + "\n\nWork through the problem step by step before you give the final answer.\n"
        "Before you finish, check the draft against every requirement above and fix what falls short."
    )
    assert score(padded)["overall"] <= score(text)["overall"]
    assert any("Filler" in penalty["why"] for penalty in score(padded)["penalties"])


def test_contradictions_cost_points():
    consistent = "Write a guide to composting at home for first-time gardeners. Be thorough."
    contradictory = consistent + " Keep it brief."
    result = score(contradictory)

    assert any("Contradiction" in penalty["why"] for penalty in result["penalties"])
    assert result["overall"] < score(consistent)["overall"]


def test_a_criterion_that_does_not_apply_is_left_out_of_the_weights():
    result = score("Write a limerick about a cat who hates Mondays.")
    keys = [item["key"] for item in result["criteria"]]

    assert "material" not in keys  # no material: nothing to delimit, nothing to score
    assert set(keys) <= set(CRITERIA) and sum(weight for _, weight, _ in CRITERIA.values()) == 100
    assert weighted_overall(result["criteria"]) == result["overall"]


def test_the_builtin_rewrite_gains_only_from_what_it_really_adds():
    vague = "Write a blog post about remote work."
    unchanged = builtin.optimize(vague, "general")
    answered = builtin.optimize(
        vague,
        "general",
        answers={"audience": "engineering managers at start-ups", "length": "about 600 words"},
    )
    material = builtin.optimize(
        "Summarize this review:\n\nGreat phone, awful battery, rude support.", "general"
    )

    assert unchanged["after"]["overall"] == unchanged["before"]["overall"]  # nothing added, nothing gained
    assert answered["after"]["overall"] > answered["before"]["overall"]  # the author's own answers count
    assert material["after"]["overall"] > material["before"]["overall"]  # the material is now set apart
