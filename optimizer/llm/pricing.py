"""What a call costs: the model's own prices when an admin set them, else genai-prices' bundled data.

Token counts arrive normalized (see ``TokenUsage``): ``input_tokens`` includes cached input, as
genai-prices expects. Money is Decimal throughout; an unknown price is None, never a silent zero.

genai-prices' general calculation handles tiers and many units, and costs more than the rest of
a call's bookkeeping; for a model whose list prices are flat, the same per-token prices from the
package are multiplied here (tests check both agree on every seeded model), and tiered models go
through ``calc_price``.
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


@dataclass(frozen=True)
class PricePerMillion:
    input: Decimal
    output: Decimal
    cached_input: Decimal | None
    cache_write: Decimal | None = None


def _base(price) -> Decimal | None:
    return getattr(price, "base", price)


@lru_cache(maxsize=512)
def _catalog_entry(catalog: str, model_id: str, day) -> tuple[PricePerMillion | None, bool]:
    """List prices (base tier) and whether any of them is tiered, for one model on one day."""
    if not catalog:
        return None, False
    try:
        _provider, info = get_snapshot().find_provider_model(model_id, None, catalog, None)
    except LookupError:
        return None, False
    prices = info.get_prices(timezone.now())
    units = [
        getattr(prices, name, None)
        for name in ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
    ]
    if units[0] is None or units[1] is None:
        return None, False
    tiered = any(unit is not None and not isinstance(unit, Decimal) for unit in units)
    return PricePerMillion(*(_base(unit) for unit in units)), tiered


def catalog_prices(catalog: str, model_id: str) -> PricePerMillion | None:
    """genai-prices' current list price for a model, or None when the package does not know it."""
    return _catalog_entry(catalog, model_id, timezone.now().date())[0]


def call_cost(
    *, catalog: str, model_id: str, own: PricePerMillion | None, usage: TokenUsage
) -> Decimal | None:
    """Cost in USD of one call; None when neither the admin nor genai-prices knows the price."""
    if own is not None:
        return _flat_cost(own, usage)
    listed, tiered = _catalog_entry(catalog, model_id, timezone.now().date())
    if listed is None:
        return None
    if not tiered:
        return _flat_cost(listed, usage)
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
    return Decimal(calculation.total_price)


def _flat_cost(prices: PricePerMillion, usage: TokenUsage) -> Decimal:
    cached_price = prices.input if prices.cached_input is None else prices.cached_input
    write_price = prices.input if prices.cache_write is None else prices.cache_write
    fresh_input = max(usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens, 0)
    return (
        Decimal(fresh_input) * prices.input
        + Decimal(usage.cached_tokens) * cached_price
        + Decimal(usage.cache_write_tokens) * write_price
        + Decimal(usage.output_tokens) * prices.output
    ) / MILLION
