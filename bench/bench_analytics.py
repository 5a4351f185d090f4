"""The Analytics page with 10,000 runs and 100,000 usage records (over HTTP against gunicorn on
loopback): the page (every figure's table) for the whole site and for one user, and each chart's
JSON view. The runs carry what real ones do: the built-in engine's scores (criteria and all),
techniques and questions, a model's verdict on half of the model's runs, answered versions.

Each day's grouped rows are kept in the cache while that day's runs stay the same, so the page's rows
measure a view after another; "the first view after a change" adds one run before each request
(today's rows are read again, the other days' are kept); "nothing kept" empties the cache before each
request (every day of the range read from the runs: a range nobody looked at, or after a restart
of Redis).

Runs on the embedded default, then again on PostgreSQL + Redis when DATABASE_URL and REDIS_URL are
both set (a scratch database on DATABASE_URL's server, dropped afterwards)."""

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

RUNS = 10_000
RECORDS = 100_000
DAYS = 30  # the page's default range: every seeded run is in it
REQUESTS = 200
WARMUP = 20
PAGE_TARGET = Target("p95", 150)
CHARTS = (
    "runs-per-day", "scores-by-type", "scores-by-model", "verdicts-by-model", "technique-usage",
    "technique-effect", "prompt-types",
)  # fmt: skip

SEED = """
import random
from datetime import timedelta
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from costs.models import UsageRecord
from optimizer.builtin_engine import builtin
from optimizer.models import OptimizationRun, Prompt

rng = random.Random(18)
bench = get_user_model().objects.get(username="bench")
others = [get_user_model().objects.create_user(f"user{n}", password="unused-password-123") for n in range(4)]
owners = [bench] * 6 + others  # the bench user owns 60% of the runs: "mine" is a large scope too
texts = [
    "Write a story about a lighthouse keeper.", "Explain how tides work for a child.",
    "Summarize this quarterly report for the board: {report}", "Write a Python function that parses dates.",
    "Analyze the churn data and list the three main causes.", "Draft a polite reminder about an invoice.",
]
types = [t for t, _ in Prompt.Type.choices]
results = [builtin.optimize(text, types[n % 6]) for n, text in enumerate(texts)]
chosen = [result["design"]["techniques"] for result in results]
models = [("", ""), ("OpenAI", "gpt-5-mini"), ("OpenAI", "gpt-5"), ("Anthropic", "claude-sonnet-4-5")]
winners = ["rewrite", "rewrite", "tie", "original"]
now = timezone.now()
span = DAYS * 86400 - 3600
prompts = Prompt.objects.bulk_create(
    Prompt(owner=owners[n % len(owners)], title=f"Prompt {n}", text=texts[n % 6], type=types[n % 6])
    for n in range(RUNS)
)
OptimizationRun._meta.get_field("created_at").auto_now_add = False  # the seed sets its own times
runs = []
for n, prompt in enumerate(prompts):
    result = results[n % 6]
    provider, model = models[n % len(models)]
    before = rng.randrange(10, 60)
    gain = rng.randrange(-5, 40)
    scores = {"before": result["before"], "after": result["after"]}
    if model and n % 2:
        scores["verdict"] = {"winner": winners[n % 4], "confidence": "high", "criteria": [], "summary": "ok"}
    runs.append(OptimizationRun(
        owner=prompt.owner, prompt=prompt, status="failed" if n % 40 == 0 else "done",
        engine="llm" if model else "builtin", provider=provider, model=model,
        settings={"type": prompt.type, "preset": "auto"},
        created_at=now - timedelta(seconds=rng.randrange(span)),
        techniques=[dict(item, applied=item["applied"] or n % 3 == 0) for item in chosen[n % 6]],
        questions=result["design"].get("questions", []), scores=scores,
        optimized_text=result["design"]["optimized_prompt"], changes=result["design"]["changes"],
        score_before=before, score_after=before + gain, score_gain=gain,
    ))
runs = OptimizationRun.objects.bulk_create(runs, batch_size=1000)
answered = [  # a version that answered its parent's first question, for one run in ten
    OptimizationRun(
        owner=run.owner, prompt=run.prompt, parent=run, status="done", created_at=run.created_at,
        settings={"answers": {run.questions[0]["key"]: "Nurses"}},
        score_before=50, score_after=60, score_gain=10,
    )
    for run in runs[::10] if run.questions
]
OptimizationRun.objects.bulk_create(answered, batch_size=1000)
UsageRecord._meta.get_field("created_at").auto_now_add = False
batch = []
for n in range(RECORDS):
    provider, model = models[1 + n % 3]
    batch.append(UsageRecord(
        created_at=now - timedelta(seconds=rng.randrange(span)), user=owners[n % len(owners)],
        run=runs[n % len(runs)], provider=provider, model=model, operation="design",
        input_tokens=rng.randrange(200, 4000), output_tokens=rng.randrange(50, 1500),
        cost=Decimal(rng.randrange(1, 5000)) / 1_000_000, latency_ms=rng.randrange(200, 4000), status="ok",
    ))
    if len(batch) == 5000:
        UsageRecord.objects.bulk_create(batch)
        batch = []
if connection.vendor == "postgresql":  # as autovacuum leaves the tables a minute after such a batch
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE optimizer_optimizationrun, optimizer_prompt, costs_usagerecord")
print(OptimizationRun.objects.count(), UsageRecord.objects.count())
"""


