"""Where spending is heading: month-end spend, the next 30 days, and the day a monthly budget is
expected to be crossed.

The method, as the dashboard states it: the daily rate is a weighted moving average of the last 14
complete days in the site's time zone, the most recent day weighing most (weights 14 down to 1).
Days before the first recorded spend are left out, so a new installation is not dragged towards zero;
with fewer than ``MIN_DAYS`` complete days since the first spend there is no forecast (a morning's
pace is no rate). The rest of the month is projected at that rate, today counting for the part of it
still to come, measured in real hours (a day when the clocks change has 23 or 25).
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal

from costs.budgets import period_bounds
from costs.models import Budget

WINDOW_DAYS = 14
MIN_DAYS = 3  # complete days since the first spend that a forecast needs
METHOD = (
    "Daily rate: a weighted moving average of the last 14 complete days (yesterday weighs 14, "
    "14 days ago weighs 1; days before the first spend are left out; with fewer than 3 complete days "
    "since the first spend, no forecast). Month end: spend to date plus that rate over the rest of "
    "today and the days left in the month. Next 30 days: 30 times the rate."
)


@dataclass(frozen=True)
class Forecast:
    """None for the projections (rate, month end, next 30 days, a crossing to come) when fewer than
    ``MIN_DAYS`` complete days of spend are there to project from."""

    rate_per_day: Decimal | None
    month_to_date: Decimal
    month_end: Decimal | None
    next_30_days: Decimal | None
    crossing: date | None  # when the monthly limit is (or was) crossed this month; None: not this month
    crossed: bool  # already crossed
    days_used: int  # complete days the rate averages (those since the first spend, 14 at most)
    method: str = METHOD

    @property
    def enough_history(self) -> bool:
        return self.rate_per_day is not None


def forecast(daily: dict[date, Decimal], now: datetime, monthly_limit: Decimal | None = None) -> Forecast:
    """The forecast from ``daily`` (local date → spend; today's entry is spend so far)."""
    day_start, day_end = period_bounds(Budget.Period.DAILY, now)
    month_start, month_end_at = period_bounds(Budget.Period.MONTHLY, now)
    today, first_of_month, next_month = day_start.date(), month_start.date(), month_end_at.date()
    # In UTC: Python subtracts two datetimes of the same zone by wall clock, which gives 24 hours
    # for every day, the 23- and 25-hour ones included.
    day_start, day_end = day_start.astimezone(UTC), day_end.astimezone(UTC)
    elapsed = Decimal((now - day_start).total_seconds()) / Decimal((day_end - day_start).total_seconds())

    window = _window(daily, today)
    rate = _rate(daily, window) if len(window) >= MIN_DAYS else None
    month_to_date = sum((value for day, value in daily.items() if first_of_month <= day <= today), Decimal(0))
    days_left = (next_month - today).days - 1  # whole days after today

    crossing, crossed = None, False
    if monthly_limit is not None:
        crossing, crossed = _crossing(
            daily, first_of_month, today, month_to_date, rate, elapsed, days_left, monthly_limit
        )
    return Forecast(
        rate_per_day=rate,
        month_to_date=month_to_date,
        month_end=None if rate is None else month_to_date + rate * ((1 - elapsed) + days_left),
        next_30_days=None if rate is None else rate * 30,
        crossing=crossing,
        crossed=crossed,
        days_used=len(window),
    )


def _window(daily: dict[date, Decimal], today: date) -> list[date]:
    """The complete days the rate averages, yesterday first: the last 14, none before the first spend."""
    first_spend = min((day for day, value in daily.items() if value), default=None)
    if first_spend is None:
        return []
    window = [today - timedelta(days=back) for back in range(1, WINDOW_DAYS + 1)]
    return [day for day in window if day >= first_spend]


def _rate(daily: dict[date, Decimal], window: list[date]) -> Decimal:
    weights = range(WINDOW_DAYS, WINDOW_DAYS - len(window), -1)
    weighted = sum(
        (daily.get(day, Decimal(0)) * weight for day, weight in zip(window, weights, strict=True)), Decimal(0)
    )
    return weighted / sum(weights)


def _crossing(daily, first_of_month, today, month_to_date, rate, elapsed, days_left, limit):
    if month_to_date >= limit:
        running = Decimal(0)
        for day in sorted(day for day in daily if first_of_month <= day <= today):
            running += daily[day]
            if running >= limit:
                return day, True
    if rate is None or rate <= 0:
        return None, False
    remaining = limit - month_to_date
    rest_of_today = rate * (1 - elapsed)
    if remaining <= rest_of_today:
        return today, False
    more_days = int(((remaining - rest_of_today) / rate).to_integral_value(rounding=ROUND_CEILING))
    if more_days > days_left:
        return None, False
    return today + timedelta(days=more_days), False
