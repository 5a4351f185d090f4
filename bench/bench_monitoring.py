"""The monitoring partial (the tiles the page refreshes every 5 s) with 100,000 usage records and
10,000 runs, over HTTP against gunicorn on loopback: on the embedded default, then on PostgreSQL +
Redis when DATABASE_URL and REDIS_URL are both set. Target: p95 <= 50 ms. The whole page, its JSON
export and /api/v1/health are timed beside it, without targets."""

import os
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx

from bench.harness import (
    Result,
    Target,
    bench_user_create,
    login,
    manage,
    running_server,
    scratch_database,
    summarize,
)

RECORDS = 100_000
RUNS = 10_000
DAYS = 90
RECENT_SHARE = 20  # one record and run in RECENT_SHARE falls in the last day: the tiles' windows hold some
REQUESTS = 200
WARMUP = 20
TARGET = Target("p95", 50)

SEED = """
import random
from datetime import timedelta
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.utils import timezone
from costs.models import UsageRecord
from optimizer.models import ModelChoice, OptimizationRun, Prompt, Provider, WorkerHeartbeat

rng = random.Random(18)
bench = get_user_model().objects.get(username="bench")
now = timezone.now()
span = DAYS * 86400

def when(n):  # one in RECENT_SHARE within the last day, the rest over DAYS days
    return now - timedelta(seconds=rng.randrange(86400 if n % RECENT_SHARE == 0 else span))

models = [("OpenAI", "gpt-5-nano"), ("OpenAI", "gpt-5-mini"), ("OpenAI", "gpt-5"),
          ("Anthropic", "claude-haiku-4-5"), ("Anthropic", "claude-sonnet-4-5"), ("xAI", "grok-4")]
for name in {provider for provider, _ in models}:
    provider = Provider.objects.create(name=name, kind="openai", base_url="https://api.example.test/v1")
    for provider_name, model in models:
        if provider_name == name:
            ModelChoice.objects.create(provider=provider, model_id=model)
prompts = Prompt.objects.bulk_create(
    Prompt(owner=bench, title=f"Prompt {n}", text=f"Explain topic {n} clearly.") for n in range(RUNS)
)
OptimizationRun._meta.get_field("created_at").auto_now_add = False  # the seed sets its own times
statuses = ["done"] * 90 + ["failed"] * 4 + ["queued"] * 3 + ["running"] * 3
runs = []
for n, prompt in enumerate(prompts):
    created = when(n)
    status = statuses[n % len(statuses)]
    duration = rng.randrange(800, 40_000) if status in ("done", "failed") else None
    runs.append(OptimizationRun(
        owner=bench, prompt=prompt, status=status, engine="llm", created_at=created,
        started_at=created if status != "queued" else None,
        finished_at=created + timedelta(milliseconds=duration) if duration else None, duration_ms=duration,
        degraded_reason="The model failed; the built-in engine answered." if n % 11 == 0 else "",
        error="The worker stopped 3 times." if status == "failed" else "",
        cached=n % 9 == 0, analysis_cached=n % 7 == 0, cost=Decimal(rng.randrange(1, 900)) / 10_000,
    ))
runs = OptimizationRun.objects.bulk_create(runs, batch_size=2000)
UsageRecord._meta.get_field("created_at").auto_now_add = False
stages = ["deconstruct", "diagnose", "design", "evaluate", "design:repair"]
errors = ["ProviderError", "ReadTimeout", "ConnectError"]
batch = []
for n in range(RECORDS):
    provider, model = models[n % len(models)]
    hit, failed = n % 7 == 0, n % 13 == 0
    price = Decimal(rng.randrange(1, 5000)) / 1_000_000
    batch.append(UsageRecord(
        created_at=when(n), user=bench, run=runs[n % len(runs)], provider=provider, model=model,
        operation=stages[n % len(stages)], input_tokens=rng.randrange(200, 4000),
        output_tokens=rng.randrange(50, 1500), cost=Decimal(0) if hit or failed else price,
        saved_cost=price if hit else Decimal(0), latency_ms=0 if hit else rng.randrange(200, 9000),
        status="cache_hit" if hit else "error" if failed else "ok",
        error_class=errors[n % len(errors)] if failed else "",
    ))
    if len(batch) == 5000:
        UsageRecord.objects.bulk_create(batch)
        batch = []
for n, cluster in enumerate(["prompt-optimizer", "prompt-optimizer", "prompt-optimizer-fast"]):
    WorkerHeartbeat.objects.create(name=f"bench-host:{n}", cluster=cluster, host="bench-host", pid=n,
                                   started_at=now, beat_at=now, rss_bytes=80 * 1024 * 1024)
from django.db import connection
if connection.vendor == "postgresql":  # as autovacuum leaves the tables a minute after such a batch
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE optimizer_optimizationrun, costs_usagerecord")
print(UsageRecord.objects.count(), OptimizationRun.objects.count())
"""


def _configurations() -> Iterator[tuple[str, dict]]:
    yield "embedded default", {}
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if database_url and redis_url:
        with scratch_database(database_url, "monitoring") as scratch_url:
            yield "PostgreSQL + Redis", {"database_url": scratch_url, "redis_url": redis_url}


def _timed(send, count: int) -> list[float]:
    for _ in range(WARMUP):
        send()
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        send()
        timings.append(time.perf_counter() - started)
    return timings


def _pages(server: dict) -> list[Result]:
    with running_server(**server) as (base_url, env), httpx.Client(base_url=base_url, timeout=60) as client:
        bench_user_create(env)
        started = time.perf_counter()
        seed = SEED.replace("RECENT_SHARE", str(RECENT_SHARE)).replace("RECORDS", str(RECORDS))
        manage(env, "shell", "-c", seed.replace("RUNS", str(RUNS)).replace("DAYS", str(DAYS)))
        seeded_s = time.perf_counter() - started
        login(client)
        views = [
            ("GET /monitoring/ partial (htmx)", "/monitoring/", {"HX-Request": "true"}, TARGET),
            ("GET /monitoring/ (the whole page)", "/monitoring/", {}, None),
            ("GET /monitoring/export.json", "/monitoring/export.json", {}, None),
            ("GET /api/v1/health", "/api/v1/health", {}, None),
        ]
        results = []
        for label, path, headers, target in views:

            def get(path=path, headers=headers):
                answer = client.get(path, headers=headers)
                if answer.status_code not in (200, 503):  # health may say a worker is silent: still timed
                    raise RuntimeError(f"{path} answered {answer.status_code}")

            results.append(summarize(label, _timed(get, REQUESTS), target=target))
        note = f"{RECORDS:,} usage records and {RUNS:,} runs seeded in {seeded_s:.0f} s"
        results[0] = replace(results[0], note=note)
    return results


def run() -> list[Result]:
    results = []
    for label, server in _configurations():
        results += [replace(row, name=f"{row.name} [{label}]") for row in _pages(server)]
    return results
