"""Gateway overhead against a bare httpx call, and concurrency through the breaker.

The fake provider runs in its own process (``manage.py fakellm``) so it does not share our GIL.
Measured in a child process set up on a fresh embedded-default data directory (and, when
REDIS_URL is set, again with Redis as the cache).

- bare: the same pooled httpx client posting the same kind of body, nothing else;
- gateway (miss): ``gateway.call`` with a new prompt each time: API cache lookup and store,
  breaker check and count, concurrency slot, request, schema validation, cost, usage record;
- gateway (hit): the same prompt again, answered from the API cache with a usage record;
- 16 concurrent calls at 250 ms provider latency: wall time (serialized would be ~4 s).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import PROJECT_ROOT, Result, _wait_listening, free_port, summarize

CALLS = 2000
WARMUP = 200
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


def run() -> list[Result]:
    configurations = [("embedded default", {})]
    if os.environ.get("REDIS_URL"):
        configurations.append(("Redis cache", {"REDIS_URL": os.environ["REDIS_URL"]}))
    results = []
    fast, fast_port = _fake(0.0)
    slow, slow_port = _fake(0.25)
    try:
        for label, extra in configurations:
            with tempfile.TemporaryDirectory(prefix="po-bench-") as scratch:
                env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
                env |= {"DATA_DIR": scratch, "DJANGO_SETTINGS_MODULE": "config.settings", **extra}
                subprocess.run(
                    [sys.executable, str(PROJECT_ROOT / "manage.py"), "migrate", "-v0"], env=env, check=True
                )
                subprocess.run(
                    [sys.executable, str(PROJECT_ROOT / "manage.py"), "createcachetable"], env=env, check=True
                )
                measured = subprocess.run(
                    [sys.executable, __file__, "--measure", str(fast_port), str(slow_port)],
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


def _measure(fast_port: int, slow_port: int) -> list[dict]:
    import django

    django.setup()
    import httpx
    from django.core.cache import caches

    from optimizer.llm import gateway
    from optimizer.llm.transport import http_client
    from optimizer.llm.types import LLMRequest, Message
    from optimizer.models import ModelChoice, Provider

    caches["default"].clear()
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

    timed(bare, WARMUP)
    timed(via_gateway(10_000_000), WARMUP)
    # Interleaved, so a drift in the machine's speed affects both sides alike; the overhead is the
    # median of the per-pair differences.
    miss_call = via_gateway(0)
    bare_samples, miss_samples = [], []
    for n in range(CALLS):
        bare_samples += timed(lambda _, n=n: bare(n), 1)
        miss_samples += timed(lambda _, n=n: miss_call(n), 1)
    hit_samples = timed(via_gateway(0), CALLS)  # the same prompts again: all cached
    overheads = [miss - floor for miss, floor in zip(miss_samples, bare_samples, strict=True)]

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

    ratio = statistics.median(miss_samples) / statistics.median(bare_samples)
    rows = [
        summarize("bare httpx POST (zero latency)", bare_samples),
        summarize("gateway.call, cache miss", miss_samples, f"ratio of p50s {ratio:.2f}x"),
        summarize("gateway overhead (paired miss - bare)", overheads, "target: p50 <= 1 ms"),
        summarize("gateway.call, cache hit", hit_samples),
    ]
    rows.append(
        summarize("16 concurrent calls at 250 ms (wall, 5 rounds)", walls, "serialized would be ~4000 ms")
    )
    return [row.as_dict() for row in rows]


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--measure":
    print(json.dumps(_measure(int(sys.argv[2]), int(sys.argv[3]))))
