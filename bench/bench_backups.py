"""Backup and restore of a site with 100,000 usage records and 10,000 runs (each with the built-in
engine's full analysis, as real runs keep it): how long `manage.py backup` and `manage.py restore
--yes` take, and the peak RSS of each process, on SQLite, then on PostgreSQL when DATABASE_URL is
set (a scratch database created on its server and dropped afterwards), plain and encrypted.

Each command runs in a child process of its own, waited for with wait4(), whose resource usage is
that child's alone: ru_maxrss is the command's peak RSS. The restore's time includes what the
command does before replacing the data: verifying the file and taking a safety backup of the data
there (the same size: its share is in the note). REDIS_URL is passed on when set (the restore
clears the cache after it commits: point it at a database of your own).
"""

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.harness import PROJECT_ROOT, Result, Target, manage, scratch_database

RECORDS = 100_000
RUNS = 10_000
RSS_TARGET = Target("p50", 250, unit="MiB")
SEED = """
import random
from decimal import Decimal
from django.contrib.auth import get_user_model
from costs.models import UsageRecord
from optimizer.builtin_engine import builtin
from optimizer.models import OptimizationRun, Prompt
rng = random.Random(16)
users = [get_user_model().objects.create_user(f"user{n}", password="unused-password-123") for n in range(10)]
result = builtin.optimize("Explain how tides work for a child.", "general")
prompts = Prompt.objects.bulk_create(
    Prompt(owner=users[n % 10], title=f"Prompt {n}", text=f"Explain topic {n} clearly, with an example.")
    for n in range(RUNS)
)
runs = OptimizationRun.objects.bulk_create(
    OptimizationRun(
        owner=prompt.owner, prompt=prompt, status="done", engine="builtin", settings={"type": "general"},
        deconstruction=result["deconstruction"], diagnosis=result["diagnosis"],
        changes=result["design"]["changes"], optimized_text=result["design"]["optimized_prompt"],
        scores={"before": result["before"]}, score_before=30, score_after=30 + n % 60, score_gain=n % 60,
    )
    for n, prompt in enumerate(prompts)
)
stages = ["deconstruct", "diagnose", "design", "evaluate", "design:repair"]
batch = []
for n in range(RECORDS):
    batch.append(UsageRecord(
        user=users[n % 10], run=runs[n % RUNS], provider="OpenAI", model="gpt-5-mini",
        operation=stages[n % 5], input_tokens=rng.randrange(200, 4000), output_tokens=rng.randrange(50, 1500),
        cost=Decimal(rng.randrange(1, 5000)) / 1_000_000, latency_ms=rng.randrange(200, 4000), status="ok",
    ))
    if len(batch) == 5000:
        UsageRecord.objects.bulk_create(batch)
        batch = []
"""
SAFETY_SHARE = """
from backups.models import Backup
print(Backup.objects.filter(trigger="safety").latest("started_at").duration_ms)
"""


def run() -> list[Result]:
    if not sys.platform.startswith("linux"):
        return [Result("backups", 0, 0, 0, "skipped: needs Linux (wait4's peak RSS in KiB)")]
    results = []
    for label, database_url in _configurations():
        with tempfile.TemporaryDirectory(prefix="po-bench-") as scratch:
            env = _environment(Path(scratch), database_url)
            manage(env, "migrate", "--noinput", "-v0")
            if not env.get("REDIS_URL"):
                manage(env, "createcachetable")
            started = time.perf_counter()
            manage(env, "shell", "-c", SEED.replace("RECORDS", str(RECORDS)).replace("RUNS", str(RUNS)))
            seeded_s = time.perf_counter() - started
            results += _measure(env, Path(scratch), f"{label}, plain", f"seeded in {seeded_s:.0f} s")
            env["BACKUP_ENCRYPTION_KEY"] = _key()
            results += _measure(env, Path(scratch), f"{label}, encrypted", "AES-256-GCM, 64 KiB chunks")
    return results


def _measure(env: dict, scratch: Path, label: str, note: str) -> list[Result]:
    """A backup of the seeded data, then its restore, each timed and its peak RSS taken."""
    file = scratch / f"bench-{len(list(scratch.glob('bench-*')))}.zip"
    backup_s, backup_mib = _measured(env, "backup", "--output", str(file))
    restore_s, restore_mib = _measured(env, "restore", str(file), "--yes")
    safety_ms = int(_output(env, "shell", "-c", SAFETY_SHARE))
    size = f"{file.stat().st_size / 1024**2:.1f} MiB file"
    rows = f"{RECORDS:,} usage records + {RUNS:,} runs"
    return [
        _once(f"backup: {rows} [{label}]", backup_s * 1000, f"{size}; {note}"),
        _once(
            f"restore --yes: verify, safety backup, replace [{label}]",
            restore_s * 1000,
            f"safety backup {safety_ms / 1000:.1f} s of it",
        ),
        _once(f"backup: peak RSS, MiB [{label}]", backup_mib, "the backup process", target=RSS_TARGET),
        _once(f"restore: peak RSS, MiB [{label}]", restore_mib, "the restore process", target=RSS_TARGET),
    ]


def _once(name: str, figure: float, note: str, *, target: Target | None = None) -> Result:
    return Result(name, 1, round(figure, 3), round(figure, 3), note, target=target)


def _measured(env: dict, *args: str) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of ``manage.py args`` in a child process of its own."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "manage.py"), *args],
            env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=errors,
        )  # fmt: skip
        _pid, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        if child.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {errors.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024  # KiB on Linux


def _output(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "manage.py"), *args],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def _key() -> str:
    from backups.crypto import key_generate

    return key_generate()


def _environment(scratch: Path, database_url: str | None) -> dict:
    env = {
        **os.environ,
        "DATA_DIR": str(scratch / "data"),
        "BACKUP_DIR": str(scratch / "backups"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    for name in ("BACKUP_ENCRYPTION_KEY", "BACKUP_STORAGE", "BACKUP_STORAGE_OPTIONS", "DATABASE_URL"):
        env.pop(name, None)
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def _configurations() -> Iterator[tuple[str, str | None]]:
    """SQLite, then PostgreSQL when DATABASE_URL is set."""
    yield "SQLite", None
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        with scratch_database(os.environ["DATABASE_URL"], "backups") as url:
            yield "PostgreSQL", url
