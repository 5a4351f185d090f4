import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from costs.budgets import BudgetGate, period_bounds, spend_reconcile, spent
from costs.models import Budget, BudgetAlert, BudgetReservation, BudgetSpend, UsageRecord
from costs.services import usage_record_create
from tests.support import PROJECT_ROOT, clean_env


def spend(amount: str, *, user=None, at: datetime | None = None) -> None:
    usage_record_create(
        user_id=getattr(user, "pk", None), run_id=None, provider="OpenAI", model="gpt-4o-mini",
        operation="design", cost=Decimal(amount), latency_ms=5, status=UsageRecord.Status.OK,
    )  # fmt: skip
    if at is not None:  # moved around the product, as a restore does: the running totals follow
        UsageRecord.objects.filter(pk=UsageRecord.objects.latest("id").pk).update(created_at=at)
        spend_reconcile()


def call(gate: BudgetGate, *, user=None, estimate: str, actual: str | None = None):
    """What the gateway does around one paid call."""
    decision = gate.reserve(user_id=getattr(user, "pk", None), estimated_cost=Decimal(estimate))
    if decision.allowed and actual is not None:
        spend(actual, user=user)
        gate.settle(decision)
    return decision


PARIS = "Europe/Paris"

# --- Periods --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "now", "period", "start", "end"),
    [
        # Local midnight, not UTC midnight: 23:30 UTC on the 14th is already the 15th in Paris.
        (PARIS, "2026-06-14 23:30+00:00", "daily", "2026-06-15 00:00+02:00", "2026-06-16 00:00+02:00"),
        (PARIS, "2026-06-14 21:30+00:00", "daily", "2026-06-14 00:00+02:00", "2026-06-15 00:00+02:00"),
        # December rolls into January of the next year.
        ("America/New_York",
         "2026-12-31 23:00-05:00", "monthly", "2026-12-01 00:00-05:00", "2027-01-01 00:00-05:00"),
        # The first instant of a month belongs to it.
        ("UTC", "2026-03-01 00:00+00:00", "monthly", "2026-03-01 00:00+00:00", "2026-04-01 00:00+00:00"),
        # The day clocks go forward has 23 hours; the month spans both offsets.
        (PARIS, "2026-03-29 12:00+02:00", "daily", "2026-03-29 00:00+01:00", "2026-03-30 00:00+02:00"),
        (PARIS, "2026-03-29 12:00+02:00", "monthly", "2026-03-01 00:00+01:00", "2026-04-01 00:00+02:00"),
    ],
)  # fmt: skip
def test_periods_follow_the_calendar_in_the_site_time_zone(settings, zone, now, period, start, end):
    settings.TIME_ZONE = zone
    got_start, got_end = period_bounds(period, datetime.fromisoformat(now))

    assert got_start == datetime.fromisoformat(start) and got_end == datetime.fromisoformat(end)
    assert got_start.utcoffset() == datetime.fromisoformat(start).utcoffset()


def test_a_daily_budget_starts_again_at_local_midnight(settings, owner):
    settings.TIME_ZONE = "Europe/Paris"
    budget = Budget.objects.create(period="daily", limit=Decimal("1.00"), mode="hard")
    spend("0.95", at=datetime(2026, 6, 14, 21, 59, tzinfo=UTC))  # 23:59 in Paris on the 14th

    just_before = period_bounds("daily", datetime(2026, 6, 14, 21, 59, 59, tzinfo=UTC))
    just_after = period_bounds("daily", datetime(2026, 6, 14, 22, 0, 1, tzinfo=UTC))  # 00:00:01 on the 15th

    assert spent(budget, *just_before) == Decimal("0.95")
    assert spent(budget, *just_after) == 0
    assert just_after[0] == just_before[1]


# --- Hard and soft ----------------------------------------------------------------------------


def test_a_hard_budget_refuses_the_call_that_would_cross_it_and_says_why(owner):
    Budget.objects.create(period="monthly", limit=Decimal("1.00"), mode="hard")
    spend("0.90")
    gate = BudgetGate()

    refused = gate.reserve(user_id=owner.pk, estimated_cost=Decimal("0.20"))
    allowed = gate.reserve(user_id=owner.pk, estimated_cost=Decimal("0.05"))

    assert not refused.allowed and "the site's monthly budget would be crossed" in refused.reason
    assert "($0.90 of $1.00 spent or reserved, this call up to $0.20)" in refused.reason
    assert allowed.allowed
    assert BudgetAlert.objects.get().refused  # the refusal shows in the banner


