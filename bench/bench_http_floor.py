"""The floor every page is measured against: the cheapest responses of the real stack over HTTP.

/healthz touches the database, the cache and the broker; the login page renders a template with
a form and a CSRF token. Later page benchmarks report themselves against these.
"""

import time

import httpx

from bench.harness import Result, running_server, summarize

REQUESTS = 2000
WARMUP = 100


def _timed_gets(client: httpx.Client, path: str) -> list[float]:
    for _ in range(WARMUP):
        client.get(path)
    timings = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = client.get(path)
        timings.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}")
    return timings


def run() -> list[Result]:
    with running_server() as (base_url, _env), httpx.Client(base_url=base_url) as client:
        return [
            summarize("GET /healthz (db + cache + broker)", _timed_gets(client, "/healthz")),
            summarize("GET /login/ (template, CSRF token)", _timed_gets(client, "/login/")),
        ]
