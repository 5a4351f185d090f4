"""Batches end to end through the task queue (`make bench ARGS=batch`), on the embedded default
(SQLite, the ORM broker), with `manage.py worker` (both task clusters) as a deployment runs them:

1. 1,000 real prompts against the fake provider (`manage.py fakellm`, a process of its own) answering
   each call after 300 ms, TASK_WORKERS = BATCH_CONCURRENCY = 8: the wall time from the batch's start
   to its end (the database's own timestamps) against the ideal, items * calls per item * latency /
   concurrency (the calls per item counted from the usage records), target <= 1.15x; and the peak RSS
   (VmHWM) of the model cluster's processes, target ≤ 200 MiB each.
2. Every prompt of the CSV on the built-in engine (FAST_TASK_WORKERS = 2): items per second from the
   start to the end, the queue included.

The batches are made by the services the page and the command use (parse, create, start), in a
`manage.py shell` of the same environment; progress is read from the SQLite file directly.
"""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from bench.harness import PROJECT_ROOT, Result, Target, _wait_listening, free_port, manage

PROMPTS_CSV = PROJECT_ROOT.parent / "shared" / "data" / "awesome-chatgpt-prompts.csv"
ITEMS = 1000
LATENCY_S = 0.3
CONCURRENCY = 8
RATIO_TARGET = Target("ratio", 1.15)
RSS_TARGET = Target("p50", 200, unit="MiB")
TIMEOUT_S = 900

CREATE = """
import sys
from django.contrib.auth import get_user_model
from optimizer import services
from optimizer.batches.parsing import parse_file
from optimizer.batches.services import batch_create, batch_start
from optimizer.models import ModelChoice, Provider
user, _ = get_user_model().objects.get_or_create(username="bench")
model = "builtin"
if {port}:
    choice = ModelChoice.objects.create(
        provider=Provider.objects.create(
            name="fake", kind="openai", base_url="http://127.0.0.1:{port}/v1", max_concurrency=16
        ),
        model_id="gpt-4o-mini",
    )
    model = str(choice.pk)
parsed = parse_file("prompts.csv", open({csv!r}, "rb").read())
items = [item for item in parsed.items if item.duplicate_of is None][: {limit}]
parsed = type(parsed)(parsed.format, items, [], 0, parsed.columns)
settings = services.run_settings_build(
    prompt_type="general", preset="auto", techniques=[], model=model, keep_spans=True
)
batch = batch_create(owner=user, parsed=parsed, run_settings=settings, source="bench.csv")
batch_start(batch=batch)
print(batch.pk, len(items))
"""


@contextlib.contextmanager
def _site(extra: dict[str, str]) -> Iterator[dict[str, str]]:
    with tempfile.TemporaryDirectory(prefix="po-bench-batch-") as scratch:
        env = {
            **os.environ,
            "DATA_DIR": f"{scratch}/data",
            "STATIC_ROOT": f"{scratch}/static",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            **extra,
        }
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        manage(env, "migrate", "--noinput", "-v0")
        manage(env, "createcachetable")
        yield env


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], port: int | None = None) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "manage.py"), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        if port:
            _wait_listening(port, process)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _batch_create(env: dict[str, str], port: int, limit: int) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "manage.py"), "shell", "-c",
         CREATE.format(port=port, csv=str(PROMPTS_CSV), limit=limit)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    batch_id, items = done.stdout.split()[-2:]
    return int(batch_id), int(items)


def _database(env: dict[str, str]) -> sqlite3.Connection:
    return sqlite3.connect(Path(env["DATA_DIR"]) / "db.sqlite3", timeout=30)


