"""The real stack for the fault tests: `manage.py serve` over the test database with a logged-in
client and a page watcher, a Redis server of a test's own, and the checks that every run ended once."""

import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter

import httpx

from costs.models import BUILTIN_PROVIDER, UsageRecord
from optimizer.models import OptimizationRun
from tests.factories import PASSWORD, UserFactory
from tests.optimizer.processes import Background, cluster, poll_until
from tests.support import free_port

KEY_VARIABLE = "FAULT_TEST_API_KEY"
logging.getLogger("httpx").setLevel(logging.WARNING)  # the page watcher's requests, four a second
START_TIMEOUT_S = 90
TEXTS = [
    "Summarize this review in two sentences:\n\nGreat phone, awful battery, rude support.",
    "Write a product description for a {product} aimed at {audience}.",
    "Explain how tides work to a ten-year-old.",
    "List three risks of migrating a monolith to microservices, with one mitigation each.",
    "Draft a polite reply declining a meeting invitation for next Tuesday.",
    "Translate into French: The train leaves at noon from platform 4.",
]


class RedisServer:
    """A redis-server of the test's own, on a free port: stopping it touches nobody else's."""

    def __init__(self):
        self.port = free_port()
        self.process = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        poll_until(self._answers, timeout=10, failure=lambda: "the test's redis-server did not start")

    def _answers(self) -> bool:
        try:
            out = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True, timeout=2
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return out.stdout.strip() == "PONG"

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class Stack:
    """`manage.py serve` over the test database, a logged-in HTTP client, and a watcher that asks
    for a page and /healthz every 0.25 s and keeps every answer that was not 200."""

    def __init__(self, env: dict[str, str]):
        self.port = free_port()
        self.serve = Background("serve", "--port", str(self.port), env=env)
        self.serve.wait_for("is running at", timeout=START_TIMEOUT_S)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=15)
        self.user = UserFactory(username="fault")
        self._log_in()
        self.page_failures: list[str] = []
        self.pages_asked = 0
        self.health_503 = 0
        self._watching = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watching.set()
        self._watcher.start()

    def _token(self, path: str) -> str:
        page = self.http.get(path)
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)

    def _log_in(self) -> None:
        token = self._token("/login/")
        answer = self.http.post(
            "/login/", data={"username": "fault", "password": PASSWORD, "csrfmiddlewaretoken": token}
        )
        assert answer.status_code == 302, answer.text[:500]

    def submit(self, text: str, model: str) -> int:
        token = self._token("/")
        answer = self.http.post(
            "/",
            data={
                "text": text,
                "type": "general",
                "preset": "auto",
                "model": model,
                "keep_spans": "on",
                "csrfmiddlewaretoken": token,
            },
        )
        assert answer.status_code == 302, self.serve.output[-4000:]
        return int(re.search(r"/runs/(\d+)/", answer.headers["location"]).group(1))

    def _watch(self) -> None:
        with httpx.Client(base_url=str(self.http.base_url), cookies=self.http.cookies, timeout=10) as own:
            while self._watching.is_set():
                for path in ("/history/", "/healthz"):
                    try:
                        status = own.get(path).status_code
                    except httpx.HTTPError as exc:
                        status = type(exc).__name__
                    self.pages_asked += 1
                    # /healthz answers 503 while a service it checks is away: that is its job.
                    if status != 200 and not (path == "/healthz" and status == 503):
                        self.page_failures.append(f"{path}: {status}")
                    elif status == 503:
                        self.health_503 += 1
                time.sleep(0.25)

    def kill_cluster(self, queue: str) -> int:
        """SIGKILL a task cluster and every process of it (as the kernel's OOM killer or a crash
        would): no worker is left to finish what it had."""
        pid = poll_until(
            lambda: cluster(self.serve.process.pid, queue), timeout=30, failure=lambda: f"no {queue} cluster"
        )
        os.killpg(pid, signal.SIGKILL)
        return pid

    def close(self) -> None:
        self._watching.clear()
        self._watcher.join(timeout=15)
        self.http.close()
        self.serve.process.send_signal(signal.SIGTERM)
        try:
            self.serve.finish(timeout=40)
        except subprocess.TimeoutExpired:
            self.serve.kill()


def ended_once(run_ids: list[int]) -> list[OptimizationRun]:
    """Every run done, and no model call of a stage billed twice (a stage redone after a crash is
    answered by the API cache, recorded as a cache hit at no cost)."""
    runs = list(OptimizationRun.objects.filter(pk__in=run_ids).order_by("pk"))
    assert [run.status for run in runs] == ["done"] * len(run_ids), [(r.pk, r.status, r.error) for r in runs]
    for run in runs:
        billed = Counter(
            UsageRecord.objects.filter(run_id=run.pk, status=UsageRecord.Status.OK)
            .exclude(provider=BUILTIN_PROVIDER)
            .values_list("operation", flat=True)
        )
        assert all(count == 1 for count in billed.values()), (run.pk, billed, run.attempts, _records(run.pk))
    return runs


def _records(run_id: int) -> list[tuple]:
    """What a failure shows: every usage record of the run, in order, with its timing."""
    return list(
        UsageRecord.objects.filter(run_id=run_id)
        .order_by("pk")
        .values_list("pk", "created_at", "operation", "status", "latency_ms", "error_class")
    )


def wait_done(run_ids: list[int], timeout: float) -> float:
    started = time.monotonic()
    poll_until(
        lambda: (
            OptimizationRun.objects.filter(pk__in=run_ids, status__in=["done", "failed"]).count()
            == len(run_ids)
        ),
        timeout=timeout,
        failure=lambda: str(
            list(OptimizationRun.objects.filter(pk__in=run_ids).values("pk", "status", "stage"))
        ),
    )
    return time.monotonic() - started
