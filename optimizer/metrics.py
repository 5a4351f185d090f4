"""``/metrics``: the Prometheus scrape. The web's request, latency and database metrics
(``config.http_metrics``, added up over gunicorn's worker processes in prometheus-client's
multiprocess mode), and the
product's own figures, read from what it already records at the moment of the scrape: usage
records, the circuit breakers' shared state, runs, django-q2's broker, the workers' heartbeats,
budgets' running totals and backups. Nothing is counted twice.

Who may read it: a request carrying ``Authorization: Bearer <METRICS_TOKEN>``, or a staff session.
With a token configured, anyone else gets a 401 (a scraper without the right token). Without one,
only staff may: an anonymous visitor is sent to the login page, a user who is not staff gets a
404, as on the other staff pages.
"""

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.db.models import Count, Min, Q, Sum
from django.http import Http404, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django_q.brokers import get_broker
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from backups.selectors import last_backup_made
from costs.budgets import period_bounds, spent
from costs.models import Budget, BudgetSpend, UsageRecord
from costs.selectors import api_cache_stats
from optimizer.llm.breaker import CircuitBreaker, State
from optimizer.models import ModelChoice, OptimizationRun, WorkerHeartbeat
from optimizer.monitoring.heartbeat import ALIVE_S
from optimizer.runqueue import queue_name

logger = logging.getLogger(__name__)

PREFIX = "prompt_optimizer"
BREAKER_VALUES = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}
CACHE_WINDOW = timedelta(hours=1)
Status = OptimizationRun.Status


def _money(value: Decimal | None) -> float:
    """Prometheus samples are floats: dollars to the cent's ten-thousandth are exact enough there."""
    return float(value or 0)


CALLS_WINDOW = timedelta(days=1)


def model_call_metrics() -> Iterator[Metric]:
    """Model calls of the last day, by provider, model and status, and what they cost: a window,
    so a scrape reads a day's records (through the index on their time), not every record ever
    written (linear in the history: 153 ms at 200,000 records)."""
    calls = GaugeMetricFamily(
        f"{PREFIX}_model_calls_last_day",
        "Model calls recorded (usage records) in the last 24 hours.",
        labels=["provider", "model", "status"],
    )
    cost = GaugeMetricFamily(
        f"{PREFIX}_model_cost_usd_last_day",
        "What model calls of the last 24 hours cost, in USD.",
        labels=["provider", "model", "status"],
    )
    groups = (
        UsageRecord.objects.filter(created_at__gte=timezone.now() - CALLS_WINDOW)
        .order_by()
        .values_list("provider", "model", "status")
        .annotate(n=Count("id"), cost=Sum("cost"))
    )
    for provider, model, status, n, total in groups:
        calls.add_metric([provider, model, status], n)
        cost.add_metric([provider, model, status], _money(total))
    yield calls
    yield cost


def breaker_metrics() -> Iterator[Metric]:
    """The circuit breaker of each enabled model: 0 closed, 1 half-open (one trial call allowed),
    2 open (calls go to the next model)."""
    family = GaugeMetricFamily(
        f"{PREFIX}_breaker_state",
        "Circuit breaker per model: 0 closed, 1 half-open, 2 open.",
        labels=["provider", "model"],
    )
    now = time.time()
    for choice in ModelChoice.objects.filter(enabled=True).select_related("provider").order_by("pk"):
        state = CircuitBreaker(choice.breaker_key).state(now)
        family.add_metric([choice.provider.name, choice.model_id], BREAKER_VALUES[state])
    yield family


