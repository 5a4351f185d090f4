"""Faults on the real stack: `manage.py serve` (web server and both task clusters) over the test
database, with a fake provider on loopback. The task cluster is killed with SIGKILL mid-run on both
brokers (a Redis of its own on another port, never the shared one), the provider hangs or fails
half its calls, Redis stops and comes back mid-run. Every run must end done (degraded or not)
exactly once, pages must answer throughout, and the recovery times are printed (asserted loosely).
"""

import time
from collections import Counter

from django.conf import settings as django_settings
from django.core.cache import caches
from django.db import connection

from costs.models import UsageRecord
from optimizer import pipeline, runqueue
from optimizer.models import ModelChoice, OptimizationRun
from tests.factories import UserFactory
from tests.fault.stack import KEY_VARIABLE, TEXTS, Stack, ended_once, wait_done
from tests.optimizer.processes import Background, poll_until


def kill_mid_run(stack: Stack, model: ModelChoice) -> float:
    run_ids = [stack.submit(text, str(model.pk)) for text in TEXTS[:4]]
    poll_until(
        lambda: (
            OptimizationRun.objects.filter(
                pk__in=run_ids, status="running", stage__in=["diagnose", "design"]
            ).count()
            >= 2
        ),
        timeout=60,
        failure=lambda: "no two runs got to their second stage",
    )
    in_progress = set(
        OptimizationRun.objects.filter(pk__in=run_ids, status="running").values_list("pk", flat=True)
    )
    time.sleep(1)
    killed_at = time.monotonic()
    stack.kill_cluster(django_settings.Q_CLUSTER["name"])
    poll_until(
        lambda: (
            OptimizationRun.objects.filter(pk__in=in_progress, attempts__gte=2).count() == len(in_progress)
        ),
        timeout=90,
        failure=lambda: f"the killed runs were not started again:\n{stack.serve.output[-3000:]}",
    )
    running_again = time.monotonic() - killed_at
    wait_done(run_ids, timeout=120)
    all_done = time.monotonic() - killed_at
    try:
        runs = ended_once(run_ids)
    except AssertionError as exc:  # what the server said is what explains it
        raise AssertionError(f"{exc}\n--- serve:\n{stack.serve.output[-8000:]}") from None
    print(
        f"\n[fault] cluster SIGKILLed with {len(in_progress)} runs in progress: running again after "
        f"{running_again:.1f} s, all {len(runs)} done after {all_done:.1f} s; "
        f"{stack.pages_asked} page requests, {len(stack.page_failures)} failed"
    )
    assert running_again < 60
    assert stack.page_failures == []
    assert "task worker" in stack.serve.output and "restart" in stack.serve.output.lower()
    return running_again


def test_a_cluster_killed_mid_run_on_the_orm_broker_loses_nothing(stack_env, model):
    stack = Stack(stack_env)
    try:
        assert kill_mid_run(stack, model) < 60  # seconds until the killed runs ran again
    finally:
        stack.close()


def test_a_cluster_killed_mid_run_on_the_redis_broker_loses_nothing(stack_env, model, own_redis):
    stack = Stack(stack_env | {"REDIS_URL": own_redis.url})
    try:
        assert kill_mid_run(stack, model) < 60  # seconds until the killed runs ran again
    finally:
        stack.close()


