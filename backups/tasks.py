"""Tasks of the backups app, run by the task worker (django-q2 schedules)."""

from backups import jobs, services


def backup_scheduled_task() -> str:
    backup = services.backup_scheduled()
    return f"{backup.name}: {backup.size:,} bytes"


def backup_now_task(token: str, user_id: int | None, note: str = "") -> str:
    """“Back up now” from the Backups page (see backups.jobs)."""
    backup = jobs.backup_now_run(token=token, user_id=user_id, note=note)
    return f"{backup.name}: {backup.size:,} bytes" if backup else "nothing to do"
