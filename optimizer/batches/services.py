"""State changes of batches. A batch is many ordinary runs that share settings: its items become runs
through ``optimizer.services.run_submit`` (the same pipeline, result cache, gateway, budgets and
history as a single run), a few at a time.

``dispatch`` starts items while fewer than ``BATCH_CONCURRENCY`` of the batch's runs are queued or
running. It runs when the batch starts, whenever one of its runs ends (in the worker that ran it), and
in the minute sweep, which also finishes the batch a killed worker left; the batch row is locked while
it runs and an item's run is recorded in the transaction that creates it, so however many processes
dispatch at once each item starts once. A run whose worker died is queued again by the sweep like any
other, and keeps the answers it paid for (``StageAnswer``), so a killed worker never bills an item
twice.
"""

import logging
import re
from dataclasses import asdict
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from optimizer import runqueue, services
from optimizer.batches.parsing import CONTROL, Parsed
from optimizer.models import Batch, BatchItem, OptimizationRun, Prompt

logger = logging.getLogger(__name__)

Status = Batch.Status
RunStatus = OptimizationRun.Status
IN_FLIGHT = (RunStatus.QUEUED, RunStatus.RUNNING)
CHUNK = 100  # items started per transaction: result-cache hits finish at once and leave room for more
NAME_MAX = Batch._meta.get_field("name").max_length
CANCELLED = "The batch was cancelled before this item started."


def batch_create(*, owner, parsed: Parsed, run_settings: dict, source: str, name: str = "") -> Batch:
    """A batch from parsed input (``optimizer.batches.parsing``), not started: its items are stored
    and nothing runs until ``batch_start``. An item with the same text (as the parser compares it)
    and type as an earlier one shares that item's result instead of running again."""
    if not parsed.items:
        raise ValidationError("There is nothing to optimize: every row was empty or skipped.")
    source = _text(source)
    with transaction.atomic():
        batch = Batch.objects.create(
            owner=owner,
            name=_text(name.strip() or _name_from(source))[:NAME_MAX],
            settings=run_settings,
            source=source[: Batch._meta.get_field("source").max_length],
            format=parsed.format,
            skipped=[asdict(skipped) for skipped in parsed.skipped],
            empty_rows=parsed.empty_rows,
            size=len(parsed.items),
        )
        items = BatchItem.objects.bulk_create(
            [
                BatchItem(
                    batch=batch,
                    row=item.row,
                    title=item.title,
                    text=item.text,
                    type=item.type or run_settings["type"],
                    tags=list(item.tags),
                )
                for item in parsed.items
            ],
            batch_size=500,
        )
        # Keyed on the text and the type: the same text with another type is another optimization,
        # and a third item shares the result of the first one of its own type.
        first_of: dict[tuple[str, str], BatchItem] = {}
        duplicates = []
        for item in items:
            first = first_of.setdefault((item.text, item.type), item)
            if first is not item:
                item.duplicate_of = first
                duplicates.append(item)
        BatchItem.objects.bulk_update(duplicates, ["duplicate_of"], batch_size=500)
    return batch


def _text(given: str) -> str:
    """A name as text that can be stored: a file name from the command line may hold bytes that are
    not UTF-8 (surrogate escapes), which become U+FFFD; control characters become spaces."""
    text = given.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return " ".join(CONTROL.sub(" ", text).split())


def _name_from(source: str) -> str:
    stem = re.sub(r"\.(csv|json|jsonl|ndjson|txt)$", "", source.strip(), flags=re.IGNORECASE)
    return f"{stem[: NAME_MAX - 19] or 'Batch'} ({timezone.now():%Y-%m-%d %H:%M})"  # the date always shows


def batch_start(*, batch: Batch) -> Batch:
    """Start a previewed batch: its first items are queued once this transaction commits."""
    with transaction.atomic():
        if not Batch.objects.filter(pk=batch.pk, status=Status.DRAFT).update(
            status=Status.RUNNING, started_at=timezone.now()
        ):
            raise ValidationError("This batch has already been started.")
        transaction.on_commit(lambda: dispatch(batch.pk))
    batch.refresh_from_db()
    return batch


