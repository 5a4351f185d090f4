"""Backups of the site's data, and their restore.

A backup is a ZIP file (or JSON Lines, below): one JSON Lines member per model (Django's ``jsonl``
serializer, written row by row as the rows are read, so memory stays flat however large the
database) and a ``manifest.json`` saying what it is: format and app version, the migration state of
every app, rows and SHA-256 per member, when and from which database engine. It holds the users
(with their password hashes, groups and permissions) and everything of ``optimizer`` and ``costs``;
never a session, the secret key or anything from the environment (a provider keeps only the *name*
of its key's variable). What is live and of this machine only is left out: budget reservations of
calls in flight, the answers kept for runs in progress, and the list of backups itself (it describes
the files in this machine's backup folder).

A restore is verified before anything is touched (the manifest, every checksum, the migration
state, the members' names, sizes and compression ratios), then replaces the data in one
transaction: on any error, or if the process is killed, the database is as it was. Content goes
through Django's serializers, so a backup made on SQLite restores into PostgreSQL and back.

Files are written owner-only (0600) under a temporary name and renamed when complete, so a failed
backup never leaves a file that looks good. ``--format jsonl`` writes the same members one after
the other into one JSON Lines file, the manifest as its last line. With BACKUP_ENCRYPTION_KEY the
file is encrypted as it is written (``backups.crypto``); with STORAGES["backups"] it is kept in
that storage (off this machine) rather than in the backup folder. Reading either back goes through
an owner-only temporary file without a name on disk.
"""

import contextlib
import hashlib
import io
import itertools
import json
import logging
import os
import re
import shutil
import sqlite3
import stat
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import BinaryIO

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.files import File
from django.core.files.storage import storages
from django.core.management.color import no_style
from django.core.serializers import jsonl
from django.core.serializers.base import DeserializationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

import config
from backups import crypto
from backups.models import Backup
from optimizer.runqueue import pid_alive

logger = logging.getLogger(__name__)

KIND = "prompt-optimizer-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# In the order a restore inserts them (each after what it refers to).
MODELS = (
    "auth.group",
    "auth.user",
    "optimizer.provider",
    "optimizer.modelchoice",
    "optimizer.prompt",
    "optimizer.optimizationrun",
    "costs.modelprice",
    "costs.budget",
    "costs.budgetspend",
    "costs.budgetalert",
    "costs.usagerecord",
)
# Emptied by a restore although no backup holds them: they belong to the data being replaced.
TRANSIENT = ("optimizer.stageanswer", "costs.budgetreservation")
APPS = ("auth", "contenttypes", "optimizer", "costs", "backups")
MAX_MEMBER_BYTES = 8 * 1024**3  # uncompressed, per member
MAX_TOTAL_BYTES = 16 * 1024**3
MAX_RATIO = 200  # uncompressed / compressed: JSON compresses ~10x, a zip bomb thousands of times
MAX_MANIFEST_BYTES = 1024**2
MAX_LINE_BYTES = 64 * 1024**2  # one row of a JSON Lines backup (a run with its whole analysis: KBs)
FORMATS = ("zip", "jsonl")
SNAPSHOT_ALIAS = "backup-snapshot"
RUNNING_AT_MOST = timedelta(hours=12)  # far beyond the longest backup (100,000 records: seconds)
BATCH = 1000
CHUNK = 2000


class _Encoder(DjangoJSONEncoder):
    """Django's, without its loss: it writes times to the millisecond (ECMA-262), and a restore must
    give back the microseconds every timestamp was stored with."""

    def default(self, o):
        if isinstance(o, datetime):
            return o.isoformat().replace("+00:00", "Z")
        if isinstance(o, dt_time):
            return o.isoformat()
        return super().default(o)


class _JsonLines(jsonl.Serializer):
    """Django's JSON Lines, each row written at once: its ``json.dump`` runs the pure-Python
    encoder and writes every token on its own (2.3 million writes for 30,000 usage records, most
    of a backup's time); ``json.dumps`` is the C encoder, and the text is the same."""

    def end_object(self, obj):
        self.stream.write(json.dumps(self.get_dump_object(obj), **self.json_kwargs) + "\n")
        self._current = None


class BackupError(Exception):
    """A backup could not be made, or a file cannot be restored: the message says why and what to do."""


@dataclass
class Manifest:
    data: dict

    @property
    def counts(self) -> dict[str, int]:
        return {label: member["rows"] for label, member in self.data["members"].items()}


@dataclass
class RestorePlan:
    """What a restore would do: the rows per model now and in the backup."""

    manifest: Manifest
    current: dict[str, int] = field(default_factory=dict)

    @property
    def incoming(self) -> dict[str, int]:
        return self.manifest.counts


# --- Where backups live ---------------------------------------------------------------------------


def backup_dir() -> Path:
    """``BACKUP_DIR``, or ``DATA_DIR/backups``: created owner-only (0700) when missing. With a
    backup storage, files are only made and read here on their way to and from it."""
    folder = Path(getattr(settings, "BACKUP_DIR", None) or settings.DATA_DIR / "backups")
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(
            f"The backup folder {folder} cannot be made ({exc.strerror or exc}): set BACKUP_DIR to a folder "
            "this user may write, or make it."
        ) from None
    return folder