def test_a_worker_killed_after_paying_for_stages_the_cache_lost_pays_for_none_twice(
    stack_env, model, fake, monkeypatch
):
    """The worst moment, made certain: the worker dies in the third stage and the API cache has
    lost the answers of the first two (the worker died before storing them, or the cache restarted
    empty). The run started again takes them from its stage answers and pays only for the rest."""
    fake.latency = 0.0
    fake.enqueue("ok", "ok", "hang")
    user = UserFactory(username="killed")
    choice = f"{model.provider.name}/{model.model_id}"
    worker = Background("optimize", "--user", user.username, "--model", choice, TEXTS[2], env=stack_env)
    run = poll_until(
        lambda: OptimizationRun.objects.filter(owner=user, stage="design").first(),
        timeout=60,
        failure=lambda: worker.output,
    )
    worker.process.kill()
    worker.process.wait()  # reaped: a zombie's pid still answers
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_cache")  # the worker's cache (it had no REDIS_URL)
    caches["default"].clear()  # this process's (Redis, with REDIS_URL): an earlier test's analyses

    assert runqueue.sweep().requeued == [run.pk]
    monkeypatch.setenv(KEY_VARIABLE, "sk-fault-test")
    pipeline.run_next(engine=OptimizationRun.Engine.LLM)

    (resumed,) = ended_once([run.pk])
    assert resumed.attempts == 2 and resumed.degraded_reason == "" and not resumed.analysis_cached
    asked = Counter(request["body"]["response_format"]["json_schema"]["name"] for request in fake.requests)
    assert asked["deconstruct"] == 1 and asked["diagnose"] == 1 and asked["design"] == 2, asked
    hits = UsageRecord.objects.filter(run_id=run.pk, status=UsageRecord.Status.CACHE_HIT)
    assert sorted(hits.values_list("operation", flat=True)) == ["deconstruct", "diagnose"]


def test_a_hanging_provider_neither_blocks_builtin_runs_nor_holds_workers_for_long(stack_env, model, fake):
    fake.hang_rate = 1.0
    stack = Stack(stack_env)
    try:
        hung = [stack.submit(text, str(model.pk)) for text in TEXTS[:2]]
        poll_until(
            lambda: OptimizationRun.objects.filter(pk__in=hung, status="running").count() == 2,
            timeout=30,
            failure=lambda: "the model runs did not start",
        )
        builtin = stack.submit(TEXTS[2], "builtin")
        builtin_s = wait_done([builtin], timeout=30)
        hung_s = wait_done(hung, timeout=60)
        later = [stack.submit(text, str(model.pk)) for text in TEXTS[3:5]]
        later_s = wait_done(later, timeout=60)
        runs = ended_once(hung + later)
        print(
            "\n[fault] provider hanging: a built-in run behind two hung model runs done in "
            f"{builtin_s:.1f} s; "
            f"the hung runs ended degraded after {hung_s:.1f} s more; with the breaker open the next two "
            f"took {later_s:.1f} s"
        )
        assert all(run.degraded_reason for run in runs), [
            (r.pk, r.engine, r.model, r.degraded_reason) for r in runs
        ]
        assert builtin_s < 10 and later_s < 15
        assert stack.page_failures == []
    finally:
        stack.close()


def test_redis_stopped_and_restarted_mid_run_with_a_half_failing_provider(stack_env, model, fake, own_redis):
    fake.fail_rate = 0.5
    stack = Stack(stack_env | {"REDIS_URL": own_redis.url})
    try:
        run_ids = [stack.submit(text, str(model.pk)) for text in TEXTS[:3]]
        poll_until(
            lambda: OptimizationRun.objects.filter(pk__in=run_ids, status="running").exists(),
            timeout=30,
            failure=lambda: "no run started",
        )
        own_redis.stop()
        stopped_at = time.monotonic()
        during = stack.submit(TEXTS[3], str(model.pk))  # submitted while Redis is away
        builtin_during = stack.submit(TEXTS[4], "builtin")
        time.sleep(5)
        own_redis.start()
        back_at = time.monotonic()
        wait_done([*run_ids, during, builtin_during], timeout=150)
        recovered = time.monotonic() - back_at
        runs = ended_once([*run_ids, during, builtin_during])
        print(
            f"\n[fault] Redis away for {back_at - stopped_at:.1f} s with a provider failing half its calls: "
            f"all {len(runs)} runs done {recovered:.1f} s after it came back "
            f"({sum(bool(r.degraded_reason) for r in runs)} degraded); {stack.pages_asked} page requests, "
            f"{len(stack.page_failures)} failed; /healthz said 503 {stack.health_503} times (Redis away)"
        )
        assert stack.page_failures == [] and stack.health_503 > 0
        assert recovered < 90
    finally:
        stack.close()
