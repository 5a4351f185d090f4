"""Reads of the optimizer app that are more than a one-line query."""

import datetime as dt
from collections.abc import Iterator

from django.db.models import Count, Q, QuerySet
from django.db.models.fields.json import KeyTransform
from django.shortcuts import get_object_or_404
from django.utils import timezone

from optimizer.models import OptimizationRun

HISTORY_SORTS = {
    "newest": ("-created_at", "-id"),
    "oldest": ("created_at", "id"),
    "gain": ("-score_gain", "-created_at"),
    "score": ("-score_after", "-created_at"),
    "cost": ("-cost", "-created_at"),
}
HISTORY_ROW_FIELDS = (
    "id", "prompt__title", "prompt__favorite", "prompt__tags", "prompt__type", "status", "engine", "model",
    "cached", "degraded_reason", "kept_original", "score_before", "score_after", "score_gain", "cost",
    "created_at",
)  # fmt: skip
# Read beside them: whether the version was edited by hand (its settings say so; the engine column
# says "builtin" for it, since the checklist that scored it is the built-in engine's).
HISTORY_ROW_VALUES = {"edited": KeyTransform("edited", "settings")}
CHAIN_LIMIT = 50  # versions shown each way; a chain longer than that is cut, never loops


def run_for_user(user, pk: int) -> OptimizationRun:
    """The user's run, or 404: another user's run is indistinguishable from a missing one."""
    return get_object_or_404(OptimizationRun.objects.select_related("prompt"), pk=pk, owner=user)


def history_runs(*, owner, filters: dict | None = None) -> QuerySet[OptimizationRun]:
    """The owner's runs, filtered (text search, type, engine, dates, favorites, score gain) and
    sorted; one query for any page of them, the prompt joined, only the columns a history row shows
    read (``.defer(None)`` reads them all)."""
    filters = filters or {}
    runs = OptimizationRun.objects.filter(owner=owner).select_related("prompt").only(*HISTORY_ROW_FIELDS)
    if query := (filters.get("q") or "").strip():
        runs = runs.filter(
            Q(prompt__title__icontains=query)
            | Q(prompt__text__icontains=query)
            | Q(optimized_text__icontains=query)
        )
    if filters.get("type"):
        runs = runs.filter(prompt__type=filters["type"])
    if filters.get("engine"):
        runs = runs.filter(engine=filters["engine"])
    if filters.get("favorite"):
        runs = runs.filter(prompt__favorite=True)
    if filters.get("min_gain") is not None:
        runs = runs.filter(score_gain__gte=filters["min_gain"])
    if filters.get("date_from"):
        runs = runs.filter(created_at__gte=_day_start(filters["date_from"]))
    if filters.get("date_to"):
        runs = runs.filter(created_at__lt=_day_start(filters["date_to"] + dt.timedelta(days=1)))
    return runs.order_by(*HISTORY_SORTS.get(filters.get("sort") or "newest"))


def _day_start(day: dt.date) -> dt.datetime:
    """Midnight of ``day`` in the site's time zone: dates in filters are the user's calendar days."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def version_chain(run: OptimizationRun, *, new: bool = False) -> list[OptimizationRun]:
    """Every version of this prompt's lineage, oldest first: the ancestors, this run, its descendants.
    ``new``: the run was created just now, so it has no descendants to look for."""
    ancestors, current = [], run
    seen = {run.pk}
    while current.parent_id and current.parent_id not in seen and len(ancestors) < CHAIN_LIMIT:
        current = (
            OptimizationRun.objects.select_related("prompt")
            .filter(pk=current.parent_id, owner=run.owner_id)
            .first()
        )
        if current is None:
            break
        seen.add(current.pk)
        ancestors.append(current)
    descendants, frontier = [], [] if new else [run.pk]
    while frontier and len(descendants) < CHAIN_LIMIT:
        # Found by parent alone, the owner checked here: with the owner in the query, SQLite walked
        # the owner's index, every run the owner ever made, instead of the parent's.
        children = [
            child
            for child in OptimizationRun.objects.select_related("prompt")
            .filter(parent_id__in=frontier)
            .order_by("created_at", "id")
            if child.owner_id == run.owner_id and child.pk not in seen
        ]
        seen.update(child.pk for child in children)
        descendants.extend(children)
        frontier = [child.pk for child in children]
    return [*reversed(ancestors), run, *descendants]


EXPORT_FIELDS = (
    "id", "created_at", "title", "type", "tags", "favorite", "status", "engine", "provider", "model",
    "settings", "parent_id", "score_before", "score_after", "cost", "cached", "degraded_reason",
    "original", "optimized", "changes", "diagnosis", "questions", "kept_original",
)  # fmt: skip


def history_export_rows(*, owner, filters: dict | None = None) -> Iterator[dict]:
    """One dict per run, for JSON and CSV export; streamed from the database in chunks."""
    runs = history_runs(owner=owner, filters=filters).defer(None).select_related("prompt")
    for run in runs.iterator(chunk_size=500):
        yield run_export_row(run)


def run_export_row(run: OptimizationRun) -> dict:
    return {
        "id": run.pk,
        "created_at": run.created_at.isoformat(),
        "title": run.prompt.title,
        "type": run.prompt.type,
        "tags": run.prompt.tags,
        "favorite": run.prompt.favorite,
        "status": run.status,
        "engine": run.engine,
        "provider": run.provider,
        "model": run.model,
        "settings": run.settings,
        "parent_id": run.parent_id,
        "score_before": run.score_before,
        "score_after": run.score_after,
        "cost": format(run.cost, "f"),
        "cached": run.cached,
        "degraded_reason": run.degraded_reason,
        "original": run.prompt.text,
        "optimized": run.optimized_text,
        "changes": run.changes,
        "diagnosis": run.diagnosis.get("issues", []) if isinstance(run.diagnosis, dict) else [],
        "questions": run.questions,
        "kept_original": run.kept_original,
    }


def questions_text(questions: list[dict]) -> str:
    """The open questions as a person reads them, one a line ("audience: Who reads it?"), for a CSV cell."""
    return "\n".join(f"{question['key']}: {question['question']}" for question in questions)


def cache_tier_stats(*, since: dt.datetime | None = None) -> dict:
    """Hits and misses of the result and analysis tiers, from the runs that recorded them."""
    runs = OptimizationRun.objects.all()
    if since:
        runs = runs.filter(created_at__gte=since)
    totals = runs.aggregate(
        result_hits=Count("id", filter=Q(cached=True)),
        result_misses=Count("id", filter=Q(cached=False) & ~Q(status=OptimizationRun.Status.QUEUED)),
        analysis_hits=Count("id", filter=Q(analysis_cached=True)),
        analysis_misses=Count(
            "id", filter=Q(cached=False, analysis_cached=False, status=OptimizationRun.Status.DONE)
        ),
    )
    return {
        "result": {"hits": totals["result_hits"], "misses": totals["result_misses"]},
        "analysis": {"hits": totals["analysis_hits"], "misses": totals["analysis_misses"]},
    }
