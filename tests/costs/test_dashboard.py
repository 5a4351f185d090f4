"""The cost dashboard: tiles, charts (django-chartjs JSON views), tables, date range, CSV export."""

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from costs.budgets import local_midnight
from costs.models import Budget, UsageRecord
from costs.usage_days import SETTLED_AFTER, dollars, forget_usage_days, usage_days
from optimizer.models import ModelChoice, OptimizationRun, Prompt, Provider

pytestmark = pytest.mark.django_db
CHARTS = [
    "chart-spend-per-day",
    "chart-tokens-per-day",
    "chart-by-model",
    "chart-by-provider",
    "chart-by-operation",
]


def record(user, when: datetime, cost: str | None = "0.01", **fields) -> UsageRecord:
    values = {
        "provider": "OpenAI",
        "model": "gpt-5-mini",
        "operation": "design",
        "input_tokens": 1000,
        "output_tokens": 200,
        "cached_tokens": 400,
        "status": UsageRecord.Status.OK,
    } | fields
    created = UsageRecord.objects.create(
        user=user, cost=None if cost is None else Decimal(cost), latency_ms=10, **values
    )
    UsageRecord.objects.filter(pk=created.pk).update(created_at=when)
    return created


def today_at(hour: int) -> datetime:
    return local_midnight(timezone.localdate()) + timedelta(hours=hour)


def chart(client, name: str, **query) -> dict:
    response = client.get(reverse(f"costs:{name}"), query)
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    return response.json()


def test_a_user_sees_only_their_own_spend_in_tiles_charts_and_export(owner, other_user, client):
    record(owner, today_at(1), "0.25")
    record(other_user, today_at(1), "7.00", model="gpt-5")
    client.force_login(owner)

    page = client.get(reverse("costs:dashboard")).content.decode()

    assert "$0.25" in page and "$7.00" not in page and "Your calls." in page
    by_model = chart(client, "chart-by-model")
    assert by_model["labels"] == ["OpenAI / gpt-5-mini"] and by_model["datasets"][0]["data"] == [0.25]
    assert "view" not in by_model
    rows = list(
        csv.reader(
            io.StringIO(b"".join(client.get(reverse("costs:usage-export")).streaming_content).decode())
        )
    )
    assert len(rows) == 2 and rows[1][1] == owner.username


def test_staff_see_the_whole_site_or_only_their_own(staff_user, owner, client):
    record(owner, today_at(1), "0.25")
    record(staff_user, today_at(2), "1.00")
    client.force_login(staff_user)

    site = chart(client, "chart-spend-per-day")
    mine = chart(client, "chart-spend-per-day", scope="mine")

    assert site["datasets"][0]["data"][-1] == 1.25
    assert mine["datasets"][0]["data"][-1] == 1.0
    assert "Every user's calls." in client.get(reverse("costs:dashboard")).content.decode()


def test_spend_per_day_counts_local_days_and_fills_the_days_without_calls(owner, client, settings):
    settings.TIME_ZONE = "America/New_York"
    late_evening = datetime(2026, 11, 10, 3, 30, tzinfo=UTC)  # Nov 9, 22:30 in New York
    record(owner, late_evening, "0.50")
    record(owner, datetime(2026, 11, 11, 15, 0, tzinfo=UTC), "0.20")
    client.force_login(owner)

    data = chart(client, "chart-spend-per-day", start="2026-11-08", end="2026-11-12")

    assert data["labels"] == ["2026-11-08", "2026-11-09", "2026-11-10", "2026-11-11", "2026-11-12"]
    assert data["datasets"][0]["data"] == [0, 0.5, 0, 0.2, 0]
    assert data["datasets"][0]["label"] == "Spend (USD)"


def test_tokens_per_day_has_input_cached_and_output_series(owner, client):
    record(owner, today_at(1))
    record(owner, today_at(2), cached_tokens=0)
    client.force_login(owner)

    data = chart(client, "chart-tokens-per-day")

    series = {dataset["label"]: dataset["data"][-1] for dataset in data["datasets"]}
    assert series == {
        "Input tokens (cached included)": 2000,
        "Cached input tokens": 400,
        "Output tokens": 400,
    }


