"""What the batch pages, the command and the exports read. Each is a fixed number of queries, whatever
the size of the batch (the rows are paged)."""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db.models import Count, DecimalField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404

from costs.models import UsageRecord
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


ENDED = (RunStatus.DONE, RunStatus.FAILED)
RATE_WINDOW = 50  # the throughput and the ETA come from the batch's last this many runs that ran


def _spent(batch_ref) -> Subquery:
    """What the batch's runs cost, from their usage records: a run that failed after paying for
    stages counts too (its own cost field is written only when it succeeds)."""
    records = UsageRecord.objects.filter(run__batch=batch_ref).order_by().values("run__batch")
    return Subquery(records.annotate(total=Sum("cost")).values("total")[:1])


def batches_of(owner) -> QuerySet:
    """The user's batches, newest first, with what they cost and how many of their items have a
    result or have failed (duplicates once their first item has): one query, whatever their size."""
    settled = (
        BatchItem.objects.filter(batch=OuterRef("pk"))
        .filter(Q(run__status__in=ENDED) | Q(duplicate_of__run__status__in=ENDED))
        .order_by()
        .values("batch")
        .annotate(n=Count("id"))
        .values("n")[:1]
    )
    return Batch.objects.filter(owner=owner).annotate(
        spent=Coalesce(_spent(OuterRef("pk")), Decimal(0), output_field=DecimalField()),
        finished=Coalesce(Subquery(settled), 0),
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
    duplicates_settled: int  # duplicates whose first item has ended
    deleted: int  # their run was deleted from the history
    skipped: int  # rows left out of the batch (listed on the page), empty ones included
    cost: Decimal
    unpriced_calls: int
    per_second: float | None  # items a second over the batch's last runs; None: too few to tell
    degraded_from: dict | None  # {"row", "reason", "count"}: items the built-in engine finished

    @property
    def settled(self) -> int:
        """Items that need nothing more: done, failed, deleted, and duplicates of those."""
        return self.done + self.failed + self.duplicates_settled + self.deleted

    @property
    def remaining(self) -> int:
        return self.waiting + self.queued + self.running

    @property
    def percent(self) -> int:
        """Rounded down: 100 only when every item is settled."""
        return 100 * self.settled // self.size if self.size else 100

    @property
    def eta_s(self) -> float | None:
        rate = self.per_second
        return self.remaining / rate if rate and self.remaining else None


def progress(batch: Batch) -> Progress:
    """How far the batch is (four queries, whatever its size)."""
    own = Q(duplicate_of=None)
    done = own & Q(run__status=RunStatus.DONE)
    degraded = done & ~Q(run__degraded_reason="")
    counts = batch.items.aggregate(
        waiting=Count("id", filter=own & Q(dispatched_at=None)),
        queued=Count("id", filter=own & Q(run__status=RunStatus.QUEUED)),
        running=Count("id", filter=own & Q(run__status=RunStatus.RUNNING)),
        done=Count("id", filter=done),
        degraded=Count("id", filter=degraded),
        cached=Count("id", filter=done & Q(run__cached=True)),
        failed=Count("id", filter=own & Q(run__status=RunStatus.FAILED)),
        deleted=Count("id", filter=own & Q(dispatched_at__isnull=False, run=None)),
        duplicates=Count("id", filter=Q(duplicate_of__isnull=False)),
        duplicates_settled=Count(
            "id", filter=Q(duplicate_of__isnull=False, duplicate_of__run__status__in=ENDED)
        ),
    )
    costs = UsageRecord.objects.filter(run__batch=batch).aggregate(
        spent=Sum("cost", default=Decimal(0)),
        unpriced=Count("id", filter=Q(cost__isnull=True) & ~Q(status=UsageRecord.Status.CACHE_HIT)),
    )
    first_degraded = (
        batch.items.filter(degraded).order_by("row").values("row", "run__degraded_reason").first()
    )
    return Progress(
        size=batch.size,
        **counts,
        skipped=len(batch.skipped) + batch.empty_rows,
        cost=costs["spent"],
        unpriced_calls=costs["unpriced"],
        per_second=_rate(batch),
        degraded_from=(
            {
                "row": first_degraded["row"],
                "reason": first_degraded["run__degraded_reason"],
                "count": counts["degraded"],
            }
            if first_degraded
            else None
        ),
    )


def _rate(batch: Batch) -> float | None:
    """Items a second, from when the batch's last ``RATE_WINDOW`` runs that ran (not those the result
    cache answered at once) finished: time the batch sat cancelled or done before a Resume or a
    retry does not count, nor a burst of cached ones."""
    ends = list(
        OptimizationRun.objects.filter(batch=batch, status__in=ENDED, cached=False)
        .order_by("-finished_at")
        .values_list("finished_at", flat=True)[:RATE_WINDOW]
    )
    if len(ends) < 2 or ends[0] is None or ends[-1] is None:
        return None
    span = (ends[0] - ends[-1]).total_seconds()
    return (len(ends) - 1) / span if span > 0 else None


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
