"""The JSON endpoints for tools under /api/v1/ (session auth for now; the API issue adds tokens).

- ``health``: each component (database, cache, broker, workers, disk); 200 when all are ok, else
  503. Public like /healthz (a load balancer has no session), and like it only error class names.
- ``stats/performance``, ``stats/cache``: the monitoring page's figures (staff).
- ``cache/clear``: POST ``tier`` (staff; the session's CSRF token, as any POST).
- ``system``: versions, configuration with every secret masked, uptime (staff).

Anyone else gets a JSON 404: the endpoints' existence is not told.
"""

import datetime as dt
import platform
import re
import time
from functools import wraps
from importlib.metadata import PackageNotFoundError, version

import psutil
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.serializers.json import DjangoJSONEncoder
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from optimizer.health import run_check
from optimizer.monitoring import heartbeat, selectors, services, thresholds

PACKAGES = ("django", "django-q2", "django-redis", "httpx", "psycopg", "gunicorn", "psutil", "genai-prices")
MASK = "********"
CREDENTIALS_IN_URL = re.compile(r"(?<=://)([^:/@]*)(:[^@/]*)?@")


def _json(data: dict, status: int = 200) -> JsonResponse:
    return JsonResponse(
        data, status=status, encoder=DjangoJSONEncoder, json_dumps_params={"ensure_ascii": False}
    )


def staff_json(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_staff:
            return _json({"error": "Not found."}, status=404)
        return view(request, *args, **kwargs)

    return wrapped


def _limits():
    return thresholds.current()


# --- health ---------------------------------------------------------------------------------


def workers_check(*, now) -> dict:
    clusters = {cluster["cluster"]: cluster["alive"] for cluster in selectors.worker_clusters(now=now)}
    without = sorted(name for name, alive in clusters.items() if not alive)
    return {
        "ok": not without,
        "alive": clusters,
        **({"error": f"no live worker in {', '.join(without)}"} if without else {}),
    }


def disk_check(*, limit_pct: int) -> dict:
    usage = psutil.disk_usage(str(settings.DATA_DIR))
    used_pct = round(usage.used / usage.total * 100, 1)
    return {
        "ok": used_pct <= limit_pct,
        "used_pct": used_pct,
        "limit_pct": limit_pct,
        **({"error": "DATA_DIR's disk is fuller than the limit"} if used_pct > limit_pct else {}),
    }


@login_not_required
@never_cache
@require_safe
def health(request):
    now = timezone.now()
    components = {
        "database": run_check("database"),
        "cache": run_check("cache"),
        "broker": run_check("task_broker"),
    }
    components["workers"] = _timed(lambda: workers_check(now=now), components["database"]["ok"])
    components["disk"] = _timed(lambda: disk_check(limit_pct=_limits().disk_pct))
    failed = [name for name, result in components.items() if not result["ok"]]
    report = {"status": "error" if failed else "ok", "failed": failed, "components": components}
    return _json(report, status=503 if failed else 200)


def _timed(check, runnable: bool = True) -> dict:
    started = time.perf_counter()
    if not runnable:
        return {"ok": False, "error": "the database did not answer"}
    try:
        result = check()
    except Exception as exc:  # noqa: BLE001 - any failure is a finding, never a crash
        result = {"ok": False, "error": type(exc).__name__}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


# --- stats ------------------------------------------------------------------------------------


@never_cache
@require_safe
@staff_json
def stats_performance(request):
    snapshot = selectors.monitoring_snapshot(now=timezone.now(), limits=_limits())
    return _json({key: value for key, value in snapshot.items() if key != "caches"})


@never_cache
@require_safe
@staff_json
def stats_cache(request):
    return _json(selectors.cache_stats(now=timezone.now()))


@staff_json
@require_POST
def cache_clear(request):
    tier = request.POST.get("tier", "")
    try:
        deleted = services.cache_tier_clear(tier=tier)
    except services.UnknownTier as exc:
        return _json({"error": str(exc)}, status=400)
    except services.CacheUnavailable as exc:
        return _json({"error": str(exc)}, status=503)
    return _json({"tier": tier, "deleted": deleted})


# --- system -----------------------------------------------------------------------------------


def masked_url(url: str | None) -> str | None:
    """The URL with any password replaced (a user name stays: it tells which account is used)."""
    if not url:
        return url
    return CREDENTIALS_IN_URL.sub(lambda m: f"{m.group(1)}{':' + MASK if m.group(2) else ''}@", url)


def _secret(value) -> str | None:
    return MASK if value else None


def configuration() -> dict:
    """What an operator asks about first; every secret is masked (only whether it is set shows)."""
    cluster = settings.Q_CLUSTER
    return {
        "DEBUG": settings.DEBUG,
        "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
        "HTTPS": getattr(settings, "HTTPS", None),
        "TIME_ZONE": settings.TIME_ZONE,
        "DATA_DIR": str(settings.DATA_DIR),
        "DATABASE_URL": masked_url(getattr(settings, "DATABASE_URL", None)),
        "database_vendor": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "REDIS_URL": masked_url(getattr(settings, "REDIS_URL", None)),
        "SECRET_KEY": _secret(settings.SECRET_KEY),
        "BACKUP_ENCRYPTION_KEY": _secret(getattr(settings, "BACKUP_ENCRYPTION_KEY", None)),
        "METRICS_TOKEN": _secret(getattr(settings, "METRICS_TOKEN", None)),
        "SENTRY_DSN": _secret(getattr(settings, "SENTRY_DSN", None)),
        "task_queue": {
            "broker": "redis" if "django_redis" in cluster else "orm",
            "clusters": [cluster["name"], settings.FAST_QUEUE],
            "TASK_WORKERS": settings.TASK_WORKERS,
            "FAST_TASK_WORKERS": settings.FAST_TASK_WORKERS,
            "timeout_s": cluster["timeout"],
            "retry_s": cluster["retry"],
            "max_attempts": cluster["max_attempts"],
        },
        "RUNS_PER_MINUTE": settings.RUNS_PER_MINUTE,
        "PROMPT_MAX_CHARS": settings.PROMPT_MAX_CHARS,
        "LLM_FIRST_BYTE_TIMEOUT_S": settings.LLM_FIRST_BYTE_TIMEOUT_S,
        "LLM_CALL_DEADLINE_S": settings.LLM_CALL_DEADLINE_S,
        "PROVIDER_KEY_VARIABLES": settings.PROVIDER_KEY_VARIABLES,  # names of variables, never values
        "worker_heartbeat_s": heartbeat.BEAT_S,
        "worker_alive_s": heartbeat.ALIVE_S,
        "thresholds": vars(_limits()),
    }


def versions() -> dict:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


@never_cache
@require_safe
@staff_json
def system(request):
    process = psutil.Process()
    started = process.create_time()
    return _json(
        {
            "versions": versions(),
            "configuration": configuration(),
            "uptime": {
                "process_started_at": dt.datetime.fromtimestamp(started, tz=dt.UTC),
                "process_uptime_s": round(time.time() - started),
                "machine_uptime_s": round(time.time() - psutil.boot_time()),
            },
        }
    )
