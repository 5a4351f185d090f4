"""Which run starts next, the heartbeat, and the sweep that recovers runs whose worker died."""

import os
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule

from optimizer import pipeline, runqueue, services
from optimizer.models import OptimizationRun
from tests.factories import UserFactory

Status = OptimizationRun.Status


@pytest.fixture(autouse=True)
def _empty_queues(db):
    caches["default"].clear()
    brokers = [get_broker(django_settings.FAST_QUEUE), get_broker(django_settings.Q_CLUSTER["name"])]
    for broker in brokers:
        broker.purge_queue()
    yield
    for broker in brokers:
        broker.purge_queue()


def fast_queue_size() -> int:
    return get_broker(django_settings.FAST_QUEUE).queue_size()


def queued(owner, text="Explain tides to a child.", ago_s=0):
    run = services.run_submit(
        owner=owner,
        text=text,
        run_settings=services.run_settings_build(
            prompt_type="general", preset="auto", techniques=[], model="builtin", keep_spans=True
        ),
        enqueue=False,
    )
    if ago_s:
        OptimizationRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(seconds=ago_s))
    return run


def running(run, *, beat_ago_s=0, worker=None, attempts=1):
    beat = timezone.now() - timedelta(seconds=beat_ago_s)
    OptimizationRun.objects.filter(pk=run.pk).update(
        status=Status.RUNNING,
        started_at=beat,
        heartbeat_at=beat,
        attempts=attempts,
        worker=worker or runqueue.worker_name(),
        stage="design",
    )
    return OptimizationRun.objects.get(pk=run.pk)


def a_dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --- Fairness -----------------------------------------------------------------------------------


def test_a_user_with_runs_in_progress_waits_behind_one_who_has_none(owner, other_user):
    first = queued(owner, "Summarize the news.", ago_s=50)
    for number in range(4):
        queued(owner, f"Write haiku number {number}.", ago_s=40 - number)
    theirs = queued(other_user, "Translate 'hello' into French.", ago_s=1)  # the newest of all

    assert runqueue.fairest_queued("builtin") == first.pk  # nobody is running: the oldest first
    running(first)
    assert runqueue.fairest_queued("builtin") == theirs.pk  # owner has one in progress, they none


def test_each_queue_serves_its_own_engine_and_claiming_takes_the_run_once(owner):
    run = queued(owner)
    assert runqueue.fairest_queued("llm") is None
    claimed = runqueue.claim_next("builtin")
    assert claimed.pk == run.pk and claimed.status == Status.RUNNING and claimed.attempts == 1
    assert claimed.worker == f"{socket.gethostname()}:{os.getpid()}" and claimed.heartbeat_at
    assert runqueue.claim_next("builtin") is None
    assert runqueue.claim(run.pk) is None  # a task delivered twice finds it taken


def test_picking_the_next_run_costs_the_same_queries_however_many_are_queued(
    owner, django_assert_num_queries
):
    queued(owner)
    with django_assert_num_queries(3):
        runqueue.fairest_queued("builtin")
    for number in range(30):
        queued(UserFactory(), f"Prompt number {number}.")
    with django_assert_num_queries(3):
        runqueue.fairest_queued("builtin")


def test_a_token_runs_whichever_run_is_fairest_and_a_spare_token_does_nothing(owner):
    run = queued(owner)
    pipeline.run_next(engine="builtin")
    assert OptimizationRun.objects.get(pk=run.pk).status == Status.DONE
    pipeline.run_next(engine="builtin")  # a spare token
    assert OptimizationRun.objects.filter(status=Status.RUNNING).count() == 0


