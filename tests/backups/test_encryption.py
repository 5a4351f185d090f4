"""Encryption at rest: with BACKUP_ENCRYPTION_KEY set a backup is AES-256-GCM in chunks, restored
with the right key; a wrong, missing or malformed key and a changed or cut file are each refused
with their own message and the database unchanged."""

import io
import os
import stat
from pathlib import Path

import pytest
from django.db.models.signals import post_save

from backups import crypto, services
from backups.models import Backup
from optimizer.models import Prompt
from tests.backups.test_backup_restore import data  # noqa: F401 - a fixture
from tests.support import clean_env, manage

pytestmark = pytest.mark.django_db
KEY = crypto.key_generate()


@pytest.fixture
def encrypted(settings, data):  # noqa: F811 - the fixture imported above
    settings.BACKUP_ENCRYPTION_KEY = KEY
    return services.backup_create()


def left_in(folder: Path) -> list[str]:
    """Files a restore or an upload may have left beside the backups (a decrypted copy)."""
    return sorted(path.name for path in folder.iterdir() if not path.name.startswith("backup-"))


# --- The format on its own --------------------------------------------------------------------


def sealed(plain: bytes, key: bytes) -> bytes:
    target = io.BytesIO()
    writer = crypto.Encryptor(target, key)
    for start in range(0, len(plain), 10_000):  # written in pieces, as zipfile does
        writer.write(plain[start : start + 10_000])
    writer.finish()
    return target.getvalue()


def opened(cipher: bytes, key: bytes) -> bytes:
    target = io.BytesIO()
    crypto.decrypt(io.BytesIO(cipher), target, key)
    return target.getvalue()


@pytest.mark.parametrize("size", [0, 1, crypto.CHUNK, 3 * crypto.CHUNK, 3 * crypto.CHUNK + 17])
def test_the_format_round_trips_any_size(size):
    key, plain = crypto.key_parse(KEY), os.urandom(size)

    cipher = sealed(plain, key)

    assert opened(cipher, key) == plain
    assert cipher.startswith(crypto.MAGIC)
    # No run of the plain text shows through (a byte or two may turn up in random ciphertext by
    # chance: a 1-byte text was found in it about one run in sixteen, so look for 16 bytes or more).
    assert size < 16 or plain[:64] not in cipher[crypto.HEADER.size :]
    assert sealed(plain, key) != cipher  # a salt and nonces of its own each time


def chunks(cipher: bytes) -> list[bytes]:
    body, step = cipher[crypto.HEADER.size :], crypto.CHUNK + crypto.TAG
    return [body[start : start + step] for start in range(0, len(body), step)]


def header(cipher: bytes) -> bytes:
    return cipher[: crypto.HEADER.size]