def _work_dir() -> Path:
    """Where a backup of SQLite keeps the plain copy of the database it reads from: beside the
    database in DATA_DIR, owner-only, never in the backup folder (which may be a share meant for
    encrypted files only)."""
    folder = Path(settings.DATA_DIR) / "backup-work"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"{folder} cannot be made ({exc.strerror or exc}): check DATA_DIR.") from None
    return folder


def _leftovers_clear() -> None:
    """What killed backups left behind, in both folders they use."""
    for folder in (backup_dir(), _work_dir()):
        _leftovers_remove(folder)


def backup_storage():
    """``STORAGES["backups"]`` (BACKUP_STORAGE) when configured, where new backups are then kept
    (off this machine, for a site on several); None when they stay in the backup folder."""
    if "backups" not in settings.STORAGES:
        return None
    try:
        return storages["backups"]
    except Exception as exc:  # noqa: BLE001 - a third-party class's import or options failing
        raise BackupError(
            f"The backup storage (BACKUP_STORAGE, STORAGES['backups']) cannot be used: "
            f"{type(exc).__name__}: {exc}. Correct its class or BACKUP_STORAGE_OPTIONS."
        ) from None


def _storage_of(backup: Backup):
    storage = backup_storage()
    if storage is None:
        raise BackupError(
            f"Backup {backup.pk} is kept in a backup storage and none is configured here: set "
            "BACKUP_STORAGE and BACKUP_STORAGE_OPTIONS as on the machine that made it."
        )
    return storage


LEFTOVER = re.compile(r"\.snapshot-(?P<snapshot>\d+)-.*|\..*\.(?P<partial>\d+)\.partial")


def _leftovers_remove(folder: Path) -> None:
    """What a backup, restore or upload killed midway left in the folder: a copy of the SQLite
    database (plain, whatever BACKUP_ENCRYPTION_KEY says) or a partial file. Each name holds the
    process that made it; those whose process is gone are deleted."""
    for path in folder.iterdir():
        found = LEFTOVER.fullmatch(path.name)
        if found and not pid_alive(int(found["snapshot"] or found["partial"])):
            path.unlink(missing_ok=True)


def _keep(local: Path) -> tuple[str, str]:
    """A finished file put where backups are kept: into the backup storage when there is one (the
    local file then goes, whatever happens), else left where it is. Its name and place."""
    storage = backup_storage()
    if storage is None:
        return str(local), Backup.Place.FOLDER
    try:
        with local.open("rb") as file:
            return storage.save(local.name, File(file, name=local.name)), Backup.Place.STORAGE
    except Exception as exc:  # noqa: BLE001 - whatever the storage's client raises
        raise BackupError(
            f"Could not store {local.name} in the backup storage ({type(exc).__name__}: {exc}). "
            "Check that it is reachable and BACKUP_STORAGE_OPTIONS."
        ) from None
    finally:
        local.unlink(missing_ok=True)


def _discard(name: str, place: str) -> None:
    """Delete a backup's file wherever it is kept; a file already gone is no error."""
    if place == Backup.Place.STORAGE:
        storage = backup_storage()
        if storage is None:
            raise BackupError(f"{name} is kept in a backup storage and none is configured here.")
        storage.delete(name)
    else:
        Path(name).unlink(missing_ok=True)


def _model(label: str):
    return apps.get_model(label)


def _member_name(label: str) -> str:
    return f"{label}.jsonl"


def _queryset(label: str):
    model = _model(label)
    return model._default_manager.order_by("pk")


# --- Making a backup ------------------------------------------------------------------------------


class _HashingWriter(io.TextIOBase):
    """A text stream over a binary one that counts the bytes and lines and hashes what it writes."""

    def __init__(self, binary):
        self.binary, self.sha256, self.size, self.lines = binary, hashlib.sha256(), 0, 0

    def write(self, text: str) -> int:
        data = text.encode()
        self.binary.write(data)
        self.sha256.update(data)
        self.size += len(data)
        self.lines += text.count("\n")
        return len(text)


def migration_state() -> dict[str, list[str]]:
    """The migrations applied here, per app of the backup, in name order."""
    applied = MigrationRecorder(connection).applied_migrations()
    return {app: sorted(name for label, name in applied if label == app) for app in APPS}


