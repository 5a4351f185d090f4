"""Tasks of the backups app, run by the task worker (django-q2 schedules)."""

from backups import services


def backup_scheduled_task() -> str:
    backup = services.backup_scheduled()
    return f"{backup.name}: {backup.size:,} bytes"
