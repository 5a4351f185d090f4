"""The circuit breaker: opens, half-opens with a single trial, closes; shared by processes."""

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import connections
from django.test import override_settings

from optimizer.llm import gateway
from optimizer.llm.breaker import CircuitBreaker, Policy, State
from tests.optimizer.llm.conftest import add_model, builtin, make_request
from tests.support import PROJECT_ROOT, clean_env

pytestmark = pytest.mark.django_db


def closing_connections(work):
    """Run ``work`` in a pool thread and close that thread's database connections after."""
    try:
        return work()
    finally:
        connections.close_all()


NO_RETRY_500 = {"status": 500, "headers": {"x-should-retry": "false"}}


def test_consecutive_failures_open_the_breaker_and_later_calls_skip_the_model(openai_model, fake):
    fake.enqueue(NO_RETRY_500, NO_RETRY_500, NO_RETRY_500)
    for n in range(3):
        gateway.call(make_request(f"call {n}"), builtin=builtin, model=openai_model)

    result = gateway.call(make_request("after"), builtin=builtin, model=openai_model)

    assert CircuitBreaker(openai_model.breaker_key).state() is State.OPEN
    assert len(fake.requests) == 3  # the fourth call never left
    assert result.builtin and result.skipped[0].reason == "breaker open"


def test_two_hung_calls_open_the_breaker_without_waiting_for_five_failures(db, fake, settings):
    settings.LLM_BREAKER = {"consecutive_failures": 5, "cooldown_s": 60}
    hanging = add_model(fake.url, name="Hangs", read_timeout_s=0.2)
    fake.enqueue("hang", "hang")
    for n in range(2):
        gateway.call(make_request(f"call {n}"), builtin=builtin, model=hanging)

    result = gateway.call(make_request("after"), builtin=builtin, model=hanging)

    assert CircuitBreaker(hanging.breaker_key).state() is State.OPEN
    assert len(fake.requests) == 2 and result.skipped[0].reason == "breaker open"


def test_a_success_between_hung_calls_starts_the_count_again(db, fake, settings):
    settings.LLM_BREAKER = {"consecutive_failures": 5, "cooldown_s": 60}
    hanging = add_model(fake.url, name="Hangs", read_timeout_s=0.2)
    fake.enqueue("hang", "ok", "hang")
    for n in range(3):
        gateway.call(make_request(f"call {n}"), builtin=builtin, model=hanging)
    assert CircuitBreaker(hanging.breaker_key).state() is State.CLOSED


def test_after_the_cool_down_one_trial_call_closes_it(openai_model, fake):
    breaker = CircuitBreaker(openai_model.breaker_key)
    fake.enqueue(NO_RETRY_500, NO_RETRY_500, NO_RETRY_500)
    for n in range(3):
        gateway.call(make_request(f"call {n}"), builtin=builtin, model=openai_model)
    time.sleep(0.6)
    assert breaker.state() is State.HALF_OPEN

    result = gateway.call(make_request("trial"), builtin=builtin, model=openai_model)

    assert not result.builtin
    assert breaker.state() is State.CLOSED
    assert breaker.status()["consecutive_failures"] == 0


def test_a_failed_trial_opens_it_again(openai_model, fake):
    breaker = CircuitBreaker(openai_model.breaker_key)
    fake.enqueue(NO_RETRY_500, NO_RETRY_500, NO_RETRY_500, NO_RETRY_500)
    for n in range(3):
        gateway.call(make_request(f"call {n}"), builtin=builtin, model=openai_model)
    time.sleep(0.6)

    gateway.call(make_request("trial"), builtin=builtin, model=openai_model)

    assert breaker.state() is State.OPEN


@pytest.mark.django_db(transaction=True)  # threads use their own database connections
def test_half_open_lets_exactly_one_trial_through():
    breaker = CircuitBreaker("test:half-open", Policy(cooldown_s=0.2))
    breaker._open(time.time())
    time.sleep(0.3)

    with ThreadPoolExecutor(8) as pool:
        permits = list(pool.map(lambda _: closing_connections(breaker.allow), range(8)))

    assert sum(permit.allowed for permit in permits) == 1
    assert all(permit.state is State.HALF_OPEN for permit in permits)


