"""Prices: genai-prices by default, dated admin overrides, cached input at its own rate, and the
confirmation asked for a price far from the list price."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from genai_prices import Usage, calc_price

from costs.models import ModelPrice, UsageRecord
from optimizer.llm import gateway
from optimizer.models import ModelChoice
from tests.optimizer.llm.conftest import add_model, builtin, make_request

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("gateway_settings")]
MILLION = Decimal(1_000_000)


@pytest.fixture
def cached_model(db, fake):
    fake.cached_fraction = 0.5
    return add_model(fake.url, name="OpenAI test")


def test_without_an_override_a_call_costs_genai_prices_price_with_cached_tokens_at_their_rate(
    cached_model, fake
):
    result = gateway.call(make_request(), builtin=builtin, model=cached_model)

    record = UsageRecord.objects.get()
    assert record.cached_tokens > 0 and record.cached_tokens == record.input_tokens // 2
    expected = calc_price(
        Usage(
            input_tokens=record.input_tokens,
            cache_read_tokens=record.cached_tokens,
            output_tokens=record.output_tokens,
        ),
        "gpt-4o-mini",
        provider_id="openai",
    ).total_price
    assert record.cost == result.cost == Decimal(expected)
    uncached = calc_price(
        Usage(input_tokens=record.input_tokens, output_tokens=record.output_tokens),
        "gpt-4o-mini",
        provider_id="openai",
    ).total_price
    assert record.cost < Decimal(uncached)


def test_an_override_in_force_wins_and_prices_cached_tokens_at_its_own_rate(cached_model, fake):
    ModelPrice.objects.create(
        model=cached_model,
        valid_from=timezone.now() - timedelta(days=1),
        input=Decimal("2"),
        output=Decimal("8"),
        cached_input=Decimal("0.5"),
    )

    gateway.call(make_request(), builtin=builtin, model=cached_model)

    record = UsageRecord.objects.get()
    fresh = record.input_tokens - record.cached_tokens
    expected = (
        fresh * Decimal("2") + record.cached_tokens * Decimal("0.5") + record.output_tokens * Decimal("8")
    ) / MILLION
    assert record.cost == expected


def test_an_override_dated_in_the_future_does_not_apply_yet_and_past_records_keep_their_cost(
    cached_model, fake
):
    ModelPrice.objects.create(
        model=cached_model,
        valid_from=timezone.now() - timedelta(days=10),
        input=Decimal(1),
        output=Decimal(1),
    )
    ModelPrice.objects.create(
        model=cached_model, valid_from=timezone.now() + timedelta(days=1), input=Decimal(9), output=Decimal(9)
    )
    gateway.call(make_request("first"), builtin=builtin, model=cached_model)
    first = UsageRecord.objects.get()
    tokens = first.input_tokens + first.output_tokens
    assert first.cost == tokens * Decimal(1) / MILLION  # the older override, not the future one

    ModelPrice.objects.filter(input=9).update(valid_from=timezone.now() - timedelta(seconds=1))
    gateway.call(make_request("second, a different prompt"), builtin=builtin, model=cached_model)

    second = UsageRecord.objects.exclude(pk=first.pk).get()
    assert second.cost == (second.input_tokens + second.output_tokens) * Decimal(9) / MILLION
    first.refresh_from_db()
    assert first.cost == tokens * Decimal(1) / MILLION


def _add_form(model_id: int, **prices) -> dict:
    now = timezone.localtime()
    return {
        "model": model_id,
        "valid_from_0": now.strftime("%Y-%m-%d"),
        "valid_from_1": now.strftime("%H:%M:%S"),
        "note": "",
        **{name: str(value) for name, value in prices.items()},
    }


def test_a_price_far_from_the_list_price_needs_confirmation(openai_model, staff_client):
    url = reverse("admin:costs_modelprice_add")
    # gpt-4o-mini lists at $0.15/M in: $15 is the classic "per thousand" slip, 100x
    form = _add_form(openai_model.pk, input="15", output="0.6", cached_input="0.075")

    refused = staff_client.post(url, form)

    assert refused.status_code == 200
    page = refused.content.decode()
    assert "100× above genai-prices" in page and "This price is right" in page
    assert not ModelPrice.objects.exists()

    saved = staff_client.post(url, form | {"confirm": "on"})

    assert saved.status_code == 302
    assert ModelPrice.objects.get().input == Decimal(15)


def test_a_price_close_to_the_list_price_saves_without_confirmation(openai_model, staff_client):
    url = reverse("admin:costs_modelprice_add")

    response = staff_client.post(url, _add_form(openai_model.pk, input="0.12", output="0.5"))

    assert response.status_code == 302
    assert ModelPrice.objects.get().cached_input is None


def test_a_zero_price_for_a_listed_model_needs_confirmation(openai_model, staff_client):
    response = staff_client.post(
        reverse("admin:costs_modelprice_add"), _add_form(openai_model.pk, input="0", output="0.6")
    )

    assert "far below genai-prices" in response.content.decode()
    assert not ModelPrice.objects.exists()


@pytest.fixture
def local_model(db, fake):
    """A fast model the package does not list (a local server's): no list price to compare with."""
    local = add_model(fake.url, name="Local", model_id="llama3.1:8b", price_catalog="", api_key_env="")
    ModelChoice.objects.filter(pk=local.pk).update(tier=ModelChoice.Tier.FAST)
    local.refresh_from_db()
    return local


def test_a_first_price_far_from_its_tiers_usual_range_needs_confirmation(local_model, staff_client):
    url = reverse("admin:costs_modelprice_add")
    # $0.20/M typed as $200/M: fast models list at $0.05 to $1/M input, $0.40 to $5/M output
    form = _add_form(local_model.pk, input="200", output="0.2")

    refused = staff_client.post(url, form)

    page = refused.content.decode()
    assert refused.status_code == 200 and not ModelPrice.objects.exists()
    assert "200 is 200× above the usual input price of fast models (0.05 to 1 $/M tokens" in page
    assert "gpt-5-nano, claude-haiku-4-5" in page
    assert set(refused.context["adminform"].form.errors) == {"input"}  # 0.2 output: within 10x of 0.4
    assert staff_client.post(url, form | {"confirm": "on"}).status_code == 302


def test_a_correction_toward_the_tiers_range_saves_without_confirmation(local_model, staff_client):
    url = reverse("admin:costs_modelprice_add")
    staff_client.post(url, _add_form(local_model.pk, input="200", output="200") | {"confirm": "on"})
    assert ModelPrice.objects.get().input == Decimal(200)  # the mistake, confirmed

    corrected = staff_client.post(
        url, _add_form(local_model.pk, input="0.2", output="0.2") | {"valid_from_1": "23:59:59"}
    )

    assert corrected.status_code == 302, corrected.content.decode()
    assert ModelPrice.objects.count() == 2


def test_a_free_local_model_is_confirmed_once(local_model, staff_client):
    url = reverse("admin:costs_modelprice_add")

    refused = staff_client.post(url, _add_form(local_model.pk, input="0", output="0"))

    assert "0 is far below the usual input price of fast models" in refused.content.decode()
    confirmed = staff_client.post(url, _add_form(local_model.pk, input="0", output="0") | {"confirm": "on"})
    assert confirmed.status_code == 302
    assert ModelPrice.objects.get().output == 0


def test_a_saved_price_is_a_record_its_figures_are_read_only(openai_model, staff_client):
    price = ModelPrice.objects.create(model=openai_model, input=Decimal("0.15"), output=Decimal("0.6"))

    page = staff_client.get(reverse("admin:costs_modelprice_change", args=[price.pk])).content.decode()

    assert 'name="input"' not in page and 'name="note"' in page


def test_only_a_price_not_yet_in_force_can_be_deleted(openai_model, staff_client):
    in_force = ModelPrice.objects.create(model=openai_model, input=Decimal("0.15"), output=Decimal("0.6"))
    planned = ModelPrice.objects.create(
        model=openai_model,
        valid_from=timezone.now() + timedelta(days=3),
        input=Decimal("0.2"),
        output=Decimal("0.8"),
    )

    refused = staff_client.post(reverse("admin:costs_modelprice_delete", args=[in_force.pk]), {"post": "yes"})
    deleted = staff_client.post(reverse("admin:costs_modelprice_delete", args=[planned.pk]), {"post": "yes"})
    listing = staff_client.get(reverse("admin:costs_modelprice_changelist")).content.decode()

    assert refused.status_code == 403 and deleted.status_code == 302
    assert list(ModelPrice.objects.all()) == [in_force]
    assert "delete_selected" not in listing


def test_the_model_admin_says_where_each_price_comes_from(db, fake, staff_client):
    listed = add_model(fake.url, name="OpenAI test")
    local = add_model(fake.url, name="Local", model_id="llama3.1:8b", price_catalog="", order=20)
    other = add_model(fake.url, name="Third", model_id="gpt-4o", order=30)
    ModelPrice.objects.create(model=other, input=Decimal("1.5"), output=Decimal("6"))

    page = staff_client.get(reverse("admin:optimizer_modelchoice_changelist")).content.decode()

    assert "0.15 · 0.6 · 0.075 (genai-prices)" in page
    assert "1.500000 · 6.000000 · — (override)" in page
    assert page.count("unpriced: <a href") == 1  # the local model, not the built-in engine
    assert f'{reverse("admin:costs_modelprice_add")}?model={local.pk}">add a price</a>' in page
    assert "free (runs here, no model call)" in page
    assert listed and local


def test_the_built_in_engine_is_not_offered_a_price(openai_model, staff_client):
    page = staff_client.get(reverse("admin:costs_modelprice_add")).content.decode()

    assert "OpenAI test · gpt-4o-mini" in page and "Built-in engine · builtin" not in page
