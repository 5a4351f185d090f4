"""Reads about the backups for the Backups page and /healthz."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from backups import services
from backups.models import Backup

STALE_AFTER = timedelta(hours=48)  # a daily backup missed twice


@dataclass(frozen=True)
class Freshness:
    """How old the newest good backup is, and whether that is too old (or there is none)."""

    backup: Backup | None
    age: timedelta | None

    @property
    def stale(self) -> bool:
        return self.age is None or self.age > STALE_AFTER

    @property
    def age_hours(self) -> float | None:
        return None if self.age is None else round(self.age.total_seconds() / 3600, 1)


def backup_freshness(*, now: datetime | None = None) -> Freshness:
    """The age of the newest finished backup, counted from when it started (the moment its data is
    from)."""
    backup = services.last_good_backup()
    if backup is None:
        return Freshness(backup=None, age=None)
    return Freshness(backup=backup, age=max((now or timezone.now()) - backup.started_at, timedelta(0)))