ADD_RUN = """
from django.contrib.auth import get_user_model
from optimizer.models import OptimizationRun, Prompt
bench = get_user_model().objects.get(username="bench")
prompt = Prompt.objects.create(owner=bench, title="One more", text="Explain tides.")
OptimizationRun.objects.create(
    owner=bench, prompt=prompt, status="done", score_before=30, score_after=45, score_gain=15
)
"""
COLD_VIEWS = 10


def _configurations() -> Iterator[tuple[str, dict]]:
    yield "embedded default", {}
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if database_url and redis_url:
        with scratch_database(database_url, "analytics") as scratch_url:
            yield "PostgreSQL + Redis", {"database_url": scratch_url, "redis_url": redis_url}


def _timed(client: httpx.Client, path: str, count: int) -> list[float]:
    for _ in range(WARMUP):
        client.get(path).raise_for_status()
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        answer = client.get(path)
        timings.append(time.perf_counter() - started)
        if answer.status_code != 200:
            raise RuntimeError(f"{path} answered {answer.status_code}")
    return timings


def _measure(server: dict) -> list[Result]:
    with running_server(**server) as (base_url, env), httpx.Client(base_url=base_url, timeout=120) as client:
        bench_user_create(env)
        started = time.perf_counter()
        manage(
            env,
            "shell",
            "-c",
            SEED.replace("RUNS", str(RUNS)).replace("RECORDS", str(RECORDS)).replace("DAYS", str(DAYS)),
        )
        seeded_s = time.perf_counter() - started
        seeded = (
            f"{RUNS:,} runs (and answered versions), {RECORDS:,} usage records seeded in {seeded_s:.0f} s"
        )
        login(client)
        results = [
            summarize(
                "GET /analytics/ (page), staff: the whole site",
                _timed(client, "/analytics/", REQUESTS),
                seeded,
                target=PAGE_TARGET,
            ),
            summarize(
                "GET /analytics/?scope=mine (page), 6,000 runs",
                _timed(client, "/analytics/?scope=mine", REQUESTS),
                target=PAGE_TARGET,
            ),
        ]
        for name in CHARTS:
            path = f"/analytics/charts/{name}/"
            results.append(summarize(f"chart: {name}, the whole site", _timed(client, path, REQUESTS // 2)))
        cold = []
        for _ in range(COLD_VIEWS):
            manage(env, "shell", "-c", ADD_RUN)
            started = time.perf_counter()
            client.get("/analytics/").raise_for_status()
            cold.append(time.perf_counter() - started)
        note = "one run added before each: today's rows read again, the other days' kept"
        results.append(summarize("GET /analytics/, the first view after a change", cold, note))
        empty = []
        for _ in range(COLD_VIEWS):
            manage(env, "shell", "-c", "from django.core.cache import cache; cache.clear()")
            started = time.perf_counter()
            client.get("/analytics/").raise_for_status()
            empty.append(time.perf_counter() - started)
        note = "the cache emptied before each: every day of the range read from the runs"
        results.append(summarize("GET /analytics/, nothing kept", empty, note))
    return results


def run() -> list[Result]:
    results = []
    for label, server in _configurations():
        results += [replace(row, name=f"{row.name} [{label}]") for row in _measure(server)]
    return results