def _locked(batch_id: int) -> Batch | None:
    """The batch, its row locked until the transaction ends (SQLite: the transaction's write lock)."""
    return Batch.objects.select_for_update(of=("self",)).select_related("owner").filter(pk=batch_id).first()


def _waiting(batch: Batch):
    """Items not started yet, in their order (duplicates never start)."""
    return batch.items.filter(dispatched_at=None, duplicate_of=None).order_by("row")


def dispatch(batch_id: int, *, drained: str = "") -> int:
    """Start the batch's next items while fewer than ``BATCH_CONCURRENCY`` runs of its owner's
    batches are queued or running (one bound per user, so several batches do not multiply it), and
    mark the batch done when nothing of it is left to start or running (a cancelled one too, once
    its last running item ends). Returns how many items were started. Safe anywhere, any number of
    times, in several processes at once.

    ``drained``: the engine whose queue the calling worker goes on taking runs from (see
    ``pipeline.run_next``); items queued for that engine get no token of their own."""
    started = 0
    while True:
        with transaction.atomic():
            batch = _locked(batch_id)
            if batch is None or batch.status not in (Status.RUNNING, Status.CANCELLED):
                return started
            in_flight = OptimizationRun.objects.filter(batch=batch, status__in=IN_FLIGHT).count()
            todo = []
            if batch.status == Status.RUNNING:
                room = settings.BATCH_CONCURRENCY - _owner_in_flight(batch.owner_id)
                todo = list(_waiting(batch)[: min(room, CHUNK)]) if room > 0 else []
            now = timezone.now()
            for item in todo:
                run = services.run_submit(
                    owner=batch.owner,
                    text=item.text,
                    run_settings=batch.settings | {"type": item.type},
                    title=item.title,
                    tags=item.tags,
                    batch=batch,
                    enqueue=False,
                )
                if run.status == RunStatus.QUEUED and run.engine != drained:
                    transaction.on_commit(partial(runqueue.enqueue, run.engine))
                BatchItem.objects.filter(pk=item.pk).update(run=run, dispatched_at=now)
            started += len(todo)
            if not todo:
                if in_flight == 0 and not _waiting(batch).exists():
                    Batch.objects.filter(pk=batch.pk).update(status=Status.DONE, finished_at=now)
                return started
        # Another round: the result cache may have finished some at once, leaving room.


def _owner_in_flight(owner_id: int) -> int:
    """Runs of the owner's batches queued or running. On PostgreSQL the owner's row is locked first
    (FOR NO KEY UPDATE, as the run limit does), so two of their batches dispatched at once count
    each other's new runs; SQLite's write lock serialises them already."""
    if connection.features.has_select_for_update:
        list(get_user_model().objects.select_for_update(no_key=True).filter(pk=owner_id).values_list("pk"))
    return OptimizationRun.objects.filter(
        owner_id=owner_id, batch__isnull=False, status__in=IN_FLIGHT
    ).count()


def dispatch_running() -> int:
    """Dispatch every running batch, oldest first, and finish the cancelled ones with nothing left
    running (the sweep): heals a batch whose worker died between a run's end and its dispatch."""
    batches = Batch.objects.filter(status__in=[Status.RUNNING, Status.CANCELLED]).order_by("started_at", "pk")
    return sum(dispatch(pk) for pk in batches.values_list("pk", flat=True))


def run_ended(run: OptimizationRun, *, draining: bool = False) -> None:
    """A run of a batch ended (its worker calls this; ``draining``: the worker goes on taking queued
    runs of the run's engine): start the batch's next items, or, when it has none left to start,
    those of the owner's other running batches (oldest first: they share the owner's bound). A
    failure here is logged; the sweep dispatches again within a minute."""
    if run.batch_id is None:
        return
    drained = run.engine if draining else ""
    try:
        if dispatch(run.batch_id, drained=drained):
            return
        others = Batch.objects.filter(owner_id=run.owner_id, status=Status.RUNNING).exclude(pk=run.batch_id)
        for batch_id in others.order_by("started_at", "pk").values_list("pk", flat=True):
            if dispatch(batch_id, drained=drained):
                return
    except Exception:  # the run itself is finished; its batch is picked up again by the sweep
        logger.exception("batch %s: the next items were not started after run %s", run.batch_id, run.pk)


