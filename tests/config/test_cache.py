"""The embedded default's database cache: Django's, with a one-statement ``set`` and a ``get_many``
that only reads."""

import os

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config import cache as cache_module
from config.cache import DatabaseCache

pytestmark = pytest.mark.django_db


@pytest.fixture
def db_cache(settings):
    """The project's database cache over the test database's cache table, whatever CACHES says."""
    from django.core.management import call_command

    call_command("createcachetable", "django_cache")
    backend = DatabaseCache("django_cache", {"OPTIONS": {"MAX_ENTRIES": 10, "CULL_FREQUENCY": 2}})
    backend.clear()
    return backend


def test_what_set_writes_is_read_back_by_djangos_own_get(db_cache):
    db_cache.set("answer", {"data": {"goal": "x", "score": 3}, "cost": "0.001"}, timeout=60)
    db_cache.set("answer", {"data": {"goal": "y", "score": 4}, "cost": None}, timeout=60)  # overwrites
    db_cache.set("forever", [1, 2, 3], timeout=None)

    assert db_cache.get("answer") == {"data": {"goal": "y", "score": 4}, "cost": None}
    assert db_cache.get_many(["answer", "forever", "absent"]) == {
        "answer": {"data": {"goal": "y", "score": 4}, "cost": None},
        "forever": [1, 2, 3],
    }
    assert db_cache.add("forever", "other") is False  # Django's add sees the row set wrote
    assert db_cache.touch("answer", timeout=120) is True


def test_an_expired_entry_is_not_read(db_cache):
    db_cache.set("gone", "value", timeout=0)  # Django: a timeout of 0 expires at once

    assert db_cache.get("gone") is None


def test_get_many_reads_live_entries_only_and_writes_nothing(db_cache):
    """Django's get_many deletes the expired entries it meets: a write on the read path, which waits
    on SQLite's lock while a worker writes and then fails the read."""
    db_cache.set("gone", "old", timeout=0)
    db_cache.set("live", "new", timeout=60)
    with CaptureQueriesContext(connection) as queries:
        found = db_cache.get_many(["gone", "live", "absent"])

    assert found == {"live": "new"}
    assert [query["sql"].split()[0] for query in queries.captured_queries] == ["SELECT"]
    db_cache.set("gone", "again", timeout=60)  # the expired row is replaced by the next set
    assert db_cache.get_many(["gone"]) == {"gone": "again"}


def test_set_is_one_statement_between_cull_checks(db_cache):
    db_cache.set("first", 1)  # a process's first set counts the table
    with CaptureQueriesContext(connection) as queries:
        for n in range(5):
            db_cache.set(f"key{n}", n)

    assert len(queries) == 5
    assert all(query["sql"].startswith("INSERT") for query in queries.captured_queries)


def test_the_table_is_still_culled_past_max_entries(db_cache, monkeypatch):
    monkeypatch.setattr(cache_module, "CULL_CHECK_EVERY", 4)
    for n in range(40):
        db_cache.set(f"key{n}", n)

    # MAX_ENTRIES 10: checked every 4 sets, so at most 10 + 4 rows remain, and the newest are kept.
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM django_cache")
        assert cursor.fetchone()[0] <= 14
    assert db_cache.get("key39") == 39


def test_the_embedded_default_uses_it():
    if os.environ.get("REDIS_URL"):
        pytest.skip("with REDIS_URL the cache is Redis")
    assert type(caches["default"]) is DatabaseCache


@pytest.mark.redis
def test_clearing_the_redis_cache_leaves_other_keys_in_its_database_alone():
    """The task queue and anything else sharing the Redis database keep their keys."""
    from django_redis import get_redis_connection

    cache = caches["default"]
    raw = get_redis_connection("default")
    raw.set("not-prompt-optimizer:test-key", "kept")
    cache.set("ours", 1)
    try:
        cache.clear()
        assert cache.get("ours") is None
        assert raw.get("not-prompt-optimizer:test-key") == b"kept"
    finally:
        raw.delete("not-prompt-optimizer:test-key")
