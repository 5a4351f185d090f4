"""Health of the services the application needs: the database, the cache and the task broker.

Each check answers with ``ok``, how long it took, and on failure only the error's class name: the
report is public (``/healthz``) and must not leak hosts, paths or credentials. Beside them, the age
of the last good backup: a warning when it is old or missing, never a failure (the site serves).
"""

import secrets
import time
from collections.abc import Callable

from django.core.cache import caches
from django.db import connection
from django_q.brokers import get_broker
from django_q.status import Stat

from backups.selectors import backup_freshness


def database_check() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def cache_check() -> dict:
    cache = caches["default"]
    key = f"healthz:{secrets.token_hex(8)}"
    value = secrets.token_hex(8)
    cache.set(key, value, timeout=30)
    read_back = cache.get(key)
    cache.delete(key)
    if read_back != value:
        raise RuntimeError("cache did not return the value just written")
    return {"backend": cache.__class__.__name__}


def broker_check() -> dict:
    broker = get_broker()
    details: dict = {"broker": broker.info(), "queued": broker.queue_size()}
    try:
        details["clusters"] = len(Stat.get_all(broker=broker))
    except Exception:  # noqa: BLE001 - cluster stats are informative; the broker answered.
        details["clusters"] = None
    return details


CHECKS: dict[str, Callable[[], dict]] = {
    "database": database_check,
    "cache": cache_check,
    "task_broker": broker_check,
}


def run_check(name: str) -> dict:
    """One check's result: ``ok``, its details or the error's class name, and how long it took."""
    started = time.perf_counter()
    try:
        result = {"ok": True, **CHECKS[name]()}
    except Exception as exc:  # noqa: BLE001 - any failure is a finding, never a crash.
        result = {"ok": False, "error": type(exc).__name__}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def backup_age() -> dict:
    """The last good backup's age in hours and ``status``: "ok", or "warning" past 48 hours or when
    there is none; "unknown" when the database cannot tell (its own check says why). Only the age:
    no file name, path or user."""
    try:
        freshness = backup_freshness()
    except Exception as exc:  # noqa: BLE001 - the database check reports the failure
        return {"status": "unknown", "error": type(exc).__name__}
    return {"status": "warning" if freshness.stale else "ok", "age_hours": freshness.age_hours}


def health_report() -> dict:
    """Run every check; ``status`` is "ok" only when all of them answered. ``warnings`` names what
    needs a look without making the site unhealthy (an old backup)."""
    checks = {name: run_check(name) for name in CHECKS}
    failed = [name for name, result in checks.items() if not result["ok"]]
    backup = backup_age()
    warnings = ["backup"] if backup["status"] == "warning" else []
    return {
        "status": "error" if failed else "ok",
        "failed": failed,
        "warnings": warnings,
        "checks": checks,
        "backup": backup,
    }
