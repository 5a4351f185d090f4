"""Reads about the backups for the Backups page and /healthz."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

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


def last_backup_made() -> Backup | None:
    """The newest finished backup made here. An uploaded file is left out: it was made who knows
    when (its record's time is the upload's), so it says nothing of how fresh the backups are."""
    done = Backup.objects.filter(status=Backup.Status.DONE).exclude(trigger=Backup.Trigger.UPLOAD)
    return done.order_by("-started_at", "-id").first()


def backup_freshness(*, now: datetime | None = None) -> Freshness:
    """The age of the newest backup made here, counted from when it started (the moment its data is
    from)."""
    backup = last_backup_made()
    if backup is None:
        return Freshness(backup=None, age=None)
    return Freshness(backup=backup, age=max((now or timezone.now()) - backup.started_at, timedelta(0)))