def backup_create(
    *,
    output: Path | None = None,
    note: str = "",
    trigger: str = Backup.Trigger.COMMAND,
    user=None,
    progress: Callable[[Backup, str, int, int], None] | None = None,
    file_format: str = "zip",
) -> Backup:
    """Write a backup (to ``output``, or a new file in the backup folder or storage) and its
    ``Backup`` record. ``file_format`` "zip" (the default) or "jsonl": one JSON Lines file, the
    members one after the other and the manifest as its last line.

    ``progress(record, label, done, total)`` is called after each model's rows are written (``done``
    of ``total`` models), for a page that shows the backup as it goes."""
    started = time.perf_counter()
    now = timezone.now()
    if file_format not in FORMATS:
        raise BackupError(f"A backup is written as {' or '.join(FORMATS)}, not {file_format!r}.")
    key = _encryption_key()
    suffix = f".{file_format}.enc" if key else f".{file_format}"
    # A file given as --output is recorded with its full path: a relative one would be looked for in
    # whatever folder the web or task process runs in.
    if output:
        target = Path(output).expanduser().resolve()
    else:
        target = backup_dir() / f"backup-{now:%Y%m%d-%H%M%S-%f}{suffix}"
    record = Backup.objects.create(
        name=str(target), trigger=trigger, created_by=user, note=note[:200], encrypted=key is not None
    )
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    _leftovers_clear()
    try:
        report = (lambda *step: progress(record, *step)) if progress else None
        manifest = _write(partial, now, key, report, file_format)
        os.replace(partial, target)
        size, sha256 = target.stat().st_size, _file_sha256(target)
        name, place = _keep(target) if output is None else (str(target), Backup.Place.FOLDER)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        Backup.objects.filter(pk=record.pk).update(
            status=Backup.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=timezone.now(),
            duration_ms=round((time.perf_counter() - started) * 1000),
        )
        if isinstance(exc, OSError):
            raise BackupError(f"Could not write {target}: {exc.strerror or exc}. Check the folder.") from exc
        raise
    Backup.objects.filter(pk=record.pk).update(
        status=Backup.Status.DONE,
        name=name,
        place=place,
        size=size,
        sha256=sha256,
        counts=manifest.counts,
        finished_at=timezone.now(),
        duration_ms=round((time.perf_counter() - started) * 1000),
    )
    record.refresh_from_db()
    return record


def _write(
    path: Path,
    now: datetime,
    key: bytes | None,
    progress: Callable[[str, int, int], None] | None,
    file_format: str,
) -> Manifest:
    """The ZIP (or JSON Lines) into ``path``: through the chunked encryption when there is a
    ``key`` (no plain copy ever reaches the disk), fsynced before it is renamed into place."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as raw:
        sink = crypto.Encryptor(raw, key) if key else raw
        if file_format == "jsonl":
            manifest = _write_members(lambda _label: contextlib.nullcontext(sink), now, progress)
            sink.write(json.dumps({"manifest": manifest.data}).encode() + b"\n")
        else:
            with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as archive:

                def member(label: str):
                    return archive.open(_member_name(label), "w", force_zip64=True)

                manifest = _write_members(member, now, progress)
                archive.writestr(MANIFEST, json.dumps(manifest.data, indent=2))
        if key:
            sink.finish()
        raw.flush()
        os.fsync(raw.fileno())
    return manifest


def _write_members(
    member_open: Callable, now: datetime, progress: Callable[[str, int, int], None] | None
) -> Manifest:
    """Each model's rows into the binary stream ``member_open(label)`` gives, and the manifest
    that describes them."""
    members = {}
    with _reading_snapshot() as alias:
        for label in MODELS:
            with member_open(label) as member:
                writer = _HashingWriter(member)
                _JsonLines().serialize(
                    _queryset(label).using(alias).iterator(chunk_size=CHUNK),
                    stream=writer,
                    use_natural_foreign_keys=label in ("auth.user", "auth.group"),
                    cls=_Encoder,
                )
            digest = writer.sha256.hexdigest()
            members[label] = {"rows": writer.lines, "bytes": writer.size, "sha256": digest}
            if progress:
                progress(label, len(members), len(MODELS))
        state = migration_state()
    manifest = Manifest(
        {
            "kind": KIND,
            "format": FORMAT_VERSION,
            "app_version": config.__version__,
            "created_at": now.astimezone(UTC).isoformat(),
            "engine": connection.vendor,
            "migrations": state,
            "members": members,
        }
    )
    return manifest


def _encryption_key() -> bytes | None:
    """BACKUP_ENCRYPTION_KEY's 32 bytes, or None when backups are not encrypted."""
    text = getattr(settings, "BACKUP_ENCRYPTION_KEY", None)
    if not text:
        return None
    try:
        return crypto.key_parse(text)
    except ValueError as exc:
        raise BackupError(str(exc)) from None