def test_spend_by_provider_and_stage_most_expensive_first_with_the_rest_as_other(owner, client):
    for index in range(10):
        record(owner, today_at(1), f"0.0{index}", model=f"model-{index}", operation=f"op-{index}")
    record(owner, today_at(1), "0.30", provider="Anthropic", operation="design")
    client.force_login(owner)

    providers = chart(client, "chart-by-provider")
    stages = chart(client, "chart-by-operation")
    models = chart(client, "chart-by-model")

    assert providers["labels"] == ["OpenAI", "Anthropic"]
    assert providers["datasets"][0]["data"] == [0.45, 0.3]
    assert providers["datasets"][1]["data"] == [10, 1]
    assert stages["labels"][0] == "Design" and len(stages["labels"]) == 8
    assert stages["labels"][-1] == "Other (4)"
    assert models["labels"][-1].startswith("Other (")
    assert sum(models["datasets"][0]["data"]) == pytest.approx(0.75)


def test_stages_are_named_as_people_read_them(owner, client):
    record(owner, today_at(1), "0.02", operation="deconstruct:repair")
    record(owner, today_at(1), "0.01", operation="deconstruct")
    client.force_login(owner)

    assert chart(client, "chart-by-operation")["labels"] == ["Deconstruct (repair)", "Deconstruct"]


@pytest.mark.parametrize("name", ["chart-by-model", "chart-by-provider", "chart-by-operation"])
def test_the_by_charts_show_calls_when_nothing_in_the_range_has_a_price(owner, client, name):
    record(owner, today_at(1), None, provider="Local", model="llama3.1:8b")
    client.force_login(owner)

    spend, calls = chart(client, name)["datasets"]

    assert (spend["label"], spend["hidden"], spend["yAxisID"]) == ("Spend (USD)", True, "usd")
    assert (calls["label"], calls["hidden"], calls["yAxisID"], calls["data"]) == (
        "Calls",
        False,
        "count",
        [1],
    )

    record(owner, today_at(2), "0.01")
    spend, calls = chart(client, name)["datasets"]

    assert not spend["hidden"] and calls["hidden"]  # calls from the legend, on their own axis


def test_daily_sums_are_bars_and_counts_have_their_own_axis(owner, client):
    client.force_login(owner)

    page = client.get(reverse("costs:dashboard")).content.decode()

    for name in CHARTS:
        assert f'data-chart-url="{reverse(f"costs:{name}")}?' in page
    assert page.count('data-chart-type="bar"') == len(CHARTS)  # a day's spend rose as a line to one point
    tokens = chart(client, "chart-tokens-per-day")["datasets"]
    assert {dataset["yAxisID"] for dataset in tokens} == {"count"}  # whole-number ticks, 0 and 1 when empty
    assert [dataset["yAxisID"] for dataset in chart(client, "chart-spend-per-day")["datasets"]] == ["usd"]


def test_the_range_filters_charts_tables_and_export(owner, client):
    prompt = Prompt.objects.create(owner=owner, title="Old one", text="x")
    old_run = OptimizationRun.objects.create(owner=owner, prompt=prompt, status="done", cost=Decimal("0.9"))
    OptimizationRun.objects.filter(pk=old_run.pk).update(created_at=timezone.now() - timedelta(days=60))
    new_run = OptimizationRun.objects.create(owner=owner, prompt=prompt, status="done", cost=Decimal("0.1"))
    record(owner, timezone.now() - timedelta(days=60), "0.90", run=old_run)
    record(owner, timezone.now(), "0.10", run=new_run)
    client.force_login(owner)

    default = client.get(reverse("costs:dashboard")).content.decode()
    older = timezone.localdate() - timedelta(days=70)
    wide = client.get(reverse("costs:dashboard"), {"start": older.isoformat()}).content.decode()

    assert "$0.10" in default and "$0.90" not in default
    assert f"/runs/{new_run.pk}/" in default and f"/runs/{old_run.pk}/" not in default
    assert "$1.00" in wide and f"/runs/{old_run.pk}/" in wide
    export = b"".join(
        client.get(reverse("costs:usage-export"), {"start": older.isoformat()}).streaming_content
    )
    assert export.decode().count("\r\n") == 3  # header and both records


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"start": "2026-11-20", "end": "2026-11-01"}, "The start date is after the end date"),
        ({"start": "2024-01-01", "end": "2026-11-01"}, "Pick a range of at most 366 days."),
        ({"start": "last tuesday"}, "Enter the dates as YYYY-MM-DD."),
        # the calendar's edges: 29 days before, the day after, or midnight in UTC fall outside any date
        ({"end": "0001-01-01"}, "Enter a date from 1900-01-01 to 2999-12-31."),
        ({"end": "0001-01-29"}, "Enter a date from 1900-01-01 to 2999-12-31."),
        ({"end": "9999-12-31"}, "Enter a date from 1900-01-01 to 2999-12-31."),
        ({"start": "9999-12-31", "end": "9999-12-31"}, "Enter a date from 1900-01-01 to 2999-12-31."),
        ({"start": "0001-01-01", "end": "0001-01-02"}, "Enter a date from 1900-01-01 to 2999-12-31."),
    ],
)
def test_a_bad_range_says_what_to_do_and_shows_the_last_30_days(owner, client, query, message):
    client.force_login(owner)

    response = client.get(reverse("costs:dashboard"), query)

    assert response.status_code == 200
    page = response.content.decode()
    assert message in page and "(30 days)" in page
    for name in CHARTS:  # not another range's figures
        chart = client.get(reverse(f"costs:{name}"), query)
        assert chart.status_code == 400 and message in chart.json()["error"], name
    export = client.get(reverse("costs:usage-export"), query)
    assert export.status_code == 400 and not export.streaming and message in export.content.decode()