def test_pending_reservations_count_until_settled_or_released(owner):
    Budget.objects.create(user=owner, period="daily", limit=Decimal("1.00"), mode="hard")
    gate = BudgetGate()

    first = gate.reserve(user_id=owner.pk, estimated_cost=Decimal("0.70"))
    assert first.allowed
    assert not gate.reserve(user_id=owner.pk, estimated_cost=Decimal("0.40")).allowed  # 0.70 is in flight
    gate.release(first)
    assert gate.reserve(user_id=owner.pk, estimated_cost=Decimal("0.40")).allowed


def test_settling_replaces_the_estimate_with_the_real_cost(owner):
    Budget.objects.create(user=owner, period="daily", limit=Decimal("1.00"), mode="hard")
    gate = BudgetGate()

    call(gate, user=owner, estimate="0.90", actual="0.10")  # estimates are ceilings; the real cost is lower

    assert not BudgetReservation.objects.exists()
    assert call(gate, user=owner, estimate="0.85").allowed


def test_a_user_budget_counts_only_that_users_calls(owner, other_user):
    Budget.objects.create(user=owner, period="daily", limit=Decimal("1.00"), mode="hard")
    spend("5.00", user=other_user)

    assert BudgetGate().reserve(user_id=owner.pk, estimated_cost=Decimal("0.50")).allowed
    assert BudgetGate().reserve(user_id=other_user.pk, estimated_cost=Decimal("50")).allowed  # no budget


def test_a_hard_budget_refuses_a_model_without_a_price(owner):
    Budget.objects.create(period="daily", limit=Decimal("1.00"), mode="hard")

    decision = BudgetGate().reserve(user_id=owner.pk, estimated_cost=None)

    assert not decision.allowed and "has no price" in decision.reason


def test_a_soft_budget_only_alerts(owner):
    Budget.objects.create(period="daily", limit=Decimal("1.00"), mode="soft")
    spend("3.00")

    assert BudgetGate().reserve(user_id=owner.pk, estimated_cost=Decimal("1.00")).allowed


def test_a_reservation_left_by_a_dead_worker_stops_counting(owner):
    budget = Budget.objects.create(period="daily", limit=Decimal("1.00"), mode="hard")
    BudgetReservation.objects.create(
        budget=budget, token="lost", amount=Decimal("0.90"), created_at=timezone.now() - timedelta(minutes=11)
    )

    assert BudgetGate().reserve(user_id=owner.pk, estimated_cost=Decimal("0.50")).allowed
    spend_reconcile()  # the hourly job clears it away
    assert not BudgetReservation.objects.filter(token="lost").exists()


def test_the_reconciliation_repairs_a_total_that_differs_from_its_records_and_says_so(owner, caplog):
    Budget.objects.create(period="daily", limit=Decimal("10"), mode="hard")
    call(BudgetGate(), estimate="0.10", actual="0.25")  # through the product: the total follows
    assert spend_reconcile() == []
    UsageRecord.objects.bulk_create(  # around the product, as a restore or a script would
        [
            UsageRecord(
                provider="OpenAI", model="gpt-4o-mini", operation="design", cost=Decimal("0.5"), status="ok"
            )
        ],
    )

    drifts = spend_reconcile()

    assert [(drift.kept, drift.counted) for drift in drifts] == [(Decimal("0.25"), Decimal("0.75"))]
    assert "the site's daily budget" in str(drifts[0]) and "repaired" in caplog.text
    assert BudgetSpend.objects.get().spent == Decimal("0.75")
    assert spend_reconcile() == []


def test_manage_budgets_reconcile_lists_what_it_repaired():
    from io import StringIO

    from django.core.management import call_command

    Budget.objects.create(period="monthly", limit=Decimal("10"), mode="soft")
    out = StringIO()
    call_command("budgets_reconcile", stdout=out)
    assert "Every running total matches its records (1 enabled budgets)." in out.getvalue()

    spend("0.30")
    BudgetSpend.objects.update(spent=Decimal("0.10"))  # a total gone wrong
    out = StringIO()
    call_command("budgets_reconcile", stdout=out)
    assert "repaired: the site's monthly budget" in out.getvalue() and "records $0.30" in out.getvalue()


# --- Alerts ---------------------------------------------------------------------------------