def queue_metrics() -> Iterator[Metric]:
    """Per queue: runs waiting and running, how long the oldest has waited, tokens in the broker."""
    queued = GaugeMetricFamily(f"{PREFIX}_runs_queued", "Runs waiting for a worker.", labels=["queue"])
    running = GaugeMetricFamily(f"{PREFIX}_runs_running", "Runs in progress.", labels=["queue"])
    oldest = GaugeMetricFamily(
        f"{PREFIX}_runs_queued_oldest_age_seconds",
        "How long the oldest queued run has waited (0 when none waits).",
        labels=["queue"],
    )
    tasks = GaugeMetricFamily(f"{PREFIX}_broker_tasks", "Tasks in the django-q2 broker.", labels=["queue"])
    queues = [settings.Q_CLUSTER["name"], settings.FAST_QUEUE]
    counts = {queue: {"queued": 0, "running": 0, "since": None} for queue in queues}
    in_progress = (
        OptimizationRun.objects.filter(status__in=[Status.QUEUED, Status.RUNNING])
        .order_by()
        .values_list("engine")
        .annotate(
            queued=Count("id", filter=Q(status=Status.QUEUED)),
            running=Count("id", filter=Q(status=Status.RUNNING)),
            since=Min("created_at", filter=Q(status=Status.QUEUED)),
        )
    )
    for engine, n_queued, n_running, since in in_progress:
        queue = counts[queue_name(engine)]
        queue["queued"] += n_queued
        queue["running"] += n_running
        if since is not None and (queue["since"] is None or since < queue["since"]):
            queue["since"] = since
    now = timezone.now()
    for queue, figures in counts.items():
        queued.add_metric([queue], figures["queued"])
        running.add_metric([queue], figures["running"])
        oldest.add_metric([queue], (now - figures["since"]).total_seconds() if figures["since"] else 0)
        try:
            tasks.add_metric([queue], get_broker(queue).queue_size())
        except Exception as exc:  # noqa: BLE001 - the broker's failure leaves this sample out, not the scrape
            logger.warning("metrics: the task queue %s did not answer (%s)", queue, type(exc).__name__)
    yield from (queued, running, oldest, tasks)


def worker_metrics() -> Iterator[Metric]:
    """Task-worker processes whose heartbeat is recent, per cluster (0 for a cluster with none)."""
    family = GaugeMetricFamily(
        f"{PREFIX}_workers_alive",
        f"Task-worker processes that wrote a heartbeat in the last {ALIVE_S} s.",
        labels=["cluster"],
    )
    alive = dict(
        WorkerHeartbeat.objects.filter(beat_at__gte=timezone.now() - timedelta(seconds=ALIVE_S))
        .order_by()
        .values_list("cluster")
        .annotate(n=Count("id"))
    )
    for cluster in sorted({settings.Q_CLUSTER["name"], settings.FAST_QUEUE, *alive}):
        family.add_metric([cluster], alive.get(cluster, 0))
    yield family


def cache_metrics() -> Iterator[Metric]:
    """Lookups and hit ratio of the three cache tiers over the last hour: the API cache (usage
    records), the result cache (runs answered from it) and the analysis cache (runs whose first two
    stages came from it). No ratio where there was no lookup."""
    lookups = GaugeMetricFamily(
        f"{PREFIX}_cache_lookups_last_hour", "Cache lookups in the last hour.", labels=["tier"]
    )
    ratio = GaugeMetricFamily(
        f"{PREFIX}_cache_hit_ratio_last_hour", "Share of lookups that hit, last hour.", labels=["tier"]
    )
    since = timezone.now() - CACHE_WINDOW
    api = api_cache_stats(since=since)
    runs = OptimizationRun.objects.filter(created_at__gte=since).aggregate(
        # A queued run has not been looked up yet (as the Monitoring page counts them).
        submitted=Count("id", filter=Q(status__in=[Status.RUNNING, Status.DONE, Status.FAILED])),
        result_hits=Count("id", filter=Q(cached=True)),
        analysed=Count("id", filter=Q(cached=False, status=Status.DONE)),
        analysis_hits=Count("id", filter=Q(cached=False, status=Status.DONE, analysis_cached=True)),
    )
    tiers = {
        "api": (api["hits"] + api["misses"], api["hits"]),
        "result": (runs["submitted"], runs["result_hits"]),
        "analysis": (runs["analysed"], runs["analysis_hits"]),
    }
    for tier, (n, hits) in tiers.items():
        lookups.add_metric([tier], n)
        if n:
            ratio.add_metric([tier], hits / n)
    yield lookups
    yield ratio