@contextmanager
def _reading_snapshot() -> Iterator[str]:
    """The database alias a backup reads from: one state of all the data, so the members agree (a
    usage record never names a run the backup lacks).

    PostgreSQL: this connection, in a REPEATABLE READ transaction. SQLite: a transaction would hold
    the write lock for the whole backup (writers fail after the 20 s busy timeout), so the database
    is first copied with SQLite's online backup (a read: in WAL mode writers go on) into an
    owner-only file beside the database (``_work_dir``), read through a connection of its own, then
    deleted."""
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        # Inside a caller's transaction its state is the one to back up (and SQLite's online backup
        # cannot read from a connection that is writing).
        outermost = not connection.in_atomic_block  # else its isolation is already set
        with transaction.atomic():
            if connection.vendor == "postgresql" and outermost:
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield DEFAULT_DB_ALIAS
        return
    prefix = f".snapshot-{os.getpid()}-"
    descriptor, name = tempfile.mkstemp(prefix=prefix, suffix=".sqlite3", dir=_work_dir())
    os.close(descriptor)  # mkstemp made it 0600
    try:
        connection.ensure_connection()
        copy = sqlite3.connect(name)
        try:
            connection.connection.backup(copy)
        finally:
            copy.close()
        connections.settings[SNAPSHOT_ALIAS] = connections.settings[DEFAULT_DB_ALIAS] | {
            "NAME": name,
            "CONN_MAX_AGE": 0,
        }
        try:
            yield SNAPSHOT_ALIAS
        finally:
            connections[SNAPSHOT_ALIAS].close()
            del connections[SNAPSHOT_ALIAS]
            del connections.settings[SNAPSHOT_ALIAS]
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(name + suffix).unlink(missing_ok=True)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


# --- Checking a file ------------------------------------------------------------------------------


def verify(source: Backup | Path | str) -> Manifest:
    """The manifest of a backup (a ``Backup`` record or a file) that can be restored here;
    BackupError naming the first problem."""
    with _readable(source) as (file, shown):
        return _verify_file(file, shown)


def _verify_file(file: BinaryIO, shown: str) -> Manifest:
    if _is_lines(file):
        return _verify_lines(file, shown)
    file.seek(0)
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, *DAMAGED_ZIP) as exc:
        raise BackupError(f"{shown} is not a backup of this site (not a ZIP file: {exc}).") from None
    with archive:
        return _verify_archive(archive, shown)


@contextmanager
def _readable(source: Backup | Path | str) -> Iterator[tuple[BinaryIO, str]]:
    """The backup ``source`` names as a ZIP file open for reading (decrypted when it is encrypted),
    and how messages name it."""
    with _stored_file(source) as (stored, shown), _decrypted(stored, shown) as file:
        yield file, shown


def _unnamed_file() -> BinaryIO:
    """An owner-only temporary file beside the backups that has no name on disk (unlinked at once):
    a plain copy of an encrypted backup is gone with the process, even one killed with SIGKILL."""
    return tempfile.TemporaryFile(prefix=".restoring-", dir=backup_dir())


@contextmanager
def _decrypted(stored: BinaryIO, shown: str) -> Iterator[BinaryIO]:
    """``stored`` itself, or when it is encrypted its plain ZIP in an unnamed temporary file (a ZIP
    is read by seeking: it cannot be read through the decryption)."""
    stored.seek(0)
    encrypted = crypto.is_encrypted(stored.read(len(crypto.MAGIC)))
    stored.seek(0)
    if not encrypted:
        yield stored
        return
    key = _encryption_key()
    if key is None:
        raise BackupError(
            f"{shown}: this backup is encrypted: set BACKUP_ENCRYPTION_KEY to the key it was made "
            "with. Nothing was restored."
        )
    with _unnamed_file() as plain:
        try:
            crypto.decrypt(stored, plain, key)
        except crypto.WrongKeyError:
            raise BackupError(
                f"{shown}: the key does not open this backup: BACKUP_ENCRYPTION_KEY is not the key "
                "it was made with. Set it to that key. Nothing was restored."
            ) from None
        except crypto.DamagedError as exc:
            raise BackupError(
                f"{shown} cannot be decrypted: {exc}. The file is damaged or was changed. "
                "Nothing was restored."
            ) from None
        plain.seek(0)
        yield plain


@contextmanager
def _stored_file(source: Backup | Path | str) -> Iterator[tuple[BinaryIO, str]]:
    """The stored bytes of ``source`` as a local file open for reading, and how messages name it."""
    if isinstance(source, Backup):
        if source.status != Backup.Status.DONE:
            raise BackupError(
                f"Backup {source.pk} is {source.get_status_display().lower()}: only a finished backup "
                "can be restored (manage.py listbackups)."
            )
        shown = f"Backup {source.pk} ({Path(source.name).name})"
        if source.place == Backup.Place.FOLDER:
            with backup_open(source) as file:
                yield file, shown
            return
        with _downloaded(source) as file:
            yield file, shown
        return
    path = Path(source)
    if not path.is_file():
        raise BackupError(f"{path} is not a file. Give the path of a backup (manage.py listbackups).")
    with path.open("rb") as file:
        yield file, str(path)


@contextmanager
def _downloaded(backup: Backup) -> Iterator[BinaryIO]:
    """A backup's file fetched from the backup storage into an unnamed temporary file (a ZIP is
    read by seeking)."""
    with _unnamed_file() as file:
        with backup_open(backup) as stored:
            shutil.copyfileobj(stored, file, 1024 * 1024)
        file.seek(0)
        yield file


def _gone(backup: Backup) -> str:
    return (
        f"The file of backup {backup.pk} ({backup.name}) is gone: it was moved or deleted outside "
        "Prompt Optimizer. Choose another backup (manage.py listbackups)."
    )


