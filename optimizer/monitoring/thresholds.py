"""The limits past which a monitoring tile turns red and the page shows a banner: the settings
MONITORING_MAX_* (config/settings.py reads them from the environment; a bad value stops the start,
naming the variable and its range). Documented in the README's configuration table."""

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class Thresholds:
    error_rate_pct: int
    p95_ms: int
    queue_age_s: int
    disk_pct: int


def current() -> Thresholds:
    return Thresholds(
        error_rate_pct=settings.MONITORING_MAX_ERROR_RATE_PCT,
        p95_ms=settings.MONITORING_MAX_P95_MS,
        queue_age_s=settings.MONITORING_MAX_QUEUE_AGE_S,
        disk_pct=settings.MONITORING_MAX_DISK_PCT,
    )
