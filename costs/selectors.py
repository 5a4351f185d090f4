"""Reads of the costs app that take more than a line."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import connections
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from costs.budgets import local_date, local_midnight, period_bounds
from costs.forecast import WINDOW_DAYS, daily_spend, forecast
from costs.models import BUILTIN_PROVIDER, Budget, BudgetAlert, ModelPrice, UsageRecord
from optimizer.llm.pricing import PricePerMillion, catalog_prices
from optimizer.models import ModelChoice, OptimizationRun


def api_cache_stats(*, since: datetime) -> dict:
    """Hits and misses of the gateway's API cache since ``since``, and what the hits saved.

    Every lookup ends in exactly one usage record: ``cache_hit``, or the call that followed a miss
    (repairs and the built-in engine are not lookups).
    """
    lookups = UsageRecord.objects.filter(created_at__gte=since).exclude(operation__endswith=":repair")
    lookups = lookups.exclude(provider=BUILTIN_PROVIDER)
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


# --- The cost dashboard ---------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Whose spending a page shows: one user's, or (staff only) the whole site's."""

    user_id: int | None  # None: every user

    @property
    def site(self) -> bool:
        return self.user_id is None

    def records(self) -> QuerySet:
        records = UsageRecord.objects.all()
        return records if self.site else records.filter(user_id=self.user_id)

    def runs(self) -> QuerySet:
        runs = OptimizationRun.objects.all()
        return runs if self.site else runs.filter(owner_id=self.user_id)

    def budgets(self) -> dict[str, Budget]:
        budgets = Budget.objects.filter(enabled=True)
        budgets = budgets.filter(user__isnull=True) if self.site else budgets.filter(user_id=self.user_id)
        return {budget.period: budget for budget in budgets}


