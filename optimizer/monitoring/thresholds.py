"""The limits past which a monitoring tile turns red and the page shows a banner.

Each is a setting of its own name when config/settings.py defines it, else read from the environment
once per process with the same strict helper as every setting (a bad value is an
``ImproperlyConfigured`` naming the variable and the range it must be in, when the URLs load), else
the default here. Documented in the README's configuration table.
"""

from dataclasses import dataclass

from django.conf import settings

from config.env import env_int

DEFAULTS = {
    # share of a model's requests in the last hour that failed (errors and invalid answers), percent
    "MONITORING_MAX_ERROR_RATE_PCT": (10, 1, 100),
    # p95 latency of a model's requests in the last hour, and p95 duration of runs in the last hour, ms
    "MONITORING_MAX_P95_MS": (30_000, 100, 3_600_000),
    # age of the oldest queued run, seconds
    "MONITORING_MAX_QUEUE_AGE_S": (120, 1, 86_400),
    # share of the disk holding DATA_DIR in use, percent
    "MONITORING_MAX_DISK_PCT": (90, 1, 100),
}


FROM_ENV = {
    name: env_int(name, default, minimum=minimum, maximum=maximum)
    for name, (default, minimum, maximum) in DEFAULTS.items()
}


def _read(name: str) -> int:
    return int(getattr(settings, name, FROM_ENV[name]))


@dataclass(frozen=True)
class Thresholds:
    error_rate_pct: int
    p95_ms: int
    queue_age_s: int
    disk_pct: int


def current() -> Thresholds:
    return Thresholds(
        error_rate_pct=_read("MONITORING_MAX_ERROR_RATE_PCT"),
        p95_ms=_read("MONITORING_MAX_P95_MS"),
        queue_age_s=_read("MONITORING_MAX_QUEUE_AGE_S"),
        disk_pct=_read("MONITORING_MAX_DISK_PCT"),
    )
