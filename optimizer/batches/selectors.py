"""What the batch pages, the command and the exports read. Each is a fixed number of queries, whatever
the size of the batch (the rows are paged)."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Max, Q, QuerySet, Sum
from django.shortcuts import get_object_or_404
from django.utils import timezone

from optimizer.models import Batch, BatchItem, OptimizationRun

RunStatus = OptimizationRun.Status

# What an item is, from its run: the filter names of the results table, in the order shown.
ITEM_STATES = {
    "waiting": "Waiting",
    "queued": "Queued",
    "running": "Running",
    "done": "Done",
    "degraded": "Done on the built-in engine",
    "cached": "From the cache",
    "failed": "Failed",
    "duplicate": "Duplicate",
    "deleted": "Deleted from the history",
}
SORTS = {  # name: ordering of items
    "row": ("row",),
    "-row": ("-row",),
    "gain": ("-run__score_gain", "row"),
    "-gain": ("run__score_gain", "row"),
    "cost": ("-run__cost", "row"),
    "status": ("run__status", "row"),
    "title": ("title", "row"),
}


def batch_of(owner, pk: int) -> Batch:
    """The user's batch, or 404: another user's batch does not exist for them."""
    return get_object_or_404(Batch, pk=pk, owner=owner)


def batches_of(owner) -> QuerySet:
    """The user's batches, newest first, with what they cost and how far they got (one query)."""
    return Batch.objects.filter(owner=owner).annotate(
        spent=Sum("runs__cost", default=Decimal(0)),
        finished=Count("runs", filter=Q(runs__status__in=[RunStatus.DONE, RunStatus.FAILED])),
    )


@dataclass(frozen=True)
class Progress:
    size: int  # items, duplicates included
    waiting: int  # not started yet
    queued: int
    running: int
    done: int  # degraded and cached ones included
    degraded: int
    cached: int
    failed: int
    duplicates: int
    deleted: int  # their run was deleted from the history
    skipped: int  # rows left out of the batch (listed on the page), empty ones included
    cost: Decimal
    unpriced_calls: int
    elapsed_s: float
    degraded_from: dict | None  # {"row", "reason"}: the first item the built-in engine finished

    @property
    def settled(self) -> int:
        """Items that need nothing more: done, failed, duplicates and deleted."""
        return self.done + self.failed + self.duplicates + self.deleted

    @property
    def remaining(self) -> int:
        return self.waiting + self.queued + self.running

    @property
    def percent(self) -> int:
        return round(100 * self.settled / self.size) if self.size else 100

    @property
    def per_second(self) -> float | None:
        """Items finished per second since the batch started."""
        finished = self.done + self.failed
        return finished / self.elapsed_s if finished and self.elapsed_s > 0 else None

    @property
    def eta_s(self) -> float | None:
        rate = self.per_second
        return self.remaining / rate if rate and self.remaining else None


def progress(batch: Batch, now: datetime | None = None) -> Progress:
    """How far the batch is (two queries)."""
    own = batch.items.filter(duplicate_of=None)
    done = Q(run__status=RunStatus.DONE)
    counts = own.aggregate(
        waiting=Count("id", filter=Q(dispatched_at=None)),
        queued=Count("id", filter=Q(run__status=RunStatus.QUEUED)),
        running=Count("id", filter=Q(run__status=RunStatus.RUNNING)),
        done=Count("id", filter=done),
        degraded=Count("id", filter=done & ~Q(run__degraded_reason="")),
        cached=Count("id", filter=done & Q(run__cached=True)),
        failed=Count("id", filter=Q(run__status=RunStatus.FAILED)),
        deleted=Count("id", filter=Q(dispatched_at__isnull=False, run=None)),
        own=Count("id"),
        last=Max("run__finished_at"),
    )
    runs = OptimizationRun.objects.filter(batch=batch).aggregate(
        cost=Sum("cost", default=Decimal(0)), unpriced=Sum("unpriced_calls", default=0)
    )
    first_degraded = (
        own.filter(done)
        .exclude(run__degraded_reason="")
        .order_by("row")
        .values("row", "run__degraded_reason")
        .first()
    )
    now = now or timezone.now()
    until = batch.finished_at or (now if batch.status == Batch.Status.RUNNING else counts["last"] or now)
    elapsed = (until - batch.started_at).total_seconds() if batch.started_at else 0.0
    return Progress(
        size=batch.size,
        waiting=counts["waiting"],
        queued=counts["queued"],
        running=counts["running"],
        done=counts["done"],
        degraded=counts["degraded"],
        cached=counts["cached"],
        failed=counts["failed"],
        duplicates=batch.size - counts["own"],
        deleted=counts["deleted"],
        skipped=len(batch.skipped) + batch.empty_rows,
        cost=runs["cost"],
        unpriced_calls=runs["unpriced"],
        elapsed_s=max(elapsed, 0.0),
        degraded_from=(
            {"row": first_degraded["row"], "reason": first_degraded["run__degraded_reason"]}
            if first_degraded
            else None
        ),
    )


def item_state(item: BatchItem) -> str:
    """One of ``ITEM_STATES``; a duplicate reads its first item's run (``result_run``)."""
    if item.duplicate_of_id is not None:
        return "duplicate"
    if item.dispatched_at is None:
        return "waiting"
    run = item.run
    if run is None:
        return "deleted"
    if run.status == RunStatus.DONE:
        return "cached" if run.cached else "degraded" if run.degraded_reason else "done"
    return run.status


def result_run(item: BatchItem) -> OptimizationRun | None:
    """The run whose result the item shows: its own, or its first item's for a duplicate."""
    return item.duplicate_of.run if item.duplicate_of_id is not None else item.run


def _state_filter(state: str) -> Q:
    done = Q(duplicate_of=None, run__status=RunStatus.DONE)
    return {
        "waiting": Q(duplicate_of=None, dispatched_at=None),
        "queued": Q(duplicate_of=None, run__status=RunStatus.QUEUED),
        "running": Q(duplicate_of=None, run__status=RunStatus.RUNNING),
        "done": done & Q(run__cached=False, run__degraded_reason=""),
        "degraded": done & ~Q(run__degraded_reason=""),
        "cached": done & Q(run__cached=True),
        "failed": Q(duplicate_of=None, run__status=RunStatus.FAILED),
        "duplicate": Q(duplicate_of__isnull=False),
        "deleted": Q(duplicate_of=None, dispatched_at__isnull=False, run=None),
    }[state]


def items(batch: Batch, *, state: str = "", q: str = "", sort: str = "row") -> QuerySet:
    """The batch's items for the results table and the exports, with their runs (and, for a
    duplicate, its first item's run) in the same query. Unknown ``state``/``sort`` values are the
    caller's to refuse (``ITEM_STATES``, ``SORTS``)."""
    found = batch.items.select_related("run", "duplicate_of__run")
    if state:
        found = found.filter(_state_filter(state))
    if q:
        found = found.filter(
            Q(title__icontains=q) | Q(text__icontains=q) | Q(run__optimized_text__icontains=q)
        )
    return found.order_by(*SORTS.get(sort, SORTS["row"]))


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return str(timedelta(seconds=round(seconds)))
