"""The fault tests' fixtures: a fake provider, a model on it, the stack's environment, a Redis of the
test's own."""

import shutil
import uuid

import pytest
from django.conf import global_settings
from django.conf import settings as django_settings

from optimizer.llm.fake_provider import FakeProvider
from optimizer.models import ModelChoice, Provider
from tests.fault.stack import KEY_VARIABLE, RedisServer
from tests.support import clean_env, manage


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
