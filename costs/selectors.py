"""Reads of the costs app that take more than a line."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from operator import attrgetter

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from costs.budgets import period_bounds, range_bounds
from costs.forecast import WINDOW_DAYS, forecast
from costs.models import BUILTIN_PROVIDER, Budget, BudgetAlert, UsageRecord
from costs.snapshot import Snapshot, current
from costs.usage_days import UsageGroup, dollars, usage_days
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


def price_overrides(
    *, model_ids: Iterable[int], at: datetime | None = None, snapshot: Snapshot | None = None
) -> dict[int, PricePerMillion]:
    """Each model's admin-set price in force at ``at`` (now by default), for the models that have one;
    the others are priced by genai-prices. From the per-process snapshot (``costs.snapshot``): no
    query while nothing changed."""
    snapshot = snapshot or current()
    found = {model_id: snapshot.price(model_id, at) for model_id in model_ids}
    return {model_id: price for model_id, price in found.items() if price is not None}


def price_override(
    *, model_id: int, at: datetime | None = None, snapshot: Snapshot | None = None
) -> PricePerMillion | None:
    return (snapshot or current()).price(model_id, at)


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


def usage_in_range(*, scope: Scope, start: date, end: date) -> QuerySet:
    """The scope's usage records of the range, the built-in engine's (free, tokenless) ones included:
    what the export writes. The dashboard counts model calls only (``usage_days``)."""
    since, until = range_bounds(start, end)
    return scope.records().filter(created_at__gte=since, created_at__lt=until)


TOTALS = ("spend", "saved", "calls", "hits", "unpriced", "input_tokens", "output_tokens", "cached_tokens")


def _summed(groups: list[UsageGroup], names: tuple[str, ...] = TOTALS) -> dict:
    """The sums of ``names`` over ``groups``; "spend" and "saved" in dollars."""
    columns = dict(zip(UsageGroup._fields, zip(*groups, strict=True), strict=False))  # {} for no groups
    totals = {}
    for name in names:
        money = name in ("spend", "saved")
        total = sum(columns.get(f"{name}_units" if money else name, ()))
        totals[name] = dollars(total) if money else total
    return totals


def range_totals(groups: list[UsageGroup]) -> dict:
    """Spend, savings, calls and tokens of a range's usage (see ``usage_days``)."""
    return _summed(groups)


DAY_TOTALS = ("spend", "input_tokens", "output_tokens", "cached_tokens")


def _gathered(groups: list[UsageGroup], *fields: str) -> dict:
    """``groups`` by the value of ``fields`` (a tuple of them for more than one)."""
    key = attrgetter(*fields)
    gathered: dict = {}
    for group in groups:
        gathered.setdefault(key(group), []).append(group)
    return gathered


def per_day(groups: list[UsageGroup], start: date, end: date) -> list[dict]:
    """Spend and tokens of each local day from ``start`` to ``end``, days without calls included."""
    by_day = _gathered(groups, "day")
    days = (start + timedelta(days=offset) for offset in range((end - start).days + 1))
    return [{**_summed(by_day.get(day, []), DAY_TOTALS), "day": day} for day in days]


SPEND_GROUPS = {"model": ("provider", "model"), "provider": ("provider",), "operation": ("operation",)}
TOP = 8  # bars in a "by" chart; the rest are summed as "Other"


def operation_label(operation: str) -> str:
    """An operation as people read it: "deconstruct:repair" is "Deconstruct (repair)"."""
    name, _, detail = operation.partition(":")
    label = name.replace("_", " ")
    label = label[:1].upper() + label[1:]
    return f"{label} ({detail.replace(':', ', ')})" if detail else label


def spend_by(groups: list[UsageGroup], group: str) -> list[dict]:
    """Spend and calls per model, provider or operation, most expensive first, unpriced calls
    counted apart; past the first ``TOP``, the rest as one "Other" row."""
    rows = [
        {"label": operation_label(names) if group == "operation" else _joined(names)}
        | _summed(items, ("spend", "calls", "unpriced"))
        for names, items in _gathered(groups, *SPEND_GROUPS[group]).items()
    ]
    rows.sort(key=lambda row: (-row["spend"], row["label"]))
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


def _joined(names: str | tuple[str, ...]) -> str:
    return names if isinstance(names, str) else " / ".join(names)


def _within(groups: list[UsageGroup], start: date, end: date) -> list[UsageGroup]:
    return [group for group in groups if start <= group.day <= end]


@dataclass(frozen=True)
class Tile:
    label: str
    amount: Decimal | None  # None: no figure (a forecast without enough history)
    period: str  # of the budget it is measured against
    budget: Budget | None = None
    note: str = ""

    @property
    def share(self) -> int | None:
        """Percent of the budget, for the bar (not capped: over 100 shows as over)."""
        if self.budget is None or self.amount is None:
            return None
        return int(self.amount * 100 / self.budget.limit)

    @property
    def share_text(self) -> str:
        """The percent in words: a spend too small to reach 1% is not "0%"."""
        return "under 1%" if self.share == 0 and self.amount > 0 else f"{self.share}%"


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
    today_start, _ = period_bounds(Budget.Period.DAILY, now)
    window_start = min(month_start, today_start - timedelta(days=WINDOW_DAYS))
    first, today = window_start.date(), today_start.date()
    if start <= today and end >= first:  # as usual, the range and the forecast's days overlap: one read
        usage = usage_days(user_id=scope.user_id, start=min(start, first), end=max(end, today), now=now)
        recent, in_range = _within(usage, first, today), _within(usage, start, end)
    else:
        recent = usage_days(user_id=scope.user_id, start=first, end=today, now=now)
        in_range = usage_days(user_id=scope.user_id, start=start, end=end, now=now)
    daily = {row["day"]: row["spend"] for row in per_day(recent, first, today)}
    monthly = budgets.get(Budget.Period.MONTHLY)
    outlook = forecast(daily, now, monthly.limit if monthly else None)
    totals = range_totals(in_range)
    if outlook.crossed:
        crossing = f"The monthly budget was crossed on {outlook.crossing:%b} {outlook.crossing.day}."
    elif outlook.crossing:
        crossing = (
            f"At this rate the monthly budget is crossed on {outlook.crossing:%b} {outlook.crossing.day}."
        )
    elif not outlook.enough_history:
        crossing = ""
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
