"""Every figure of the monitoring page, read from what the product records: usage records, runs,
the circuit breakers' shared state, django-q2's tables and the workers' heartbeat rows. No counter is
kept twice. Each function makes a fixed number of queries, whatever the number of records: windows
are bounded in time and percentiles are picked by the database (a window function), not in Python.
"""

import datetime as dt
import math
import os
import socket
import time
from decimal import Decimal

import psutil
from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, Case, Count, F, Min, Q, Sum, When, Window
from django.db.models.functions import Ceil, RowNumber
from django_q.brokers import get_broker
from django_q.models import Schedule, Task

from costs.models import BUILTIN_PROVIDER, UsageRecord
from optimizer.llm.breaker import CircuitBreaker, State
from optimizer.models import ModelChoice, OptimizationRun, Provider, WorkerHeartbeat
from optimizer.monitoring import heartbeat
from optimizer.monitoring.thresholds import Thresholds

Status = OptimizationRun.Status
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
PERCENTILES = (50, 95)
TOP_REASONS = 5
STUCK_LISTED = 20
COST_PLACES = Decimal("0.00000001")  # as UsageRecord.cost stores it (SQLite's sums carry more)
FAILED_STATUSES = [UsageRecord.Status.ERROR, UsageRecord.Status.INVALID]

psutil.cpu_percent(interval=None)  # the first reading of a process is meaningless; prime it here


def percentiles(queryset, field: str, group_by: tuple[str, ...] = ()) -> dict[tuple, dict[str, int]]:
    """Nearest-rank p50 and p95 of ``field`` per group, in one query: the database numbers the rows
    of each group in order and returns only the rows at the two ranks."""
    partition = [F(name) for name in group_by] or None
    ranked = queryset.exclude(**{f"{field}__isnull": True}).annotate(
        rank=Window(RowNumber(), partition_by=partition, order_by=F(field).asc()),
        size=Window(Count("pk"), partition_by=partition),
    )
    rows = ranked.filter(
        Q(rank=Ceil(F("size") * Decimal("0.50"))) | Q(rank=Ceil(F("size") * Decimal("0.95")))
    ).values_list(*group_by, field, "rank", "size")
    found: dict[tuple, dict[str, int]] = {}
    for *group, value, rank, size in rows:
        entry = found.setdefault(tuple(group), {})
        for p in PERCENTILES:
            if rank == math.ceil(size * p / 100):
                entry[f"p{p}"] = value
    return found


def records_since(since: dt.datetime):
    """Usage records created since ``since``, read through the ``created_at`` index. Grouped by
    provider and model, SQLite walks the (provider, model, created_at) index end to end (every
    record ever written) unless the window's ids are picked first; PostgreSQL plans the plain filter
    well and would scan the whole table to join the ids."""
    window = UsageRecord.objects.filter(created_at__gte=since)
    if connection.vendor == "sqlite":
        return UsageRecord.objects.filter(pk__in=window.values("pk"))
    return window


def runs_since(since: dt.datetime, statuses=tuple(Status)):
    """Runs created since ``since`` in ``statuses``, through the (status, created_at) index (a run
    has no index on its time alone)."""
    return OptimizationRun.objects.filter(status__in=list(statuses), created_at__gte=since)