# What zipfile raises, beyond BadZipFile, for bytes changed inside a member or its header: the
# compressed data no longer inflates, or names a compression method or flag that does not exist.
DAMAGED_ZIP = (zlib.error, NotImplementedError, RuntimeError, ValueError)


def _verify_archive(archive: zipfile.ZipFile, path: str) -> Manifest:
    names = archive.namelist()
    expected = {MANIFEST, *(_member_name(label) for label in MODELS)}
    if MANIFEST not in names:
        raise BackupError(f"{path} is not a backup of this site: it has no {MANIFEST}.")
    strangers = sorted(set(names) - expected)
    if strangers or len(names) != len(set(names)):
        raise BackupError(
            f"{path} holds {strangers[0] if strangers else 'a member twice'!r}, which no backup of this "
            "site holds: it was changed or is not ours. Nothing was restored."
        )
    total = 0
    for info in archive.infolist():
        if stat.S_ISLNK(info.external_attr >> 16):
            raise BackupError(f"{path}: {info.filename} is a symbolic link. Nothing was restored.")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > MAX_MEMBER_BYTES or ratio > MAX_RATIO:
            raise BackupError(
                f"{path}: {info.filename} would unpack to {info.file_size:,} bytes ({ratio:.0f}x its "
                "packed size): refused as a possible zip bomb. Nothing was restored."
            )
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise BackupError(f"{path} would unpack to {total:,} bytes: refused. Nothing was restored.")
    if archive.getinfo(MANIFEST).file_size > MAX_MANIFEST_BYTES:
        raise BackupError(f"{path}: its manifest is too large to be ours. Nothing was restored.")
    try:
        data = json.loads(archive.read(MANIFEST))
    except (ValueError, zipfile.BadZipFile, OSError, EOFError, *DAMAGED_ZIP) as exc:
        raise BackupError(f"{path}: its manifest cannot be read ({exc}). Nothing was restored.") from None
    members = _manifest_check(data, path)
    if set(names) != expected:
        raise BackupError(f"{path}: the manifest does not list the models this version backs up.")
    for label, member in members.items():
        digest, size = hashlib.sha256(), 0
        try:
            with archive.open(_member_name(label)) as stream:
                for block in iter(lambda stream=stream: stream.read(1024 * 1024), b""):
                    digest.update(block)
                    size += len(block)
        except (zipfile.BadZipFile, OSError, EOFError, *DAMAGED_ZIP) as exc:
            raise BackupError(f"{path}: {label} cannot be read ({exc}): the file is damaged.") from None
        _member_check(path, label, member, digest.hexdigest(), size)
    return Manifest(data)


def _manifest_check(data, path: str) -> dict:
    """The members of a manifest that is ours, at this installation's migration state."""
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise BackupError(f"{path} is not a backup of this site (its manifest is not ours).")
    if data.get("format") != FORMAT_VERSION:
        raise BackupError(
            f"{path} is in backup format {data.get('format')!r}; this version reads format "
            f"{FORMAT_VERSION}. Restore it with the version that made it ({data.get('app_version')})."
        )
    members = data.get("members")
    if not isinstance(members, dict) or set(members) != set(MODELS):
        raise BackupError(f"{path}: the manifest does not list the models this version backs up.")
    shapes = {"rows": int, "bytes": int, "sha256": str}
    if not all(
        isinstance(member, dict) and all(type(member.get(key)) is kind for key, kind in shapes.items())
        for member in members.values()
    ) or not isinstance(data.get("created_at"), str):
        raise BackupError(
            f"{path}: its manifest is not one this site writes (it was changed). Nothing was restored."
        )
    here = migration_state()
    if data.get("migrations") != here:
        theirs = data.get("migrations") if isinstance(data.get("migrations"), dict) else {}
        app = next(app for app in (*APPS, *sorted(map(str, theirs))) if theirs.get(app) != here.get(app))
        raise BackupError(
            f"{path} was made at another migration state of {app!r} (by version "
            f"{data.get('app_version')}). Restore it with that version, or bring both to the same "
            "migrations (manage.py migrate) first. Nothing was restored."
        )
    return members


def _member_check(path: str, label: str, member, digest: str, size: int) -> None:
    expected = member.get("sha256") if isinstance(member, dict) else None
    if digest != expected or size != member.get("bytes"):
        raise BackupError(
            f"{path}: {label} does not match its checksum: the file is damaged or was changed. "
            "Nothing was restored."
        )


# --- JSON Lines backups: the members one after the other, then {"manifest": ...} -----------------


def _is_lines(file: BinaryIO) -> bool:
    """Whether ``file`` is a JSON Lines backup (a ZIP starts with "PK")."""
    file.seek(0)
    first = file.read(1)
    file.seek(0)
    return first == b"{"


def _row_model(line: bytes) -> str | None:
    """The model a row of ours names, from the start of its line (our writer puts it first)."""
    prefix = b'{"model": "'
    end = line.find(b'"', len(prefix))
    return line[len(prefix) : end].decode("ascii", "replace") if line.startswith(prefix) and end > 0 else None


