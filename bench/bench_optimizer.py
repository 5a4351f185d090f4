"""Optimization benchmarks: the built-in engine over the 1,529 real prompts; over HTTP (gunicorn on
loopback), a result-cache hit against the floor, and the history page with 10,000 runs.

The floor is the anonymous login page (a template with a form and a CSRF token, 200): logged in,
GET /login/ is a redirect, not a page. The HTTP part runs on the embedded default, then again on
PostgreSQL + Redis when DATABASE_URL and REDIS_URL are both set (a scratch database is created on
DATABASE_URL's server and dropped afterwards; Redis is used as given, so point REDIS_URL at a
database that no test run flushes meanwhile)."""

import csv
import os
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx

from bench.harness import (
    PROJECT_ROOT,
    Result,
    Target,
    bench_user_create,
    login,
    manage,
    running_server,
    scratch_database,
    summarize,
)

PROMPTS_CSV = PROJECT_ROOT.parent / "shared" / "data" / "awesome-chatgpt-prompts.csv"
REQUESTS = 1000
WARMUP = 50
HISTORY_RUNS = 10_000
HISTORY_PAGES = (  # label, path
    ("GET /history/ with 10,000+ runs", "/history/"),
    ("GET /history/ search, 10,000+ runs", "/history/?q=topic+99&sort=gain"),
    ("GET /history/ page 200 (htmx)", "/history/?page=200"),
)
# Issue 14: halve the server time of the first page, measured as the median of the per-pair
# differences between it and the floor (the time the page adds to a trivial one, less exposed to
# the shared machine's load than either). The targets are half of it before (12-03, this 2-core
# machine, two runs: 14.66 and 12.73 ms embedded, 16.91 and 15.70 ms on PostgreSQL + Redis).
HISTORY_TARGETS = {"embedded default": Target("p50", 6.8), "PostgreSQL + Redis": Target("p50", 8.1)}
CACHED_PROMPT = "Write a short story about {hero} who finds a map. Keep it under 300 words."

SEED_HISTORY = """
import random
from django.contrib.auth import get_user_model
from optimizer.builtin_engine import builtin
from optimizer.models import OptimizationRun, Prompt
user = get_user_model().objects.get(username="bench")
result = builtin.optimize("Explain how tides work for a child.", "general")
types = [t for t, _ in Prompt.Type.choices]
prompts = Prompt.objects.bulk_create(
    Prompt(owner=user, title=f"Prompt {n}", text=f"Explain topic {n} clearly.", type=types[n % 6])
    for n in range(RUNS)
)
OptimizationRun.objects.bulk_create(
    OptimizationRun(
        owner=user, prompt=prompt, status="done", engine="builtin", settings={"type": prompt.type},
        deconstruction=result["deconstruction"], diagnosis=result["diagnosis"],
        changes=result["design"]["changes"],
        optimized_text=result["design"]["optimized_prompt"], scores={"before": result["before"]},
        score_before=30, score_after=30 + n % 60, score_gain=n % 60,
    )
    for n, prompt in enumerate(prompts)
)
from django.db import connection
if connection.vendor == "postgresql":  # as autovacuum leaves the table a minute after such a batch
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE optimizer_optimizationrun, optimizer_prompt")
"""


def _timed_pairs(first, second, count: int) -> tuple[list[float], list[float]]:
    """Time two requests alternately, so a load that comes and goes on a shared machine falls on both
    alike and their ratio stays meaningful."""
    for _ in range(WARMUP):
        first()
        second()
    firsts, seconds = [], []
    for _ in range(count):
        for send, timings in ((first, firsts), (second, seconds)):
            started = time.perf_counter()
            send()
            timings.append(time.perf_counter() - started)
    return firsts, seconds


