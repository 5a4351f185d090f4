"""Batches: stored, started a few at a time, cancelled, resumed, retried, deleted; on the real database
and task path (the built-in engine's runs executed by ``pipeline.run_next``, as a worker does)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_q.brokers import get_broker

from costs.models import UsageRecord
from optimizer import limits, pipeline, runqueue, services
from optimizer.batches import selectors
from optimizer.batches.parsing import Item, Parsed, Skipped
from optimizer.batches.services import (
    batch_cancel,
    batch_create,
    batch_delete,
    batch_resume,
    batch_retry_failed,
    batch_start,
    dispatch,
)
from optimizer.models import Batch, BatchItem, OptimizationRun, Prompt

pytestmark = pytest.mark.django_db
BUILTIN = OptimizationRun.Engine.BUILTIN
Status = OptimizationRun.Status


def _settings(**changes) -> dict:
    return (
        services.run_settings_build(
            prompt_type="general", preset="auto", techniques=[], model="builtin", keep_spans=True
        )
        | changes
    )


def _parsed(count: int, *, duplicates: dict[int, int] | None = None, **kwargs) -> Parsed:
    duplicates = duplicates or {}
    items = [
        Item(
            row=row,
            text=f"Explain topic {duplicates.get(row, row)} to a new colleague in three short paragraphs.",
            title=f"Topic {row}",
            duplicate_of=duplicates.get(row),
        )
        for row in range(1, count + 1)
    ]
    return Parsed(format="text", items=items, skipped=kwargs.get("skipped", []), empty_rows=0, columns=[])


def _started(owner, count: int, **kwargs) -> Batch:
    batch = batch_create(
        owner=owner, parsed=_parsed(count, **kwargs), run_settings=_settings(), source="p.txt"
    )
    return batch_start(batch=batch)


def _in_flight(batch: Batch) -> int:
    return OptimizationRun.objects.filter(batch=batch, status__in=[Status.QUEUED, Status.RUNNING]).count()


def test_a_created_batch_stores_its_items_and_starts_nothing(owner):
    skipped = [Skipped(row=9, reason="contains a control character", kind="control")]
    batch = batch_create(
        owner=owner,
        parsed=_parsed(3, duplicates={3: 1}, skipped=skipped),
        run_settings=_settings(),
        source="library.csv",
    )

    assert batch.status == Batch.Status.DRAFT
    assert batch.name.startswith("library (")
    assert batch.size == 3 and batch.skipped == [
        {"row": 9, "reason": "contains a control character", "kind": "control"}
    ]
    rows = {item.row: item for item in batch.items.all()}
    assert rows[3].duplicate_of == rows[1] and rows[2].duplicate_of is None
    assert not OptimizationRun.objects.exists() and not Prompt.objects.exists()


def test_a_duplicate_of_another_type_is_optimized_on_its_own(owner):
    items = [
        Item(row=1, text="Summarize this article for a busy manager."),
        Item(row=2, text="Summarize this article for a busy manager.", type="technical", duplicate_of=1),
    ]
    parsed = Parsed(format="csv", items=items, skipped=[], empty_rows=0, columns=["prompt", "type"])
    batch = batch_create(owner=owner, parsed=parsed, run_settings=_settings(), source="x.csv")

    assert list(batch.items.values_list("row", "type", "duplicate_of")) == [
        (1, "general", None),
        (2, "technical", None),
    ]


def test_a_duplicate_shares_the_result_of_the_first_item_of_its_own_type(owner):
    text = "Summarize this article for a busy manager."
    # The parser points every repeat at the first row with the text, whatever its type.
    items = [
        Item(row=1, text=text, type="creative"),
        Item(row=2, text=text, type="coding", duplicate_of=1),
        Item(row=3, text=text, type="coding", duplicate_of=1),
    ]
    parsed = Parsed(format="csv", items=items, skipped=[], empty_rows=0, columns=["prompt", "type"])
    batch = batch_create(owner=owner, parsed=parsed, run_settings=_settings(), source="x.csv")

    rows = {item.row: item for item in batch.items.all()}
    assert rows[2].duplicate_of is None and rows[3].duplicate_of == rows[2]


def test_nothing_to_optimize_is_refused(owner):
    with pytest.raises(ValidationError, match="nothing to optimize"):
        batch_create(
            owner=owner,
            parsed=Parsed(format="text", items=[], skipped=[], empty_rows=4, columns=[]),
            run_settings=_settings(),
            source="pasted text",
        )
    assert not Batch.objects.exists()


def test_starting_queues_no_more_than_the_concurrency(owner, settings, django_capture_on_commit_callbacks):
    settings.BATCH_CONCURRENCY = 3
    with django_capture_on_commit_callbacks(execute=True):
        batch = _started(owner, 10)

    assert batch.status == Batch.Status.RUNNING and batch.started_at is not None
    assert _in_flight(batch) == 3
    assert list(batch.items.exclude(dispatched_at=None).values_list("row", flat=True)) == [1, 2, 3]
    assert selectors.progress(batch).waiting == 7
    with pytest.raises(ValidationError, match="already been started"):
        batch_start(batch=batch)


def test_a_worker_finishes_the_whole_batch_and_each_item_runs_once(
    owner, settings, django_capture_on_commit_callbacks
):
    settings.BATCH_CONCURRENCY = 2
    with django_capture_on_commit_callbacks(execute=True):
        batch = _started(owner, 7, duplicates={6: 2, 7: 2})
    with django_capture_on_commit_callbacks(execute=True):
        ran = pipeline.run_next(engine=BUILTIN)  # a built-in token goes on while runs are queued

    batch.refresh_from_db()
    assert ran == 5  # the two duplicates share item 2's result
    assert batch.status == Batch.Status.DONE and batch.finished_at is not None
    assert OptimizationRun.objects.filter(batch=batch).count() == 5
    assert set(OptimizationRun.objects.filter(batch=batch).values_list("status", flat=True)) == {Status.DONE}
    assert BatchItem.objects.filter(batch=batch, duplicate_of=None, run=None).count() == 0
    progress = selectors.progress(batch)
    assert (progress.done, progress.duplicates, progress.remaining, progress.percent) == (5, 2, 0, 100)
    duplicate = batch.items.get(row=7)
    assert selectors.result_run(duplicate) == batch.items.get(row=2).run
    assert selectors.item_state(duplicate) == "duplicate"


def test_a_cache_hit_leaves_room_for_the_next_item(owner, settings, django_capture_on_commit_callbacks):
    settings.BATCH_CONCURRENCY = 1
    with django_capture_on_commit_callbacks(execute=True):
        first = _started(owner, 3)
    pipeline.run_next(engine=BUILTIN)
    with django_capture_on_commit_callbacks(execute=True):
        again = _started(owner, 3)  # the same texts and settings: the result cache answers each

    again.refresh_from_db()
    assert again.status == Batch.Status.DONE
    assert set(OptimizationRun.objects.filter(batch=again).values_list("cached", flat=True)) == {True}
    assert first.pk != again.pk


def test_cancel_takes_back_queued_items_and_resume_goes_on(
    owner, settings, django_capture_on_commit_callbacks
):
    settings.BATCH_CONCURRENCY = 3
    with django_capture_on_commit_callbacks(execute=True):
        batch = _started(owner, 5)
    prompts_before = Prompt.objects.count()

    assert batch_cancel(batch=batch) == 3
    assert batch.status == Batch.Status.CANCELLED
    assert not OptimizationRun.objects.filter(batch=batch).exists()
    assert Prompt.objects.count() == prompts_before - 3
    assert selectors.progress(batch).waiting == 5
    assert pipeline.run_next(engine=BUILTIN) == 0  # the tokens already queued find nothing
    assert dispatch(batch.pk) == 0  # a cancelled batch starts nothing
    with pytest.raises(ValidationError, match="Only a running batch"):
        batch_cancel(batch=batch)

    with django_capture_on_commit_callbacks(execute=True):
        batch_resume(batch=batch)
    pipeline.run_next(engine=BUILTIN)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.DONE
    assert OptimizationRun.objects.filter(batch=batch, status=Status.DONE).count() == 5


def test_a_running_item_finishes_after_cancel_and_starts_nothing_new(
    owner, settings, django_capture_on_commit_callbacks
):
    settings.BATCH_CONCURRENCY = 2
    with django_capture_on_commit_callbacks(execute=True):
        batch = _started(owner, 4)
    running = runqueue.claim_next(BUILTIN)  # a worker has taken the first item
    assert batch_cancel(batch=batch) == 1

    pipeline._execute(running)

    running.refresh_from_db()
    assert running.status == Status.DONE
    assert _in_flight(batch) == 0
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.CANCELLED


def test_retry_runs_the_failed_items_again(owner, settings, django_capture_on_commit_callbacks):
    settings.BATCH_CONCURRENCY = 5
    with django_capture_on_commit_callbacks(execute=True):
        batch = _started(owner, 3)
    pipeline.run_next(engine=BUILTIN)
    failed_run = batch.items.get(row=2).run
    # A run ended as failed (its worker gave up after RUN_MAX_ATTEMPTS, say).
    OptimizationRun.objects.filter(pk=failed_run.pk).update(status=Status.FAILED, error="gave up")
    assert selectors.progress(batch).failed == 1

    with django_capture_on_commit_callbacks(execute=True):
        assert batch_retry_failed(batch=batch) == 1
    pipeline.run_next(engine=BUILTIN)

    batch.refresh_from_db()
    item = batch.items.get(row=2)
    assert item.run != failed_run and item.run.status == Status.DONE
    assert batch.status == Batch.Status.DONE
    assert OptimizationRun.objects.filter(pk=failed_run.pk).exists()  # the failed one stays in the history
    with pytest.raises(ValidationError, match="No item of this batch has failed"):
        batch_retry_failed(batch=batch)


def test_the_sweep_finishes_a_batch_whose_worker_died_before_dispatching(
    owner, settings, django_capture_on_commit_callbacks
):
    settings.BATCH_CONCURRENCY = 1
    with django_capture_on_commit_callbacks(execute=True):
        batch = _started(owner, 2)
    # The worker finished item 1 and died before it started item 2.
    run = runqueue.claim_next(BUILTIN)
    pipeline._pipeline(run)
    assert selectors.progress(batch).waiting == 1

    with django_capture_on_commit_callbacks(execute=True):
        report = runqueue.sweep()
    pipeline.run_next(engine=BUILTIN)

    assert report.batches == 1
    batch.refresh_from_db()
    assert batch.status == Batch.Status.DONE


def test_a_batchs_runs_do_not_count_against_the_run_limit(
    owner, settings, django_capture_on_commit_callbacks
):
    settings.RUNS_PER_MINUTE = 3
    settings.BATCH_CONCURRENCY = 10
    with django_capture_on_commit_callbacks(execute=True):
        _started(owner, 8)
    assert OptimizationRun.objects.filter(owner=owner).count() == 8

    limits.run_limit_check(owner=owner)  # not refused: none of the 8 is a single run
    for _ in range(3):
        services.run_submit(
            owner=owner, text="Write a haiku about rain.", run_settings=_settings(), enqueue=False
        )
    with pytest.raises(limits.RunLimitExceeded):
        limits.run_limit_check(owner=owner)


def test_delete_removes_runs_and_prompts_and_keeps_what_was_spent(
    owner, settings, django_capture_on_commit_callbacks
):
    settings.BATCH_CONCURRENCY = 2
    with django_capture_on_commit_callbacks(execute=True):
        batch = _started(owner, 3)
    with pytest.raises(ValidationError, match="cancel it first"):
        batch_delete(batch=batch)
    run = OptimizationRun.objects.filter(batch=batch).first()
    UsageRecord.objects.create(
        user=owner, run=run, provider="p", model="m", operation="design", status="ok", cost=Decimal("0.01")
    )
    batch_cancel(batch=batch)
    keep = services.run_submit(
        owner=owner, text="A single prompt of mine.", run_settings=_settings(), enqueue=False
    )

    batch_delete(batch=batch)

    assert not Batch.objects.exists() and not BatchItem.objects.exists()
    assert list(OptimizationRun.objects.values_list("pk", flat=True)) == [keep.pk]
    assert list(Prompt.objects.values_list("pk", flat=True)) == [keep.prompt_id]
    assert UsageRecord.objects.get().cost == Decimal("0.01")


@pytest.fixture
def fast_queue(db):
    broker = get_broker(django_settings.FAST_QUEUE)
    broker.purge_queue()
    yield broker
    broker.purge_queue()


def test_items_a_draining_worker_queued_get_no_token_of_their_own(
    owner, settings, fast_queue, django_capture_on_commit_callbacks, monkeypatch
):
    settings.BATCH_CONCURRENCY = 2
    with django_capture_on_commit_callbacks(execute=True):
        batch = _started(owner, 6)
    assert fast_queue.queue_size() == 2  # the first two items' tokens

    with django_capture_on_commit_callbacks(execute=True):
        assert pipeline.run_next(engine=BUILTIN) == 6

    # The worker took the four items it queued itself: no token went through the broker for them.
    assert fast_queue.queue_size() == 2
    batch.refresh_from_db()
    assert batch.status == Batch.Status.DONE

    # A token that stops at its deadline with runs still queued hands on one token.
    services.run_submit(
        owner=owner, text="Queued, waiting for a worker.", run_settings=_settings(), enqueue=False
    )
    services.run_submit(owner=owner, text="Queued too, waiting.", run_settings=_settings(), enqueue=False)
    monkeypatch.setattr(pipeline, "DRAIN_S", 0)
    assert pipeline.run_next(engine=BUILTIN) == 1
    assert fast_queue.queue_size() == 3


def test_a_single_run_waits_behind_no_more_than_the_batchs_concurrency(
    owner, other_user, settings, django_capture_on_commit_callbacks
):
    settings.BATCH_CONCURRENCY = 2
    with django_capture_on_commit_callbacks(execute=True):
        batch = _started(owner, 50)
    mine = services.run_submit(
        owner=owner, text="My own prompt, now.", run_settings=_settings(), enqueue=False
    )
    theirs = services.run_submit(
        owner=other_user, text="Someone else's prompt.", run_settings=_settings(), enqueue=False
    )

    claimed = []
    while (run := runqueue.claim_next(BUILTIN)) is not None:
        claimed.append(run.pk)
        pipeline._execute(run)  # its end starts the batch's next item
        if {mine.pk, theirs.pk} <= set(claimed):
            break

    # Both went right after the two batch items queued before them, not after the other 48: the
    # batch's next items are queued only as its earlier ones end.
    assert claimed[2:] == [mine.pk, theirs.pk]
    assert OptimizationRun.objects.filter(batch=batch).count() == 4


# What a reviewer found


def test_cancel_lets_a_run_started_again_after_its_worker_died_go_on(
    owner, settings, django_capture_on_commit_callbacks
):
    settings.BATCH_CONCURRENCY = 2
    with django_capture_on_commit_callbacks(execute=True):
        batch = _started(owner, 4)
    # The worker of the first item died mid-run and the sweep queued it again (attempts 1): it may
    # have paid for stages, whose answers it keeps only as long as the run exists.
    first = runqueue.claim_next(BUILTIN)
    OptimizationRun.objects.filter(pk=first.pk).update(status=Status.QUEUED, worker="", heartbeat_at=None)

    assert batch_cancel(batch=batch) == 1  # only the item never started

    assert OptimizationRun.objects.get(pk=first.pk).status == Status.QUEUED
    with pytest.raises(ValidationError, match="still running or about to"):
        batch_delete(batch=batch)
    with django_capture_on_commit_callbacks(execute=True):
        pipeline.run_next(engine=BUILTIN)
    batch.refresh_from_db()
    assert OptimizationRun.objects.get(pk=first.pk).status == Status.DONE
    assert batch.status == Batch.Status.CANCELLED  # the others wait for Resume
    assert selectors.progress(batch).waiting == 3


def test_a_cancelled_batch_whose_last_items_end_is_done(owner, settings, django_capture_on_commit_callbacks):
    settings.BATCH_CONCURRENCY = 5
    with django_capture_on_commit_callbacks(execute=True):
        batch = _started(owner, 2)
    running = [runqueue.claim_next(BUILTIN), runqueue.claim_next(BUILTIN)]  # every item has started
    with django_capture_on_commit_callbacks(execute=True):
        assert batch_cancel(batch=batch) == 0
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.CANCELLED

    for run in running:
        pipeline._execute(run)

    batch.refresh_from_db()
    assert batch.status == Batch.Status.DONE and batch.finished_at is not None


def test_deleting_a_batchs_queued_run_starts_the_next_item(
    owner, settings, django_capture_on_commit_callbacks
):
    settings.BATCH_CONCURRENCY = 1
    with django_capture_on_commit_callbacks(execute=True):
        batch = _started(owner, 2)
    queued = OptimizationRun.objects.get(batch=batch)

    with django_capture_on_commit_callbacks(execute=True):
        services.run_delete(run=queued)

    assert selectors.item_state(batch.items.get(row=1)) == "deleted"
    assert OptimizationRun.objects.get(batch=batch).prompt.text == batch.items.get(row=2).text
    with django_capture_on_commit_callbacks(execute=True):
        services.run_delete(run=OptimizationRun.objects.get(batch=batch))
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.DONE


def test_one_users_batches_share_one_bound_and_go_on_one_after_the_other(
    owner, settings, django_capture_on_commit_callbacks
):
    settings.BATCH_CONCURRENCY = 3
    with django_capture_on_commit_callbacks(execute=True):
        first = _started(owner, 2)
        second = batch_start(
            batch=batch_create(
                owner=owner,
                parsed=Parsed(
                    format="text",
                    items=[
                        Item(row=row, text=f"Write a haiku about the number {row}.") for row in range(1, 5)
                    ],
                    skipped=[],
                    empty_rows=0,
                    columns=[],
                ),
                run_settings=_settings(),
                source="second.txt",
            )
        )
    assert _in_flight(first) == 2 and _in_flight(second) == 1  # 3 in all, not 2 + 3

    with django_capture_on_commit_callbacks(execute=True):
        pipeline.run_next(engine=BUILTIN)

    assert Batch.objects.get(pk=first.pk).status == Batch.Status.DONE
    assert Batch.objects.get(pk=second.pk).status == Batch.Status.DONE  # started as the first's ended


def test_a_file_name_that_is_not_utf8_is_stored_readably(owner):
    name = b"library-\xff.csv".decode("utf-8", "surrogateescape")  # as sys.argv holds it
    batch = batch_create(owner=owner, parsed=_parsed(1), run_settings=_settings(), source=name)

    batch.refresh_from_db()
    assert batch.source == "library-\ufffd.csv" and batch.name.startswith("library-\ufffd (")


def test_the_figures_count_what_has_happened(owner, settings, django_capture_on_commit_callbacks):
    settings.BATCH_CONCURRENCY = 2
    with django_capture_on_commit_callbacks(execute=True):
        batch = _started(owner, 6, duplicates={5: 1, 6: 1})
    # Nothing has run: the duplicates are not settled before their first item is.
    before = selectors.progress(batch)
    assert (before.settled, before.percent, before.per_second) == (0, 0, None)

    with django_capture_on_commit_callbacks(execute=True):
        pipeline.run_next(engine=BUILTIN)
    runs = OptimizationRun.objects.filter(batch=batch).order_by("pk")
    # A day later, one item is retried: the rate is the runs', not the idle day's.
    base = timezone.now() - timedelta(days=1)
    for n, run in enumerate(runs):
        OptimizationRun.objects.filter(pk=run.pk).update(finished_at=base + timedelta(seconds=2 * n))
    failed = runs[1]
    OptimizationRun.objects.filter(pk=failed.pk).update(status=Status.FAILED, error="gave up")
    UsageRecord.objects.create(  # what it paid before it failed
        user=owner,
        run=failed,
        provider="p",
        model="m",
        operation="deconstruct",
        status="ok",
        cost=Decimal("0.02"),
    )
    batch_retry_failed(batch=batch)
    middle = selectors.progress(batch)

    assert middle.per_second == pytest.approx(0.5)  # 4 runs 2 s apart
    assert middle.eta_s == pytest.approx(2.0)  # one item left
    assert middle.cost == Decimal("0.02")
    assert (middle.settled, middle.percent) == (5, 83)  # 3 done + 2 duplicates, rounded down
    listed = selectors.batches_of(owner).get(pk=batch.pk)
    assert (listed.finished, listed.spent) == (5, Decimal("0.02"))
