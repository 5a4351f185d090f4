"""The configured services are the ones in use, and concurrent processes share the database safely."""

import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.db import connection
from django_q.brokers import get_broker

from tests.support import PROJECT_ROOT, clean_env


@pytest.mark.postgres
@pytest.mark.django_db
def test_database_url_selects_postgresql():
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        assert cursor.fetchone()[0].startswith("PostgreSQL")


@pytest.mark.redis
def test_redis_url_selects_redis_for_the_cache_and_the_task_broker():
    cache = caches["default"]
    assert type(cache).__name__ == "RedisCache"
    cache.set("services-test", {"answer": 42}, timeout=10)
    assert cache.get("services-test") == {"answer": 42}
    assert get_broker().info().startswith("Redis")


@pytest.mark.django_db
def test_without_redis_url_the_cache_and_broker_stay_in_the_database():
    if settings.REDIS_URL:
        pytest.skip("embedded-default configuration only")
    assert type(caches["default"]).__name__ == "DatabaseCache"
    assert get_broker().info() == "ORM default"


INCREMENTS = """
import django
django.setup()
from django.contrib.auth import get_user_model
from django.db import transaction
for _ in range({count}):
    with transaction.atomic():
        user = get_user_model().objects.select_for_update().get(username="counter")
        user.last_name = str(int(user.last_name) + 1)
        user.save(update_fields=["last_name"])
"""


def test_concurrent_writers_never_hit_database_is_locked_and_lose_nothing(database_url_for_subprocess):
    """Read-then-write transactions from several processes at once: the web process and the task
    workers do exactly this. On SQLite a DEFERRED transaction fails its lock upgrade at once with
    "database is locked"; IMMEDIATE with a busy timeout makes them queue instead."""
    get_user_model().objects.create(username="counter", last_name="0")
    processes, count = 4, 100
    env = clean_env(
        DATABASE_URL=database_url_for_subprocess,
        SECRET_KEY=settings.SECRET_KEY,
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", INCREMENTS.format(count=count)],
            env=env,
            cwd=PROJECT_ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    errors = [writer.communicate(timeout=120)[1] for writer in writers]

    assert [writer.returncode for writer in writers] == [0] * processes, "\n".join(errors)
    assert get_user_model().objects.get(username="counter").last_name == str(processes * count)