def test_the_widest_range_a_day_field_takes_is_served(owner, client, settings):
    settings.TIME_ZONE = "Asia/Tokyo"  # east of UTC: the first midnight is the day before in UTC
    client.force_login(owner)
    for query in ({"start": "1900-01-01", "end": "1900-01-01"}, {"start": "2999-12-31", "end": "2999-12-31"}):
        assert client.get(reverse("costs:dashboard"), query).status_code == 200, query
        for name in CHARTS:
            assert client.get(reverse(f"costs:{name}"), query).status_code == 200, (name, query)
        export = b"".join(client.get(reverse("costs:usage-export"), query).streaming_content)
        assert export.decode("utf-8-sig").startswith("created_at,user,run_id"), query


def test_tiles_measure_today_and_the_month_against_the_budgets_with_the_forecast_method(owner, client):
    Budget.objects.create(user=owner, period="daily", limit=Decimal("1"), mode="hard")
    Budget.objects.create(user=owner, period="monthly", limit=Decimal("100"))
    record(owner, today_at(0), "0.40")
    client.force_login(owner)

    page = client.get(reverse("costs:dashboard")).content.decode()

    assert 'value="40"' in page and "40% of the daily budget, $1.00 (hard)" in page
    assert "of the monthly budget, $100.00 (soft)" in page
    assert "weighted moving average of the last 14 complete days" in page
    Budget.objects.filter(period="daily").update(limit=Decimal("100"))  # $0.40 of it: not "0%"
    assert "under 1% of the daily budget" in client.get(reverse("costs:dashboard")).content.decode()


def test_unpriced_models_and_calls_are_flagged_not_counted_as_free(owner, staff_client, staff_user):
    local = Provider.objects.create(name="Local", kind="openai", base_url="http://127.0.0.1:9/v1")
    ModelChoice.objects.create(provider=local, model_id="llama3.1:8b")
    record(staff_user, today_at(1), None, provider="Local", model="llama3.1:8b")

    page = staff_client.get(reverse("costs:dashboard")).content.decode()

    assert "Unpriced: Local / llama3.1:8b (" in page
    assert "1 call went to models with no known price" in page
    link = f"{reverse('admin:costs_modelprice_add')}?model={local.models.get().pk}"
    assert f'<a href="{link}">add a price</a>' in page
    form = staff_client.get(link).content.decode()
    assert f'<option value="{local.models.get().pk}" selected>Local · llama3.1:8b</option>' in form


def test_the_export_streams_records_with_formulas_escaped(owner, client):
    record(owner, today_at(1), "0.012", operation='=HYPERLINK("http://evil")', model="+cmd|' /C calc'!A0")
    client.force_login(owner)

    response = client.get(reverse("costs:usage-export"))

    assert response.streaming and response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    header, row = list(csv.reader(io.StringIO(text)))
    values = dict(zip(header, row, strict=True))
    assert values["operation"] == '\'=HYPERLINK("http://evil")' and values["model"] == "'+cmd|' /C calc'!A0"
    assert values["cost_usd"] == "0.012" and values["cached_tokens"] == "400"
    assert values["created_at"].startswith(str(today_at(1).astimezone(UTC).date()))