def batch_cancel(*, batch: Batch) -> int:
    """Stop a running batch: items running now finish, queued ones are taken back (their runs deleted,
    the items waiting again) and no new one starts. Returns how many were taken back."""
    with transaction.atomic():
        locked = _locked(batch.pk)
        if locked is None or locked.status != Status.RUNNING:
            raise ValidationError("Only a running batch can be cancelled.")
        # A run queued again after its worker died (attempts > 0) may have paid for stages: it goes
        # on, like a running one, and keeps its answers; only runs never started are taken back.
        queued = list(
            OptimizationRun.objects.filter(batch=locked, status=RunStatus.QUEUED, attempts=0).values_list(
                "pk", flat=True
            )
        )
        # A worker may claim one of them meanwhile (PostgreSQL): only those still queued are taken.
        OptimizationRun.objects.filter(pk__in=queued, status=RunStatus.QUEUED, attempts=0).update(
            status=RunStatus.FAILED, error=CANCELLED
        )
        taken = OptimizationRun.objects.filter(pk__in=queued, status=RunStatus.FAILED, error=CANCELLED)
        taken_ids = list(taken.values_list("pk", flat=True))
        prompt_ids = list(taken.values_list("prompt_id", flat=True))
        BatchItem.objects.filter(run_id__in=taken_ids).update(run=None, dispatched_at=None)
        OptimizationRun.objects.filter(pk__in=taken_ids).delete()
        Prompt.objects.filter(pk__in=prompt_ids, runs=None).delete()
        Batch.objects.filter(pk=locked.pk).update(status=Status.CANCELLED)
        # Nothing left to run or running (every item had started and ended): it is done.
        transaction.on_commit(lambda: dispatch(batch.pk))
    batch.refresh_from_db()
    return len(taken_ids)


def batch_resume(*, batch: Batch) -> Batch:
    """Go on with a cancelled batch from where it stopped."""
    with transaction.atomic():
        if not Batch.objects.filter(pk=batch.pk, status=Status.CANCELLED).update(status=Status.RUNNING):
            raise ValidationError("Only a cancelled batch can be resumed.")
        transaction.on_commit(lambda: dispatch(batch.pk))
    batch.refresh_from_db()
    return batch


def batch_retry_failed(*, batch: Batch) -> int:
    """Run the failed items again (new runs; the failed ones stay in the history). Returns how many."""
    with transaction.atomic():
        locked = _locked(batch.pk)
        if locked is None or locked.status == Status.DRAFT:
            raise ValidationError("This batch has not started: start it first.")
        failed = BatchItem.objects.filter(batch=locked, duplicate_of=None, run__status=RunStatus.FAILED)
        count = failed.update(run=None, dispatched_at=None)
        if not count:
            raise ValidationError("No item of this batch has failed.")
        if locked.status != Status.CANCELLED:  # a cancelled batch retries when it is resumed
            Batch.objects.filter(pk=locked.pk).update(status=Status.RUNNING, finished_at=None)
            transaction.on_commit(lambda: dispatch(batch.pk))
    batch.refresh_from_db()
    return count


def batch_delete(*, batch: Batch) -> None:
    """Delete a batch, its items and its runs (and their prompts). Usage records stay: what was
    spent is not forgotten. Refused while an item runs: cancel first and let it finish."""
    with transaction.atomic():
        locked = _locked(batch.pk)
        if locked is None:
            return
        if locked.status == Status.RUNNING:
            raise ValidationError("This batch is running: cancel it first, then delete it.")
        if OptimizationRun.objects.filter(batch=locked, status__in=IN_FLIGHT).exists():
            raise ValidationError(
                "Some of this batch's items are still running or about to (started again after their "
                "worker stopped): wait for them to finish (a minute or two), then delete it."
            )
        prompt_ids = list(OptimizationRun.objects.filter(batch=locked).values_list("prompt_id", flat=True))
        BatchItem.objects.filter(batch=locked).update(run=None)
        OptimizationRun.objects.filter(batch=locked).delete()
        locked.delete()
        Prompt.objects.filter(pk__in=prompt_ids, runs=None).delete()
