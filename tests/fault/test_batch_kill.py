"""A batch on the real stack (`manage.py serve` and its task clusters over the test database, a fake
provider on loopback) whose model cluster is killed with SIGKILL while items are mid-run: once the
supervisor has started the cluster again, every item is finished exactly once (one run each, no
stage billed twice) and the batch ends done, never left "running" with nothing running."""

import time

import pytest
from django.conf import settings as django_settings

from optimizer import services
from optimizer.batches.parsing import Item, Parsed
from optimizer.batches.services import batch_create
from optimizer.models import Batch, BatchItem, OptimizationRun
from tests.fault.stack import TEXTS, Stack, ended_once
from tests.optimizer.processes import poll_until
from tests.support import manage

START = "from optimizer.batches.services import batch_start; from optimizer.models import Batch; " \
    "batch_start(batch=Batch.objects.get(pk={pk}))"  # fmt: skip


def _kill_mid_batch(stack: Stack, model, env: dict[str, str]) -> float:
    # Twelve texts, none a duplicate of another (a duplicate shares its first item's run).
    texts = TEXTS + [f"{text}\n\nA second version, for comparison." for text in TEXTS]
    items = [Item(row=row, text=text) for row, text in enumerate(texts, start=1)]
    run_settings = services.run_settings_build(
        prompt_type="general", preset="auto", techniques=[], model=str(model.pk), keep_spans=True
    )
    batch = batch_create(
        owner=stack.user,
        parsed=Parsed(format="text", items=items, skipped=[], empty_rows=0, columns=[]),
        run_settings=run_settings,
        source="fault.txt",
    )
    # Started by the stack's own settings, so the first tokens go to the broker its clusters read.
    started = manage("shell", "-c", START.format(pk=batch.pk), env=env)
    assert started.returncode == 0, started.stderr

    runs = OptimizationRun.objects.filter(batch=batch)
    poll_until(
        lambda: runs.filter(status="running", stage__in=["diagnose", "design"]).count() >= 2,
        timeout=60,
        failure=lambda: f"no two items got to their second stage:\n{stack.serve.output[-3000:]}",
    )
    in_progress = set(runs.filter(status="running").values_list("pk", flat=True))
    time.sleep(0.5)
    killed_at = time.monotonic()
    stack.kill_cluster(django_settings.Q_CLUSTER["name"])

    poll_until(
        lambda: Batch.objects.get(pk=batch.pk).status == Batch.Status.DONE,
        timeout=180,
        failure=lambda: (
            f"the batch did not finish: {list(runs.values_list('pk', 'status', 'attempts'))}\n"
            f"{stack.serve.output[-6000:]}"
        ),
    )
    finished_after = time.monotonic() - killed_at
    assert runs.count() == len(items), "an item was run twice, or not at all"
    assert BatchItem.objects.filter(batch=batch, run=None).count() == 0
    assert sorted(BatchItem.objects.filter(batch=batch).values_list("run_id", flat=True)) == sorted(
        runs.values_list("pk", flat=True)
    )
    try:
        ended_once(list(runs.values_list("pk", flat=True)))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- serve:\n{stack.serve.output[-8000:]}") from None
    assert set(runs.filter(pk__in=in_progress).values_list("attempts", flat=True)) == {2}
    assert stack.page_failures == []
    print(
        f"\n[fault] batch of {len(items)} with {len(in_progress)} items mid-run when the cluster was "
        f"SIGKILLed: done {finished_after:.1f} s later, each item once"
    )
    return finished_after


@pytest.fixture
def batch_env(stack_env, settings):
    settings.BATCH_CONCURRENCY = 2
    return stack_env | {"BATCH_CONCURRENCY": "2"}


def test_a_batch_whose_cluster_is_killed_finishes_each_item_once_on_the_orm_broker(batch_env, model, fake):
    fake.latency = 0.3
    stack = Stack(batch_env)
    try:
        assert _kill_mid_batch(stack, model, batch_env) < 180  # the seconds from the kill to done
    finally:
        stack.close()


def test_a_batch_whose_cluster_is_killed_finishes_each_item_once_on_the_redis_broker(
    batch_env, model, fake, own_redis
):
    fake.latency = 0.3
    env = batch_env | {"REDIS_URL": own_redis.url}
    stack = Stack(env)
    try:
        assert _kill_mid_batch(stack, model, env) < 180
    finally:
        stack.close()