CULL_CHECK = 'SELECT COUNT(*) FROM "django_cache"'  # the database cache's, once every 64 stores a process


def _query_counts(client) -> list[int]:
    """The queries of each view, the cache's occasional cull check left out: whether it falls into a
    measurement depends on how many stores the process made before, not on the records."""
    counts = []
    for name in ["dashboard", "usage-export", *CHARTS]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse(f"costs:{name}"))
            if response.streaming:
                b"".join(response.streaming_content)
        counts.append(sum(CULL_CHECK not in query["sql"] for query in queries.captured_queries))
    return counts


@pytest.mark.parametrize("viewer", ["owner", "staff_user"])
def test_the_query_count_does_not_grow_with_the_records(owner, staff_user, client, viewer):
    """The page, the export and every chart cost the same queries with 3 runs as with 60 (of two users,
    with records today and on 20 past days, over 12 models, 5 providers and 4 stages), for a user and
    for staff (the whole site's records, owners named)."""
    client.force_login(owner if viewer == "owner" else staff_user)
    prompts = {
        user: Prompt.objects.create(owner=user, title=f"p {user}", text="x") for user in (owner, staff_user)
    }
    Budget.objects.create(user=owner, period="monthly", limit=Decimal("100"))
    Budget.objects.create(user=None, period="daily", limit=Decimal("50"))

    def add(start: int, count: int) -> None:
        for index in range(start, start + count):
            user = staff_user if index % 3 == 0 else owner
            run = OptimizationRun.objects.create(
                owner=user, prompt=prompts[user], status="done", cost=Decimal("0.2"), model=f"m{index % 12}"
            )
            for when in (timezone.now() - timedelta(days=1 + index % 20), today_at(0)):
                record(
                    user, when, "0.1", run=run, model=f"m{index % 12}", provider=f"P{index % 5}",
                    operation=("deconstruct", "diagnose", "design", "evaluate")[index % 4],
                )  # fmt: skip

    def measure() -> tuple[list[int], list[int]]:
        forget_usage_days()  # the records were backdated, as real ones never are
        return _query_counts(client), _query_counts(client)  # past days computed, then kept

    add(0, 3)
    few_cold, few_warm = measure()
    add(3, 57)
    many_cold, many_warm = measure()

    assert few_cold == many_cold and few_warm == many_warm
    assert many_warm[0] <= 12 and max(many_warm[2:]) <= 5  # session, user, cache reads, today's records


def test_every_costs_view_needs_a_login(client):
    for name in ["dashboard", "usage-export", *CHARTS]:
        response = client.get(reverse(f"costs:{name}"))
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_history_and_the_result_page_show_each_runs_cost(owner_client, owner):
    prompt = Prompt.objects.create(owner=owner, title="Priced", text="Write a haiku")
    run = OptimizationRun.objects.create(
        owner=owner, prompt=prompt, status="done", cost=Decimal("0.0123"), optimized_text="Write a haiku."
    )

    assert "0.0123" in owner_client.get(reverse("optimizer:history")).content.decode()
    assert "0.0123" in owner_client.get(reverse("optimizer:run", args=[run.pk])).content.decode()


@pytest.mark.parametrize(
    ("tz", "moments", "expected"),
    [
        (  # the clocks go back on Oct 25 at 01:00 UTC: +2 before, +1 after
            "Europe/Paris",
            [(2026, 10, 24, 21, 59), (2026, 10, 24, 22, 30), (2026, 10, 25, 22, 59), (2026, 10, 25, 23, 0)],
            {"2026-10-24": 1, "2026-10-25": 2, "2026-10-26": 1},
        ),
        (  # the clocks go forward on Mar 8 at 07:00 UTC: -5 before, -4 after
            "America/New_York",
            [(2026, 3, 8, 4, 59), (2026, 3, 8, 5, 0), (2026, 3, 9, 3, 59), (2026, 3, 9, 4, 0)],
            {"2026-03-07": 1, "2026-03-08": 2, "2026-03-09": 1},
        ),
        (  # a zone 5:45 ahead of UTC, no DST
            "Asia/Kathmandu",
            [(2026, 5, 1, 18, 14), (2026, 5, 1, 18, 15)],
            {"2026-05-01": 1, "2026-05-02": 1},
        ),
    ],
)
def test_chart_days_are_local_days_across_a_dst_change(owner, client, settings, tz, moments, expected):
    settings.TIME_ZONE = tz
    for moment in moments:
        record(owner, datetime(*moment, tzinfo=UTC), "1")
    client.force_login(owner)
    days = sorted(expected)

    data = chart(client, "chart-spend-per-day", start=days[0], end=days[-1])

    assert dict(zip(data["labels"], data["datasets"][0]["data"], strict=True)) == expected
    assert date.fromisoformat(days[0]).isoformat() == data["labels"][0]