def test_each_threshold_alerts_once_per_period_and_emails_the_user(
    owner, settings, django_capture_on_commit_callbacks
):
    """Alerts go out once the record that crossed a threshold is committed (a test's transaction
    never commits: its on-commit callbacks are run here)."""
    settings.TIME_ZONE = "UTC"
    owner.email = "owner@example.com"
    owner.save()
    Budget.objects.create(
        user=owner, period="daily", limit=Decimal("1.00"), mode="soft", thresholds="50, 80, 100"
    )
    gate = BudgetGate()

    def committed_call(*args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    committed_call(gate, user=owner, estimate="0.10", actual="0.40")  # 40%: nothing
    assert not BudgetAlert.objects.exists()
    committed_call(gate, user=owner, estimate="0.10", actual="0.20")  # 60%: the 50% alert
    committed_call(gate, user=owner, estimate="0.10", actual="0.05")  # 65%: still only that one
    committed_call(gate, user=owner, estimate="0.10", actual="0.50")  # 115%: 80% and 100% at once

    assert sorted(BudgetAlert.objects.values_list("threshold", flat=True)) == [50, 80, 100]
    assert len(mail.outbox) == 3 and mail.outbox[0].to == ["owner@example.com"]
    assert "$0.60 spent, 50% of $1.00" in mail.outbox[0].body

    # The next day is a new period: the same threshold alerts again.
    UsageRecord.objects.update(created_at=timezone.now() - timedelta(days=1))
    spend_reconcile()
    BudgetAlert.objects.update(period_start=period_bounds("daily", timezone.now() - timedelta(days=1))[0])
    committed_call(gate, user=owner, estimate="0.10", actual="0.55")
    assert BudgetAlert.objects.filter(threshold=50).count() == 2


def test_the_banner_shows_on_every_page_until_dismissed(client, owner, other_user, staff_user):
    mine = Budget.objects.create(user=owner, period="monthly", limit=Decimal("1.00"))
    site = Budget.objects.create(period="monthly", limit=Decimal("10.00"))
    start = period_bounds("monthly")[0]
    my_alert = BudgetAlert.objects.create(
        budget=mine, period_start=start, threshold=80, spent=Decimal("0.8"), limit=Decimal(1)
    )
    BudgetAlert.objects.create(
        budget=site, period_start=start, threshold=80, spent=Decimal(8), limit=Decimal(10)
    )

    client.force_login(owner)
    for page in ("optimizer:optimize", "optimizer:history", "costs:dashboard"):
        html = client.get(reverse(page)).content.decode()
        assert "Your monthly budget: $0.80 spent, 80% of $1.00." in html
        assert "$8.00 spent" not in html  # the site's budgets are for staff

    client.force_login(other_user)
    assert client.post(reverse("costs:alert-dismiss", args=[my_alert.pk])).status_code == 404
    assert "Your monthly budget" not in client.get(reverse("optimizer:history")).content.decode()

    client.force_login(staff_user)
    assert (
        "The site&#x27;s monthly budget: $8.00 spent"
        in client.get(reverse("optimizer:history")).content.decode()
    )

    client.force_login(owner)
    response = client.post(
        reverse("costs:alert-dismiss", args=[my_alert.pk]), {"next": "https://evil.example/"}
    )
    assert response.status_code == 302 and response["Location"] == reverse("costs:dashboard")
    assert "Your monthly budget" not in client.get(reverse("optimizer:history")).content.decode()


@pytest.fixture
def alert(owner):
    budget = Budget.objects.create(user=owner, period="monthly", limit=Decimal("1.00"))
    return BudgetAlert.objects.create(
        budget=budget, period_start=period_bounds("monthly")[0], threshold=80, spent=Decimal("0.8"),
        limit=Decimal(1),
    )  # fmt: skip


@pytest.mark.parametrize(
    "back",
    [
        "foo",  # not a path: was taken for a URL name, NoReverseMatch after the alert was dismissed
        "logout",  # a URL name, not a path
        "%0d%0aSet-Cookie:x=1",
        "\r\nSet-Cookie:x=1",
        "/\r\nSet-Cookie:x=1",
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "javascript:alert(1)",
        "http://testserver/history/",  # this site, but a URL, not a path
    ],
)
def test_dismissing_with_a_next_that_is_not_a_same_site_path_goes_to_the_costs_page(
    owner_client, alert, back
):
    response = owner_client.post(reverse("costs:alert-dismiss", args=[alert.pk]), {"next": back})

    assert response.status_code == 302 and response["Location"] == reverse("costs:dashboard")
    alert.refresh_from_db()
    assert alert.dismissed_at is not None


def test_dismissing_goes_back_to_the_page_it_was_sent_from(owner_client, alert):
    response = owner_client.post(
        reverse("costs:alert-dismiss", args=[alert.pk]), {"next": "/history/?q=tides&page=2"}
    )

    assert response.status_code == 302 and response["Location"] == "/history/?q=tides&page=2"


def test_a_refused_dismissal_changes_nothing(client, owner, other_user, alert):
    url = reverse("costs:alert-dismiss", args=[alert.pk])
    client.force_login(other_user)
    assert client.post(url, {"next": "foo"}).status_code == 404
    client.force_login(owner)
    assert client.get(url, {"next": "/history/"}).status_code == 405
    checked = Client(enforce_csrf_checks=True)
    checked.force_login(owner)
    assert checked.post(url, {"next": "/history/"}).status_code == 403

    alert.refresh_from_db()
    assert alert.dismissed_at is None


# --- Two real processes racing for the last cents ---------------------------------------------


def at_once(scripts: list[str], database_url: str) -> list[str]:
    """Run each script in a worker process of its own against the test database, all starting their
    work at the same instant (``{start}`` in a script: after every interpreter has started); their
    standard outputs, once all exited cleanly."""
    env = clean_env(
        DATABASE_URL=database_url, SECRET_KEY=settings.SECRET_KEY, DJANGO_SETTINGS_MODULE="config.settings"
    )
    start = time.time() + 4
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script.replace("{start}", str(start))],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for script in scripts
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0] * len(scripts), "\n".join(
        e for _, e in outputs
    )
    return [out for out, _ in outputs]


