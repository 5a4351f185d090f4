"""Optimization benchmarks: the built-in engine over the 1,529 real prompts, a result-cache hit
over HTTP (gunicorn on loopback) against a trivial view, and the history page with 10,000 runs."""

import csv
import statistics
import sys
import time
from dataclasses import replace

import httpx

from bench.harness import PROJECT_ROOT, Result, bench_user_create, login, manage, running_server, summarize

PROMPTS_CSV = PROJECT_ROOT.parent / "shared" / "data" / "awesome-chatgpt-prompts.csv"
REQUESTS = 1000
WARMUP = 50
HISTORY_RUNS = 10_000
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
"""


def _timed(send, count: int) -> list[float]:
    for _ in range(WARMUP):
        send()
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        send()
        timings.append(time.perf_counter() - started)
    return timings


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
    timings = []
    started = time.perf_counter()
    for text in prompts:
        one = time.perf_counter()
        builtin.optimize(text, "general")
        timings.append(time.perf_counter() - one)
    total = time.perf_counter() - started
    mean_ms = statistics.mean(timings) * 1000
    note = f"{len(prompts) / total:.0f} prompts/s, all four stages; mean {mean_ms:.2f} ms"
    return [summarize("built-in engine, one prompt (1,525 real)", timings, note)]


def _over_http() -> list[Result]:
    results = []
    with running_server() as (base_url, env):
        bench_user_create(env)
        manage(env, "optimize", CACHED_PROMPT, "--user", "bench", "--engine", "builtin")  # fills the cache
        with httpx.Client(base_url=base_url) as client:
            token = login(client)
            form = {
                "text": CACHED_PROMPT,
                "type": "general",
                "preset": "auto",
                "model": "builtin",
                "keep_spans": "on",
            }
            headers = {"HX-Request": "true", "X-CSRFToken": token, "Referer": base_url + "/"}

            def optimize():
                # The htmx POST answers with the run's own page, swapped in whole (one round trip).
                answer = client.post("/", data=form, headers=headers)
                if answer.status_code != 200 or not answer.headers.get("HX-Push-Url"):
                    raise RuntimeError("the optimization did not answer with its run page")
                if "Cached result" not in answer.text:
                    raise RuntimeError("the optimization was not a result-cache hit")

            floor, hits = _timed_pairs(lambda: client.get("/login/"), optimize, REQUESTS)
            floor_result = summarize("GET /login/ (floor: a trivial view)", floor)
            hit_result = summarize("POST / cache-hit optimization (its run page)", hits)
            ratio = hit_result.p50_ms / floor_result.p50_ms
            results += [floor_result, replace(hit_result, note=f"{ratio:.2f}x the floor p50")]

            manage(env, "shell", "-c", SEED_HISTORY.replace("RUNS", str(HISTORY_RUNS)))
            for label, path in (
                ("GET /history/ with 10,000+ runs", "/history/"),
                ("GET /history/ search, 10,000+ runs", "/history/?q=topic+99&sort=gain"),
                ("GET /history/ page 200 (htmx)", "/history/?page=200"),
            ):
                htmx = {"HX-Request": "true"} if "page=" in path else {}
                timings = _timed(lambda path=path, htmx=htmx: client.get(path, headers=htmx), 300)
                results.append(summarize(label, timings))
    return results


def run() -> list[Result]:
    return _engine_over_csv() + _over_http()
