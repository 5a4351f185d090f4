"""What the Backups page calls: a backup's stored file for a download, an uploaded file kept only
when it verifies, restore and verify of a ``Backup`` record, and the newest good backup."""

import hashlib
import io
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from backups import selectors, services
from backups.models import Backup
from optimizer.models import Prompt
from tests.backups.test_backup_restore import DAMAGED, data  # noqa: F401 - data is a fixture

pytestmark = pytest.mark.django_db


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


@pytest.mark.usefixtures("data")
def test_backup_open_gives_the_file_exactly_as_stored():
    backup = services.backup_create()

    with services.backup_open(backup) as stored:
        content = stored.read()

    assert hashlib.sha256(content).hexdigest() == backup.sha256 and len(content) == backup.size


@pytest.mark.usefixtures("data")
def test_backup_open_says_so_when_the_file_is_gone_or_the_backup_unfinished():
    backup = services.backup_create()
    Path(backup.name).unlink()
    with pytest.raises(services.BackupError, match=f"The file of backup {backup.pk} .* is gone"):
        services.backup_open(backup)

    running = Backup.objects.create(name=backup.name)
    with pytest.raises(services.BackupError, match="is running: it has no file"):
        services.backup_open(running)


@pytest.mark.usefixtures("data")
def test_an_uploaded_backup_is_kept_under_a_name_of_ours_owner_only_and_restores(settings):
    made = services.backup_create()
    content = Path(made.name).read_bytes()
    before = services.content_digests()
    Path(made.name).unlink()
    made.delete()

    uploaded = services.backup_import(io.BytesIO(content), filename="../../etc/cron.d/evil.zip", user=None)

    assert uploaded.trigger == "upload" and uploaded.status == "done"
    assert uploaded.sha256 == hashlib.sha256(content).hexdigest() and uploaded.size == len(content)
    assert uploaded.counts["optimizer.optimizationrun"] == 2
    assert uploaded.note == "uploaded as evil.zip"
    path = Path(uploaded.name)
    assert path.parent == settings.BACKUP_DIR and path.name.startswith("upload-") and "evil" not in path.name
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert files_in(settings.BACKUP_DIR) == [path.name]

    Prompt.objects.all().delete()
    services.restore(uploaded, safety=False)
    assert services.content_digests() == before


@pytest.mark.parametrize("damage", ["not a zip", "truncated", "a member changed", "a zip bomb", "not ours"])
@pytest.mark.usefixtures("data")
def test_an_upload_that_does_not_verify_leaves_no_file_and_no_record(settings, tmp_path, damage):
    made = services.backup_create()
    make, message = DAMAGED[damage]
    damaged = Path(make(made.name, tmp_path / "damaged.zip"))
    Path(made.name).unlink()
    made.delete()

    with pytest.raises(services.BackupError, match=message) as refused, damaged.open("rb") as upload:
        services.backup_import(upload, filename="mine.zip")

    assert str(refused.value).startswith("mine.zip")  # named as the user knows it, not our path
    assert files_in(settings.BACKUP_DIR) == [] and Backup.objects.count() == 0


@pytest.mark.usefixtures("data")
def test_verify_plan_and_restore_take_a_backup_record():
    backup = services.backup_create()
    before = services.content_digests()
    Prompt.objects.all().delete()

    assert services.verify(backup).counts == backup.counts
    plan = services.restore_plan(backup)
    assert plan.incoming == backup.counts and plan.current["optimizer.prompt"] == 0
    _plan, safety = services.restore(backup)

    assert services.content_digests() == before
    assert safety.note == f"before restoring Backup {backup.pk} ({Path(backup.name).name})"


@pytest.mark.usefixtures("data")
def test_a_record_without_its_file_or_unfinished_is_refused_with_the_database_unchanged():
    backup = services.backup_create()
    failed = Backup.objects.create(name=backup.name, status=Backup.Status.FAILED)
    Path(backup.name).unlink()
    before, records = services.content_digests(), Backup.objects.count()

    with pytest.raises(services.BackupError, match="is gone"):
        services.restore(backup)
    with pytest.raises(services.BackupError, match="is failed: only a finished backup can be restored"):
        services.restore(failed)

    assert services.content_digests() == before and Backup.objects.count() == records


def test_the_last_good_backup_is_the_newest_finished_one():
    assert selectors.last_backup_made() is None
    older = Backup.objects.create(name="a", status=Backup.Status.DONE)
    newer = Backup.objects.create(name="b", status=Backup.Status.DONE)
    Backup.objects.create(name="c", status=Backup.Status.FAILED)
    Backup.objects.create(name="d", status=Backup.Status.RUNNING)
    Backup.objects.filter(pk=older.pk).update(started_at=timezone.now() - timedelta(days=2))

    assert selectors.last_backup_made() == newer
    Backup.objects.filter(pk=newer.pk).update(started_at=timezone.now() - timedelta(days=3))
    assert selectors.last_backup_made() == older
