"""What a model call costs the database, counted: deterministic where timings are not.

A call through the gateway reads prices and budgets from the process's snapshot and a budget's spend
from its running total, so its queries do not depend on how many usage records the period holds.
Counted outside a test transaction (``transaction=True``): inside one, the snapshot is read from the
database every time, as it must be (the transaction could roll back what it read).
"""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from costs.models import Budget, UsageRecord
from optimizer.llm import gateway
from tests.optimizer.llm.conftest import add_model, builtin, make_request

pytestmark = pytest.mark.django_db(transaction=True)

NO_BUDGET_MAX = 3  # the cache read, the usage INSERT, the cache store (SQLite; 1 with Redis)
BUDGETS_MAX = 13  # plus the reservation (5 with BEGIN/COMMIT), the totals (4) and the release (1)
CULL_CHECK = 'SELECT COUNT(*) FROM "django_cache"'  # the database cache's, once every 64 stores


def seed_records(count: int) -> None:
    UsageRecord.objects.bulk_create(
        UsageRecord(provider="fake", model="gpt-4o", operation="design", cost=Decimal("0.0001"), status="ok")
        for _ in range(count)
    )


def queries_per_call(model, tag: str, calls: int = 3) -> list[int]:
    gateway.call(make_request(f"warm-up {tag}"), builtin=builtin, model=model)  # totals created here
    counts = []
    for n in range(calls):
        with CaptureQueriesContext(connection) as queries:
            result = gateway.call(make_request(f"prompt {tag} {n}"), builtin=builtin, model=model)
        assert not result.builtin and not result.cached, result.skipped
        counts.append(sum(CULL_CHECK not in query["sql"] for query in queries.captured_queries))
    return counts


@pytest.mark.parametrize("budgets", [False, True], ids=["no budget", "two hard budgets"])
def test_a_model_call_makes_as_many_queries_with_10_records_as_with_10000(fake, budgets):
    model = add_model(fake.url, name="Counted")
    if budgets:
        Budget.objects.create(period="daily", limit=Decimal("1000"), mode="hard")
        Budget.objects.create(period="monthly", limit=Decimal("1000"), mode="hard")
    seed_records(10)
    few = queries_per_call(model, "few")
    seed_records(9990)
    many = queries_per_call(model, "many")

    assert max(few) == max(many) <= (BUDGETS_MAX if budgets else NO_BUDGET_MAX), (few, many)


def test_without_budgets_no_price_or_budget_is_read_from_the_database(fake):
    model = add_model(fake.url, name="Counted")
    gateway.call(make_request("warm-up"), builtin=builtin, model=model)

    with CaptureQueriesContext(connection) as queries:
        gateway.call(make_request("another"), builtin=builtin, model=model)

    tables = " ".join(query["sql"] for query in queries.captured_queries)
    assert "costs_modelprice" not in tables and "costs_budget" not in tables


def test_a_new_price_reaches_the_next_call(fake):
    """The snapshot is read again once a price changes, in this process as in every other."""
    from costs.models import ModelPrice

    model = add_model(fake.url, name="Repriced")
    first = gateway.call(make_request("before"), builtin=builtin, model=model)
    ModelPrice.objects.create(model=model, input=Decimal("1000"), output=Decimal("1000"))
    second = gateway.call(make_request("after"), builtin=builtin, model=model)

    assert second.cost > 100 * first.cost
