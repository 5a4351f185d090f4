"""Each tile's figures against factory-built data with known durations, latencies, errors and hits."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.cache import caches
from django.utils import timezone
from django_q.models import Schedule, Task

from costs.models import UsageRecord
from optimizer.llm.breaker import CircuitBreaker
from optimizer.models import OptimizationRun
from optimizer.monitoring import selectors
from optimizer.monitoring.thresholds import Thresholds
from tests.optimizer.monitoring.factories import (
    ModelChoiceFactory,
    RunFactory,
    UsageRecordFactory,
    WorkerHeartbeatFactory,
)

pytestmark = pytest.mark.django_db
Status = OptimizationRun.Status
LIMITS = Thresholds(error_rate_pct=10, p95_ms=20_000, queue_age_s=120, disk_pct=100)


@pytest.fixture(autouse=True)
def _clean_cache():
    caches["default"].clear()
    yield
    caches["default"].clear()


def minutes_ago(minutes: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(minutes=minutes)


def test_percentiles_are_nearest_rank_per_group():
    for latency in range(100, 1001, 100):  # 10 values: p50 is the 5th, p95 the 10th
        UsageRecordFactory(model="a", latency_ms=latency)
    for latency in range(10, 201, 10):  # 20 values: p50 the 10th, p95 the 19th
        UsageRecordFactory(model="b", latency_ms=latency)
    found = selectors.percentiles(UsageRecord.objects.all(), "latency_ms", ("provider", "model"))
    assert found == {("OpenAI", "a"): {"p50": 500, "p95": 1000}, ("OpenAI", "b"): {"p50": 100, "p95": 190}}
    assert selectors.percentiles(UsageRecord.objects.none(), "latency_ms") == {}
    single = selectors.percentiles(UsageRecord.objects.filter(latency_ms=30), "latency_ms")
    assert single == {(): {"p50": 30, "p95": 30}}


def test_optimizations_tile_counts_rates_durations_and_reasons():
    for n, duration in enumerate(range(1000, 11_000, 1000)):  # ten runs in the last hour
        RunFactory(created_at=minutes_ago(n + 1), duration_ms=duration)
    RunFactory(
        created_at=minutes_ago(10), duration_ms=500, degraded_reason="The model failed: built-in engine."
    )
    RunFactory(
        created_at=minutes_ago(11), duration_ms=700, degraded_reason="The model failed: built-in engine."
    )
    RunFactory(created_at=minutes_ago(12), status=Status.FAILED, duration_ms=300, error="Worker died")
    RunFactory(created_at=minutes_ago(90), duration_ms=60_000)  # the day only
    RunFactory(created_at=minutes_ago(90), status=Status.QUEUED)  # counted as a run, not finished
    RunFactory(created_at=minutes_ago(3 * 24 * 60), duration_ms=99_000)  # outside both windows

    stats = selectors.optimization_stats(now=timezone.now())

    hour = stats["hour"]
    assert hour["runs"] == 13 and hour["finished"] == 13
    assert hour["per_minute"] == round(13 / 60, 3)
    assert hour["failed"] == 1 and hour["failed_pct"] == round(100 / 13, 1)
    assert hour["degraded"] == 2 and hour["degraded_pct"] == round(200 / 13, 1)
    # durations of the hour sorted: 300, 500, 700, 1000 ... 10000: p50 is the 7th, p95 the 13th
    assert hour["p50_ms"] == 4000 and hour["p95_ms"] == 10_000
    day = stats["day"]
    assert day["runs"] == 15 and day["finished"] == 14
    assert day["p95_ms"] == 60_000
    assert stats["top_degraded"] == [{"reason": "The model failed: built-in engine.", "runs": 2}]
    assert stats["top_failed"] == [{"reason": "Worker died", "runs": 1}]


def test_model_calls_tile_latency_errors_retries_cost_and_breaker():
    choice = ModelChoiceFactory(model_id="gpt-5-mini")
    run = RunFactory()
    for latency in (100, 200, 300, 400):
        UsageRecordFactory(run=run, operation="design", latency_ms=latency, cost=Decimal("0.0025"))
    # a stage retried twice before it answered: two retries
    UsageRecordFactory(
        run=run, operation="diagnose", status="error", error_class="ProviderError", latency_ms=50, cost=0
    )
    UsageRecordFactory(
        run=run, operation="diagnose", status="error", error_class="ReadTimeout", latency_ms=30_000, cost=0
    )
    UsageRecordFactory(run=run, operation="diagnose", latency_ms=500, cost=Decimal("0.0025"))
    # a stage whose three requests all failed: two retries (the last was not retried)
    for _ in range(3):
        UsageRecordFactory(
            run=run, operation="evaluate", status="error", error_class="ProviderError", latency_ms=10, cost=0
        )
    UsageRecordFactory(run=run, operation="deconstruct", status="cache_hit", latency_ms=0, cost=0)
    UsageRecordFactory(created_at=minutes_ago(61), latency_ms=99_999)  # before the hour

    breaker = CircuitBreaker(choice.breaker_key)
    for _ in range(breaker.policy.consecutive_failures):
        breaker.record_failure(breaker.allow())

    [row] = selectors.model_call_stats(now=timezone.now(), limits=LIMITS)

    assert (row["provider"], row["model"]) == ("OpenAI", "gpt-5-mini")
    assert row["requests"] == 10 and row["cache_hits"] == 1
    assert row["failures"] == 5 and row["error_rate_pct"] == 50.0
    assert row["errors"] == [
        {"error_class": "ProviderError", "requests": 4, "pct": 40.0},
        {"error_class": "ReadTimeout", "requests": 1, "pct": 10.0},
    ]
    assert row["retries"] == 4
    # sent latencies sorted: 10 10 10 50 100 200 300 400 500 30000: p50 the 5th, p95 the 10th
    assert row["p50_ms"] == 100 and row["p95_ms"] == 30_000
    assert row["cost_last_hour"] == Decimal("0.0125")
    assert row["breaker"]["state"] == "open" and row["breaker"]["model_choice_id"] == choice.pk
    assert timezone.now() - row["breaker"]["opened_at"] < dt.timedelta(seconds=30)
    assert len(row["alerts"]) == 3  # error rate, p95 and the open breaker

    breaker.reset()
    [row] = selectors.model_call_stats(now=timezone.now(), limits=LIMITS)
    assert row["breaker"]["state"] == "closed" and row["breaker"]["opened_at"] is None


def test_a_configured_model_without_calls_still_shows_its_breaker():
    ModelChoiceFactory(model_id="claude-haiku-4-5")
    [row] = selectors.model_call_stats(now=timezone.now(), limits=LIMITS)
    assert row["requests"] == 0 and row["error_rate_pct"] is None and row["breaker"]["state"] == "closed"
    assert row["alerts"] == []


def test_caches_tile_hit_rates_and_savings_per_tier():
    UsageRecordFactory(status="cache_hit", cost=0, saved_cost=Decimal("0.004"), latency_ms=0)
    UsageRecordFactory(status="cache_hit", cost=0, saved_cost=Decimal("0.006"), latency_ms=0)
    UsageRecordFactory(status="ok", cost=Decimal("0.005"))
    UsageRecordFactory(status="ok", cost=Decimal("0.005"))
    fresh = RunFactory(cost=Decimal("0.02"), duration_ms=8000)
    UsageRecordFactory(run=fresh, operation="deconstruct", cost=Decimal("0.001"), latency_ms=1000)
    UsageRecordFactory(run=fresh, operation="diagnose", cost=Decimal("0.002"), latency_ms=2000)
    RunFactory(cost=Decimal("0.04"), duration_ms=4000)
    RunFactory(cached=True, cost=0, duration_ms=0)
    RunFactory(analysis_cached=True, cost=Decimal("0.01"), duration_ms=3000)

    tiers = {tier["tier"]: tier for tier in selectors.cache_stats(now=timezone.now())["tiers"]}

    assert tiers["api"] | {} == tiers["api"]
    assert (tiers["api"]["hits"], tiers["api"]["misses"], tiers["api"]["hit_rate_pct"]) == (2, 4, 33.3)
    assert tiers["api"]["saved_cost"] == Decimal("0.010000")
    assert (tiers["result"]["hits"], tiers["result"]["misses"]) == (1, 3)
    # a result hit saves the mean fresh run: (0.02 + 0.04 + 0.01) / 3, (8 + 4 + 3) s / 3
    assert tiers["result"]["saved_cost"] == (Decimal("0.07") / 3).quantize(Decimal("0.000001"))
    assert tiers["result"]["saved_seconds"] == 5.0
    assert (tiers["analysis"]["hits"], tiers["analysis"]["misses"]) == (1, 2)
    # an analysis hit saves the first two stages of the run that computed them: 0.003, 3 s
    assert tiers["analysis"]["saved_cost"] == Decimal("0.003000")
    assert tiers["analysis"]["saved_seconds"] == 3.0


def test_queue_tile_counts_ages_schedules_workers_and_stuck_runs(settings):
    RunFactory(status=Status.QUEUED, created_at=minutes_ago(5))
    RunFactory(status=Status.QUEUED, created_at=minutes_ago(1))
    long_ago = timezone.now() - dt.timedelta(seconds=settings.Q_CLUSTER["timeout"] + 60)
    stuck = RunFactory(status=Status.RUNNING, started_at=long_ago, heartbeat_at=long_ago, worker="w:1")
    RunFactory(status=Status.RUNNING, started_at=timezone.now())
    RunFactory(status=Status.FAILED, finished_at=minutes_ago(30))
    RunFactory(status=Status.FAILED, created_at=minutes_ago(180), finished_at=minutes_ago(170))
    Task.objects.create(
        id="a" * 32, name="t", func="optimizer.tasks.run_next_task", started=minutes_ago(3),
        stopped=minutes_ago(2), success=False,
    )  # fmt: skip
    next_run = timezone.now() + dt.timedelta(minutes=1)
    Schedule.objects.create(name="monitoring test", func="math.floor", next_run=next_run)
    WorkerHeartbeatFactory(cluster=settings.Q_CLUSTER["name"])
    WorkerHeartbeatFactory(cluster=settings.FAST_QUEUE, beat_at=timezone.now() - dt.timedelta(minutes=5))

    queue = selectors.queue_stats(now=timezone.now(), limits=LIMITS)

    assert (queue["queued"], queue["running"]) == (2, 2)
    assert 295 <= queue["oldest_queued_age_s"] <= 305
    assert queue["alerts"] and "oldest queued run" in queue["alerts"][0]
    assert queue["failed_runs_last_hour"] == 1 and queue["failed_tasks_last_hour"] == 1
    assert len(queue["schedules"]) == Schedule.objects.count()  # the migrations' own schedules too
    assert {"name": "monitoring test", "func": "math.floor", "next_run": next_run, "cluster": None} in queue[
        "schedules"
    ]
    assert [s["next_run"] for s in queue["schedules"]] == sorted(s["next_run"] for s in queue["schedules"])
    clusters = {cluster["cluster"]: cluster for cluster in queue["clusters"]}
    assert clusters[settings.Q_CLUSTER["name"]]["alive"] == 1
    assert clusters[settings.FAST_QUEUE]["alive"] == 0
    assert clusters[settings.FAST_QUEUE]["workers"][0]["alive"] is False
    assert [run["id"] for run in queue["stuck"]] == [stuck.pk]
    assert queue["stuck"][0]["running_s"] >= settings.Q_CLUSTER["timeout"] + 60
    assert all(broker["ok"] for broker in queue["brokers"])


def test_machine_tile_reads_this_machine_and_flags_a_full_disk(settings):
    machine = selectors.machine_stats(limits=LIMITS)
    assert 0 <= machine["cpu_pct"] <= 100 and 0 < machine["memory_pct"] <= 100
    assert machine["disk_path"] == str(settings.DATA_DIR) and 0 < machine["disk_pct"] <= 100
    assert machine["process_rss_bytes"] > 10 * 1024 * 1024 and machine["alerts"] == []
    tight = Thresholds(error_rate_pct=10, p95_ms=30_000, queue_age_s=120, disk_pct=1)
    if machine["disk_pct"] > 1:
        assert "DATA_DIR" in selectors.machine_stats(limits=tight)["alerts"][0]


def test_snapshot_banner_lists_every_tile_alert():
    RunFactory(duration_ms=50_000)
    RunFactory(status=Status.QUEUED, created_at=minutes_ago(10))
    snapshot = selectors.monitoring_snapshot(now=timezone.now(), limits=LIMITS)
    assert len(snapshot["alerts"]) == 2
    assert snapshot["optimizations"]["alerts"] and snapshot["queue"]["alerts"]
    calm = Thresholds(error_rate_pct=100, p95_ms=3_600_000, queue_age_s=86_400, disk_pct=100)
    assert selectors.monitoring_snapshot(now=timezone.now(), limits=calm)["alerts"] == []


def test_the_api_tier_counts_as_the_cost_dashboard_does():
    from costs.models import BUILTIN_PROVIDER
    from costs.selectors import api_cache_stats

    UsageRecordFactory(status="cache_hit", cost=0, saved_cost=Decimal("0.004"))
    UsageRecordFactory(status="ok", operation="design:repair")  # a repair is not a lookup
    UsageRecordFactory(status="ok", provider=BUILTIN_PROVIDER, cost=0)  # nor is the built-in engine
    UsageRecordFactory(status="error", error_class="ProviderError", cost=0)
    UsageRecordFactory(status="ok", created_at=minutes_ago(2 * 24 * 60))  # before the day
    since = timezone.now() - selectors.DAY
    [api] = [tier for tier in selectors.cache_stats(now=timezone.now())["tiers"] if tier["tier"] == "api"]
    theirs = api_cache_stats(since=since)
    assert (api["hits"], api["misses"], api["saved_cost"]) == (
        theirs["hits"],
        theirs["misses"],
        theirs["saved"],
    )
    assert (api["hits"], api["misses"]) == (1, 1)
