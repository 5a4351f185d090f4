"""Reads of the costs app that take more than a line."""

from datetime import datetime

from django.db.models import Count, Q, Sum

from costs.models import UsageRecord


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
