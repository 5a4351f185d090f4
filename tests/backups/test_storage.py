"""Backups kept in STORAGES["backups"] (a Django storage: S3 through django-storages on a real site,
a FileSystemStorage at another location here) instead of the backup folder: made, listed,
downloaded, uploaded, restored and pruned there; configured from BACKUP_STORAGE and
BACKUP_STORAGE_OPTIONS with clear messages for mistakes."""

import hashlib
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from backups import crypto, services
from backups.models import Backup
from optimizer.models import Prompt
from tests.backups.test_backup_restore import data  # noqa: F401 - a fixture
from tests.support import clean_env, manage

pytestmark = pytest.mark.django_db
FILE_STORAGE = "django.core.files.storage.FileSystemStorage"


@pytest.fixture
def remote(settings, tmp_path) -> Path:
    """The backup storage's own place, away from the backup folder."""
    location = tmp_path / "remote"
    settings.STORAGES = {
        **settings.STORAGES,
        "backups": {
            "BACKEND": FILE_STORAGE,
            "OPTIONS": {"location": str(location), "file_permissions_mode": 0o600},
        },
    }
    return location


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


@pytest.mark.usefixtures("data")
def test_a_backup_goes_to_the_storage_and_nothing_stays_in_the_folder(remote, settings):
    backup = services.backup_create()

    assert backup.place == "storage" and backup.status == "done"
    assert names(remote) == [backup.name] and backup.name.startswith("backup-")
    content = (remote / backup.name).read_bytes()
    assert hashlib.sha256(content).hexdigest() == backup.sha256 and len(content) == backup.size
    assert names(settings.BACKUP_DIR) == []
    with services.backup_open(backup) as download:
        assert download.read() == content


@pytest.mark.usefixtures("data")
def test_a_backup_in_the_storage_restores_and_leaves_no_copy_behind(remote, settings):
    backup = services.backup_create()
    before = services.content_digests()
    Prompt.objects.all().delete()

    plan, safety = services.restore(backup)

    assert services.content_digests() == before and plan.incoming == backup.counts
    assert safety.place == "storage" and sorted([backup.name, safety.name]) == names(remote)
    assert names(settings.BACKUP_DIR) == []  # the fetched copy is deleted


@pytest.mark.usefixtures("data")
def test_encrypted_backups_are_kept_encrypted_in_the_storage(remote, settings):
    settings.BACKUP_ENCRYPTION_KEY = crypto.key_generate()
    backup = services.backup_create()
    before = services.content_digests()

    assert backup.encrypted and crypto.is_encrypted((remote / backup.name).read_bytes())
    Prompt.objects.all().delete()
    services.restore(backup, safety=False)
    assert services.content_digests() == before


@pytest.mark.usefixtures("data")
def test_an_upload_is_kept_in_the_storage_only_when_it_verifies(remote, settings, tmp_path):
    made = services.backup_create()
    content = (remote / made.name).read_bytes()

    uploaded = services.backup_import(io.BytesIO(content), filename="copy.zip")
    assert uploaded.place == "storage" and (remote / uploaded.name).read_bytes() == content

    with pytest.raises(services.BackupError, match="not a ZIP file"):
        services.backup_import(io.BytesIO(b"junk" * 100), filename="junk.zip")
    assert names(remote) == sorted([made.name, uploaded.name]) and names(settings.BACKUP_DIR) == []
    assert Backup.objects.count() == 2


@pytest.mark.usefixtures("data")
def test_rotation_deletes_from_the_storage(remote):
    made = [services.backup_create() for _ in range(3)]
    for age, backup in enumerate(made):
        Backup.objects.filter(pk=backup.pk).update(started_at=timezone.now() - timedelta(days=90 - age))

    deleted = services.prune(keep_days=30, keep_last=1)

    assert {b.pk for b in deleted} == {made[0].pk, made[1].pk}
    assert names(remote) == [made[2].name]


@pytest.mark.usefixtures("data")
def test_the_commands_list_and_restore_a_backup_by_its_name_in_the_storage(remote, capsys):
    call_command("backup")
    backup = Backup.objects.get()
    assert f"Backup written to {backup.name}" in capsys.readouterr().out

    call_command("listbackups")
    assert f"{backup.name}  [in the backup storage]" in capsys.readouterr().out
    call_command("restore", backup.name, "--yes")
    assert f"Restored {sum(backup.counts.values()):,} rows from Backup {backup.pk}" in capsys.readouterr().out


@pytest.mark.usefixtures("data")
def test_a_backup_in_a_storage_that_is_gone_or_not_configured_is_refused(remote, settings):
    backup = services.backup_create()
    before = services.content_digests()

    (remote / backup.name).unlink()
    with pytest.raises(services.BackupError, match="is gone"):
        services.restore(backup)

    settings.STORAGES = {key: value for key, value in settings.STORAGES.items() if key != "backups"}
    with pytest.raises(services.BackupError, match="none is configured here: set BACKUP_STORAGE"):
        services.restore(backup)
    with pytest.raises(services.BackupError, match="none is configured here"):
        services.backup_open(backup)
    assert services.content_digests() == before


def test_the_storage_is_configured_from_the_environment(tmp_path):
    """BACKUP_STORAGE and BACKUP_STORAGE_OPTIONS, as an operator sets them: the command's backup
    lands in the storage's location, not in BACKUP_DIR."""
    location, folder = tmp_path / "offsite", tmp_path / "site-backups"
    env = clean_env(
        DATA_DIR=str(tmp_path / "site"),
        BACKUP_DIR=str(folder),
        BACKUP_STORAGE=FILE_STORAGE,
        BACKUP_STORAGE_OPTIONS=json.dumps({"location": str(location), "file_permissions_mode": 0o600}),
    )
    assert manage("migrate", "-v0", env=env).returncode == 0

    made = manage("backup", env=env)

    assert made.returncode == 0, made.stderr
    files = names(location)
    assert (
        len(files) == 1 and files[0].startswith("backup-") and f"Backup written to {files[0]}" in made.stdout
    )
    assert not any(name.startswith("backup-") for name in names(folder))


SECRET = "aws-secret-never-echoed-0123456789"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"BACKUP_STORAGE": "S3"}, "BACKUP_STORAGE must be the dotted path of a Django storage class"),
        ({"BACKUP_STORAGE": "nowhere.backends.Storage"}, "there is no module nowhere.backends: install"),
        (
            {"BACKUP_STORAGE": FILE_STORAGE, "BACKUP_STORAGE_OPTIONS": '{"secret_key": "' + SECRET + '",}'},
            "BACKUP_STORAGE_OPTIONS must be a JSON object",
        ),
        ({"BACKUP_STORAGE": FILE_STORAGE, "BACKUP_STORAGE_OPTIONS": '["' + SECRET + '"]'}, "not a JSON list"),
        (
            {"BACKUP_STORAGE_OPTIONS": '{"bucket_name": "b"}'},
            "BACKUP_STORAGE_OPTIONS is set but BACKUP_STORAGE",
        ),
    ],
)
def test_a_mistake_in_the_storage_variables_stops_the_start_saying_what_to_fix(tmp_path, variables, message):
    completed = manage("check", env=clean_env(DATA_DIR=str(tmp_path), **variables))

    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert message in completed.stderr
    assert SECRET not in completed.stderr
