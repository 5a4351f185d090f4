"""Usage per local day and per provider, model and operation: what the cost dashboard adds up.

A record is written when its call ends, stamped with the time of writing, so a day that ended a
while ago gets no more records: its sums are computed once and kept in the cache, one entry per
scope and month. A dashboard over 90 days then reads today's records and a few cached entries
instead of grouping every record of the range (0.1 s and more for 100,000 records on SQLite).
Anything that writes records into past days (a restore) calls ``forget_usage_days``.
"""

import contextlib
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.db.models import Count, Q, Sum
from django.utils import timezone

from costs.budgets import local_date, range_bounds
from costs.models import BUILTIN_PROVIDER, UsageRecord

SETTLED_AFTER = timedelta(minutes=10)  # a call ending at midnight, clocks of other workers a bit off
KEEP_S = 40 * 24 * 3600  # a month's entry outlives the month; an expired one is only recomputed
GENERATION_KEY = "usage-days:generation"
# Amounts are kept as whole hundred-millionths of a dollar: the records' precision, and plain
# integers read back from the cache many times faster than Decimals.
UNIT = Decimal("0.00000001")


class UsageGroup(NamedTuple):
    """The sums of one local day's records for one provider, model and operation."""

    day: date
    provider: str
    model: str
    operation: str
    calls: int
    hits: int  # answered from the cache
    unpriced: int  # calls (not cache hits) to a model with no known price
    spend_units: int  # USD in UNITs
    saved_units: int  # what the cache hits would have cost, in UNITs
    input_tokens: int
    output_tokens: int
    cached_tokens: int


def dollars(units: int) -> Decimal:
    return Decimal(units) * UNIT


def usage_days(
    *, user_id: int | None, start: date, end: date, now: datetime | None = None
) -> list[UsageGroup]:
    """The model calls (the built-in engine's are not) of one user, or of the site when ``user_id``
    is None, from local day ``start`` to ``end``, grouped by day, provider, model and operation."""
    now = now or timezone.now()
    days = [start + timedelta(days=offset) for offset in range((end - start).days + 1)]
    first_open = timezone.localdate(now - SETTLED_AFTER)  # days before it ended SETTLED_AFTER ago
    settled = {day for day in days if day < first_open}
    kept, keys = _kept_months(user_id, {_month(day) for day in days})  # {day: [plain tuples]} per month
    found = {day: kept[_month(day)][day] for day in settled if day in kept[_month(day)]}
    missing = [day for day in days if day not in found]
    fresh: dict[date, list[tuple]] = {day: [] for day in missing}
    for group in _read(user_id, missing[0], end) if missing else []:
        fresh.setdefault(group.day, []).append(tuple(group))
    for month in {_month(day) for day in missing if day in settled}.intersection(keys):
        newly = {day: fresh[day] for day in missing if day in settled and _month(day) == month}
        with contextlib.suppress(Exception):  # a cache outage costs a recomputation later, nothing more
            cache.set(keys[month], kept[month] | newly, KEEP_S)
    return [UsageGroup._make(row) for day in days for row in found.get(day, fresh.get(day, []))]


def forget_usage_days() -> None:
    """Drop every kept day: records were written into the past (a restore). Call it once their
    transaction has committed, or a view in between could keep the days without them."""
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:  # not set yet
        cache.set(GENERATION_KEY, 1, None)


def _month(day: date) -> date:
    return day.replace(day=1)


def _kept_months(user_id: int | None, months: set[date]) -> tuple[dict[date, dict], dict[date, str]]:
    """The kept days of each month ({} for none), and the months' keys; no keys when the cache is down."""
    try:
        generation = cache.get(GENERATION_KEY, 0)
        keys = {month: _key(generation, user_id, month) for month in months}
        stored = cache.get_many(list(keys.values()))
    except Exception:  # noqa: BLE001 - the cache is down: every day is read from the records
        return {month: {} for month in months}, {}
    kept = {month: stored.get(key) for month, key in keys.items()}
    return {month: entry if isinstance(entry, dict) else {} for month, entry in kept.items()}, keys


def _key(generation: int, user_id: int | None, month: date) -> str:
    whose = "site" if user_id is None else f"user{user_id}"
    return f"usage-days:v2:{generation}:{settings.TIME_ZONE}:{whose}:{month:%Y-%m}"


def _read(user_id: int | None, start: date, end: date) -> list[UsageGroup]:
    since, until = range_bounds(start, end)
    records = UsageRecord.objects.filter(created_at__gte=since, created_at__lt=until)
    records = records.exclude(provider=BUILTIN_PROVIDER)
    if user_id is not None:
        records = records.filter(user_id=user_id)
    hit = Q(status=UsageRecord.Status.CACHE_HIT)
    rows = (
        records.annotate(day=local_date("created_at", since, until, vendor=connections[records.db].vendor))
        .values("day", "provider", "model", "operation")
        .annotate(
            calls=Count("id"),
            hits=Count("id", filter=hit),
            unpriced=Count("id", filter=Q(cost__isnull=True) & ~hit),
            spend=Sum("cost", default=Decimal(0)),
            saved=Sum("saved_cost", filter=hit, default=Decimal(0)),
            input_tokens=Sum("input_tokens", default=0),
            output_tokens=Sum("output_tokens", default=0),
            cached_tokens=Sum("cached_tokens", default=0),
        )
        .order_by()
    )
    return [
        UsageGroup(
            row["day"],
            row["provider"],
            row["model"],
            row["operation"],
            row["calls"],
            row["hits"],
            row["unpriced"],
            round(row["spend"] / UNIT),
            round(row["saved"] / UNIT),
            row["input_tokens"],
            row["output_tokens"],
            row["cached_tokens"],
        )
        for row in rows
    ]