def test_the_built_in_engine_is_left_out_of_the_charts_but_not_out_of_the_export(owner, client):
    record(owner, today_at(1), "0.02")
    record(
        owner, today_at(1), "0", provider="Built-in engine", model="builtin", input_tokens=0, output_tokens=0
    )
    client.force_login(owner)

    providers = chart(client, "chart-by-provider")
    page = client.get(reverse("costs:dashboard")).content.decode()
    export = b"".join(client.get(reverse("costs:usage-export")).streaming_content).decode()

    assert providers["labels"] == ["OpenAI"]
    assert "over 1 call:" in page
    assert "Built-in engine,builtin" in export


def test_past_days_are_summed_once_and_today_is_always_read(owner, client):
    past = timezone.localdate() - timedelta(days=2)  # ended long ago, whatever the time now
    record(owner, local_midnight(past) + timedelta(hours=12), "0.50")
    record(owner, today_at(0), "0.25")
    client.force_login(owner)

    def past_and_today() -> list[float]:
        data = chart(client, "chart-spend-per-day")["datasets"][0]["data"]
        return [data[-3], data[-1]]

    first = past_and_today()
    record(owner, local_midnight(past) + timedelta(hours=13), "4.00")  # written into the past
    record(owner, today_at(0), "1.00")  # a call that just ended
    second = past_and_today()
    forget_usage_days()  # what a restore calls
    third = past_and_today()

    assert first == [0.5, 0.25]
    assert second == [0.5, 1.25]  # the past day came from the cache, today from the records
    assert third == [4.5, 1.25]


def test_a_day_is_kept_only_once_it_ended_a_while_ago(owner):
    today = timezone.localdate()
    yesterday = today - timedelta(days=1)
    just_after_midnight = local_midnight(today) + SETTLED_AFTER / 2
    record(owner, local_midnight(yesterday) + timedelta(hours=12), "0.50")

    usage_days(user_id=owner.pk, start=yesterday, end=yesterday, now=just_after_midnight)
    record(owner, local_midnight(today) - timedelta(seconds=1), "0.25")  # committed late
    late = usage_days(user_id=owner.pk, start=yesterday, end=yesterday, now=just_after_midnight)

    assert dollars(sum(group.spend_units for group in late)) == Decimal("0.75")


def test_kept_days_belong_to_their_scope(owner, other_user, staff_user, client):
    day = timezone.localdate() - timedelta(days=3)
    record(owner, local_midnight(day) + timedelta(hours=9), "0.30")
    record(other_user, local_midnight(day) + timedelta(hours=9), "0.70", model="gpt-5")
    client.force_login(staff_user)

    site = chart(client, "chart-by-model")["datasets"][0]["data"]
    mine = chart(client, "chart-by-model", scope="mine")["datasets"][0]["data"]
    client.force_login(owner)
    owners = chart(client, "chart-by-model")["datasets"][0]["data"]

    assert (site, mine, owners) == ([0.7, 0.3], [], [0.3])


def test_a_range_across_months_adds_up_kept_and_fresh_days(owner):
    today = timezone.localdate()
    first_of_month = today.replace(day=1)
    last_month_end = first_of_month - timedelta(days=1)
    record(owner, local_midnight(last_month_end) + timedelta(hours=20), "1.00", operation="design")
    record(owner, local_midnight(last_month_end) + timedelta(hours=21), "2.00", operation="evaluate")
    record(owner, today_at(0), "0.10")
    start = last_month_end - timedelta(days=2)

    usage_days(user_id=owner.pk, start=last_month_end, end=last_month_end)  # one month's entry kept
    groups = usage_days(user_id=owner.pk, start=start, end=today)

    assert dollars(sum(group.spend_units for group in groups)) == Decimal("3.10")
    assert {(group.day, group.operation) for group in groups if group.day == last_month_end} == {
        (last_month_end, "design"),
        (last_month_end, "evaluate"),
    }
