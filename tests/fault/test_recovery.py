"""Faults on the real stack: `manage.py serve` (web server and both task clusters) over the test
database, with a fake provider on loopback. The task cluster is killed with SIGKILL mid-run on both
brokers (a Redis of its own on another port, never the shared one), the provider hangs or fails
half its calls, Redis stops and comes back mid-run. Every run must end done (degraded or not)
exactly once, pages must answer throughout, and the recovery times are printed (asserted loosely).
"""

import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter

import httpx
import pytest
from django.conf import global_settings
from django.conf import settings as django_settings
from django.core.cache import caches
from django.db import connection

from costs.models import BUILTIN_PROVIDER, UsageRecord
from optimizer import pipeline, runqueue
from optimizer.llm.fake_provider import FakeProvider
from optimizer.models import ModelChoice, OptimizationRun, Provider
from tests.factories import PASSWORD, UserFactory
from tests.optimizer.processes import Background, cluster, poll_until
from tests.support import clean_env, free_port, manage

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


@pytest.fixture
def own_redis():
    """Redis comes with PostgreSQL in the scaled-out setup, so these cases run in CI's PostgreSQL pass."""
    if not django_settings.SHARED_DATABASE:
        pytest.skip("Redis cases run against PostgreSQL (DATABASE_URL), as deployed")
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        pytest.skip("needs redis-server and redis-cli on PATH")
    server = RedisServer()
    yield server
    server.stop()


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


@pytest.fixture
def fake():
    server = FakeProvider(latency=1.0).start()
    yield server
    server.stop()


@pytest.fixture
def model(transactional_db, fake) -> ModelChoice:
    # A name of its own: the database cache outlives each test's tables, and an API cache entry from
    # an earlier test (keyed on the provider's name) would answer for a provider that now hangs.
    provider = Provider.objects.create(
        name=f"Fault test {uuid.uuid4().hex[:8]}",
        kind=Provider.Kind.OPENAI,
        base_url=fake.url,
        api_key_env=KEY_VARIABLE,
    )
    return ModelChoice.objects.create(provider=provider, model_id="gpt-4o-mini")


@pytest.fixture
def stack_env(database_url_for_subprocess, tmp_path, settings):
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS  # the server checks our password
    env = clean_env(
        DATABASE_URL=database_url_for_subprocess,
        SECRET_KEY=settings.SECRET_KEY,
        DATA_DIR=str(tmp_path / "data"),
        STATIC_ROOT=str(tmp_path / "static"),
        TASK_WORKERS="2",
        FAST_TASK_WORKERS="1",
        WEB_CONCURRENCY="1",
        LLM_FIRST_BYTE_TIMEOUT_S="3",
        RUNS_PER_MINUTE="1000",
        **{KEY_VARIABLE: "sk-fault-test"},
    )
    env.pop("REDIS_URL", None)
    collected = manage("collectstatic", "--noinput", env=env)
    assert collected.returncode == 0, collected.stderr
    # Without REDIS_URL the cache lives in the database: the test database needs its table.
    assert manage("createcachetable", env=env).returncode == 0
    return env


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


def kill_mid_run(stack: Stack, model: ModelChoice) -> None:
    run_ids = [stack.submit(text, str(model.pk)) for text in TEXTS[:4]]
    poll_until(
        lambda: (
            OptimizationRun.objects.filter(
                pk__in=run_ids, status="running", stage__in=["diagnose", "design"]
            ).count()
            >= 2
        ),
        timeout=60,
        failure=lambda: "no two runs got to their second stage",
    )
    in_progress = set(
        OptimizationRun.objects.filter(pk__in=run_ids, status="running").values_list("pk", flat=True)
    )
    time.sleep(1)
    killed_at = time.monotonic()
    stack.kill_cluster(django_settings.Q_CLUSTER["name"])
    poll_until(
        lambda: (
            OptimizationRun.objects.filter(pk__in=in_progress, attempts__gte=2).count() == len(in_progress)
        ),
        timeout=90,
        failure=lambda: f"the killed runs were not started again:\n{stack.serve.output[-3000:]}",
    )
    running_again = time.monotonic() - killed_at
    wait_done(run_ids, timeout=120)
    all_done = time.monotonic() - killed_at
    try:
        runs = ended_once(run_ids)
    except AssertionError as exc:  # what the server said is what explains it
        raise AssertionError(f"{exc}\n--- serve:\n{stack.serve.output[-8000:]}") from None
    print(
        f"\n[fault] cluster SIGKILLed with {len(in_progress)} runs in progress: running again after "
        f"{running_again:.1f} s, all {len(runs)} done after {all_done:.1f} s; "
        f"{stack.pages_asked} page requests, {len(stack.page_failures)} failed"
    )
    assert running_again < 60
    assert stack.page_failures == []
    assert "task worker" in stack.serve.output and "restart" in stack.serve.output.lower()


def test_a_cluster_killed_mid_run_on_the_orm_broker_loses_nothing(stack_env, model):
    stack = Stack(stack_env)
    try:
        kill_mid_run(stack, model)
    finally:
        stack.close()