def _lines(file: BinaryIO, path: str) -> Iterator[bytes]:
    """The lines of a JSON Lines backup, each refused past MAX_LINE_BYTES (a line is read whole)."""
    file.seek(0)
    total = 0
    while line := file.readline(MAX_LINE_BYTES + 1):
        total += len(line)
        if len(line) > MAX_LINE_BYTES or total > MAX_TOTAL_BYTES:
            raise BackupError(
                f"{path} has a line or a size no backup of ours has: refused. Nothing was restored."
            )
        yield line


def _verify_lines(file: BinaryIO, path: str) -> Manifest:
    hashes = {label: [hashlib.sha256(), 0] for label in MODELS}
    reached, manifest_line = 0, None
    for line in _lines(file, path):
        if manifest_line is not None:
            raise BackupError(
                f"{path}: there is more after its manifest: it was changed. Nothing was restored."
            )
        if line.startswith(b'{"manifest": '):
            manifest_line = line
            continue
        label = _row_model(line)
        if label not in hashes or MODELS.index(label) < reached:
            raise BackupError(
                f"{path} holds a line that no backup of this site holds where it is "
                f"({(label or line[:40].decode(errors='replace'))!r}): it was changed or is not ours. "
                "Nothing was restored."
            )
        reached = MODELS.index(label)
        hashes[label][0].update(line)
        hashes[label][1] += len(line)
    if manifest_line is None or len(manifest_line) > MAX_MANIFEST_BYTES:
        raise BackupError(
            f"{path} is not a backup of this site, or was cut short: it does not end with its manifest. "
            "Nothing was restored."
        )
    try:
        data = json.loads(manifest_line)["manifest"]
    except (ValueError, KeyError) as exc:
        raise BackupError(f"{path}: its manifest cannot be read ({exc}). Nothing was restored.") from None
    members = _manifest_check(data, path)
    for label, member in members.items():
        _member_check(path, label, member, hashes[label][0].hexdigest(), hashes[label][1])
    return Manifest(data)


def _load_lines(file: BinaryIO) -> None:
    """A verified JSON Lines backup's rows, model after model, in the order they were written."""
    rows = (line for line in _lines(file, "the backup") if not line.startswith(b'{"manifest": '))
    for label, lines in itertools.groupby(rows, key=_row_model):
        _load(label, (line.decode() for line in lines))


# --- Restoring ------------------------------------------------------------------------------------


def restore_plan(source: Backup | Path | str) -> RestorePlan:
    """What restoring ``source`` (a ``Backup`` record or a file) would do, once it is verified."""
    with _readable(source) as (file, shown):
        return _plan(file, shown)


def _plan(file: BinaryIO, shown: str) -> RestorePlan:
    manifest = _verify_file(file, shown)
    current = {label: _model(label)._default_manager.count() for label in MODELS}
    return RestorePlan(manifest=manifest, current=current)


# What loading a row that passed the checks can still raise: a row made by hand or by a changed
# program (an unknown model or field, a missing column, a broken link).
UNFIT_ROW = (DeserializationError, DatabaseError, ValueError, TypeError, AttributeError, LookupError)


def restore(
    source: Backup | Path | str, *, user=None, safety: bool = True
) -> tuple[RestorePlan, Backup | None]:
    """Verify ``source`` (a ``Backup`` record or a file), take a safety backup of the data now
    (unless ``safety`` is False), then replace every row of the backed-up models with the
    backup's, in one transaction."""
    with _readable(source) as (file, shown):
        plan = _plan(file, shown)
        before = None
        if safety:
            note = f"before restoring {shown if isinstance(source, Backup) else Path(source).name}"
            before = backup_create(trigger=Backup.Trigger.SAFETY, user=user, note=note)
        try:
            with transaction.atomic():
                _empty()
                if _is_lines(file):
                    _load_lines(file)
                else:
                    with zipfile.ZipFile(file) as archive:
                        for label in MODELS:
                            with archive.open(_member_name(label)) as member:
                                _load(label, _member_lines(member, label))
                _dangling_links_clear()
                _sequences_reset()
        except UNFIT_ROW as exc:
            # Its checksums match what it says, but a row does not fit this installation (made by hand,
            # or by a changed program): the transaction is rolled back, nothing is replaced.
            raise BackupError(
                f"{shown} passed its checks but a row of it cannot be restored here ({type(exc).__name__}: "
                f"{str(exc)[:300]}). Nothing was restored."
            ) from None
        transaction.on_commit(_caches_forget)
    return plan, before


def _empty() -> None:
    """Every row the restore replaces, the users' group and permission links with them."""
    User, Group = get_user_model(), _model("auth.group")
    for through in (User.groups.through, User.user_permissions.through, Group.permissions.through):
        through.objects.all()._raw_delete(connection.alias)
    for label in reversed((*MODELS, *TRANSIENT)):
        _model(label)._default_manager.all()._raw_delete(connection.alias)


