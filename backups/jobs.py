"""“Back up now” from the Backups page: one at a time, made by the task worker, its progress kept
in the cache for the page to poll.

The page knows a backup it asked for by a token until the worker starts it: ``backup_create``
makes the ``Backup`` record only then. The job's entry (``JOB``) says where it stands and, once
known, which record it is; the progress of that record (models written of all) is kept under its
id (``PROGRESS``). A lock (``LOCK``, an atomic ``cache.add``) refuses a second backup while one
is queued or running; each step of progress renews it, so a worker that dies frees it within
``LOCK_S``.
"""

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.utils import timezone
from django_q.tasks import async_task

from backups import services
from backups.models import Backup

LOCK = "backups:page-backup"
JOB = "backups:job:{token}"
CLAIM = "backups:job:{token}:claimed"
PROGRESS = "backups:progress:{pk}"
LOCK_S = settings.Q_CLUSTER["retry"]  # longer than the worker lets a task run
JOB_S = 24 * 3600  # how long the page can still show how a backup went
TOKEN = re.compile(r"[0-9a-f]{32}")


class BackupRefused(Exception):
    """A backup cannot be started now: the message says why and what to do."""


@dataclass(frozen=True)
class Job:
    """Where a backup asked for on the page stands."""

    token: str
    state: str  # "queued", "running", "done", "failed", or "unclaimed" (queued longer than LOCK_S)
    queued_at: datetime | None
    backup: Backup | None
    done: int
    total: int  # 0 until the first model is written
    label: str
    error: str

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "unclaimed")


def backup_now_start(*, user, note: str = "") -> str:
    """Queue a backup for the task worker; its token, to follow it. BackupRefused while another
    backup is under way, or when the queue does not answer."""
    token = secrets.token_hex(16)
    if not cache.add(LOCK, token, LOCK_S):
        raise BackupRefused("A backup started from this page is already under way: wait for it to finish.")
    since = timezone.now() - timedelta(seconds=LOCK_S)
    running = Backup.objects.filter(status=Backup.Status.RUNNING, started_at__gte=since).first()
    if running is not None:
        _lock_release(token)
        raise BackupRefused(
            f"A backup ({running.get_trigger_display().lower()}) is being made right now: wait for it "
            "to finish, then back up again if you still need to."
        )
    _job_save(token, {"state": "queued", "queued_at": timezone.now(), "user_id": user.pk})
    try:
        # Nothing of this is in the database yet, so the task can go at once (no on_commit wait).
        async_task(
            "backups.tasks.backup_now_task",
            token,
            user.pk,
            note,
            cluster=settings.FAST_QUEUE,
            group="backups",
        )
    except Exception as exc:  # noqa: BLE001 - the broker's failure is the user's message, not a 500
        _lock_release(token)
        cache.delete(JOB.format(token=token))
        raise BackupRefused(
            f"The task queue did not answer ({type(exc).__name__}), so no backup was started. Check "
            "the task worker and its broker (/healthz), or run manage.py backup on the server."
        ) from None
    return token


def backup_now_run(*, token: str, user_id: int | None, note: str = "") -> Backup | None:
    """The worker's part: make the backup, keeping the job's entry up to date. Delivered twice, the
    second delivery does nothing."""
    if not cache.add(CLAIM.format(token=token), True, JOB_S):
        return None
    _job_update(token, state="running")
    user = get_user_model()._default_manager.filter(pk=user_id).first()
    try:
        backup = services.backup_create(
            trigger=Backup.Trigger.PAGE, user=user, note=note, progress=progress_recorder(token)
        )
    except services.BackupError as exc:
        _job_update(token, state="failed", error=str(exc))
        return None
    except Exception as exc:
        _job_update(token, state="failed", error=f"The backup failed ({type(exc).__name__}); see the list.")
        raise
    finally:
        _lock_release(token)
    _job_update(token, state="done", backup_id=backup.pk)
    return backup


def progress_recorder(token: str):
    """The ``progress`` callback of ``backup_create`` for the job ``token``: each model written is
    kept under the record's id, and renews the lock."""

    def progress(record: Backup, label: str, done: int, total: int) -> None:
        cache.set(PROGRESS.format(pk=record.pk), {"label": label, "done": done, "total": total}, JOB_S)
        _job_update(token, state="running", backup_id=record.pk)
        cache.touch(LOCK, LOCK_S)

    return progress


def current_token() -> str | None:
    """The token of the page's backup under way, if there is one."""
    return cache.get(LOCK)


def job_status(token: str | None) -> Job | None:
    """The job ``token`` as the page shows it; None when it is unknown (a bad token, or forgotten).
    Queued for longer than ``LOCK_S``, no worker took it (its lock is gone too): "unclaimed", so
    the page stops waiting for it."""
    if not token or not TOKEN.fullmatch(token):
        return None
    job = cache.get(JOB.format(token=token))
    if job is None:
        return None
    backup = Backup.objects.filter(pk=job["backup_id"]).first() if job.get("backup_id") else None
    progress = cache.get(PROGRESS.format(pk=backup.pk)) if backup else None
    state, error = job["state"], job.get("error", "")
    if backup is not None and backup.status != Backup.Status.RUNNING:  # the record has the last word
        state = "done" if backup.status == Backup.Status.DONE else "failed"
        error = error or backup.error
    waited = timezone.now() - job.get("queued_at", timezone.now())
    if state == "queued" and waited > timedelta(seconds=LOCK_S):
        state = "unclaimed"
    progress = progress or {}
    return Job(
        token=token,
        state=state,
        queued_at=job.get("queued_at"),
        backup=backup,
        done=progress.get("done", 0),
        total=progress.get("total", 0),  # 0: not started yet
        label=progress.get("label", ""),
        error=error,
    )


def _job_save(token: str, job: dict) -> None:
    cache.set(JOB.format(token=token), job, JOB_S)


def _job_update(token: str, **changes) -> None:
    """Only the worker writes a job once it runs, so reading then writing loses nothing."""
    _job_save(token, (cache.get(JOB.format(token=token)) or {"state": "running"}) | changes)


def _lock_release(token: str) -> None:
    if cache.get(LOCK) == token:
        cache.delete(LOCK)
