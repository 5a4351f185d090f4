"""Gateway overhead against a bare httpx call, with and without budgets, and concurrency through
the breaker.

The fake provider runs in its own process (``manage.py fakellm``) so it does not share our GIL.
Measured in a child process set up on a fresh embedded-default data directory: with no budget;
with a daily and a monthly hard budget and no usage record yet this month; with the same budgets
and 1,000,000 usage records this month (the budget check must not grow with them); and, when
REDIS_URL is set, with Redis as the cache.

- bare: the same pooled httpx client posting the same kind of body, nothing else;
- gateway (miss): ``gateway.call`` with a new prompt each time: API cache lookup and store,
  budget check and reservation, breaker check and count, concurrency slot, request, schema
  validation, cost, usage record (and the budgets' running totals);
- gateway (hit): the same prompt again, answered from the API cache with a usage record;
- 16 concurrent calls at 250 ms provider latency: wall time (serialized would be ~4 s).

``python bench/bench_gateway.py --check`` is ``make bench-check``: a short paired run of the first
two configurations that fails when an overhead is above 3x its target.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import PROJECT_ROOT, Result, Target, _wait_listening, free_port, summarize

CALLS = 2000
WARMUP = 200
CHECK_CALLS = 400
TARGET_MS = {"none": 0.5, "budgets": 1.0}  # overhead p50 without and with budgets (issue 14)
MILLION = 1_000_000
SCHEMA = {
    "type": "object",
    "properties": {"goal": {"type": "string"}, "score": {"type": "integer", "minimum": 0, "maximum": 100}},
    "required": ["goal", "score"],
    "additionalProperties": False,
}


def _fake(latency: float) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(PROJECT_ROOT / "manage.py"),
            "fakellm",
            "--port",
            str(port),
            "--latency",
            str(latency),
        ],
        stdout=subprocess.DEVNULL,
    )
    _wait_listening(port, process)
    return process, port


def configurations(check: bool = False) -> list[tuple[str, dict, str, int]]:
    """(label, extra environment, budgets "none"/"budgets", usage records to seed this month)."""
    found = [
        ("embedded default", {}, "none", 0),
        ("embedded default, 2 hard budgets, 0 records", {}, "budgets", 0),
    ]
    if check:
        return found
    found.append(("embedded default, 2 hard budgets, 1,000,000 records", {}, "budgets", MILLION))
    if os.environ.get("REDIS_URL"):
        found.append(("Redis cache", {"REDIS_URL": os.environ["REDIS_URL"]}, "none", 0))
    return found


def run(check: bool = False) -> list[Result]:
    results = []
    fast, fast_port = _fake(0.0)
    slow, slow_port = _fake(0.25)
    try:
        for label, extra, budgets, records in configurations(check):
            with tempfile.TemporaryDirectory(prefix="po-bench-") as scratch:
                env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
                env |= {"DATA_DIR": scratch, "DJANGO_SETTINGS_MODULE": "config.settings", **extra}
                manage = [sys.executable, str(PROJECT_ROOT / "manage.py")]
                for command in (["migrate", "-v0"], ["createcachetable"]):
                    subprocess.run([*manage, *command], env=env, check=True)
                mode = "check" if check else "full"
                arguments = [str(fast_port), str(slow_port), budgets, str(records), mode]
                measured = subprocess.run(
                    [sys.executable, __file__, "--measure", *arguments],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            for row in json.loads(measured.strip().splitlines()[-1]):
                results.append(Result.from_dict(row, name=f"{row['name']} [{label}]"))
    finally:
        for process in (fast, slow):
            process.terminate()
            process.wait()
    return results


SEED_RECORDS = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %(count)d)
INSERT INTO costs_usagerecord (created_at, user_id, run_id, provider, model, operation, input_tokens,
    output_tokens, cached_tokens, tokens_estimated, cost, saved_cost, latency_ms, status, error_class,
    http_status)
SELECT datetime(%(start)d + (i * %(span)d) / %(count)d, 'unixepoch'), NULL, NULL, 'fake', 'gpt-4o-mini',
    'design', 800, 200, 0, 0, 0.00000001, 0, 900, 'ok', '', NULL
FROM n
"""


def _seed(records: int) -> None:
    """``records`` priced usage records spread over this month so far (today's included), and a
    daily and a monthly hard budget far above their spend."""
    from decimal import Decimal

    from django.db import connection
    from django.utils import timezone

    from costs.budgets import period_bounds
    from costs.models import Budget

    if records:
        if connection.vendor != "sqlite":
            raise RuntimeError("the records are seeded with SQLite's own SQL")
        start, _ = period_bounds(Budget.Period.MONTHLY)
        span = int((timezone.now() - start).total_seconds()) - 60
        with connection.cursor() as cursor:
            cursor.execute(SEED_RECORDS % {"count": records, "start": int(start.timestamp()), "span": span})
    for period in (Budget.Period.DAILY, Budget.Period.MONTHLY):
        Budget.objects.create(period=period, limit=Decimal("1000000"), mode=Budget.Mode.HARD)