def test_submitting_queues_a_token_in_the_queue_of_the_runs_engine(owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.run_submit(
            owner=owner,
            text="Describe a harbour at dawn.",
            run_settings=services.run_settings_build(
                prompt_type="general", preset="auto", techniques=[], model="builtin", keep_spans=True
            ),
        )
    assert run.engine == "builtin" and fast_queue_size() == 1
    assert get_broker(django_settings.Q_CLUSTER["name"]).queue_size() == 0


# --- The sweep ----------------------------------------------------------------------------------


def test_a_run_whose_heartbeat_stopped_is_queued_again_with_a_token(owner, settings):
    run = running(queued(owner), beat_ago_s=settings.RUN_DEAD_AFTER_S + 1, worker="elsewhere:123")

    report = runqueue.sweep()

    run.refresh_from_db()
    assert report.requeued == [run.pk] and run.status == Status.QUEUED and not run.worker
    assert fast_queue_size() == 1
    assert runqueue.sweep().requeued == []  # a second sweep (another cluster) finds nothing to do
    pipeline.run_next(engine="builtin")
    run.refresh_from_db()
    assert run.status == Status.DONE and run.attempts == 2


def test_a_run_of_a_dead_process_on_this_machine_is_queued_again_without_waiting_for_its_heartbeat(owner):
    run = running(queued(owner), worker=f"{socket.gethostname()}:{a_dead_pid()}")  # beat just now
    assert runqueue.sweep().requeued == [run.pk]


def test_a_run_whose_worker_is_alive_is_left_alone(owner):
    alive = running(queued(owner))  # this process, beating now
    elsewhere = running(queued(owner, "Name three rivers."), worker="another-host:1")  # beating now
    report = runqueue.sweep()
    assert report.requeued == [] and report.failed == []
    assert {r.status for r in OptimizationRun.objects.filter(pk__in=[alive.pk, elsewhere.pk])} == {"running"}


def test_a_run_whose_worker_died_every_time_is_ended_with_a_message(owner, settings):
    run = running(
        queued(owner),
        beat_ago_s=settings.RUN_DEAD_AFTER_S + 1,
        worker="elsewhere:1",
        attempts=settings.RUN_MAX_ATTEMPTS,
    )
    assert runqueue.sweep().failed == [run.pk]
    run.refresh_from_db()
    assert run.status == Status.FAILED and "stopped 3 times" in run.error and run.finished_at


def test_queued_runs_whose_tokens_were_lost_get_new_ones_and_no_more(owner):
    queued(owner, ago_s=runqueue.GRACE_S + 5)
    queued(owner, "Name three rivers.", ago_s=runqueue.GRACE_S + 5)
    queued(owner, "List two oceans.")  # just submitted: its token may be on its way

    assert runqueue.sweep().tokens == {django_settings.FAST_QUEUE: 2}
    assert fast_queue_size() == 2
    assert runqueue.sweep().tokens == {django_settings.FAST_QUEUE: 0}  # the broker holds enough


def test_a_worker_that_was_taken_for_dead_cannot_finish_the_run(owner, settings):
    run = runqueue.claim(queued(owner).pk)  # attempt 1, whose worker then goes silent
    OptimizationRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.RUN_DEAD_AFTER_S + 1), worker="elsewhere:1"
    )
    runqueue.sweep()
    pipeline.run_next(engine="builtin")  # attempt 2 finishes it
    done = OptimizationRun.objects.get(pk=run.pk)

    pipeline._execute(run)  # attempt 1 wakes up and runs to the end

    again = OptimizationRun.objects.get(pk=run.pk)
    assert again.status == Status.DONE and again.attempts == 2 and again.finished_at == done.finished_at


def test_a_worker_starting_creates_the_sweep_schedule_once_and_sweeps(owner, settings):
    run = running(queued(owner), beat_ago_s=settings.RUN_DEAD_AFTER_S + 1, worker="elsewhere:1")
    runqueue.on_worker_start(sender="django_q", proc_name="Worker-1")
    runqueue.on_worker_start(sender="django_q", proc_name="Worker-2")

    Schedule.objects.create(  # a second worker that started at the same moment
        name=runqueue.SWEEP_SCHEDULE, func="optimizer.tasks.sweep_task", schedule_type=Schedule.MINUTES
    )
    runqueue.on_worker_start(sender="django_q", proc_name="Worker-3")
    schedule = Schedule.objects.get(name=runqueue.SWEEP_SCHEDULE)
    assert schedule.func == "optimizer.tasks.sweep_task" and schedule.cluster == settings.FAST_QUEUE
    assert schedule.schedule_type == Schedule.MINUTES and schedule.minutes == 1
    assert OptimizationRun.objects.get(pk=run.pk).status == Status.QUEUED
    reconcile = Schedule.objects.get(name=runqueue.RECONCILE_SCHEDULE)  # hourly, on the fast queue too
    assert reconcile.func == "costs.tasks.spend_reconcile_task" and reconcile.minutes == 60
    assert reconcile.cluster == settings.FAST_QUEUE


# --- The heartbeat ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_is_written_while_the_run_is_in_progress_and_stops_after(settings):
    settings.RUN_HEARTBEAT_S = 0.05
    run = runqueue.claim(queued(UserFactory()).pk)
    OptimizationRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    with runqueue.Heartbeat(run):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            beat = OptimizationRun.objects.get(pk=run.pk).heartbeat_at
            if beat > timezone.now() - timedelta(seconds=5):
                break
            time.sleep(0.02)
    assert beat > timezone.now() - timedelta(seconds=5)
    OptimizationRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    time.sleep(0.2)
    assert OptimizationRun.objects.get(pk=run.pk).heartbeat_at < timezone.now() - timedelta(minutes=30)
