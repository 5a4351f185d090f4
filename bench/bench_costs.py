"""The cost dashboard with 100,000 usage records over 90 days (the page and each chart view, over
HTTP against gunicorn on loopback), and the CSV export of all of them: time and the worker's peak
memory."""

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx

from bench.harness import (
    PROJECT_ROOT,
    Result,
    bench_user_create,
    login,
    manage,
    running_server,
    summarize,
    timed,
)

RECORDS = 100_000
DAYS = 90
REQUESTS = 100

SEED = """
import random
from datetime import timedelta
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.utils import timezone
from costs.models import Budget, UsageRecord
from optimizer.models import OptimizationRun, Prompt

rng = random.Random(5)
bench = get_user_model().objects.get(username="bench")
users = [bench] + [
    get_user_model().objects.create_user(f"user{n}", password="unused-password-123") for n in range(9)
]
prompt = Prompt.objects.create(owner=bench, title="Bench prompt", text="Explain tides.")
runs = OptimizationRun.objects.bulk_create(
    OptimizationRun(owner=bench, prompt=prompt, status="done", cost=Decimal(rng.randrange(1, 900)) / 10_000)
    for _ in range(5000)
)
models = [("OpenAI", "gpt-5-nano"), ("OpenAI", "gpt-5-mini"), ("OpenAI", "gpt-5"),
          ("Anthropic", "claude-haiku-4-5"), ("Anthropic", "claude-sonnet-4-5"), ("xAI", "grok-4"),
          ("Google Gemini", "gemini-2.5-flash"), ("Local", "llama3.1:8b")]
stages = ["deconstruct", "diagnose", "design", "evaluate", "design:repair"]
UsageRecord._meta.get_field("created_at").auto_now_add = False  # the seed sets its own times
now = timezone.now()
first = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=DAYS - 1)
span = int((now - first).total_seconds())
# Records arrive in time order in real use (auto_now_add), so they are seeded in that order.
times = sorted(first + timedelta(seconds=rng.randrange(span)) for _ in range(RECORDS))
batch = []
for n, created_at in enumerate(times):
    provider, model = models[n % len(models)]
    hit = n % 7 == 0
    price = Decimal(rng.randrange(1, 5000)) / 1_000_000
    batch.append(UsageRecord(
        created_at=created_at, user=users[n % len(users)], run=runs[n % len(runs)], provider=provider,
        model=model, operation=stages[n % len(stages)], input_tokens=rng.randrange(200, 4000),
        output_tokens=rng.randrange(50, 1500), cached_tokens=rng.randrange(0, 200),
        cost=None if provider == "Local" else Decimal(0) if hit else price,
        saved_cost=price if hit else Decimal(0), latency_ms=rng.randrange(200, 4000),
        status="cache_hit" if hit else "ok",
    ))
    if len(batch) == 5000:
        UsageRecord.objects.bulk_create(batch)
        batch = []
Budget.objects.create(period="daily", limit=Decimal("5"), mode="soft")
Budget.objects.create(period="monthly", limit=Decimal("120"), mode="hard")
print(UsageRecord.objects.count())
"""


def _worker_pid(port: int) -> int:
    """The gunicorn worker serving ``port``: the process whose parent is the master."""
    masters, candidates = set(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if f"127.0.0.1:{port}" in cmdline and "gunicorn" in cmdline:
            masters.add(int(entry.name))
            candidates.append((int(entry.name), parent))
    workers = [pid for pid, parent in candidates if parent in masters]
    if len(workers) != 1:
        raise RuntimeError(f"expected one gunicorn worker on port {port}, found {workers}")
    return workers[0]


def _memory_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process, MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def run() -> list[Result]:
    if not Path("/proc/self/status").exists():
        return [Result("cost dashboard", 0, 0, 0, "skipped: needs Linux /proc for memory figures")]
    results = []
    with running_server() as (base_url, env):
        bench_user_create(env)
        started = time.perf_counter()
        manage(env, "shell", "-c", SEED.replace("RECORDS", str(RECORDS)).replace("DAYS", str(DAYS)))
        seeded_s = time.perf_counter() - started
        port = int(base_url.rsplit(":", 1)[1])
        worker = _worker_pid(port)
        with httpx.Client(base_url=base_url, timeout=120) as client:
            login(client)
            full = f"start={_days_ago(env, DAYS - 1)}"
            views = [
                ("GET /costs/ (page), last 30 days", "/costs/"),
                ("GET /costs/ (page), all 90 days", f"/costs/?{full}"),
                ("chart: spend per day, 30 days", "/costs/charts/spend-per-day/"),
                ("chart: spend per day, 90 days", f"/costs/charts/spend-per-day/?{full}"),
                ("chart: tokens per day, 90 days", f"/costs/charts/tokens-per-day/?{full}"),
                ("chart: by model, 90 days", f"/costs/charts/by-model/?{full}"),
                ("chart: by provider, 90 days", f"/costs/charts/by-provider/?{full}"),
                ("chart: by stage, 90 days", f"/costs/charts/by-operation/?{full}"),
            ]
            cold = []
            for _ in range(5):  # the first view: no past day kept yet, every record of the range read
                manage(
                    env, "shell", "-c", "from costs.usage_days import forget_usage_days; forget_usage_days()"
                )
                started = time.perf_counter()
                client.get(f"/costs/charts/spend-per-day/?{full}").raise_for_status()
                cold.append(time.perf_counter() - started)
            for label, path in views:

                def get(path=path):
                    answer = client.get(path)
                    if answer.status_code != 200:
                        raise RuntimeError(f"{path} answered {answer.status_code}")

                results.append(summarize(label, timed(get, REQUESTS), "staff: the whole site"))
            results[0] = replace(results[0], note=f"{RECORDS:,} records seeded in {seeded_s:.0f} s")
            note = "past days summed from the records and kept; later views read them back"
            results.append(summarize("chart: spend per day, 90 days, first view", cold, note))

            rss_before, _peak_before = _memory_mib(worker)
            timings, rows = [], 0
            for _ in range(3):
                started = time.perf_counter()
                with client.stream("GET", f"/costs/usage.csv?{full}") as answer:
                    rows = sum(chunk.count(b"\n") for chunk in answer.iter_bytes()) - 1
                timings.append(time.perf_counter() - started)
            rss_after, peak = _memory_mib(worker)
            note = (
                f"{rows:,} rows; worker RSS {rss_before:.0f} MiB before, {rss_after:.0f} after, "
                f"peak {peak:.0f} MiB"
            )
            results.append(summarize(f"CSV export of {RECORDS:,} records", timings, note))
    return results


def _days_ago(env: dict, days: int) -> str:
    """The server's local date ``days`` ago (its TIME_ZONE decides the calendar)."""
    script = (
        "from datetime import timedelta; from django.utils import timezone; "
        f"print(timezone.localdate() - timedelta(days={days}))"
    )
    answer = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "manage.py"), "shell", "-c", script], env=env, text=True,
        capture_output=True, check=True,
    )  # fmt: skip
    return answer.stdout.strip().splitlines()[-1]
