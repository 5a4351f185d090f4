"""Smart model selection ("Auto"): the cheapest model whose tier suits the call, among those enabled,
keyed, not cut off by their breaker and within the hard budgets; the reasons travel with the answer."""

from decimal import Decimal

import pytest

from costs.models import Budget, ModelPrice
from optimizer.llm import gateway, routing
from optimizer.llm.breaker import CircuitBreaker
from optimizer.llm.routing import Needs, tier_needed
from optimizer.models import ModelChoice, Provider
from tests.optimizer.llm.conftest import SECRET, builtin, make_request

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("needs", "tier"),
    [
        (Needs("deconstruct", 400), "fast"),
        (Needs("evaluate", 400, "coding"), "fast"),
        (Needs("diagnose", 400, "coding"), "balanced"),
        (Needs("design", 400), "balanced"),
        (Needs("design:repair", 400), "balanced"),
        (Needs("evaluate", 9_000), "balanced"),
        (Needs("design", 400, "general", ("tree-of-thoughts",)), "best"),
        (Needs("design", 9_000, "coding", ("react",)), "best"),
        (Needs("deconstruct", 400, "general", ("react",)), "fast"),
    ],
)
def test_the_tier_a_call_needs(needs, tier):
    assert tier_needed(needs)[0] == tier


def test_the_reasons_take_the_article_the_type_needs():
    assert tier_needed(Needs("diagnose", 100, "analytical"))[1][-1] == "an analytical prompt"
    assert tier_needed(Needs("diagnose", 100, "data"))[1][-1] == "a data prompt"


def test_the_reasons_name_what_raised_the_tier():
    tier, reasons = tier_needed(Needs("design", 12_000, "coding", ("plan-and-solve",)))

    assert tier == "best"
    assert reasons == ["rewriting a prompt", "a long prompt (12,000 characters)", "a coding prompt",
                       "the plan-and-solve technique"]  # fmt: skip


@pytest.fixture
def ladder(db, fake):
    """gpt-5-nano (fast), gpt-5-mini (balanced), gpt-5 (best): genai-prices knows all three, and
    they are listed most expensive first so the choice cannot come from the fallback order."""
    provider = Provider.objects.create(
        name="OpenAI test",
        kind="openai",
        base_url=fake.url,
        api_key_env="PO_TEST_API_KEY",
        price_catalog="openai",
    )
    return {
        tier: ModelChoice.objects.create(
            provider=provider, model_id=model_id, tier=tier, fallback_order=order
        )
        for order, (model_id, tier) in enumerate(
            [("gpt-5", "best"), ("gpt-5-mini", "balanced"), ("gpt-5-nano", "fast")]
        )
    }


def choose(operation="diagnose", text="Write a poem about the sea", **needs):
    request = make_request(text, operation=operation)
    return routing.select(request, Needs(operation, len(text), **needs), user_id=None)


def test_the_cheapest_model_of_the_needed_tier_is_chosen_and_the_others_are_explained(ladder):
    reading = choose("diagnose")
    rewriting = choose("design")

    assert reading.chosen == ladder["fast"]
    assert rewriting.chosen == ladder["balanced"]
    why = {item["model"]: item["why"] for item in rewriting.passed_over}
    assert why["OpenAI test / gpt-5-nano"] == "its tier (fast) is below the balanced this call needs"
    assert why["OpenAI test / gpt-5"].startswith("it costs more (estimated at most $")
    assert (
        rewriting.order == [ladder["balanced"], ladder["fast"], ladder["best"]]
        or rewriting.order[0] == ladder["balanced"]
    )
    assert "cheapest available model of the balanced tier or above" in rewriting.reason
    assert "rewriting a prompt" in rewriting.reason


def test_an_admin_price_can_make_a_higher_tier_the_cheapest(ladder):
    ModelPrice.objects.create(model=ladder["best"], input=Decimal("0.01"), output=Decimal("0.01"))

    assert choose("design").chosen == ladder["best"]
    assert choose("diagnose").chosen == ladder["best"]  # best suits a fast call too, and now costs least


def test_without_prices_auto_does_not_claim_the_cheapest_and_priced_models_go_first(ladder):
    Provider.objects.filter(pk=ladder["fast"].provider_id).update(price_catalog="")  # e.g. a local server

    unpriced = choose("diagnose")

    assert unpriced.chosen == ladder["best"]  # first in fallback order: nothing to compare
    assert "cheapest" not in unpriced.reason
    assert "first in fallback order among the available models (none has a price" in unpriced.reason
    why = {item["model"]: item["why"] for item in unpriced.passed_over}
    assert (
        why["OpenAI test / gpt-5-nano"] == "it comes later in fallback order (neither has a price to compare)"
    )

    ModelPrice.objects.create(model=ladder["fast"], input=Decimal("0.05"), output=Decimal("0.4"))
    one_priced = choose("diagnose")

    assert one_priced.chosen == ladder["fast"]
    assert "the cheapest available model of the fast tier" in one_priced.reason
    why = {item["model"]: item["why"] for item in one_priced.passed_over}
    assert why["OpenAI test / gpt-5"] == "it has no price, so models with a known cost go first"


def test_a_model_whose_breaker_is_open_is_passed_over(ladder, settings):
    settings.LLM_BREAKER = {"consecutive_failures": 1, "cooldown_s": 60}
    breaker = CircuitBreaker(ladder["fast"].breaker_key)
    breaker.record_failure(breaker.allow())

    selection = choose("diagnose")

    assert selection.chosen == ladder["balanced"]
    assert {"model": "OpenAI test / gpt-5-nano", "why": "its circuit breaker is open (recent failures)"} in (
        selection.passed_over
    )
    assert selection.order[-1] == ladder["fast"]  # still last in the failover list: it may recover


def test_a_model_whose_estimate_exceeds_the_hard_budget_left_is_passed_over(ladder):
    Budget.objects.create(period="daily", limit=Decimal("0.0025"), mode="hard")  # mini's ceiling is more

    selection = choose("design")

    assert selection.chosen == ladder["fast"]  # below the tier, but the only one that fits
    assert "no available model is of the balanced tier" in selection.reason
    why = {item["model"]: item["why"] for item in selection.passed_over}
    assert "exceeds what the hard budget has left ($0.0025)" in why["OpenAI test / gpt-5-mini"]


def test_a_model_without_its_api_key_is_passed_over(ladder, monkeypatch):
    monkeypatch.delenv("PO_TEST_API_KEY")

    selection = choose("diagnose")

    assert selection.chosen == ladder["best"]  # nothing is available: failover order, all to be skipped
    assert "no model is available" in selection.reason
    assert all(item["why"] == "no API key (PO_TEST_API_KEY is not set)" for item in selection.passed_over)


def test_auto_through_the_gateway_calls_the_chosen_model_and_says_why(ladder, fake):
    result = gateway.call(make_request(operation="deconstruct"), builtin=builtin)

    assert result.model == "gpt-5-nano" and not result.builtin
    assert fake.requests[0]["body"]["model"] == "gpt-5-nano"
    assert result.selection["chosen"] == "OpenAI test / gpt-5-nano" and result.selection["tier"] == "fast"
    assert len(result.selection["passed_over"]) == 2


def test_auto_fails_over_from_the_chosen_model_to_the_next_cheapest(ladder, fake):
    fake.enqueue(*[{"status": 500}] * 3)

    result = gateway.call(make_request(operation="deconstruct"), builtin=builtin)

    assert result.model == "gpt-5-mini" and [skip.model for skip in result.skipped] == ["gpt-5-nano"]
    assert SECRET not in str(result.selection)