def test_a_cluster_killed_mid_run_on_the_redis_broker_loses_nothing(stack_env, model, own_redis):
    stack = Stack(stack_env | {"REDIS_URL": own_redis.url})
    try:
        kill_mid_run(stack, model)
    finally:
        stack.close()


def test_a_worker_killed_after_paying_for_stages_the_cache_lost_pays_for_none_twice(
    stack_env, model, fake, monkeypatch
):
    """The worst moment, made certain: the worker dies in the third stage and the API cache has
    lost the answers of the first two (the worker died before storing them, or the cache restarted
    empty). The run started again takes them from its stage answers and pays only for the rest."""
    fake.latency = 0.0
    fake.enqueue("ok", "ok", "hang")
    user = UserFactory(username="killed")
    choice = f"{model.provider.name}/{model.model_id}"
    worker = Background("optimize", "--user", user.username, "--model", choice, TEXTS[2], env=stack_env)
    run = poll_until(
        lambda: OptimizationRun.objects.filter(owner=user, stage="design").first(),
        timeout=60,
        failure=lambda: worker.output,
    )
    worker.process.kill()
    worker.process.wait()  # reaped: a zombie's pid still answers
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_cache")  # the worker's cache (it had no REDIS_URL)
    caches["default"].clear()  # this process's (Redis, with REDIS_URL): an earlier test's analyses

    assert runqueue.sweep().requeued == [run.pk]
    monkeypatch.setenv(KEY_VARIABLE, "sk-fault-test")
    pipeline.run_next(engine=OptimizationRun.Engine.LLM)

    (resumed,) = ended_once([run.pk])
    assert resumed.attempts == 2 and resumed.degraded_reason == "" and not resumed.analysis_cached
    asked = Counter(request["body"]["response_format"]["json_schema"]["name"] for request in fake.requests)
    assert asked["deconstruct"] == 1 and asked["diagnose"] == 1 and asked["design"] == 2, asked
    hits = UsageRecord.objects.filter(run_id=run.pk, status=UsageRecord.Status.CACHE_HIT)
    assert sorted(hits.values_list("operation", flat=True)) == ["deconstruct", "diagnose"]


def test_a_hanging_provider_neither_blocks_builtin_runs_nor_holds_workers_for_long(stack_env, model, fake):
    fake.hang_rate = 1.0
    stack = Stack(stack_env)
    try:
        hung = [stack.submit(text, str(model.pk)) for text in TEXTS[:2]]
        poll_until(
            lambda: OptimizationRun.objects.filter(pk__in=hung, status="running").count() == 2,
            timeout=30,
            failure=lambda: "the model runs did not start",
        )
        builtin = stack.submit(TEXTS[2], "builtin")
        builtin_s = wait_done([builtin], timeout=30)
        hung_s = wait_done(hung, timeout=60)
        later = [stack.submit(text, str(model.pk)) for text in TEXTS[3:5]]
        later_s = wait_done(later, timeout=60)
        runs = ended_once(hung + later)
        print(
            "\n[fault] provider hanging: a built-in run behind two hung model runs done in "
            f"{builtin_s:.1f} s; "
            f"the hung runs ended degraded after {hung_s:.1f} s more; with the breaker open the next two "
            f"took {later_s:.1f} s"
        )
        assert all(run.degraded_reason for run in runs), [
            (r.pk, r.engine, r.model, r.degraded_reason) for r in runs
        ]
        assert builtin_s < 10 and later_s < 15
        assert stack.page_failures == []
    finally:
        stack.close()


def test_redis_stopped_and_restarted_mid_run_with_a_half_failing_provider(stack_env, model, fake, own_redis):
    fake.fail_rate = 0.5
    stack = Stack(stack_env | {"REDIS_URL": own_redis.url})
    try:
        run_ids = [stack.submit(text, str(model.pk)) for text in TEXTS[:3]]
        poll_until(
            lambda: OptimizationRun.objects.filter(pk__in=run_ids, status="running").exists(),
            timeout=30,
            failure=lambda: "no run started",
        )
        own_redis.stop()
        stopped_at = time.monotonic()
        during = stack.submit(TEXTS[3], str(model.pk))  # submitted while Redis is away
        builtin_during = stack.submit(TEXTS[4], "builtin")
        time.sleep(5)
        own_redis.start()
        back_at = time.monotonic()
        wait_done([*run_ids, during, builtin_during], timeout=150)
        recovered = time.monotonic() - back_at
        runs = ended_once([*run_ids, during, builtin_during])
        print(
            f"\n[fault] Redis away for {back_at - stopped_at:.1f} s with a provider failing half its calls: "
            f"all {len(runs)} runs done {recovered:.1f} s after it came back "
            f"({sum(bool(r.degraded_reason) for r in runs)} degraded); {stack.pages_asked} page requests, "
            f"{len(stack.page_failures)} failed; /healthz said 503 {stack.health_503} times (Redis away)"
        )
        assert stack.page_failures == [] and stack.health_503 > 0
        assert recovered < 90
    finally:
        stack.close()