def _wait_done(env: dict[str, str], batch_id: int) -> tuple[float, int, int]:
    """Seconds from the batch's start to its end, its runs, and its failed runs."""
    deadline = time.monotonic() + TIMEOUT_S
    with contextlib.closing(_database(env)) as db:
        while time.monotonic() < deadline:
            status, started, finished = db.execute(
                "SELECT status, started_at, finished_at FROM optimizer_batch WHERE id = ?", [batch_id]
            ).fetchone()
            if status == "done":
                runs, failed = db.execute(
                    "SELECT count(*), sum(status = 'failed') FROM optimizer_optimizationrun "
                    "WHERE batch_id = ?",
                    [batch_id],
                ).fetchone()
                seconds = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
                return seconds, runs, failed or 0
            time.sleep(0.5)
    raise RuntimeError(f"batch {batch_id} did not finish within {TIMEOUT_S} s")


def _calls_per_item(env: dict[str, str], batch_id: int, runs: int) -> float:
    with contextlib.closing(_database(env)) as db:
        (calls,) = db.execute(
            "SELECT count(*) FROM costs_usagerecord WHERE run_id IN "
            "(SELECT id FROM optimizer_optimizationrun WHERE batch_id = ?) AND provider = 'fake'",
            [batch_id],
        ).fetchone()
    return calls / runs


def _descendants(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = [int(child) for child in children.read_text().split()] if children.exists() else []
    return found + [grandchild for child in found for grandchild in _descendants(child)]


def _peak_rss_mib(root: int) -> dict[int, float]:
    """VmHWM (the peak resident set) of every process under ``root``, in MiB."""
    peaks = {}
    for pid in _descendants(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[pid] = int(line.split()[1]) / 1024
    return peaks


def _with_model() -> list[Result]:
    workers = {
        "TASK_WORKERS": str(CONCURRENCY),
        "BATCH_CONCURRENCY": str(CONCURRENCY),
        "FAST_TASK_WORKERS": "1",
    }
    port = free_port()
    with (
        _site(workers) as env,
        _process(["fakellm", "--port", str(port), "--latency", str(LATENCY_S)], env, port),
        _process(["worker"], env) as worker,
    ):
        time.sleep(5)  # both clusters up before the clock starts
        batch_id, items = _batch_create(env, port, ITEMS)
        seconds, runs, failed = _wait_done(env, batch_id)
        peaks = _peak_rss_mib(worker.pid)
        per_item = _calls_per_item(env, batch_id, runs)
    ideal = items * per_item * LATENCY_S / CONCURRENCY
    name = f"batch of {items:,} prompts, fake provider at {LATENCY_S * 1000:.0f} ms a call"
    biggest = max(peaks.values()) if peaks else 0.0
    return [
        Result(
            f"{name}: wall time",
            1,
            seconds * 1000,
            seconds * 1000,
            f"ideal {ideal:.1f} s = {items:,} items * {per_item:.2f} calls * {LATENCY_S} s / {CONCURRENCY} "
            f"(TASK_WORKERS = BATCH_CONCURRENCY = {CONCURRENCY}); {failed} failed; "
            f"{items / seconds:.1f} items/s",
            target=RATIO_TARGET,
            floor_p50_ms=ideal * 1000,
        ),
        Result(
            f"{name}: peak RSS of a worker process",
            len(peaks),
            biggest,
            biggest,
            f"MiB, not ms: the largest VmHWM of the {len(peaks)} processes under `manage.py worker`",
            target=RSS_TARGET,
        ),
    ]


def _builtin() -> list[Result]:
    with (
        _site({"BATCH_CONCURRENCY": str(CONCURRENCY), "FAST_TASK_WORKERS": "2"}) as env,
        _process(["worker"], env),
    ):
        time.sleep(5)
        batch_id, items = _batch_create(env, 0, 100_000)
        seconds, _runs, failed = _wait_done(env, batch_id)
    return [
        Result(
            f"batch of the whole CSV ({items:,} prompts) on the built-in engine",
            1,
            seconds * 1000,
            seconds * 1000,
            f"{items / seconds:.0f} items/s end to end, the queue included (FAST_TASK_WORKERS = 2, "
            f"BATCH_CONCURRENCY = {CONCURRENCY}); {failed} failed",
        )
    ]


def run() -> list[Result]:
    if not PROMPTS_CSV.exists():
        return [Result("batches", 0, 0, 0, "skipped: ../shared/data is absent")]
    return _builtin() + _with_model()
