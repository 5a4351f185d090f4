"""A run's stage answers: what a run paid for is kept with its usage record, so the run started
again after its worker died pays nothing twice, whatever the API cache kept."""

import json
from decimal import Decimal

import pytest
from django.core.cache import caches

from costs.models import UsageRecord
from optimizer import runqueue, services
from optimizer.llm import gateway
from optimizer.models import OptimizationRun, StageAnswer
from tests.factories import UserFactory
from tests.optimizer.llm.conftest import builtin, make_request

pytestmark = pytest.mark.django_db


def a_run(status: str) -> OptimizationRun:
    run_settings = services.run_settings_build(
        prompt_type="general", preset="auto", techniques=[], model="auto", keep_spans=True
    )
    run = services.run_submit(
        owner=UserFactory(), text="Explain tides.", run_settings=run_settings, enqueue=False
    )
    OptimizationRun.objects.filter(pk=run.pk).update(status=status, worker=runqueue.worker_name())
    return run


def test_a_resumed_run_takes_the_answer_it_paid_for_when_the_cache_lost_it(openai_model, fake):
    run = a_run(status=OptimizationRun.Status.RUNNING)
    first = gateway.call(make_request(), builtin=builtin, model=openai_model, run_id=run.pk)
    # The worker died before the API cache had the answer (or the cache was restarted empty).
    caches["default"].clear()

    again = gateway.call(make_request(), builtin=builtin, model=openai_model, run_id=run.pk, resumed=True)

    assert len(fake.requests) == 1
    assert again.cached and again.data == first.data and again.cost == 0
    paid, hit = UsageRecord.objects.filter(run=run).order_by("pk")
    assert (paid.status, hit.status) == ("ok", "cache_hit")
    assert paid.cost > 0 and hit.cost == 0 and hit.saved_cost == paid.cost
    # Stored back in the cache: the next identical request needs no lookup of the run's answers.
    assert gateway.call(make_request(), builtin=builtin, model=openai_model, run_id=run.pk).cached
    assert len(fake.requests) == 1


def test_only_the_same_run_resumed_finds_its_answers(openai_model, fake):
    run, other = a_run(status="running"), a_run(status="running")
    gateway.call(make_request(), builtin=builtin, model=openai_model, run_id=run.pk)
    caches["default"].clear()
    gateway.call(make_request(), builtin=builtin, model=openai_model, run_id=other.pk, resumed=True)
    caches["default"].clear()
    gateway.call(make_request(), builtin=builtin, model=openai_model, run_id=run.pk)  # a first attempt

    assert len(fake.requests) == 3
    assert UsageRecord.objects.filter(status="ok").count() == 3


def test_an_answer_is_kept_for_runs_only_and_its_cost_includes_the_repair(openai_model, fake):
    fake.enqueue("wrong_schema", "ok")
    run = a_run(status="running")
    result = gateway.call(make_request(), builtin=builtin, model=openai_model, run_id=run.pk)
    gateway.call(make_request("no run"), builtin=builtin, model=openai_model)

    kept = StageAnswer.objects.get()
    entry = json.loads(kept.entry)
    assert kept.run_id == run.pk and entry["data"] == result.data
    assert list(entry["data"]) == list(result.data)  # in the order it came: the next stage quotes it
    paid = sum(UsageRecord.objects.filter(run=run).values_list("cost", flat=True))
    assert Decimal(entry["cost"]) == paid == result.cost > 0


def test_the_answers_of_ended_runs_are_forgotten_and_those_of_queued_runs_kept(openai_model, fake):
    ended, requeued = a_run(status="running"), a_run(status="running")
    for run, text in ((ended, "one"), (requeued, "two")):
        gateway.call(make_request(text), builtin=builtin, model=openai_model, run_id=run.pk)
    OptimizationRun.objects.filter(pk=ended.pk).update(status="done")
    OptimizationRun.objects.filter(pk=requeued.pk).update(status="queued")

    assert runqueue.stage_answers_forget(requeued.pk) == 0
    runqueue.sweep()

    assert list(StageAnswer.objects.values_list("run_id", flat=True)) == [requeued.pk]
