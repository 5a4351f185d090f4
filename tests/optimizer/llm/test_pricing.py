"""Costs agree with genai-prices for every model we seed, tiered or flat, cached tokens included."""

from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from optimizer.llm.pricing import PricePerMillion, TokenUsage, call_cost
from optimizer.llm.seed import KNOWN_PROVIDERS

pytestmark = pytest.mark.django_db  # the package-wide fixture clears the (database) cache

SEEDED = [(known.catalog, model_id) for known in KNOWN_PROVIDERS for model_id, _tier in known.models]
USAGES = [
    TokenUsage(input_tokens=1200, output_tokens=300),
    TokenUsage(input_tokens=50_000, output_tokens=2_000, cached_tokens=30_000),
    TokenUsage(input_tokens=10_000, output_tokens=500, cached_tokens=4_000, cache_write_tokens=2_000),
    TokenUsage(input_tokens=300_000, output_tokens=8_000, cached_tokens=100_000),  # past 200k tiers
]


@pytest.mark.parametrize(("catalog", "model_id"), SEEDED)
@pytest.mark.parametrize("usage", USAGES, ids=["small", "cached", "cache-write", "long-context"])
def test_our_cost_equals_genai_prices(catalog, model_id, usage):
    expected = calc_price(
        Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        ),
        model_id,
        provider_id=catalog,
    ).total_price

    assert call_cost(catalog=catalog, model_id=model_id, own=None, usage=usage) == Decimal(expected)


def test_prices_set_by_an_admin_win_and_price_cached_tokens_at_their_rate():
    own = PricePerMillion(input=Decimal("2"), output=Decimal("8"), cached_input=Decimal("0.5"))
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=100_000, cached_tokens=400_000)

    cost = call_cost(catalog="openai", model_id="gpt-4o-mini", own=own, usage=usage)

    assert cost == Decimal("1.2") + Decimal("0.2") + Decimal("0.8")  # 600k fresh, 400k cached, 100k out


def test_an_unknown_model_is_unpriced():
    usage = TokenUsage(input_tokens=10, output_tokens=10)

    assert call_cost(catalog="openai", model_id="no-such-model", own=None, usage=usage) is None
    assert call_cost(catalog="", model_id="llama3.1:8b", own=None, usage=usage) is None
