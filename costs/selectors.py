"""Reads of the costs app that take more than a line."""

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Count, Q, Sum
from django.utils import timezone

from costs.models import ModelPrice, UsageRecord
from optimizer.llm.pricing import PricePerMillion


def api_cache_stats(*, since: datetime) -> dict:
    """Hits and misses of the gateway's API cache since ``since``, and what the hits saved.

    Every lookup ends in exactly one usage record: ``cache_hit``, or the call that followed a miss
    (repairs and the built-in engine are not lookups).
    """
    lookups = UsageRecord.objects.filter(created_at__gte=since).exclude(operation__endswith=":repair")
    lookups = lookups.exclude(provider="Built-in engine")
    totals = lookups.aggregate(
        hits=Count("id", filter=Q(status=UsageRecord.Status.CACHE_HIT)),
        misses=Count("id", filter=~Q(status=UsageRecord.Status.CACHE_HIT)),
        saved=Sum("saved_cost", filter=Q(status=UsageRecord.Status.CACHE_HIT)),
    )
    totals["saved"] = totals["saved"] or 0
    return totals


def price_overrides(*, model_ids: Iterable[int], at: datetime | None = None) -> dict[int, PricePerMillion]:
    """Each model's admin-set price in force at ``at`` (now by default), for the models that have one;
    the others are priced by genai-prices. One query, whatever the number of models."""
    at = at or timezone.now()
    found: dict[int, PricePerMillion] = {}
    rows = ModelPrice.objects.filter(model_id__in=list(model_ids), valid_from__lte=at)
    for price in rows.order_by("model_id", "-valid_from"):
        if price.model_id not in found:
            found[price.model_id] = PricePerMillion(price.input, price.output, price.cached_input)
    return found


def price_override(*, model_id: int, at: datetime | None = None) -> PricePerMillion | None:
    return price_overrides(model_ids=[model_id], at=at).get(model_id)
