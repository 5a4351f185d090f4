"""What a batch would cost, before it starts: per candidate model, and what the hard budgets say, on the
estimate itself and on the draft's preview page."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from costs.models import Budget, ModelPrice
from optimizer.batches.estimate import CALLS_PER_ITEM, estimate, item_usage
from optimizer.batches.parsing import Item, Parsed
from optimizer.batches.services import batch_create
from optimizer.models import ModelChoice, Provider
from optimizer.services import run_settings_build

pytestmark = pytest.mark.django_db
TEXTS = ["Explain how tides work to a ten-year-old." * 20] * 50


@pytest.fixture
def priced_model(db) -> ModelChoice:
    provider = Provider.objects.create(
        name="Priced",
        kind=Provider.Kind.OPENAI,
        base_url="https://llm.example/v1",
        api_key_env="OPENAI_API_KEY",
    )
    choice = ModelChoice.objects.create(provider=provider, model_id="house-model")
    ModelPrice.objects.create(
        model=choice, input=Decimal("2"), output=Decimal("8"), valid_from=timezone.now() - timedelta(days=1)
    )
    return choice


def test_the_built_in_engine_costs_nothing(owner):
    found = estimate(texts=TEXTS, model="builtin", user_id=owner.pk)

    assert found.builtin_only and found.models == [] and found.warning == ""


def test_a_priced_model_is_estimated_from_the_prompts_lengths(owner, priced_model):
    found = estimate(texts=TEXTS, model=str(priced_model.pk), user_id=owner.pk)

    [model] = found.models
    usage = item_usage(TEXTS[0])
    assert model.label == "Priced / house-model"
    assert model.input_tokens == 50 * usage.input_tokens and model.output_tokens == 50 * usage.output_tokens
    expected = 50 * (usage.input_tokens * Decimal(2) + usage.output_tokens * Decimal(8)) / 1_000_000
    assert model.cost == pytest.approx(expected, rel=Decimal("0.001"))
    assert usage.input_tokens > CALLS_PER_ITEM * (len(TEXTS[0]) // 4)  # each call quotes the prompt
    assert found.headroom is None and model.within_budget and found.warning == ""


def test_a_hard_budget_that_would_stop_the_batch_is_said_before_it_starts(owner_client, owner, priced_model):
    per_item = estimate(texts=TEXTS[:1], model=str(priced_model.pk), user_id=owner.pk).models[0].cost
    Budget.objects.create(
        user=owner, period="daily", limit=(per_item * 10).quantize(Decimal("0.0001")), mode="hard"
    )
    items = [Item(row=row, text=f"{TEXTS[0]} ({row})") for row in range(1, 51)]
    batch = batch_create(
        owner=owner,
        parsed=Parsed(format="text", items=items, skipped=[], empty_rows=0, columns=[]),
        run_settings=run_settings_build(
            prompt_type="general", preset="auto", techniques=[], model=str(priced_model.pk), keep_spans=True
        ),
        source="pasted text",
    )

    found = estimate(texts=[item.text for item in items], model=str(priced_model.pk), user_id=owner.pk)
    html = owner_client.get(reverse("optimizer:batch-detail", args=[batch.pk])).content.decode()

    [model] = found.models
    assert model.stops_at in (10, 11) and not model.within_budget
    assert "would reach the budget around item" in found.warning and "of 50" in found.warning
    assert "A budget would stop this batch." in html and found.warning.split(":")[0] in html
    assert "Priced / house-model" in html and f"stops around item {model.stops_at}" in html
    assert f'<td data-label="Input tokens">{model.input_tokens:,}</td>' in html
    assert "Your tightest hard budget has $" in html
