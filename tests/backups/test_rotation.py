"""The daily backup's schedule and the rotation of old backups."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_q.models import Schedule

from backups import services
from backups.models import Backup
from optimizer import runqueue

pytestmark = pytest.mark.django_db


def made(days_ago: float, status=Backup.Status.DONE, tmp_path=None) -> Backup:
    folder = services.backup_dir()
    path = folder / f"old-{days_ago}-{status}.zip"
    if status == Backup.Status.DONE:
        path.write_bytes(b"a backup")
    backup = Backup.objects.create(name=str(path), status=status)
    Backup.objects.filter(pk=backup.pk).update(started_at=timezone.now() - timedelta(days=days_ago))
    return Backup.objects.get(pk=backup.pk)


def test_rotation_keeps_recent_days_and_the_last_few_and_deletes_the_rest():
    old = [made(40 + n) for n in range(10)]  # all older than 30 days
    recent = [made(n) for n in range(3)]
    failed = made(45, status=Backup.Status.FAILED)

    deleted = services.prune(keep_days=30, keep_last=7)

    # The 3 recent ones count among the last 7: of the old, the 4 newest stay.
    assert {b.pk for b in deleted} == {b.pk for b in old[4:]} | {failed.pk}
    assert all(not __import__("os").path.exists(b.name) for b in old[4:])
    assert Backup.objects.filter(status="done").count() == 7
    assert all(__import__("os").path.exists(b.name) for b in recent + old[:4])


def test_the_only_good_backup_is_never_deleted():
    only = made(400)
    made(401, status=Backup.Status.FAILED)

    services.prune(keep_days=0, keep_last=1)

    assert list(Backup.objects.values_list("pk", flat=True)) == [only.pk]


def test_prune_dry_run_deletes_nothing_and_bad_rules_are_refused(capsys):
    for n in range(3):
        made(100 + n)
    call_command("prunebackups", "--keep-days", "30", "--keep-last", "1", "--dry-run")
    assert "Would delete 2 backup(s); 1 kept." in capsys.readouterr().out
    assert Backup.objects.count() == 3

    for argument, value, said in (
        ("--keep-last", "0", "from 1 to 1000"),
        ("--keep-days", "1000000", "from 0 to 3650"),  # was a traceback: a date out of range
        ("--keep-days", "-1", "from 0 to 3650"),
        ("--keep-days", "²", "from 0 to 3650"),
    ):
        with pytest.raises(CommandError, match=said) as refused:
            call_command("prunebackups", argument, value)
        assert refused.value.returncode == 2
    assert Backup.objects.count() == 3


def test_the_daily_schedule_exists_once_however_often_migrate_runs():
    Schedule.objects.filter(name=runqueue.BACKUP_SCHEDULE).delete()
    call_command("migrate", verbosity=0)
    call_command("migrate", verbosity=0)

    schedule = Schedule.objects.get(name=runqueue.BACKUP_SCHEDULE)
    assert schedule.func == "backups.tasks.backup_scheduled_task" and schedule.minutes == 24 * 60


def test_the_scheduled_backup_is_made_and_rotated(settings):
    settings.BACKUP_KEEP_DAYS, settings.BACKUP_KEEP_LAST = 30, 1
    stale = made(90)

    from backups.tasks import backup_scheduled_task

    summary = backup_scheduled_task()

    fresh = Backup.objects.get()
    assert fresh.trigger == "schedule" and fresh.status == "done" and fresh.name in summary
    assert not Backup.objects.filter(pk=stale.pk).exists()