def spend_metrics() -> Iterator[Metric]:
    """What the site spent today and this month (site time zone), and each enabled budget's spend
    in its current period beside its limit."""
    total = GaugeMetricFamily(
        f"{PREFIX}_spend_usd", "Spent on model calls in the current calendar period.", labels=["period"]
    )
    for period, label in ((Budget.Period.DAILY, "day"), (Budget.Period.MONTHLY, "month")):
        start, end = period_bounds(period)
        cost = UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end).aggregate(
            total=Sum("cost")
        )
        total.add_metric([label], _money(cost["total"]))
    yield total

    labels = ["budget", "owner", "period", "mode"]
    budget_spend = GaugeMetricFamily(
        f"{PREFIX}_budget_spend_usd", "A budget's spend in its current period.", labels=labels
    )
    budget_limit = GaugeMetricFamily(
        f"{PREFIX}_budget_limit_usd", "A budget's limit per period.", labels=labels
    )
    budgets = list(Budget.objects.filter(enabled=True).select_related("user"))
    starts = {budget.pk: period_bounds(budget.period) for budget in budgets}
    kept = {
        (budget_id, start): amount
        for budget_id, start, amount in BudgetSpend.objects.filter(budget__in=budgets).values_list(
            "budget_id", "period_start", "spent"
        )
    }
    for budget in budgets:
        start, end = starts[budget.pk]
        # A period's running total is created by its first priced call: none yet, count the records.
        amount = kept.get((budget.pk, start))
        amount = spent(budget, start, end) if amount is None else amount
        names = [
            str(budget.pk),
            budget.user.get_username() if budget.user_id else "site",
            budget.period,
            budget.mode,
        ]
        budget_spend.add_metric(names, _money(amount))
        budget_limit.add_metric(names, _money(budget.limit))
    yield budget_spend
    yield budget_limit


def backup_metrics() -> Iterator[Metric]:
    """Age of the newest backup made here; no sample until there is one."""
    family = GaugeMetricFamily(
        f"{PREFIX}_backup_age_seconds", "Age of the last successful backup (from when it started)."
    )
    if (backup := last_backup_made()) is not None:
        family.add_metric([], max((timezone.now() - backup.started_at).total_seconds(), 0))
    yield family


SECTIONS: dict[str, Callable[[], Iterator[Metric]]] = {
    "model_calls": model_call_metrics,
    "breakers": breaker_metrics,
    "queue": queue_metrics,
    "workers": worker_metrics,
    "caches": cache_metrics,
    "spend": spend_metrics,
    "backups": backup_metrics,
}


class ProductCollector:
    """The product's figures, read when Prometheus scrapes. A section that fails (its database or
    broker is away) is left out and reported by ``prompt_optimizer_metrics_section_up``: the rest,
    and the web's own metrics, are still served."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            f"{PREFIX}_metrics_section_up",
            "1 when a section of these metrics could be read.",
            labels=["section"],
        )
        for name, section in SECTIONS.items():
            try:
                families = list(section())
            except Exception as exc:  # noqa: BLE001 - one section's failure must not fail the scrape
                logger.warning("metrics: the %s section could not be read (%s)", name, type(exc).__name__)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up


class _Scrape:
    """What one scrape exposes: the process metrics (this process's, or every gunicorn worker's added
    up in multiprocess mode) and the product's."""

    def __init__(self, *sources):
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def _process_metrics():
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def _bearer_token_valid(request) -> bool:
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    configured = settings.METRICS_TOKEN
    # As bytes: compare_digest refuses str with characters outside ASCII (a TypeError, a 500).
    given = token.strip().encode("utf-8", "surrogateescape")
    return bool(configured) and scheme.lower() == "bearer" and hmac.compare_digest(given, configured.encode())


@login_not_required  # a scraper has no session: the token or staff is checked here
@never_cache
def metrics(request):
    if not (request.user.is_staff or _bearer_token_valid(request)):
        if not settings.METRICS_TOKEN:
            if not request.user.is_authenticated:  # as any page: a staff member may log in
                return redirect_to_login(request.get_full_path())
            raise Http404
        response = HttpResponse("A valid bearer token (METRICS_TOKEN) is needed.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body = generate_latest(_Scrape(_process_metrics(), ProductCollector()))
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
