"""The project's cache backends: Django's database cache with a one-statement ``set`` (the
embedded default) and a ``get_many`` that only reads, and django-redis with a ``clear`` that
deletes only this site's keys.

The database cache.

The gateway stores every model answer in the cache. Django's ``DatabaseCache.set`` counts the whole
table, then selects the row and inserts or updates it inside a transaction: five statements, a
fifth of the gateway's own time on SQLite. Here ``set`` is one upsert (``INSERT … ON CONFLICT DO
UPDATE``: SQLite 3.24+, PostgreSQL), and the table is counted, and culled past ``MAX_ENTRIES`` as
Django does, once every ``CULL_CHECK_EVERY`` sets of a process rather than on each one (so it may
run past ``MAX_ENTRIES`` by that many entries per process until the next check).

Values are written the way Django's backend reads them back (base64 of a pickle, the expiry as a
datetime); ``get``, ``add``, ``touch``, ``delete`` and the rest are Django's own, and other
databases get Django's ``set`` unchanged.
"""

import base64
import pickle
import threading
from datetime import UTC, datetime

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.db import DatabaseCache as DjangoDatabaseCache
from django.db import connections, router
from django.utils.timezone import now as tz_now
from django_redis.cache import RedisCache as DjangoRedisCache

CULL_CHECK_EVERY = 64
UPSERT_VENDORS = {"sqlite", "postgresql"}


class DatabaseCache(DjangoDatabaseCache):
    def __init__(self, table, params):
        super().__init__(table, params)
        self._sets = 0
        self._sets_lock = threading.Lock()

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        if connection.vendor not in UPSERT_VENDORS:
            return super().set(key, value, timeout, version)
        key = self.make_and_validate_key(key, version=version)
        timeout = self.get_backend_timeout(timeout)
        expires = datetime.max if timeout is None else datetime.fromtimestamp(timeout, tz=UTC)
        expires = connection.ops.adapt_datetimefield_value(expires.replace(microsecond=0))
        encoded = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
        quote = connection.ops.quote_name
        table, key_column = quote(self._table), quote("cache_key")
        value_column, expires_column = quote("value"), quote("expires")
        with connection.cursor() as cursor:
            if self._cull_check_due():
                cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 - the configured table
                count = cursor.fetchone()[0]
                if count > self._max_entries:
                    self._cull(db, cursor, tz_now().replace(microsecond=0), count)
            cursor.execute(
                f"INSERT INTO {table} ({key_column}, {value_column}, {expires_column}) "  # noqa: S608
                f"VALUES (%s, %s, %s) ON CONFLICT ({key_column}) DO UPDATE SET "
                f"{value_column} = excluded.{value_column}, {expires_column} = excluded.{expires_column}",
                [key, encoded, expires],
            )
        return None

    def get_many(self, keys, version=None):
        """One SELECT of the live entries, and nothing written: Django's deletes the expired ones it
        meets, so a read became a write that could wait on, or fail at, SQLite's lock while a
        worker writes (the gateway then took a cached answer for a miss). Expired entries stay until
        a ``set`` replaces them or the cull removes them. Keys are not checked for memcached."""
        db = router.db_for_read(self.cache_model_class)
        connection = connections[db]
        if not keys or connection.vendor not in UPSERT_VENDORS:
            return super().get_many(keys, version)
        key_map = {self.make_key(key, version=version): key for key in keys}
        quote = connection.ops.quote_name
        live_after = connection.ops.adapt_datetimefield_value(tz_now().replace(microsecond=0))
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {quote('cache_key')}, {quote('value')} FROM {quote(self._table)} "  # noqa: S608
                f"WHERE {quote('cache_key')} IN ({', '.join(['%s'] * len(key_map))}) "
                f"AND {quote('expires')} > %s",
                [*key_map, live_after],
            )
            rows = cursor.fetchall()
        return {key_map[key]: _decoded(value) for key, value in rows}

    def _cull_check_due(self) -> bool:
        with self._sets_lock:
            self._sets += 1
            return self._sets % CULL_CHECK_EVERY == 1  # the first set of a process checks too


def _decoded(value: str):
    """A value as Django's database cache writes it (only this site writes the table, as there)."""
    return pickle.loads(base64.b64decode(value.encode(), validate=True))  # noqa: S301


class RedisCache(DjangoRedisCache):
    """django-redis, whose ``clear`` flushes the whole Redis database: the task queue's keys too
    (django-q2 shares the connection) and those of anything else using that database. Here it
    deletes only the keys under this site's ``KEY_PREFIX``."""

    def clear(self):
        self.delete_pattern("*")