def _dangling_links_clear() -> None:
    """Rows kept here that named a user the backup does not have: the admin's log of their actions
    goes, a backup record keeps no author."""
    from django.contrib.admin.models import LogEntry

    users = get_user_model()._default_manager.values("pk")
    LogEntry.objects.exclude(user__in=users).delete()
    Backup.objects.exclude(created_by=None).exclude(created_by__in=users).update(created_by=None)


@contextmanager
def _dates_as_given(model) -> Iterator[None]:
    """bulk_create stamps auto_now(_add) fields with the present moment: a restore keeps the
    backup's dates instead."""
    stamped = [
        f
        for f in model._meta.concrete_fields
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
    ]
    flags = [(f.auto_now, f.auto_now_add) for f in stamped]
    for f in stamped:
        f.auto_now = f.auto_now_add = False
    try:
        yield
    finally:
        for f, (auto_now, auto_now_add) in zip(stamped, flags, strict=True):
            f.auto_now, f.auto_now_add = auto_now, auto_now_add


def _member_lines(member: BinaryIO, label: str) -> Iterator[str]:
    """A ZIP member's rows, each refused past MAX_LINE_BYTES as in a JSON Lines backup (Django's
    deserializer reads a line whole: one line of gigabytes would exhaust the memory)."""
    while line := member.readline(MAX_LINE_BYTES + 1):
        if len(line) > MAX_LINE_BYTES:
            raise BackupError(
                f"A row of {label} is over {MAX_LINE_BYTES:,} bytes: not ours. Nothing was restored."
            )
        yield line.decode("utf-8")


def _load(label: str, stream) -> None:
    model = _model(label)
    batch = []
    links = []
    with _dates_as_given(model):
        for obj in serializers.deserialize("jsonl", stream, handle_forward_references=False):
            if obj.object._meta.label_lower != label:
                raise BackupError(
                    f"The rows of {label} hold a row of {obj.object._meta.label_lower}: the file was "
                    "changed. Nothing was restored."
                )
            if obj.m2m_data:
                links.append((obj.object, obj.m2m_data))
            batch.append(obj.object)
            if len(batch) >= BATCH:
                model._default_manager.bulk_create(batch)
                batch = []
        if batch:
            model._default_manager.bulk_create(batch)
    for instance, m2m in links:
        for name, values in m2m.items():
            getattr(instance, name).set(values)


def _sequences_reset() -> None:
    """After rows were inserted with their own ids, PostgreSQL's sequences still start at 1: the next
    insert would collide (loaddata's classic failure). SQLite needs nothing."""
    models = [_model(label) for label in MODELS]
    statements = connection.ops.sequence_reset_sql(no_style(), models)
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def _caches_forget() -> None:
    """Derived data cached from what was replaced: usage days, results and analyses, the snapshot
    of prices and budgets (the whole cache goes: every entry in it was worked out from the data).
    The data is restored by then: a cache that is away is reported, not raised."""
    from django.core.cache import caches

    from costs import snapshot
    from costs.usage_days import forget_usage_days

    snapshot.forget()
    for forget in (forget_usage_days, caches["default"].clear):
        try:
            forget()
        except Exception as exc:  # noqa: BLE001 - see the docstring
            logger.warning("after the restore, the cache could not be cleared (%s)", type(exc).__name__)


class _Discard:
    """A binary sink: a content digest only hashes what it is written."""

    def write(self, data: bytes) -> int:
        return len(data)


def content_digests() -> dict[str, str]:
    """A SHA-256 of each backed-up model's rows as this installation reads them (canonical JSON, in
    key order, a row at a time): equal digests mean equal content, whichever database engine holds
    it."""
    digests = {}
    for label in MODELS:
        writer = _HashingWriter(_Discard())
        _JsonLines().serialize(
            _queryset(label).iterator(chunk_size=CHUNK),
            stream=writer,
            use_natural_foreign_keys=True,
            cls=_Encoder,
            sort_keys=True,
        )
        digests[label] = writer.sha256.hexdigest()
    return digests


# --- Listing and pruning --------------------------------------------------------------------------


def backups_listed() -> Iterator[Backup]:
    return Backup.objects.select_related("created_by").all()


def backup_open(backup: Backup) -> BinaryIO:
    """The file of a finished backup as it is stored (encrypted or not), opened for reading: for a
    download streamed as is. BackupError when it is not finished or its file is gone."""
    if backup.status != Backup.Status.DONE:
        raise BackupError(f"Backup {backup.pk} is {backup.get_status_display().lower()}: it has no file.")
    if backup.place == Backup.Place.FOLDER:
        try:
            return Path(backup.name).open("rb")
        except OSError:
            raise BackupError(_gone(backup)) from None
    storage = _storage_of(backup)
    try:
        return storage.open(backup.name, "rb")
    except FileNotFoundError:
        raise BackupError(_gone(backup)) from None
    except Exception as exc:  # noqa: BLE001 - whatever the storage's client raises
        raise BackupError(
            f"Backup {backup.pk} ({backup.name}) could not be read from the backup storage "
            f"({type(exc).__name__}: {exc}). Check that it is reachable."
        ) from None