def _share(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


# --- Optimizations --------------------------------------------------------------------------


def optimization_stats(*, now: dt.datetime) -> dict:
    """Runs per minute, p50/p95 duration, shares degraded and failed, over the last hour and day,
    with the top reasons of the day. Runs count in the window they were created in."""
    day = runs_since(now - DAY)
    counts = day.aggregate(
        **{
            f"{name}_{label}": Count("id", filter=condition & Q(created_at__gte=now - span))
            for label, span in (("hour", HOUR), ("day", DAY))
            for name, condition in (
                ("runs", Q()),
                ("done", Q(status=Status.DONE)),
                ("failed", Q(status=Status.FAILED)),
                ("degraded", Q(status=Status.DONE) & ~Q(degraded_reason="")),
            )
        }
    )
    durations = _durations(runs_since(now - DAY, (Status.DONE, Status.FAILED)), hour_start=now - HOUR)
    windows = {}
    for label, span in (("hour", HOUR), ("day", DAY)):
        finished = counts[f"done_{label}"] + counts[f"failed_{label}"]
        windows[label] = {
            "runs": counts[f"runs_{label}"],
            "per_minute": round(counts[f"runs_{label}"] / (span.total_seconds() / 60), 3),
            "finished": finished,
            "failed": counts[f"failed_{label}"],
            "degraded": counts[f"degraded_{label}"],
            "failed_pct": _share(counts[f"failed_{label}"], finished),
            "degraded_pct": _share(counts[f"degraded_{label}"], finished),
            "p50_ms": durations[label].get("p50"),
            "p95_ms": durations[label].get("p95"),
        }
    return {**windows, **_top_reasons(runs_since(now - DAY, (Status.DONE, Status.FAILED)))}


def _durations(finished, *, hour_start: dt.datetime) -> dict[str, dict[str, int]]:
    """Nearest-rank p50 and p95 of the day's and of the last hour's run durations, in one query:
    the day's runs numbered in order, and those of the hour numbered again among themselves."""
    in_hour = Case(When(created_at__gte=hour_start, then=True), default=False, output_field=BooleanField())
    order = F("duration_ms").asc()
    ranked = finished.exclude(duration_ms__isnull=True).annotate(
        in_hour=in_hour,
        day_rank=Window(RowNumber(), order_by=order),
        day_size=Window(Count("pk")),
        hour_rank=Window(RowNumber(), partition_by=[in_hour], order_by=order),
        hour_size=Window(Count("pk"), partition_by=[in_hour]),
    )
    wanted = Q()
    for p in PERCENTILES:
        share = Decimal(p) / 100
        wanted |= Q(day_rank=Ceil(F("day_size") * share))
        wanted |= Q(in_hour=True, hour_rank=Ceil(F("hour_size") * share))
    found: dict[str, dict[str, int]] = {"hour": {}, "day": {}}
    rows = ranked.filter(wanted).values_list(
        "duration_ms", "in_hour", "day_rank", "day_size", "hour_rank", "hour_size"
    )
    for value, hourly, day_rank, day_size, hour_rank, hour_size in rows:
        for p in PERCENTILES:
            if day_rank == math.ceil(day_size * p / 100):
                found["day"][f"p{p}"] = value
            if hourly and hour_rank == math.ceil(hour_size * p / 100):
                found["hour"][f"p{p}"] = value
    return found


def _top_reasons(finished) -> dict[str, list[dict]]:
    """The most frequent reasons of degraded runs and of failed ones, in one grouped query."""
    reason = Case(When(status=Status.FAILED, then=F("error")), default=F("degraded_reason"))
    rows = (
        finished.annotate(reason=reason)
        .exclude(reason="")
        .order_by()
        .values("status", "reason")
        .annotate(n=Count("id"))
        .order_by("-n", "reason")
    )
    top: dict[str, list[dict]] = {"top_degraded": [], "top_failed": []}
    for row in rows:
        entries = top["top_failed" if row["status"] == Status.FAILED else "top_degraded"]
        if len(entries) < TOP_REASONS:
            entries.append({"reason": row["reason"], "runs": row["n"]})
    return top


# --- Model calls ----------------------------------------------------------------------------


def model_call_stats(*, now: dt.datetime, limits: Thresholds) -> list[dict]:
    """Per provider and model over the last hour: requests, cache hits, p50/p95 latency of the
    requests sent, error rate and errors by class, retries, cost; and the model's circuit breaker."""
    hour = records_since(now - HOUR)
    sent = hour.exclude(status=UsageRecord.Status.CACHE_HIT)
    rows: dict[tuple[str, str], dict] = {}
    totals = (
        hour.order_by()
        .values("provider", "model")
        .annotate(
            requests=Count("id", filter=~Q(status=UsageRecord.Status.CACHE_HIT)),
            cache_hits=Count("id", filter=Q(status=UsageRecord.Status.CACHE_HIT)),
            failures=Count("id", filter=Q(status__in=FAILED_STATUSES)),
            cost=Sum("cost"),
        )
    )
    for row in totals:
        rows[(row["provider"], row["model"])] = {
            "provider": row["provider"],
            "model": row["model"],
            "requests": row["requests"],
            "cache_hits": row["cache_hits"],
            "failures": row["failures"],
            "error_rate_pct": _share(row["failures"], row["requests"]),
            "cost_last_hour": (row["cost"] or Decimal(0)).quantize(COST_PLACES),
            "errors": [],
            "retries": 0,
            "p50_ms": None,
            "p95_ms": None,
            "breaker": None,
        }
    latencies = percentiles(sent, "latency_ms", ("provider", "model"))
    for key, found in latencies.items():
        rows[key]["p50_ms"], rows[key]["p95_ms"] = found.get("p50"), found.get("p95")
    by_class = (
        hour.filter(status__in=FAILED_STATUSES)
        .order_by()
        .values("provider", "model", "status", "error_class")
        .annotate(n=Count("id"))
        .order_by("provider", "model", "-n", "error_class")
    )
    for row in by_class:
        entry = rows[(row["provider"], row["model"])]
        name = row["error_class"] or ("InvalidAnswer" if row["status"] == UsageRecord.Status.INVALID else "?")
        entry["errors"].append(
            {"error_class": name, "requests": row["n"], "pct": _share(row["n"], entry["requests"])}
        )
    for key, retries in _retries(sent).items():
        rows[key]["retries"] = retries
    _breakers_add(rows)
    for entry in rows.values():
        entry["alerts"] = _model_alerts(entry, limits)
    return sorted(
        rows.values(),
        key=lambda entry: (entry["provider"] == BUILTIN_PROVIDER, entry["provider"], entry["model"]),
    )


def _retries(sent) -> dict[tuple[str, str], int]:
    """Requests sent again after a failed one: within one stage of one run, by one model, every
    failed request that another request followed (a stage whose requests all failed ends on its
    last one, which no retry followed)."""
    groups = (
        sent.filter(run__isnull=False)
        .order_by()
        .values("provider", "model", "run_id", "operation")
        .annotate(
            failed=Count("id", filter=Q(status=UsageRecord.Status.ERROR)),
            answered=Count("id", filter=~Q(status=UsageRecord.Status.ERROR)),
        )
        .filter(failed__gt=0)
        .values_list("provider", "model", "failed", "answered")
    )
    found: dict[tuple[str, str], int] = {}
    for provider, model, failed, answered in groups:
        found[(provider, model)] = found.get((provider, model), 0) + failed - (0 if answered else 1)
    return found


def _breakers_add(rows: dict[tuple[str, str], dict]) -> None:
    """Each configured model's breaker (one read of the shared store per model): its rows get one
    even without calls in the last hour."""
    choices = ModelChoice.objects.exclude(provider__kind=Provider.Kind.BUILTIN).select_related("provider")
    for choice in choices:
        status = CircuitBreaker(choice.breaker_key).status()
        key = (choice.provider.name, choice.model_id)
        entry = rows.setdefault(
            key,
            {
                "provider": key[0], "model": key[1], "requests": 0, "cache_hits": 0, "failures": 0,
                "error_rate_pct": None, "cost_last_hour": Decimal(0), "errors": [], "retries": 0,
                "p50_ms": None, "p95_ms": None,
            },
        )  # fmt: skip
        opened = status["opened_at"]
        entry["breaker"] = {
            "model_choice_id": choice.pk,
            "enabled": choice.enabled and choice.provider.enabled,
            "state": status["state"].value,
            "opened_at": dt.datetime.fromtimestamp(opened, tz=dt.UTC) if opened else None,
            "calls_last_minute": status["calls_last_window"],
            "failures_last_minute": status["failures_last_window"],
        }


def _model_alerts(entry: dict, limits: Thresholds) -> list[str]:
    alerts = []
    label = f"{entry['provider']} · {entry['model']}"
    if entry["error_rate_pct"] is not None and entry["error_rate_pct"] > limits.error_rate_pct:
        alerts.append(
            f"{label}: {entry['error_rate_pct']}% of requests failed in the last hour "
            f"(limit {limits.error_rate_pct}%)."
        )
    if entry["p95_ms"] is not None and entry["p95_ms"] > limits.p95_ms:
        alerts.append(
            f"{label}: p95 latency {entry['p95_ms']:,} ms in the last hour (limit {limits.p95_ms:,} ms)."
        )
    if entry["breaker"] and entry["breaker"]["state"] != State.CLOSED.value:
        alerts.append(f"{label}: its circuit breaker is {entry['breaker']['state'].replace('_', '-')}.")
    return alerts


# --- Caches ---------------------------------------------------------------------------------


def cache_stats(*, now: dt.datetime) -> dict:
    """Hit rate per tier over the last day and what the hits saved. The API tier's saving is what
    each hit would have cost (recorded on its usage record); a result hit saves a whole run and an
    analysis hit its first two stages, valued at the mean of those that missed in the same day."""
    since = now - DAY
    # Counted as optimizer.selectors.cache_tier_stats counts them, through the (status, created_at)
    # index, in the same statement as the means of the runs that missed.
    runs = runs_since(since, (Status.RUNNING, Status.DONE, Status.FAILED)).aggregate(
        result_hits=Count("id", filter=Q(cached=True)),
        result_misses=Count("id", filter=Q(cached=False)),
        analysis_hits=Count("id", filter=Q(analysis_cached=True)),
        analysis_misses=Count("id", filter=Q(cached=False, analysis_cached=False, status=Status.DONE)),
        fresh=Count("id", filter=Q(cached=False, status=Status.DONE)),
        fresh_cost=Sum("cost", filter=Q(cached=False, status=Status.DONE)),
        fresh_ms=Sum("duration_ms", filter=Q(cached=False, status=Status.DONE)),
    )
    # One pass over the day's records: the API tier as costs.selectors.api_cache_stats counts it (every
    # lookup ends in one record; repairs and the built-in engine are not lookups), and the first two
    # stages' requests sent, which are those of the analyses the analysis tier missed (a hit sends none).
    hit = Q(status=UsageRecord.Status.CACHE_HIT)
    lookup = ~Q(operation__endswith=":repair") & ~Q(provider=BUILTIN_PROVIDER)
    analysed = Q(operation__in=["deconstruct", "diagnose"], run__isnull=False) & ~hit
    records = records_since(since).aggregate(
        api_hits=Count("id", filter=lookup & hit),
        api_misses=Count("id", filter=lookup & ~hit),
        api_saved=Sum("saved_cost", filter=lookup & hit),
        analysis_runs=Count("run", distinct=True, filter=analysed),
        analysis_cost=Sum("cost", filter=analysed),
        analysis_ms=Sum("latency_ms", filter=analysed),
    )
    api = {"hits": records["api_hits"], "misses": records["api_misses"], "saved": records["api_saved"] or 0}
    analysis = {
        "runs": records["analysis_runs"],
        "cost": records["analysis_cost"],
        "ms": records["analysis_ms"],
    }

    def mean(total, count):
        return (total or 0) / count if count else 0

    result_hits, analysis_hits = runs["result_hits"], runs["analysis_hits"]
    return {
        "since": since,
        "tiers": [
            _tier("api", "API (model answers, 1 h)", api["hits"], api["misses"], api["saved"], 0),
            _tier(
                "analysis", "Analysis (stages 1-2, 24 h)", analysis_hits, runs["analysis_misses"],
                Decimal(analysis_hits) * Decimal(mean(analysis["cost"], analysis["runs"])),
                analysis_hits * mean(analysis["ms"], analysis["runs"]),
            ),
            _tier(
                "result", "Result (whole runs, 2 h)", result_hits, runs["result_misses"],
                Decimal(result_hits) * Decimal(mean(runs["fresh_cost"], runs["fresh"])),
                result_hits * mean(runs["fresh_ms"], runs["fresh"]),
            ),
        ],
    }  # fmt: skip


def _tier(slug: str, label: str, hits: int, misses: int, saved_cost, saved_ms) -> dict:
    return {
        "tier": slug,
        "label": label,
        "hits": hits,
        "misses": misses,
        "hit_rate_pct": _share(hits, hits + misses),
        "saved_cost": Decimal(saved_cost).quantize(Decimal("0.000001")),
        "saved_seconds": round(saved_ms / 1000, 1),
    }


# --- The task queue -------------------------------------------------------------------------


def queue_stats(*, now: dt.datetime, limits: Thresholds) -> dict:
    """Queued and running runs, the age of the oldest queued one, what failed in the last hour, the
    tasks waiting in each broker, the schedules, the worker processes and the stuck runs."""
    failed_lately = Q(status=Status.FAILED, created_at__gte=now - DAY, finished_at__gte=now - HOUR)
    active = OptimizationRun.objects.filter(
        Q(status__in=[Status.QUEUED, Status.RUNNING]) | Q(status=Status.FAILED, created_at__gte=now - DAY)
    ).aggregate(
        queued=Count("id", filter=Q(status=Status.QUEUED)),
        running=Count("id", filter=Q(status=Status.RUNNING)),
        oldest=Min("created_at", filter=Q(status=Status.QUEUED)),
        failed=Count("id", filter=failed_lately),
    )
    failed_runs = active["failed"]
    failed_tasks = Task.objects.filter(success=False, stopped__gte=now - HOUR).count()
    queue_age_s = round((now - active["oldest"]).total_seconds()) if active["oldest"] else None
    return {
        "queued": active["queued"],
        "running": active["running"],
        "oldest_queued_age_s": queue_age_s,
        "failed_runs_last_hour": failed_runs,
        "failed_tasks_last_hour": failed_tasks,
        "brokers": _brokers(),
        "schedules": [
            {"name": name, "func": func, "next_run": next_run, "cluster": cluster}
            for name, func, next_run, cluster in Schedule.objects.order_by("next_run", "pk").values_list(
                "name", "func", "next_run", "cluster"
            )
        ],
        "clusters": worker_clusters(now=now),
        "stuck": stuck_runs(now=now),
        "alerts": (
            [f"The oldest queued run has waited {queue_age_s:,} s (limit {limits.queue_age_s:,} s)."]
            if queue_age_s is not None and queue_age_s > limits.queue_age_s
            else []
        ),
    }


def _brokers() -> list[dict]:
    found = []
    for queue in (settings.Q_CLUSTER["name"], settings.FAST_QUEUE):
        try:
            found.append({"queue": queue, "tasks_waiting": get_broker(queue).queue_size(), "ok": True})
        except Exception as exc:  # noqa: BLE001 - a broker that does not answer is a finding
            found.append({"queue": queue, "tasks_waiting": None, "ok": False, "error": type(exc).__name__})
    return found


def worker_clusters(*, now: dt.datetime) -> list[dict]:
    """Each cluster that every expected queue has, with its worker processes heard from in the last
    day; a worker is alive while its heartbeat is younger than ``heartbeat.ALIVE_S``."""
    alive_since = now - dt.timedelta(seconds=heartbeat.ALIVE_S)
    clusters = {queue: [] for queue in (settings.Q_CLUSTER["name"], settings.FAST_QUEUE)}
    for beat in WorkerHeartbeat.objects.filter(beat_at__gte=now - heartbeat.FORGET_AFTER):
        clusters.setdefault(beat.cluster, []).append(
            {
                "name": beat.name,
                "alive": beat.beat_at >= alive_since,
                "beat_at": beat.beat_at,
                "started_at": beat.started_at,
                "rss_bytes": beat.rss_bytes,
            }
        )
    return [
        {"cluster": name, "alive": sum(worker["alive"] for worker in workers), "workers": workers}
        for name, workers in clusters.items()
    ]


def stuck_runs(*, now: dt.datetime) -> list[dict]:
    """Running runs started longer ago than the task timeout: django-q2 has recycled their worker,
    so they will not end by themselves (the sweep requeues them once their heartbeat stops)."""
    started_before = now - dt.timedelta(seconds=settings.Q_CLUSTER["timeout"])
    runs = OptimizationRun.objects.filter(status=Status.RUNNING, started_at__lt=started_before).order_by(
        "started_at"
    )[:STUCK_LISTED]
    return [
        {
            "id": run_id,
            "worker": worker,
            "started_at": started_at,
            "heartbeat_at": heartbeat_at,
            "running_s": round((now - started_at).total_seconds()),
        }
        for run_id, worker, started_at, heartbeat_at in runs.values_list(
            "id", "worker", "started_at", "heartbeat_at"
        )
    ]


# --- The machine ----------------------------------------------------------------------------


def machine_stats(*, limits: Thresholds) -> dict:
    """CPU and memory of this machine, the disk holding DATA_DIR, and this web process's memory.
    The CPU share is the machine's since this process last read it (psutil keeps the previous
    reading): with the page refreshing, the last five seconds or so."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(settings.DATA_DIR))
    process = psutil.Process()
    disk_pct = round(disk.used / disk.total * 100, 1) if disk.total else None
    return {
        "host": socket.gethostname(),
        "cpu_pct": psutil.cpu_percent(interval=None),
        "cpu_count": psutil.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "memory_pct": memory.percent,
        "memory_used_bytes": memory.total - memory.available,
        "memory_total_bytes": memory.total,
        "disk_path": str(settings.DATA_DIR),
        "disk_pct": disk_pct,
        "disk_free_bytes": disk.free,
        "disk_total_bytes": disk.total,
        "process_pid": process.pid,
        "process_rss_bytes": process.memory_info().rss,
        "process_uptime_s": round(time.time() - process.create_time()),
        "alerts": (
            [f"The disk holding DATA_DIR is {disk_pct}% full (limit {limits.disk_pct}%)."]
            if disk_pct is not None and disk_pct > limits.disk_pct
            else []
        ),
    }


# --- The whole page -------------------------------------------------------------------------


def monitoring_snapshot(*, now: dt.datetime, limits: Thresholds) -> dict:
    """Everything the page shows (and its JSON export), with each tile's alerts: a tile with any is
    drawn red, and all of them are listed in the banner."""
    optimizations = optimization_stats(now=now)
    p95 = optimizations["hour"]["p95_ms"]
    optimizations["alerts"] = (
        [f"Runs of the last hour took {p95:,} ms at p95 (limit {limits.p95_ms:,} ms)."]
        if p95 is not None and p95 > limits.p95_ms
        else []
    )
    models = model_call_stats(now=now, limits=limits)
    queue = queue_stats(now=now, limits=limits)
    machine = machine_stats(limits=limits)
    caches = cache_stats(now=now)
    caches["alerts"] = []
    return {
        "generated_at": now,
        "thresholds": {
            "error_rate_pct": limits.error_rate_pct,
            "p95_ms": limits.p95_ms,
            "queue_age_s": limits.queue_age_s,
            "disk_pct": limits.disk_pct,
        },
        "optimizations": optimizations,
        "model_calls": models,
        "model_calls_alert": any(entry["alerts"] for entry in models),
        "caches": caches,
        "queue": queue,
        "machine": machine,
        "alerts": [
            *optimizations["alerts"],
            *(alert for entry in models for alert in entry["alerts"]),
            *queue["alerts"],
            *machine["alerts"],
        ],
    }