def _engine_over_csv() -> list[Result]:
    if not PROMPTS_CSV.exists():
        return [Result("built-in engine over the CSV", 0, 0, 0, "skipped: ../shared/data is absent")]
    from optimizer.builtin_engine import builtin

    csv.field_size_limit(sys.maxsize)
    with PROMPTS_CSV.open(encoding="utf-8", newline="") as handle:
        prompts = [row["prompt"] for row in csv.DictReader(handle) if len(row["prompt"]) <= 50_000]
    # A running process has loaded the language model once; the first call of this one does it.
    one = time.perf_counter()
    builtin.optimize("Summarize the tides for a child.", "general")
    first_ms = (time.perf_counter() - one) * 1000
    # Each prompt's best of three passes: a moment the shared machine lent elsewhere is not the
    # engine's. The engine keeps 64 texts, so a pass over 1,525 finds none of them kept.
    rounds, passes = 3, []
    for _ in range(rounds):
        timings = []
        started = time.perf_counter()
        for text in prompts:
            one = time.perf_counter()
            builtin.optimize(text, "general")
            timings.append(time.perf_counter() - one)
        passes.append((time.perf_counter() - started, timings))
    total = min(seconds for seconds, _ in passes)
    timings = [min(each) for each in zip(*(timings for _, timings in passes), strict=True)]
    mean_ms = statistics.mean(timings) * 1000
    note = (
        f"{len(prompts) / total:.0f} prompts/s, all four stages; mean {mean_ms:.2f} ms; each prompt's best "
        f"of {rounds} passes; the process's first call {first_ms:.0f} ms (loads the language model)"
    )
    slowest = max(range(len(prompts)), key=timings.__getitem__)
    slowest_ms = round(timings[slowest] * 1000, 3)
    return [
        summarize(
            f"built-in engine, one prompt ({len(prompts):,} real)", timings, note, target=Target("p95", 10)
        ),
        # One prompt, not a percentile: its p50 and p95 are its one time.
        Result(
            "built-in engine, the slowest prompt",
            1,
            slowest_ms,
            slowest_ms,
            f"one prompt: {len(prompts[slowest]):,} characters",
            target=Target("p95", 100),
        ),
    ]


def _configurations() -> Iterator[tuple[str, dict]]:
    """The embedded default, then PostgreSQL + Redis when DATABASE_URL and REDIS_URL are both set
    (over a scratch database created on DATABASE_URL's server and dropped afterwards)."""
    yield "embedded default", {}
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if database_url and redis_url:
        with scratch_database(database_url, "optimizer") as scratch_url:
            yield "PostgreSQL + Redis", {"database_url": scratch_url, "redis_url": redis_url}


def _over_http() -> list[Result]:
    results = []
    for label, server in _configurations():
        results += [
            replace(row, name=f"{row.name} [{label}]") for row in _pages(server, HISTORY_TARGETS[label])
        ]
    return results


def _pages(server: dict, history_target: Target) -> list[Result]:
    """The result-cache hit against the floor, then the history page with 10,000 runs."""
    with (
        running_server(**server) as (base_url, env),
        httpx.Client(base_url=base_url) as client,
        httpx.Client(base_url=base_url) as anonymous,
    ):
        bench_user_create(env)
        manage(env, "optimize", CACHED_PROMPT, "--user", "bench", "--engine", "builtin")  # fills the cache
        token = login(client)
        form = {
            "text": CACHED_PROMPT,
            "type": "general",
            "preset": "auto",
            "model": "builtin",
            "keep_spans": "on",
        }
        headers = {"HX-Request": "true", "X-CSRFToken": token, "Referer": base_url + "/"}

        def floor():
            # The anonymous login page: a template with a form and a CSRF token. Logged in, /login/
            # is a redirect, not a page.
            if anonymous.get("/login/").status_code != 200:
                raise RuntimeError("the floor did not answer with the login page")

        def optimize():
            # The htmx POST answers with the run's own page, swapped in whole (one round trip).
            answer = client.post("/", data=form, headers=headers)
            if answer.status_code != 200 or not answer.headers.get("HX-Push-Url"):
                raise RuntimeError("the optimization did not answer with its run page")
            if "Cached result" not in answer.text:
                raise RuntimeError("the optimization was not a result-cache hit")

        floors, hits = _timed_pairs(floor, optimize, REQUESTS)
        floor_result = summarize("GET /login/ anonymous (the floor: a template, 200)", floors)
        hit = "POST / cache-hit optimization (its run page)"
        results = [floor_result, summarize(hit, hits, target=Target("ratio", 2), floor=floor_result)]

        manage(env, "shell", "-c", SEED_HISTORY.replace("RUNS", str(HISTORY_RUNS)))
        for label, path in HISTORY_PAGES:
            htmx = {"HX-Request": "true"} if "page=" in path else {}

            def history(path=path, htmx=htmx):
                if client.get(path, headers=htmx).status_code != 200:
                    raise RuntimeError(f"{path} did not answer 200")

            floors, timings = _timed_pairs(floor, history, 300)
            results.append(summarize(label, timings, floor=summarize("floor", floors)))
            if path == "/history/":
                beyond = [page - trivial for trivial, page in zip(floors, timings, strict=True)]
                note = "the page's time less the floor's, pair by pair: its server time beyond a trivial page"
                results.append(summarize(f"{label}: beyond the floor", beyond, note, target=history_target))
    return results


def run() -> list[Result]:
    return _engine_over_csv() + _over_http()
