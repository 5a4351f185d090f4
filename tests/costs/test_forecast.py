from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from costs.budgets import local_midnight
from costs.forecast import forecast
from costs.models import Budget, UsageRecord
from costs.selectors import per_day
from costs.services import usage_record_create
from costs.usage_days import forget_usage_days, usage_days
from tests.costs.test_dashboard import record, today_at

D = Decimal


def constant(rate: str, first: date, last: date) -> dict[date, Decimal]:
    return {first + timedelta(days=n): D(rate) for n in range((last - first).days + 1)}


def test_a_constant_rate_projects_the_rest_of_the_month(settings):
    settings.TIME_ZONE = "UTC"
    daily = constant("1.00", date(2026, 6, 1), date(2026, 6, 14)) | {date(2026, 6, 15): D("0.50")}

    result = forecast(daily, datetime(2026, 6, 15, 12, tzinfo=UTC), monthly_limit=D("25"))

    assert result.rate_per_day == D("1")
    assert result.month_to_date == D("14.50")
    assert result.month_end == D("30.00")  # 14.50 + half of today + 15 more days, at $1
    assert result.next_30_days == D("30")
    assert result.crossing == date(2026, 6, 25) and not result.crossed  # $15 by tonight, then 10 days


def test_recent_days_weigh_more():
    daily = constant("1.00", date(2026, 6, 1), date(2026, 6, 7)) | constant(
        "3.00", date(2026, 6, 8), date(2026, 6, 14)
    )

    rate = forecast(daily, datetime(2026, 6, 15, tzinfo=UTC)).rate_per_day

    assert D(2) < rate < D(3)  # the plain mean is 2; the last week counts more
    assert rate == (D(3) * sum(range(8, 15)) + D(1) * sum(range(1, 8))) / sum(range(1, 15))


def test_the_first_day_of_a_month_uses_last_months_days_and_counts_only_todays_spend(settings):
    settings.TIME_ZONE = "UTC"
    daily = constant("2.00", date(2026, 5, 1), date(2026, 5, 31)) | {date(2026, 6, 1): D("0.25")}

    result = forecast(daily, datetime(2026, 6, 1, 6, tzinfo=UTC), monthly_limit=D("100"))

    assert result.rate_per_day == D(2)
    assert result.month_to_date == D("0.25")  # May is not this month
    assert result.month_end == D("0.25") + D(2) * (D("0.75") + 29)
    assert result.crossing is None  # $60.25 by the end of June: under the limit


def test_december_ends_on_the_31st_and_does_not_run_into_january(settings):
    settings.TIME_ZONE = "UTC"
    daily = constant("10.00", date(2026, 12, 1), date(2026, 12, 19))

    result = forecast(daily, datetime(2026, 12, 20, tzinfo=UTC), monthly_limit=D("250"))

    assert result.month_end == D("190") + D(10) * 12  # the 20th to the 31st
    assert result.crossing == date(2026, 12, 25)  # $190 + $10 a day: $250 within the 25th
    assert forecast(daily, datetime(2026, 12, 20, tzinfo=UTC), monthly_limit=D("1000")).crossing is None


def test_a_month_with_no_spend_forecasts_nothing():
    result = forecast({}, datetime(2026, 6, 15, 12, tzinfo=UTC), monthly_limit=D("10"))

    assert (result.rate_per_day, result.month_end, result.next_30_days) == (None, None, None)
    assert result.month_to_date == 0 and result.days_used == 0 and not result.enough_history
    assert result.crossing is None and not result.crossed


def test_a_budget_already_crossed_says_on_which_day(settings):
    settings.TIME_ZONE = "UTC"
    daily = constant("4.00", date(2026, 6, 1), date(2026, 6, 10))

    result = forecast(daily, datetime(2026, 6, 10, 18, tzinfo=UTC), monthly_limit=D("10"))

    assert result.crossed and result.crossing == date(2026, 6, 3)