def range_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[local midnight of ``start``, local midnight after ``end``)."""
    return local_midnight(start), local_midnight(end + timedelta(days=1))


def usage_in_range(*, scope: Scope, start: date, end: date, builtin: bool = False) -> QuerySet:
    """The scope's usage records of the range; the built-in engine's (free, tokenless) ones only
    when asked for, as the export does: the dashboard counts model calls."""
    since, until = range_bounds(start, end)
    records = scope.records().filter(created_at__gte=since, created_at__lt=until)
    return records if builtin else records.exclude(provider=BUILTIN_PROVIDER)


def range_totals(records: QuerySet) -> dict:
    """Spend, savings, calls and tokens of some usage records, in one query."""
    hit = Q(status=UsageRecord.Status.CACHE_HIT)
    totals = records.aggregate(
        spend=Sum("cost", default=Decimal(0)),
        saved=Sum("saved_cost", filter=hit, default=Decimal(0)),
        calls=Count("id"),
        hits=Count("id", filter=hit),
        unpriced=Count("id", filter=Q(cost__isnull=True) & ~hit),
        input_tokens=Sum("input_tokens", default=0),
        output_tokens=Sum("output_tokens", default=0),
        cached_tokens=Sum("cached_tokens", default=0),
    )
    return totals


def per_day(records: QuerySet, start: date, end: date) -> list[dict]:
    """Spend and tokens of each local day from ``start`` to ``end``, days without calls included
    (``records`` is already limited to those days)."""
    since, until = range_bounds(start, end)
    day = local_date("created_at", since, until, vendor=connections[records.db].vendor)
    rows = (
        records.annotate(day=day)
        .values("day")
        .annotate(
            spend=Sum("cost", default=Decimal(0)),
            input_tokens=Sum("input_tokens", default=0),
            output_tokens=Sum("output_tokens", default=0),
            cached_tokens=Sum("cached_tokens", default=0),
        )
        .order_by()
    )
    found = {row["day"]: row for row in rows}
    empty = {"spend": Decimal(0), "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0}
    days = (start + timedelta(days=offset) for offset in range((end - start).days + 1))
    return [{**(found.get(day) or empty), "day": day} for day in days]


SPEND_GROUPS = {"model": ("provider", "model"), "provider": ("provider",), "operation": ("operation",)}
TOP = 8  # bars in a "by" chart; the rest are summed as "Other"


def spend_by(records: QuerySet, group: str) -> list[dict]:
    """Spend and calls per model, provider or operation, most expensive first, unpriced calls
    counted apart; past the first ``TOP``, the rest as one "Other" row."""
    fields = SPEND_GROUPS[group]
    rows = list(
        records.values(*fields)
        .annotate(
            spend=Sum("cost", default=Decimal(0)),
            calls=Count("id"),
            unpriced=Count("id", filter=Q(cost__isnull=True) & ~Q(status=UsageRecord.Status.CACHE_HIT)),
        )
        .order_by("-spend", *fields)
    )
    for row in rows:
        row["label"] = " / ".join(row[name] for name in fields)
    if len(rows) > TOP:
        rest = rows[TOP - 1 :]
        other = {
            "label": f"Other ({len(rest)})",
            "spend": sum((row["spend"] for row in rest), Decimal(0)),
            "calls": sum(row["calls"] for row in rest),
            "unpriced": sum(row["unpriced"] for row in rest),
        }
        rows = [*rows[: TOP - 1], other]
    return rows


@dataclass(frozen=True)
class Tile:
    label: str
    amount: Decimal
    period: str  # of the budget it is measured against
    budget: Budget | None = None
    note: str = ""

    @property
    def share(self) -> int | None:
        """Percent of the budget, for the bar (not capped: over 100 shows as over)."""
        if self.budget is None:
            return None
        return int(self.amount * 100 / self.budget.limit)


def unpriced_models() -> list[ModelChoice]:
    """Enabled models with neither an override nor a genai-prices price: their calls cost unknown."""
    usable = list(ModelChoice.objects.usable())
    overridden = price_overrides(model_ids=[choice.pk for choice in usable])
    return [
        choice
        for choice in usable
        if choice.pk not in overridden
        and catalog_prices(choice.provider.price_catalog, choice.model_id) is None
    ]


def cost_dashboard(*, scope: Scope, start: date, end: date, now: datetime | None = None) -> dict:
    """Everything the dashboard page shows, in a fixed number of queries whatever the records."""
    now = now or timezone.now()
    budgets = scope.budgets()
    month_start, _ = period_bounds(Budget.Period.MONTHLY, now)
    today_start, tomorrow = period_bounds(Budget.Period.DAILY, now)
    window_start = min(month_start, today_start - timedelta(days=WINDOW_DAYS))
    daily = daily_spend(scope.records(), window_start, tomorrow)
    monthly = budgets.get(Budget.Period.MONTHLY)
    outlook = forecast(daily, now, monthly.limit if monthly else None)
    in_range = usage_in_range(scope=scope, start=start, end=end)
    totals = range_totals(in_range)
    if outlook.crossed:
        crossing = f"The monthly budget was crossed on {outlook.crossing:%b} {outlook.crossing.day}."
    elif outlook.crossing:
        crossing = (
            f"At this rate the monthly budget is crossed on {outlook.crossing:%b} {outlook.crossing.day}."
        )
    else:
        crossing = "At this rate the monthly budget holds this month." if monthly else ""
    tiles = [
        Tile("Today", daily.get(today_start.date(), Decimal(0)), "daily", budgets.get(Budget.Period.DAILY)),
        Tile("This month", outlook.month_to_date, "monthly", monthly),
        Tile("Month-end forecast", outlook.month_end, "monthly", monthly, crossing),
    ]
    since, until = range_bounds(start, end)
    runs = (
        scope.runs()
        .filter(created_at__gte=since, created_at__lt=until, cost__gt=0)
        .select_related("prompt", "owner")
        .only(
            "id",
            "cost",
            "model",
            "provider",
            "created_at",
            "owner__username",
            "prompt__title",
            "unpriced_calls",
        )
        .order_by("-cost", "-id")[:10]
    )
    alerts = (
        BudgetAlert.objects.filter(created_at__gte=since, created_at__lt=until)
        .filter(Q(budget__user__isnull=True) if scope.site else Q(budget__user_id=scope.user_id))
        .select_related("budget__user")[:10]
    )
    return {
        "tiles": tiles,
        "totals": totals,
        "forecast": outlook,
        "expensive_runs": list(runs),
        "alerts": list(alerts),
        "unpriced_models": unpriced_models(),
    }
