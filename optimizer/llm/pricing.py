"""What a call costs: the model's own prices when an admin set them, else genai-prices' bundled data.

Token counts arrive normalized (see ``TokenUsage``): ``input_tokens`` includes cached input, as
genai-prices expects. Money is Decimal throughout; an unknown price is None, never a silent zero.
"""

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from django.utils import timezone
from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import get_snapshot

MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class TokenUsage:
    input_tokens: int  # all input tokens, cached reads and writes included
    output_tokens: int
    cached_tokens: int = 0  # cache reads
    cache_write_tokens: int = 0
    estimated: bool = False

    @property
    def uncached_input_tokens(self) -> int:
        return max(self.input_tokens - self.cached_tokens, 0)


@dataclass(frozen=True)
class PricePerMillion:
    input: Decimal
    output: Decimal
    cached_input: Decimal | None


def _base(price) -> Decimal | None:
    return getattr(price, "base", price)


@lru_cache(maxsize=512)
def catalog_prices(catalog: str, model_id: str) -> PricePerMillion | None:
    """genai-prices' current list price for a model, or None when the package does not know it."""
    if not catalog:
        return None
    try:
        _provider, info = get_snapshot().find_provider_model(model_id, None, catalog, None)
    except LookupError:
        return None
    prices = info.get_prices(timezone.now())
    input_price, output_price = _base(prices.input_mtok), _base(prices.output_mtok)
    if input_price is None or output_price is None:
        return None
    return PricePerMillion(input_price, output_price, _base(getattr(prices, "cache_read_mtok", None)))


def call_cost(
    *, catalog: str, model_id: str, own: PricePerMillion | None, usage: TokenUsage
) -> Decimal | None:
    """Cost in USD of one call; None when neither the admin nor genai-prices knows the price."""
    if own is not None:
        cached_price = own.input if own.cached_input is None else own.cached_input
        return (
            Decimal(usage.uncached_input_tokens) * own.input
            + Decimal(usage.cached_tokens) * cached_price
            + Decimal(usage.output_tokens) * own.output
        ) / MILLION
    if not catalog:
        return None
    try:
        calculation = calc_price(
            Usage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cached_tokens,
                cache_write_tokens=usage.cache_write_tokens,
            ),
            model_id,
            provider_id=catalog,
        )
    except LookupError:
        return None
    return Decimal(calculation.total_price)