@pytest.mark.parametrize(
    ("daily", "days_used"),
    [
        ({date(2026, 6, 15): D("0.73")}, 0),  # one morning
        ({date(2026, 6, 13): D("1"), date(2026, 6, 14): D("1"), date(2026, 6, 15): D("1")}, 2),
    ],
)
def test_fewer_than_three_complete_days_of_spend_make_no_forecast(settings, daily, days_used):
    settings.TIME_ZONE = "UTC"

    result = forecast(daily, datetime(2026, 6, 15, 6, tzinfo=UTC), monthly_limit=D("1"))

    assert not result.enough_history and result.days_used == days_used
    assert (result.rate_per_day, result.month_end, result.next_30_days) == (None, None, None)
    assert result.month_to_date == sum(daily.values())  # a fact, not a forecast
    assert result.crossed == (result.month_to_date >= 1) and (result.crossing is None) == (not result.crossed)


def test_three_complete_days_of_spend_make_a_forecast_from_them(settings):
    settings.TIME_ZONE = "UTC"
    daily = constant("1.00", date(2026, 6, 12), date(2026, 6, 14))

    result = forecast(daily, datetime(2026, 6, 15, 12, tzinfo=UTC))

    assert result.enough_history and result.days_used == 3 and result.rate_per_day == D(1)


def test_the_dashboard_says_there_is_not_enough_history_and_how_many_days_it_used(owner, client):
    Budget.objects.create(user=owner, period="monthly", limit=Decimal("100"))
    yesterday = timezone.localdate() - timedelta(days=1)
    record(owner, local_midnight(yesterday) + timedelta(hours=9), "0.50")
    record(owner, today_at(0), "0.73")
    client.force_login(owner)

    page = client.get(reverse("costs:dashboard")).content.decode()

    assert "Not enough history to forecast: 1 complete day of spend so far, 3 needed." in page
    assert "Not enough history to forecast (1 of the 3 complete days of spend it needs)." in page
    assert "At this rate" not in page and "a day;" not in page

    record(owner, local_midnight(yesterday - timedelta(days=2)) + timedelta(hours=9), "0.50")
    forget_usage_days()  # a record written into a past day, as a restore does
    page = client.get(reverse("costs:dashboard")).content.decode()

    assert "Forecast from the last 3 complete days:" in page and "Not enough history" not in page


def test_the_day_the_clocks_go_forward_has_23_hours(settings):
    settings.TIME_ZONE = "Europe/Paris"
    daily = constant("2.30", date(2026, 3, 15), date(2026, 3, 28))
    now = datetime.fromisoformat("2026-03-29 12:00+02:00")  # 11 real hours after local midnight

    result = forecast(daily, now)

    expected = sum(daily.values()) + D("2.30") * (D(12) / D(23) + 2)  # not 12/24 of the day left
    assert round(result.month_end, 12) == round(expected, 12)


@pytest.mark.django_db
def test_daily_spend_groups_by_local_day_across_the_clock_change(settings):
    settings.TIME_ZONE = "Europe/Paris"
    for at, cost in [
        ("2026-03-28 22:30+00:00", "1"),  # 23:30 on the 28th in Paris (+01:00)
        ("2026-03-28 23:30+00:00", "2"),  # 00:30 on the 29th
        ("2026-03-29 21:30+00:00", "4"),  # 23:30 on the 29th (+02:00)
        ("2026-03-29 22:30+00:00", "8"),  # 00:30 on the 30th
    ]:
        usage_record_create(
            user_id=None, run_id=None, provider="OpenAI", model="m", operation="design", cost=D(cost),
            latency_ms=1, status=UsageRecord.Status.OK,
        )  # fmt: skip
        UsageRecord.objects.filter(pk=UsageRecord.objects.latest("id").pk).update(
            created_at=datetime.fromisoformat(at)
        )

    march = per_day(usage_days(user_id=None, start=date(2026, 3, 1), end=date(2026, 3, 31)), date(2026, 3, 1),
                    date(2026, 3, 31))  # fmt: skip
    days = {row["day"]: row["spend"] for row in march if row["spend"]}

    assert days == {date(2026, 3, 28): D(1), date(2026, 3, 29): D(6), date(2026, 3, 30): D(8)}