RACER = """
import time, django
django.setup()
from decimal import Decimal
from costs.budgets import BudgetGate
gate = BudgetGate()
time.sleep(max({start} - time.time(), 0))
allowed = sum(gate.reserve(user_id=None, estimated_cost=Decimal("0.05")).allowed for _ in range({attempts}))
print(allowed)
"""


@pytest.mark.django_db(transaction=True)
def test_racing_workers_cannot_both_spend_the_last_of_a_hard_budget(database_url_for_subprocess):
    """Four worker processes ask for $0.05 ten times each, all at once, against $0.50: exactly ten
    reservations may be granted, whatever the interleaving."""
    Budget.objects.create(period="daily", limit=Decimal("0.50"), mode="hard")

    outputs = at_once([RACER.format(start="{start}", attempts=10)] * 4, database_url_for_subprocess)

    assert sum(int(out) for out in outputs) == 10
    assert BudgetReservation.objects.count() == 10


SPENDER = """
import time, django
django.setup()
from decimal import Decimal
from costs.budgets import BudgetGate
from costs.models import UsageRecord
from costs.services import usage_record_create
gate = BudgetGate()
time.sleep(max({start} - time.time(), 0))
for n in range({calls}):
    decision = gate.reserve(user_id=None, estimated_cost=Decimal("0.01"))
    usage_record_create(
        user_id=None, run_id=None, provider="OpenAI", model="gpt-4o-mini", operation="design",
        cost=Decimal("0.00{cost}"), latency_ms=1, status=UsageRecord.Status.OK,
    )
    gate.settle(decision)
"""


@pytest.mark.django_db(transaction=True)
def test_racing_workers_keep_the_running_totals_equal_to_the_records(database_url_for_subprocess):
    """Four worker processes each make 15 priced calls at once, from a period with no running total
    yet: the daily and the monthly totals end equal to the records' sum, with nothing to repair."""
    Budget.objects.create(period="daily", limit=Decimal("100"), mode="hard")
    Budget.objects.create(period="monthly", limit=Decimal("100"), mode="soft")

    scripts = [SPENDER.format(start="{start}", calls=15, cost=n + 1) for n in range(4)]
    at_once(scripts, database_url_for_subprocess)

    assert UsageRecord.objects.count() == 60
    expected = Decimal("0.15") * (1 + 2 + 3 + 4) / 10  # 15 calls each of $0.001 … $0.004
    assert sorted(BudgetSpend.objects.values_list("spent", flat=True)) == [expected, expected]
    assert spend_reconcile() == []
    assert not BudgetReservation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_budget_deleted_by_another_process_is_skipped_not_an_error():
    """This process still holds the budget in memory (the other's announcement not arrived yet)."""
    from django.db import connection

    from costs import snapshot

    budget = Budget.objects.create(period="daily", limit=Decimal("1.00"), mode="hard")
    assert snapshot.current().budgets_for(None)  # kept in this process
    with connection.cursor() as cursor:  # deleted elsewhere: no signal here
        cursor.execute("DELETE FROM costs_budget WHERE id = %s", [budget.pk])

    decision = BudgetGate().reserve(user_id=None, estimated_cost=Decimal("5.00"))
    spend("0.50")

    assert decision.allowed and not BudgetReservation.objects.exists() and not BudgetSpend.objects.exists()
