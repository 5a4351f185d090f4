"""Backups as one JSON Lines file (`manage.py backup --format jsonl`): the ZIP's members one after
the other, the manifest as the last line; verified and restored like a ZIP, and every damage to it
refused with the database unchanged."""

import io
import json
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from backups import crypto, services
from backups.models import Backup
from optimizer.models import Prompt
from tests.backups.test_backup_restore import data  # noqa: F401 - a fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("data")]


def lines_of(path) -> list[bytes]:
    return Path(path).read_bytes().splitlines(keepends=True)


def test_a_jsonl_backup_holds_the_zip_members_then_its_manifest_and_restores():
    as_zip = services.backup_create()
    as_lines = services.backup_create(file_format="jsonl")
    before = services.content_digests()

    assert as_lines.name.endswith(".jsonl") and as_lines.counts == as_zip.counts
    lines = lines_of(as_lines.name)
    with zipfile.ZipFile(as_zip.name) as archive:
        members = b"".join(archive.read(f"{label}.jsonl") for label in services.MODELS)
    assert b"".join(lines[:-1]) == members  # the same rows, byte for byte
    manifest = json.loads(lines[-1])["manifest"]
    assert manifest["kind"] == services.KIND and manifest["members"]["auth.user"]["rows"] == 1

    Prompt.objects.all().delete()
    plan, _safety = services.restore(as_lines)
    assert services.content_digests() == before and plan.incoming == as_lines.counts


def test_an_encrypted_jsonl_backup_restores_with_its_key(settings):
    settings.BACKUP_ENCRYPTION_KEY = crypto.key_generate()
    backup = services.backup_create(file_format="jsonl")
    before = services.content_digests()

    assert backup.name.endswith(".jsonl.enc") and crypto.is_encrypted(Path(backup.name).read_bytes())
    Prompt.objects.all().delete()
    services.restore(backup, safety=False)
    assert services.content_digests() == before


def rewritten(lines: list[bytes], target: Path) -> str:
    target.write_bytes(b"".join(lines))
    return str(target)


def prompt_line(lines: list[bytes]) -> int:
    return next(n for n, line in enumerate(lines) if line.startswith(b'{"model": "optimizer.prompt"'))


DAMAGED = {
    "a row changed": (
        lambda ls: [line.replace(b"tides", b"TIDES") for line in ls],
        "optimizer.prompt does not match its checksum",
    ),
    "cut short": (lambda ls: ls[:-1], "does not end with its manifest"),
    "cut inside the manifest": (lambda ls: [*ls[:-1], ls[-1][:50]], "its manifest cannot be read"),
    "rows out of order": (
        lambda ls: [ls[prompt_line(ls)], *ls[: prompt_line(ls)], *ls[prompt_line(ls) + 1 :]],
        "holds a line that no backup of this site holds where it is",
    ),
    "a model of someone else": (
        lambda ls: [b'{"model": "sessions.session", "pk": "x", "fields": {}}\n', *ls],
        "'sessions.session'",
    ),
    "a line that is not a row": (lambda ls: [b'{"rm": "-rf"}\n', *ls], "holds a line"),
    "more after the manifest": (lambda ls: [*ls, ls[0]], "there is more after its manifest"),
    "another migration state": (
        lambda ls: [
            *ls[:-1],
            json.dumps(
                {"manifest": json.loads(ls[-1])["manifest"] | {"migrations": {"optimizer": ["0001_initial"]}}}
            ).encode()
            + b"\n",
        ],
        "another migration state of 'auth'",
    ),
    "a line too long": (
        lambda ls: [
            b'{"model": "auth.group", "pk": 1, "fields": {"name": "' + b"x" * (64 * 1024**2) + b'"}}\n'
        ],
        "has a line or a size no backup of ours has",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_a_damaged_jsonl_backup_is_refused_with_the_database_unchanged(tmp_path, damage):
    backup = services.backup_create(file_format="jsonl")
    change, message = DAMAGED[damage]
    path = rewritten(change(lines_of(backup.name)), tmp_path / "damaged.jsonl")
    before, records = services.content_digests(), Backup.objects.count()

    with pytest.raises(services.BackupError, match=message):
        services.restore(path)

    assert services.content_digests() == before and Backup.objects.count() == records


def test_the_command_writes_jsonl_and_restores_it(capsys):
    call_command("backup", "--format", "jsonl")
    backup = Backup.objects.get()
    assert backup.name.endswith(".jsonl") and f"Backup written to {backup.name}" in capsys.readouterr().out

    call_command("restore", str(backup.pk), "--yes")
    assert "Restored" in capsys.readouterr().out

    with pytest.raises(CommandError, match="invalid choice: 'tar'"):
        call_command("backup", "--format", "tar")


def test_an_uploaded_jsonl_backup_is_kept_as_jsonl():
    made = services.backup_create(file_format="jsonl")
    content = Path(made.name).read_bytes()

    uploaded = services.backup_import(io.BytesIO(content), filename="export.jsonl")

    assert uploaded.name.endswith(".jsonl") and Path(uploaded.name).read_bytes() == content
    assert uploaded.counts == made.counts
