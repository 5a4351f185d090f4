"""Failover: the chosen model, then the others by fallback order, then the built-in engine."""

import threading
import time
from decimal import Decimal

import pytest
from django.db import connections

from costs.budgets import BudgetDecision, BudgetGate
from optimizer.llm import gateway
from optimizer.llm.breaker import CircuitBreaker
from optimizer.llm.gateway import _provider_slot
from tests.optimizer.llm.conftest import BUILTIN_ANSWER, add_model, builtin, make_request

pytestmark = pytest.mark.django_db


class RefuseOver(BudgetGate):
    """A budget that refuses any call estimated above ``limit`` dollars."""

    def __init__(self, limit: Decimal):
        self.limit = limit
        self.released = 0

    def reserve(self, *, user_id, estimated_cost, snapshot=None):
        if estimated_cost is None or estimated_cost > self.limit:
            return BudgetDecision(allowed=False, reason="daily budget reached")
        return BudgetDecision(allowed=True, reservation_id="r1")

    def release(self, decision):
        self.released += 1


def test_failover_follows_the_order_and_says_why_each_model_was_passed(db, fake):
    first = add_model(fake.url, name="First", order=1)
    second = add_model(fake.url, name="Second", order=2)
    third = add_model(fake.url, name="Third", order=3)
    CircuitBreaker(second.breaker_key)._open(time.time())
    fake.enqueue({"status": 404})

    result = gateway.call(make_request(), builtin=builtin, model=first)

    assert result.provider == "Third"
    assert [str(skip) for skip in result.skipped] == [
        "First/gpt-4o-mini: error (ProviderError, HTTP 404)",
        "Second/gpt-4o-mini: breaker open",
    ]
    assert result.degraded
    assert third.pk


def test_the_chosen_model_goes_first_even_when_its_order_is_later(db, fake):
    add_model(fake.url, name="Usually first", order=1)
    chosen = add_model(fake.url, name="Chosen", order=9)

    result = gateway.call(make_request(), builtin=builtin, model=chosen)

    assert result.provider == "Chosen"


def test_auto_uses_enabled_models_in_order_and_skips_disabled_ones(db, fake):
    disabled = add_model(fake.url, name="Disabled", order=1)
    disabled.enabled = False
    disabled.save()
    add_model(fake.url, name="Enabled", order=2)

    result = gateway.call(make_request(), builtin=builtin)

    assert result.provider == "Enabled"


def test_when_every_model_fails_the_built_in_engine_answers_for_free(db, fake):
    add_model(fake.url, name="Only")
    fake.enqueue({"status": 401})

    result = gateway.call(make_request(), builtin=builtin)

    assert result.builtin and result.data == BUILTIN_ANSWER and result.cost == 0
    assert result.provider == "Built-in engine"


def test_a_budget_refusal_skips_the_model_without_calling_it(db, fake):
    expensive = add_model(fake.url, name="Expensive", model_id="gpt-4.1", order=1)
    cheap = add_model(fake.url, name="Cheap", model_id="gpt-4o-mini", order=2)
    gate = RefuseOver(Decimal("0.005"))

    result = gateway.call(make_request(), builtin=builtin, model=expensive, budget_gate=gate)

    assert result.provider == "Cheap"
    assert str(result.skipped[0]) == "Expensive/gpt-4.1: budget refused: daily budget reached"
    assert [request["body"]["model"] for request in fake.requests] == ["gpt-4o-mini"]
    assert cheap.pk


def test_a_reservation_is_released_when_the_breaker_refuses(db, fake):
    choice = add_model(fake.url, name="Open")
    CircuitBreaker(choice.breaker_key)._open(time.time())
    gate = RefuseOver(Decimal("100"))

    gateway.call(make_request(), builtin=builtin, model=choice, budget_gate=gate)

    assert gate.released == 1


def test_one_deadline_covers_the_whole_call_failover_included(db, fake, settings):
    settings.LLM_RETRY = {**settings.LLM_RETRY, "deadline_s": 0.6}
    first = add_model(fake.url, name="Hangs first", order=1, read_timeout_s=5)
    add_model(fake.url, name="Hangs second", order=2, read_timeout_s=5)
    fake.enqueue("hang", "hang", "hang", "hang", "hang", "hang")

    started = time.monotonic()
    result = gateway.call(make_request(), builtin=builtin, model=first)

    assert time.monotonic() - started < 3  # not two models times three attempts
    assert result.builtin
    assert result.skipped[-1].reason == "deadline reached"


@pytest.mark.django_db(transaction=True)  # the second caller runs in a thread of its own
def test_a_full_provider_is_skipped_as_busy_without_counting_against_its_breaker(fake, settings):
    settings.LLM_RETRY = {**settings.LLM_RETRY, "deadline_s": 0.5}
    choice = add_model(fake.url, name="One at a time", max_concurrency=1)
    outcome = {}

    def second_caller():
        try:
            outcome["result"] = gateway.call(make_request(), builtin=builtin, model=choice)
        finally:
            connections.close_all()

    with _provider_slot(choice.provider, time.monotonic() + 5) as held:
        assert held  # the first caller holds the only slot
        worker = threading.Thread(target=second_caller)
        worker.start()
        worker.join(timeout=10)

    result = outcome["result"]
    assert result.builtin and result.skipped[0].reason == "provider busy"
    assert fake.requests == []
    assert CircuitBreaker(choice.breaker_key).status()["failures_last_window"] == 0