def test_a_high_failure_rate_trips_it_even_without_consecutive_failures(openai_model, fake):
    """Two failures out of every three: never 3 in a row, but 67% of 12 calls."""
    breaker = CircuitBreaker(openai_model.breaker_key)
    for n in range(12):
        if breaker.state() is not State.CLOSED:
            break
        if n % 3 != 2:
            fake.enqueue(NO_RETRY_500)
        gateway.call(make_request(f"call {n}"), builtin=builtin, model=openai_model)

    status = breaker.status()
    assert status["state"] is State.OPEN
    assert status["calls_last_window"] >= 10
    assert status["failures_last_window"] / status["calls_last_window"] > 0.5


def test_another_process_sees_the_open_state(database_url_for_subprocess):
    CircuitBreaker("shared:model")._open(time.time())
    env = clean_env(
        DATABASE_URL=database_url_for_subprocess,
        SECRET_KEY=settings.SECRET_KEY,
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    script = (
        "import django; django.setup();"
        "from optimizer.llm.breaker import CircuitBreaker;"
        "print(CircuitBreaker('shared:model').state().value)"
    )

    completed = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )

    assert completed.stdout.strip() == "open", completed.stderr


UNREACHABLE_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
    }
}


def test_an_unreachable_store_falls_back_to_local_state_and_never_blocks():
    with override_settings(CACHES=UNREACHABLE_REDIS):
        breaker = CircuitBreaker("unreachable:store", Policy(consecutive_failures=2))
        assert breaker.allow().allowed
        breaker.record_failure(breaker.allow())
        breaker.record_failure(breaker.allow())
        assert breaker.state() is State.OPEN  # still protecting, from this process's memory
        breaker.reset()
        assert breaker.allow().allowed


def test_the_admin_can_read_and_reset_a_breaker(openai_model, staff_client):
    breaker = CircuitBreaker(openai_model.breaker_key)
    breaker._open(time.time())

    page = staff_client.get("/admin/optimizer/modelchoice/").content.decode()
    assert "open · 0/0 failed" in page
    response = staff_client.post(
        "/admin/optimizer/modelchoice/",
        {"action": "reset_breakers", "_selected_action": [openai_model.pk]},
        follow=True,
    )

    assert b"Reset 1 circuit breaker" in response.content
    assert breaker.state() is State.CLOSED


def test_breaker_keys_are_namespaced_and_expire(openai_model, fake):
    fake.enqueue(NO_RETRY_500)
    gateway.call(make_request(), builtin=builtin, model=openai_model)

    cache = caches["default"]
    if hasattr(cache, "ttl"):  # django-redis
        keys = list(cache.iter_keys("breaker:v1:*"))
        assert keys and all(key.startswith(f"breaker:v1:{openai_model.breaker_key}:") for key in keys)
        assert all(0 < cache.ttl(key) <= 600 for key in keys)
    else:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT cache_key, expires FROM django_cache WHERE cache_key LIKE %s", ["%breaker:v1:%"]
            )
            rows = cursor.fetchall()
        assert rows and all(f"breaker:v1:{openai_model.breaker_key}:" in key for key, _ in rows)
        assert all(expires is not None for _, expires in rows)


@pytest.mark.django_db(transaction=True)
def test_concurrent_calls_are_not_serialized_by_the_breaker(openai_model, fake):
    fake.latency = 0.25

    with ThreadPoolExecutor(16) as pool:
        results = list(
            pool.map(
                lambda n: closing_connections(
                    lambda: gateway.call(make_request(f"c{n}"), builtin=builtin, model=openai_model)
                ),
                range(16),
            )
        )

    assert all(not result.builtin for result in results)
    assert fake.max_in_flight >= 8  # requests overlapped at the provider; none waited on a lock


def test_an_unreachable_store_is_reported_once_not_on_every_call(caplog):
    with override_settings(CACHES=UNREACHABLE_REDIS):
        breaker = CircuitBreaker("unreachable:quiet")
        for _ in range(5):
            breaker.allow()

    warnings = [r for r in caplog.records if "circuit breaker store unavailable" in r.getMessage()]
    assert len(warnings) <= 1