def backup_import(upload: BinaryIO, *, filename: str, user=None) -> Backup:
    """Keep an uploaded backup file: under a new name of ours in the backup folder or storage (the
    uploader's name is only shown, never a path), owner-only, verified (decrypted to check it when
    it is encrypted), recorded as an upload. BackupError with the reason when it cannot be restored
    here: then no file and no record are left."""
    started = time.perf_counter()
    now = timezone.now()
    shown = Path(str(filename).replace("\\", "/")).name[:100] or "the uploaded file"
    folder = backup_dir()
    partial = folder / f".upload-{now:%Y%m%d-%H%M%S-%f}.{os.getpid()}.partial"
    target, kept = None, None
    try:
        _copy_owner_only(upload, partial)
        with partial.open("rb") as stored, _decrypted(stored, shown) as plain:
            manifest = _verify_file(plain, shown)
            encrypted, kind = plain is not stored, "jsonl" if _is_lines(plain) else "zip"
        target = folder / f"upload-{now:%Y%m%d-%H%M%S-%f}.{kind}{'.enc' if encrypted else ''}"
        os.replace(partial, target)
        size, sha256 = target.stat().st_size, _file_sha256(target)
        kept = _keep(target)
        return Backup.objects.create(
            name=kept[0],
            place=kept[1],
            encrypted=encrypted,
            trigger=Backup.Trigger.UPLOAD,
            status=Backup.Status.DONE,
            created_by=user,
            note=f"uploaded as {shown}"[:200],
            size=size,
            sha256=sha256,
            counts=manifest.counts,
            finished_at=timezone.now(),
            duration_ms=round((time.perf_counter() - started) * 1000),
        )
    except BaseException:
        partial.unlink(missing_ok=True)
        if target is not None:
            target.unlink(missing_ok=True)
        if kept is not None:
            _discard(*kept)
        raise


def _copy_owner_only(stream: BinaryIO, path: Path) -> None:
    """``stream`` into a new owner-only file, block by block; refused past MAX_TOTAL_BYTES."""
    size = 0
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        for block in iter(lambda: stream.read(1024 * 1024), b""):
            size += len(block)
            if size > MAX_TOTAL_BYTES:
                raise BackupError(f"The file is larger than {MAX_TOTAL_BYTES:,} bytes: not a backup of ours.")
            file.write(block)


def prune_plan(*, keep_days: int, keep_last: int, now=None) -> list[Backup]:
    """The backups that rotation deletes: finished ones older than ``keep_days`` beyond the newest
    ``keep_last``, and failed records older than ``keep_days``. The newest good backup is never
    among them, whatever the numbers."""
    if keep_days < 0 or keep_last < 1:
        raise BackupError("Keep at least 0 days and at least the last backup (--keep-last 1 or more).")
    cutoff = (now or timezone.now()) - timedelta(days=keep_days)
    done = list(Backup.objects.filter(status=Backup.Status.DONE).order_by("-started_at", "-id"))
    old_done = [backup for backup in done[keep_last:] if backup.started_at < cutoff]
    old_failed = Backup.objects.filter(status=Backup.Status.FAILED, started_at__lt=cutoff)
    return [*old_done, *old_failed]


def prune(*, keep_days: int, keep_last: int) -> list[Backup]:
    """Fail the backups whose process was killed, then delete what ``prune_plan`` names: the file
    (in the backup folder or storage), then its record.
    A file the storage fails to delete keeps its record, for the next rotation to try again.
    Returns what was deleted."""
    _stopped_fail()
    _leftovers_clear()
    deleted = []
    for backup in prune_plan(keep_days=keep_days, keep_last=keep_last):
        if backup.status == Backup.Status.DONE:
            try:
                _discard(backup.name, backup.place)
            except Exception as exc:  # noqa: BLE001 - see the docstring
                logger.warning("backup %s could not be deleted (%s): kept", backup.pk, type(exc).__name__)
                continue
        pk = backup.pk
        backup.delete()
        backup.pk = pk  # the caller is told which
        deleted.append(backup)
    return deleted


def _stopped_fail() -> int:
    """Backups still "running" long after any backup ends: the process making them was killed (it
    could not say so). They are failed, so no list shows them running for ever and rotation can
    delete them in their turn."""
    return Backup.objects.filter(
        status=Backup.Status.RUNNING, started_at__lt=timezone.now() - RUNNING_AT_MOST
    ).update(
        status=Backup.Status.FAILED,
        error="The process making this backup stopped before it was done (killed or the machine "
        "restarted); its file was never completed.",
        finished_at=timezone.now(),
    )


def backup_scheduled() -> Backup:
    """The daily schedule's work: a backup, then the rotation (BACKUP_KEEP_DAYS, BACKUP_KEEP_LAST)."""
    backup = backup_create(trigger=Backup.Trigger.SCHEDULE)
    prune(keep_days=settings.BACKUP_KEEP_DAYS, keep_last=settings.BACKUP_KEEP_LAST)
    return backup