CHANGES = {
    "a byte changed": lambda c: c[: len(c) // 2] + bytes([c[len(c) // 2] ^ 1]) + c[len(c) // 2 + 1 :],
    "cut at a chunk boundary": lambda c: header(c) + b"".join(chunks(c)[:-1]),
    "cut inside the last chunk": lambda c: c[:-5],
    "chunks swapped": lambda c: header(c) + b"".join([chunks(c)[1], chunks(c)[0], *chunks(c)[2:]]),
    "a chunk dropped": lambda c: header(c) + b"".join([chunks(c)[0], *chunks(c)[2:]]),
    "bytes appended": lambda c: c + b"\0" * 32,
    "its header changed": lambda c: c[:30] + bytes([c[30] ^ 1]) + c[31:],  # the salt
    "only the header": lambda c: header(c),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_any_change_to_the_ciphertext_is_detected(change):
    key = crypto.key_parse(KEY)
    cipher = sealed(os.urandom(3 * crypto.CHUNK + 100), key)

    with pytest.raises(crypto.DamagedError):
        opened(CHANGES[change](cipher), key)


def test_another_key_is_told_apart_from_damage():
    cipher = sealed(b"prompts and password hashes", crypto.key_parse(KEY))

    with pytest.raises(crypto.WrongKeyError):
        opened(cipher, crypto.key_parse(crypto.key_generate()))


# --- Backups and restores ---------------------------------------------------------------------


def test_with_the_key_a_backup_is_encrypted_and_restores_with_it(encrypted, settings):
    before = services.content_digests()
    content = Path(encrypted.name).read_bytes()
    assert encrypted.encrypted and encrypted.name.endswith(".zip.enc")
    assert crypto.is_encrypted(content) and b"PK\x03\x04" not in content[:64]
    assert b"owner" not in content and b"tides" not in content and b"manifest" not in content
    assert stat.S_IMODE(os.stat(encrypted.name).st_mode) == 0o600

    Prompt.objects.all().delete()
    plan, safety = services.restore(encrypted)

    assert services.content_digests() == before
    assert plan.incoming == encrypted.counts and safety.encrypted
    assert left_in(settings.BACKUP_DIR) == []  # the decrypted copy is gone


def test_the_decrypted_copy_never_has_a_name_on_disk(encrypted, settings, tmp_path):
    """Even while the restore holds it (here: while it takes its safety backup), so a restore
    killed then leaves no plain copy of the encrypted backup behind."""
    seen = []

    def look(sender, instance, created, **kwargs):
        if created and instance.trigger == Backup.Trigger.SAFETY:
            seen.append(sorted(path.name for path in tmp_path.rglob("*") if path.is_file()))

    post_save.connect(look, sender=Backup)
    try:
        services.restore(encrypted)
    finally:
        post_save.disconnect(look, sender=Backup)

    assert seen == [[Path(encrypted.name).name]]  # only the encrypted file itself


def refused_unchanged(source, message: str) -> services.BackupError:
    """``source`` is refused for restore with ``message``; nothing changed, not even a safety backup."""
    before, records = services.content_digests(), Backup.objects.count()
    with pytest.raises(services.BackupError, match=message) as refused:
        services.restore(source)
    assert services.content_digests() == before and Backup.objects.count() == records
    return refused.value


def test_another_key_is_refused_saying_the_key_does_not_open_it(encrypted, settings):
    settings.BACKUP_ENCRYPTION_KEY = crypto.key_generate()

    refusal = refused_unchanged(encrypted, "the key does not open this backup")

    assert settings.BACKUP_ENCRYPTION_KEY not in str(refusal) and KEY not in str(refusal)
    assert left_in(settings.BACKUP_DIR) == []


def test_without_the_key_it_says_which_variable_to_set(encrypted, settings):
    settings.BACKUP_ENCRYPTION_KEY = None

    refusal = refused_unchanged(
        encrypted, "this backup is encrypted: set BACKUP_ENCRYPTION_KEY to the key it was made with"
    )

    assert KEY not in str(refusal)  # the key it was made with is not told either


@pytest.mark.parametrize("change", ["a byte changed", "cut at a chunk boundary", "cut inside the last chunk"])
def test_a_changed_or_cut_encrypted_file_is_refused_with_the_database_unchanged(encrypted, settings, change):
    path = Path(encrypted.name)
    path.write_bytes(CHANGES[change](path.read_bytes()))

    refused_unchanged(path, "cannot be decrypted: .* The file is damaged or was changed")
    assert left_in(settings.BACKUP_DIR) == []


def test_an_encrypted_upload_is_verified_with_the_key_and_kept_encrypted(encrypted, settings):
    content = Path(encrypted.name).read_bytes()

    uploaded = services.backup_import(io.BytesIO(content), filename="offsite.zip.enc")
    assert uploaded.encrypted and uploaded.name.endswith(".zip.enc") and uploaded.counts == encrypted.counts
    assert Path(uploaded.name).read_bytes() == content

    settings.BACKUP_ENCRYPTION_KEY = crypto.key_generate()
    with pytest.raises(services.BackupError, match="the key does not open this backup"):
        services.backup_import(io.BytesIO(content), filename="offsite.zip.enc")
    assert Backup.objects.count() == 2 and left_in(settings.BACKUP_DIR) == [Path(uploaded.name).name]


def test_a_malformed_key_stops_the_start_saying_how_to_make_one(tmp_path):
    bad = "not-a-key-but-a-secret-anyway-0123456789"

    completed = manage("check", env=clean_env(DATA_DIR=str(tmp_path), BACKUP_ENCRYPTION_KEY=bad))

    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert "BACKUP_ENCRYPTION_KEY must be 32 random bytes" in completed.stderr
    assert "manage.py backup --generate-key" in completed.stderr
    assert bad not in completed.stderr and bad not in completed.stdout


def test_generate_key_prints_a_new_key_that_the_settings_accept(tmp_path):
    env = clean_env(DATA_DIR=str(tmp_path))
    first, second = (manage("backup", "--generate-key", env=env) for _ in range(2))

    key = first.stdout.strip()
    assert first.returncode == 0 and crypto.key_refusal(key) == "" and key != second.stdout.strip()
    assert not (tmp_path / "backups").exists()  # no backup was made
    with_key = manage("check", env=env | {"BACKUP_ENCRYPTION_KEY": key})
    assert with_key.returncode == 0, with_key.stderr


@pytest.mark.usefixtures("data")
def test_what_a_killed_backup_left_is_deleted_by_the_next(settings):
    """A copy of the SQLite database (plain, even with encryption on) or a partial file, named
    after a process that is gone; those of a live process stay."""
    folder = services.backup_dir()
    dead, alive = 999_999_999, os.getpid()
    leftovers = [
        f".snapshot-{dead}-x1y2.sqlite3",
        f".snapshot-{dead}-x1y2.sqlite3-wal",
        f".backup-20261204-000000-000000.zip.{dead}.partial",
        f".upload-20261204.{dead}.partial",
    ]
    running = [f".snapshot-{alive}-a1b2.sqlite3", f".backup-20261204-000001-000000.zip.{alive}.partial"]
    for name in leftovers + running:
        (folder / name).write_bytes(b"prompts and password hashes")

    backup = services.backup_create()

    assert sorted(left_in(folder)) == sorted(running)
    assert Path(backup.name).exists()