def _measure(fast_port: int, slow_port: int, budgets: str, records: int, check: bool) -> list[dict]:
    import django

    django.setup()
    import httpx
    from django.core.cache import caches

    from optimizer.llm import gateway
    from optimizer.llm.transport import http_client
    from optimizer.llm.types import LLMRequest, Message
    from optimizer.models import ModelChoice, Provider

    caches["default"].clear()
    if budgets == "budgets":
        _seed(records)
    fast = ModelChoice.objects.create(
        provider=Provider.objects.create(
            name="fake", kind="openai", base_url=f"http://127.0.0.1:{fast_port}/v1", price_catalog="openai"
        ),
        model_id="gpt-4o-mini",
    )
    slow = ModelChoice.objects.create(
        provider=Provider.objects.create(
            name="slow fake", kind="openai", base_url=f"http://127.0.0.1:{slow_port}/v1", max_concurrency=16
        ),
        model_id="gpt-4o-mini",
    )

    def request(n: int) -> LLMRequest:
        return LLMRequest(
            operation="bench",
            messages=(Message("system", "You improve prompts."), Message("user", f"Prompt number {n}")),
            schema=SCHEMA,
        )

    def builtin() -> dict:
        return {"goal": "builtin", "score": 0}

    client = http_client()
    url = f"http://127.0.0.1:{fast_port}/v1/chat/completions"

    def bare(n: int) -> None:
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"Prompt number {n}"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}},
        }
        client.post(url, json=body, timeout=httpx.Timeout(10)).json()

    def timed(fn, count: int) -> list[float]:
        samples = []
        for n in range(count):
            started = time.perf_counter()
            fn(n)
            samples.append(time.perf_counter() - started)
        return samples

    def via_gateway(offset: int):
        def call(n: int) -> None:
            result = gateway.call(request(offset + n), builtin=builtin, model=fast)
            assert not result.builtin, result.skipped

        return call

    calls = CHECK_CALLS if check else CALLS
    timed(bare, WARMUP)
    timed(via_gateway(10_000_000), WARMUP)  # the first call of a period also creates its totals
    # Interleaved, so a drift in the machine's speed affects both sides alike; the overhead is the
    # median of the per-pair differences.
    miss_call = via_gateway(0)
    bare_samples, miss_samples = [], []
    for n in range(calls):
        bare_samples += timed(lambda _, n=n: bare(n), 1)
        miss_samples += timed(lambda _, n=n: miss_call(n), 1)
    overheads = [miss - floor for miss, floor in zip(miss_samples, bare_samples, strict=True)]
    # The targets are for the embedded default; over Redis each cache read and write is a
    # network round trip, shown without a target.
    target = None if os.environ.get("REDIS_URL") else Target("p50", TARGET_MS[budgets])
    floor = summarize("bare httpx POST (zero latency)", bare_samples)
    rows = [
        floor,
        summarize("gateway.call, cache miss", miss_samples, floor=floor),
        summarize("gateway overhead (paired miss - bare)", overheads, target=target),
    ]
    if check:
        return [row.as_dict() for row in rows]
    rows.append(summarize("gateway.call, cache hit", timed(via_gateway(0), calls), floor=floor))
    if budgets == "budgets":
        return [row.as_dict() for row in rows]

    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def concurrent_call(n: int):
        try:
            return gateway.call(request(20_000_000 + n), builtin=builtin, model=slow)
        finally:
            connections.close_all()

    walls = []
    for round_ in range(5):
        started = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda n, r=round_: concurrent_call(r * 100 + n), range(16)))
        walls.append(time.perf_counter() - started)
        assert not any(answer.builtin for answer in answers)
    rows.append(
        summarize("16 concurrent calls at 250 ms (wall, 5 rounds)", walls, "serialized would be ~4000 ms")
    )
    return [row.as_dict() for row in rows]


def check() -> int:
    """``make bench-check``: fail when an overhead p50 is above 3x its target."""
    failed = []
    for result in run(check=True):
        print(f"{result.name:<72} p50 {result.p50_ms:7.3f} ms  p95 {result.p95_ms:7.3f} ms", flush=True)
        if result.target is not None and result.p50_ms > 3 * result.target.limit:
            failed.append(result)
    for result in failed:
        print(f"FAILED: {result.name}: {result.p50_ms:.3f} ms, over 3x its target ({result.target})")
    if not failed:
        print("bench-check: every gateway overhead is within 3x its target")
    return 1 if failed else 0


if __name__ == "__main__" and len(sys.argv) == 7 and sys.argv[1] == "--measure":
    fast_port, slow_port, budgets, records, mode = sys.argv[2:]
    print(json.dumps(_measure(int(fast_port), int(slow_port), budgets, int(records), mode == "check")))
elif __name__ == "__main__" and sys.argv[1:] == ["--check"]:
    sys.exit(check())
