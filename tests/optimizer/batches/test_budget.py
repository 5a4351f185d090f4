"""A hard budget that refuses mid-batch: the items after it finish on the built-in engine, as a single
run does, and the batch page says how many and from which row, with the budget's reason. Real model
calls to the fake provider on loopback, real budget gate."""

import threading
from decimal import Decimal

import pytest
from django.db import connections
from django.urls import reverse

from costs.models import Budget, UsageRecord
from optimizer import pipeline, runqueue, services
from optimizer.batches.parsing import Item, Parsed
from optimizer.batches.services import batch_create, batch_start
from optimizer.llm.fake_provider import FakeProvider
from optimizer.models import Batch, OptimizationRun
from tests.factories import UserFactory
from tests.optimizer.llm.conftest import SECRET, add_model

LLM = OptimizationRun.Engine.LLM
TEXTS = [
    "Summarize this review in two sentences for a product manager: {review}",
    "Write a product description for a {product} aimed at {audience}.",
    "Explain how tides work to a ten-year-old, in under 150 words.",
]


@pytest.fixture
def fake():
    server = FakeProvider().start()
    yield server
    server.stop()


def _one_item(run_id_holder: list) -> None:
    """Take the next queued model run and run it, as a worker does, in a thread of its own."""

    def work():
        try:
            run = runqueue.claim_next(LLM)
            run_id_holder.append(run.pk)
            pipeline._execute(run)
        finally:
            connections.close_all()

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(60)


@pytest.mark.django_db(transaction=True)
def test_a_budget_that_refuses_mid_batch_degrades_the_rest_and_the_page_says_so(
    fake, settings, monkeypatch, client
):
    settings.LLM_RETRY = {"wait_initial": 0.01, "wait_max": 0.05, "wait_jitter": 0.0, "deadline_s": 10.0}
    settings.BATCH_CONCURRENCY = 1
    monkeypatch.setenv("PO_TEST_API_KEY", SECRET)
    owner = UserFactory(username="batch-budget")
    model = add_model(fake.url, name="OpenAI test")
    parsed = Parsed(
        format="text",
        items=[Item(row=row, text=text) for row, text in enumerate(TEXTS, start=1)],
        skipped=[],
        empty_rows=0,
        columns=[],
    )
    run_settings = services.run_settings_build(
        prompt_type="general", preset="auto", techniques=[], model=str(model.pk), keep_spans=True
    )
    batch = batch_start(
        batch=batch_create(owner=owner, parsed=parsed, run_settings=run_settings, source="budget.txt")
    )

    ran: list[int] = []
    _one_item(ran)  # the first item, on the model
    first = OptimizationRun.objects.get(pk=ran[0])
    assert first.status == "done" and first.degraded_reason == "" and first.cost > 0
    spent = sum(UsageRecord.objects.filter(user=owner).values_list("cost", flat=True), Decimal(0))
    # The day's hard budget: what was spent, and less than another item's calls would cost.
    Budget.objects.create(user=owner, period="daily", limit=spent + Decimal("0.000001"), mode="hard")
    calls_before = len(fake.requests)
    _one_item(ran)
    _one_item(ran)

    batch.refresh_from_db()
    assert batch.status == Batch.Status.DONE
    later = list(OptimizationRun.objects.filter(pk__in=ran[1:]).order_by("pk"))
    assert [run.status for run in later] == ["done", "done"]
    assert all("budget refused" in run.degraded_reason for run in later), [r.degraded_reason for r in later]
    assert len(fake.requests) == calls_before  # refused before any request was made
    client.force_login(owner)
    html = client.get(reverse("optimizer:batch-detail", args=[batch.pk])).content.decode()
    assert "2 items ran on the built-in engine instead of the model, the first at row 2" in html
    assert "budget refused" in html
