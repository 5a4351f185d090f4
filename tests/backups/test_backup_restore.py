"""Backups and restore on the database under test (SQLite or PostgreSQL): round trips with equal
content, every damaged or foreign file refused with the database unchanged, owner-only files,
sequences after a restore, and the commands' exit codes."""

import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import zipfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.core.management import CommandError, call_command
from django.core.management.color import no_style
from django.db import connection
from django.utils import timezone

from backups import services
from backups.models import Backup
from costs.models import Budget, BudgetAlert, ModelPrice, UsageRecord
from optimizer import pipeline, runqueue
from optimizer import services as optimizer_services
from optimizer.models import ModelChoice, OptimizationRun, Prompt, Provider
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
PROJECT = Path(__file__).resolve().parents[2]


def a_run(owner, text="Explain how tides work to a child.") -> OptimizationRun:
    run = optimizer_services.run_submit(
        owner=owner,
        text=text,
        run_settings=optimizer_services.run_settings_build(
            prompt_type="general", preset="auto", techniques=[], model="builtin", keep_spans=True
        ),
        enqueue=False,
    )
    pipeline.run_optimization(run_id=run.pk)
    return OptimizationRun.objects.get(pk=run.pk)


@pytest.fixture
def data(owner):
    """A little of everything a backup holds, with links between them."""
    editors = Group.objects.create(name="editors")
    editors.permissions.add(Permission.objects.get(codename="view_prompt"))
    owner.groups.add(editors)
    owner.user_permissions.add(Permission.objects.get(codename="change_prompt"))
    first = a_run(owner)
    child = a_run(owner, "Write a haiku about {season}.")
    OptimizationRun.objects.filter(pk=child.pk).update(parent=first)
    provider = Provider.objects.create(
        name="OpenAI", kind="openai", base_url="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY"
    )
    choice = ModelChoice.objects.create(provider=provider, model_id="gpt-5-mini", tier="balanced")
    ModelPrice.objects.create(
        model=choice, input=Decimal("0.25"), output=Decimal("2"),
        valid_from=timezone.now() - timedelta(days=1),
    )  # fmt: skip
    budget = Budget.objects.create(user=owner, period="monthly", limit=Decimal("5"))
    BudgetAlert.objects.create(
        budget=budget, period_start=timezone.now(), threshold=80, spent=Decimal(4), limit=Decimal(5)
    )
    UsageRecord.objects.create(
        user=owner, run=first, provider="OpenAI", model="gpt-5-mini", operation="design",
        input_tokens=1200, output_tokens=300, cost=Decimal("0.00123456"), latency_ms=900, status="ok",
    )  # fmt: skip
    return owner


def test_a_restore_brings_back_exactly_what_was_backed_up(data):
    before = services.content_digests()
    backup = services.backup_create(note="before the mess")
    assert backup.status == "done" and backup.counts["optimizer.optimizationrun"] == 2

    Prompt.objects.all().delete()  # runs and usage links go with them
    UserFactory(username="newcomer")
    Budget.objects.all().delete()
    assert services.content_digests() != before

    plan, safety = services.restore(backup.name)

    assert services.content_digests() == before
    assert plan.incoming["auth.user"] == 1 and safety.trigger == "safety" and safety.status == "done"
    restored = type(data).objects.get(pk=data.pk)
    assert restored.password == data.password  # the hash, as it was
    assert list(restored.groups.values_list("name", flat=True)) == ["editors"]
    assert list(restored.user_permissions.values_list("codename", flat=True)) == ["change_prompt"]
    assert OptimizationRun.objects.filter(parent__isnull=False).count() == 1


def test_after_a_restore_new_rows_get_new_ids(data):
    backup = services.backup_create()
    if connection.vendor == "postgresql":  # as on a new installation: the sequences back at 1
        # Only the backed-up tables': setval is not undone by the test's rollback.
        tables = {apps.get_model(label)._meta.db_table for label in services.MODELS}
        sequences = [seq for seq in connection.introspection.sequence_list() if seq["table"] in tables]
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_by_name_sql(no_style(), sequences):
                cursor.execute(sql)
    services.restore(backup.name, safety=False)

    # On PostgreSQL the sequences were reset: without it this insert collides with a restored id.
    run = a_run(data, "Summarize the meeting notes below.")
    assert run.pk > max(OptimizationRun.objects.exclude(pk=run.pk).values_list("pk", flat=True))


def test_a_backup_holds_no_secret_and_is_owner_only(data, settings, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-SECRETVALUE0123456789")
    backup = services.backup_create()

    mode = os.stat(backup.name).st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(os.stat(settings.BACKUP_DIR).st_mode) == 0o700
    with zipfile.ZipFile(backup.name) as archive:
        everything = b"".join(archive.read(name) for name in archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
    assert b"SECRETVALUE" not in everything and settings.SECRET_KEY.encode() not in everything
    assert b"OPENAI_API_KEY" in everything  # the variable's name only
    assert b"django_session" not in everything and "sessions.session" not in manifest["members"]
    assert manifest["kind"] == services.KIND and manifest["engine"] in ("sqlite", "postgresql")
    assert manifest["migrations"]["optimizer"]


def rewritten(source: str, target, *, change=None, extra=None, manifest=None) -> str:
    """A copy of a backup with one member changed, a member added or the manifest replaced."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as copy:
        for info in original.infolist():
            content = original.read(info.filename)
            if change and info.filename == change[0]:
                content = change[1](content)
            if manifest is not None and info.filename == "manifest.json":
                content = json.dumps(manifest(json.loads(content))).encode()
            copy.writestr(info, content)
        for name, content in (extra or {}).items():
            copy.writestr(name, content)
    return str(target)


def symlinked(source: str, target) -> str:
    path = rewritten(source, target)
    with zipfile.ZipFile(path, "a") as archive:
        link = zipfile.ZipInfo("link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    return path


def not_a_zip(source: str, target) -> str:
    target.write_bytes(b"hello, not a backup")
    return str(target)


def truncated(source: str, target) -> str:
    with open(source, "rb") as file:
        target.write_bytes(file.read()[:-400])
    return str(target)


def _member_bytes_set(path: str, name: str, at_local: int, at_central: int, value: bytes, data=False) -> None:
    """Overwrite bytes of a member in place: in its local header (``at_local``), its central
    directory entry (``at_central``), or, with ``data``, the start of its compressed data."""
    raw = bytearray(open(path, "rb").read())  # noqa: SIM115 - read whole, written back below
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    local = info.header_offset
    if data:
        start = local + 30 + int.from_bytes(raw[local + 26 : local + 28], "little")
        start += int.from_bytes(raw[local + 28 : local + 30], "little")
        raw[start : start + len(value)] = value
    else:
        raw[local + at_local : local + at_local + len(value)] = value
        central = raw.find(b"PK\x01\x02" + raw[local + 4 : local + 6])
        while raw[central + 46 : central + 46 + len(name)] != name.encode():
            central = raw.find(b"PK\x01\x02", central + 4)
        raw[central + at_central : central + at_central + len(value)] = value
    open(path, "wb").write(raw)  # noqa: SIM115


def garbled(source: str, target) -> str:
    """A member's compressed bytes overwritten (its checksum entry untouched): inflating fails."""
    path = rewritten(source, target)
    _member_bytes_set(path, "auth.user.jsonl", 0, 0, b"\xff" * 16, data=True)
    return path


def unknown_method(source: str, target) -> str:
    """A member whose compression method is one no ZIP reader knows (99)."""
    path = rewritten(source, target)
    _member_bytes_set(path, "auth.user.jsonl", 8, 10, (99).to_bytes(2, "little"))
    return path


def member_changed(change):
    """A copy whose manifest describes the users' member otherwise (``change`` of its entry)."""

    def make(source: str, target) -> str:
        def manifest(m):
            return m | {"members": m["members"] | {"auth.user": change(m["members"]["auth.user"])}}

        return rewritten(source, target, manifest=manifest)

    return make


def manifest_without(key: str):
    return lambda src, dst: rewritten(src, dst, manifest=lambda m: {k: v for k, v in m.items() if k != key})


DAMAGED = {
    "compressed data garbled": (garbled, "auth.user cannot be read"),
    "an unknown compression method": (unknown_method, "auth.user cannot be read"),
    "a manifest without a member's row count": (
        member_changed(lambda entry: {key: value for key, value in entry.items() if key != "rows"}),
        "manifest is not one this site writes",
    ),
    "a member's row count in words": (
        member_changed(lambda entry: entry | {"rows": str(entry["rows"])}),
        "manifest is not one this site writes",
    ),
    "a manifest without its date": (manifest_without("created_at"), "manifest is not one this site writes"),
    "an app this version does not have": (
        lambda src, dst: rewritten(
            src, dst, manifest=lambda m: m | {"migrations": m["migrations"] | {"newapp": ["0001_initial"]}}
        ),
        "another migration state of 'newapp'",
    ),
    "migrations as a list": (
        lambda src, dst: rewritten(src, dst, manifest=lambda m: m | {"migrations": ["0001_initial"]}),
        "another migration state of 'auth'",
    ),
    "not a zip": (not_a_zip, "not a ZIP file"),
    "truncated": (truncated, "not a ZIP file"),
    "a member changed": (
        lambda src, dst: rewritten(
            src, dst, change=("optimizer.prompt.jsonl", lambda b: b.replace(b"tides", b"TIDES"))
        ),
        "does not match its checksum",
    ),
    "a path out of the folder": (
        lambda src, dst: rewritten(src, dst, extra={"../../evil.sh": b"rm -rf /"}),
        "which no backup of this site holds",
    ),
    "a symbolic link": (symlinked, "which no backup of this site holds"),
    "a zip bomb": (
        lambda src, dst: rewritten(
            src, dst, change=("costs.usagerecord.jsonl", lambda b: b + b" " * 50_000_000)
        ),
        "possible zip bomb",
    ),
    "not ours": (
        lambda src, dst: rewritten(src, dst, manifest=lambda m: m | {"kind": "someone-else"}),
        "is not a backup of this site",
    ),
    "another migration state": (
        lambda src, dst: rewritten(
            src, dst, manifest=lambda m: m | {"migrations": m["migrations"] | {"optimizer": ["0001_initial"]}}
        ),
        "another migration state of 'optimizer'",
    ),
    "a newer format": (
        lambda src, dst: rewritten(src, dst, manifest=lambda m: m | {"format": 99}),
        "backup format 99",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_a_damaged_or_foreign_file_is_refused_with_the_database_unchanged(data, tmp_path, damage):
    backup = services.backup_create()
    make, message = DAMAGED[damage]
    path = make(backup.name, tmp_path / "damaged.zip")
    before = services.content_digests()
    backups_before = Backup.objects.count()

    with pytest.raises(services.BackupError, match=message):
        services.restore(path)

    assert services.content_digests() == before
    assert Backup.objects.count() == backups_before  # refused before the safety backup too


def rows_changed(source: str, target, label: str, change) -> str:
    """A copy whose ``label`` member is changed and the manifest made to agree with it: it passes
    every check, and only loading its rows can tell."""
    name = f"{label}.jsonl"
    with zipfile.ZipFile(source) as original:
        content = change(original.read(name))
    member = {
        "rows": content.count(b"\n"),
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    return rewritten(
        source, target, change=(name, lambda _: content),
        manifest=lambda m: m | {"members": m["members"] | {label: member}},
    )  # fmt: skip


UNFIT = {
    "a row of a model that does not exist": (
        "auth.group",
        lambda b: b + b'{"model": "nosuch.model", "pk": 1, "fields": {}}\n',
        "cannot be restored here",
    ),
    "a row of another model among the groups": (
        "auth.group",
        lambda b: (
            b + b'{"model": "optimizer.provider", "pk": 99, "fields": {"name": "x", "kind": "openai"}}\n'
        ),
        "hold a row of optimizer.provider",
    ),
    "a prompt without its date": (
        "optimizer.prompt",
        lambda b: b.replace(b'"created_at": ', b'"created": ', 1),
        "cannot be restored here",
    ),
}


@pytest.mark.parametrize("unfit", list(UNFIT))
def test_a_file_that_passes_its_checks_but_holds_rows_that_do_not_fit_changes_nothing(data, tmp_path, unfit):
    """Its checksums agree with its manifest (made by hand, or by a changed program): verify
    passes, and the restore is refused with a message, the transaction rolled back."""
    label, change, message = UNFIT[unfit]
    path = rows_changed(services.backup_create().name, tmp_path / "unfit.zip", label, change)
    services.verify(path)
    before = services.content_digests()

    with pytest.raises(services.BackupError, match=message):
        services.restore(path, safety=False)

    assert services.content_digests() == before


def test_a_row_longer_than_the_limit_is_refused_in_a_zip_as_in_json_lines(data, tmp_path, monkeypatch):
    backup = services.backup_create()
    monkeypatch.setattr(services, "MAX_LINE_BYTES", 300)  # runs carry their analysis: KBs a row
    before = services.content_digests()

    with pytest.raises(services.BackupError, match="over 300 bytes"):
        services.restore(backup.name, safety=False)

    assert services.content_digests() == before


def test_a_failed_backup_leaves_no_file_that_looks_good(data, settings, tmp_path):
    target = tmp_path / "nowhere" / "backup.zip"  # the folder does not exist

    with pytest.raises(services.BackupError, match="Could not write"):
        services.backup_create(output=target)

    assert not target.exists() and not list(tmp_path.rglob("*.partial"))
    assert Backup.objects.get().status == "failed"


def test_a_backup_reports_its_progress_model_by_model_while_its_record_is_running(data):
    seen = []

    def progress(record, label, done, total):
        seen.append((Backup.objects.get(pk=record.pk).status, label, done, total))

    backup = services.backup_create(progress=progress)

    assert [label for _, label, _, _ in seen] == list(services.MODELS)
    assert [(done, total) for _, _, done, total in seen] == [
        (index, len(services.MODELS)) for index in range(1, len(services.MODELS) + 1)
    ]
    assert {status for status, _, _, _ in seen} == {"running"}
    assert backup.status == "done"


def test_the_commands_say_what_they_did_and_exit_with_meaning(data, tmp_path, capsys):
    call_command("backup", "--note", "by hand")
    out = capsys.readouterr().out
    backup = Backup.objects.get()
    assert f"Backup written to {backup.name}" in out and f"sha256 {backup.sha256}" in out

    call_command("listbackups")
    assert f"{backup.pk:>5}" in capsys.readouterr().out

    call_command("restore", str(backup.pk), "--dry-run")
    assert "Dry run: nothing was changed." in capsys.readouterr().out

    with pytest.raises(CommandError, match="confirm with --yes") as refused:
        call_command("restore", backup.name)  # no terminal to ask on
    assert refused.value.returncode == 1

    with pytest.raises(CommandError) as missing:
        call_command("restore", str(tmp_path / "absent.zip"))
    assert missing.value.returncode == 2

    (tmp_path / "junk.zip").write_bytes(b"junk")
    with pytest.raises(CommandError, match="not a ZIP file") as junk:
        call_command("restore", str(tmp_path / "junk.zip"), "--yes")
    assert junk.value.returncode == 1

    call_command("restore", backup.name, "--yes")
    assert "Restored" in capsys.readouterr().out


DIGESTS = "import json; from backups.services import content_digests; print(json.dumps(content_digests()))"


@pytest.mark.skipif(
    "os.environ.get('DATABASE_URL', '').startswith('sqlite') or not os.environ.get('DATABASE_URL')"
)
def test_a_backup_crosses_between_sqlite_and_postgresql_with_equal_content(data, tmp_path):
    """Made on PostgreSQL, restored into a new SQLite installation, backed up there and restored
    here again: every model's content digest is the same at each step."""
    from tests.support import clean_env, manage

    here = services.content_digests()
    made_here = services.backup_create()
    env = clean_env(
        DATA_DIR=str(tmp_path / "sqlite-site"), SECRET_KEY="insecure-test-only-key-never-used-outside-tests"
    )
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    for command in (["migrate", "-v0"], ["createcachetable"], ["restore", made_here.name, "--yes"]):
        done = manage(*command, env=env)
        assert done.returncode == 0, done.stderr
    there = manage("shell", "-c", DIGESTS, env=env)
    assert json.loads(there.stdout.strip().splitlines()[-1]) == here

    back = tmp_path / "from-sqlite.zip"
    assert manage("backup", "--output", str(back), env=env).returncode == 0
    Prompt.objects.all().delete()
    services.restore(back, safety=False)
    assert services.content_digests() == here


def test_outside_a_transaction_sqlite_is_read_from_a_copy_that_is_then_deleted(tmp_path):
    """As the command and the schedule run it, on a site of its own: no transaction holds SQLite's
    write lock during the backup; it reads a copy made by SQLite's online backup, deleted after."""
    from tests.support import clean_env, manage

    folder = tmp_path / "site-backups"
    env = clean_env(DATA_DIR=str(tmp_path / "site"), BACKUP_DIR=str(folder))
    for command in (["migrate", "-v0"], ["createcachetable"], ["ensure_superuser"]):
        assert manage(*command, env=env).returncode == 0
    assert manage("optimize", "Explain tides to a child.", "--engine", "builtin", env=env).returncode == 0

    made = manage("backup", env=env)

    assert made.returncode == 0, made.stderr
    assert "optimizer.optimizationrun: 1" in made.stdout
    files = [path.name for path in folder.iterdir()]
    assert len(files) == 1 and files[0].startswith("backup-") and files[0].endswith(".zip"), files
    shown = manage("restore", str(folder / files[0]), "--dry-run", env=env)
    assert shown.returncode == 0 and "Dry run: nothing was changed." in shown.stdout, shown.stderr


def test_runs_caught_running_or_queued_come_back_as_they_were_and_none_is_left_stuck(data, tmp_path):
    """A backup taken while a run was in progress holds it as it was. After a restore no worker
    holds it any more: the sweep sees its worker gone and queues it again, and it finishes; a run
    that was queued runs as any queued run does."""
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that no longer runs: the worker the backup saw is dead
    running = a_run(data, "Summarize the attached notes for {team}.")
    queued = a_run(data, "List five names for {product}.")
    OptimizationRun.objects.filter(pk=running.pk).update(
        status="running", stage="design", worker=f"{socket.gethostname()}:{gone.pid}",
        heartbeat_at=timezone.now(), attempts=1, finished_at=None,
    )  # fmt: skip
    OptimizationRun.objects.filter(pk=queued.pk).update(status="queued", stage="", finished_at=None)
    caught = {pk: OptimizationRun.objects.values().get(pk=pk) for pk in (running.pk, queued.pk)}
    backup = services.backup_create()
    OptimizationRun.objects.filter(pk__in=caught).update(status="done")  # what happened since

    services.restore(backup, safety=False)

    assert {pk: OptimizationRun.objects.values().get(pk=pk) for pk in caught} == caught
    report = runqueue.sweep()
    assert report.requeued == [running.pk]
    for pk in caught:
        pipeline.run_optimization(run_id=pk)
    assert set(OptimizationRun.objects.filter(pk__in=caught).values_list("status", flat=True)) == {"done"}


KILLED_MIDWAY = """
import os, signal, django
django.setup()
from backups import services
def progress(record, label, done, total):
    if done == 3:
        os.kill(os.getpid(), signal.SIGKILL)
services.backup_create(progress=progress)
"""


@pytest.mark.skipif(os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="the copy is SQLite's")
def test_sqlites_plain_copy_is_kept_beside_the_database_never_in_the_backup_folder(tmp_path):
    """A backup of SQLite reads a plain copy of the whole database (sessions included). Killed
    midway, it leaves that copy in DATA_DIR/backup-work, never in the backup folder (which may be
    a share meant for encrypted files only), and the next rotation deletes it."""
    away = ("DATABASE_URL", "REDIS_URL", "BACKUP_DIR")
    env = {key: value for key, value in os.environ.items() if key not in away}
    env |= {"DATA_DIR": str(tmp_path / "data"), "DJANGO_SETTINGS_MODULE": "config.settings"}
    python = [sys.executable, str(PROJECT / "manage.py")]
    subprocess.run([*python, "migrate", "-v0"], env=env, check=True, cwd=PROJECT)
    subprocess.run([*python, "createcachetable"], env=env, check=True, cwd=PROJECT)

    killed = subprocess.run([sys.executable, "-c", KILLED_MIDWAY], env=env, cwd=PROJECT, check=False)

    assert killed.returncode == -signal.SIGKILL
    backups, work = tmp_path / "data" / "backups", tmp_path / "data" / "backup-work"
    assert not [p.name for p in backups.iterdir() if ".snapshot-" in p.name]
    assert [p.name for p in work.iterdir() if p.name.startswith(".snapshot-")]
    prune = (
        "import django; django.setup(); from backups import services as s; s.prune(keep_days=9, keep_last=9)"
    )
    subprocess.run([sys.executable, "-c", prune], env=env, check=True, cwd=PROJECT)
    assert not [p.name for p in work.iterdir() if p.name.startswith(".snapshot-")]


def test_an_output_given_as_a_relative_path_is_recorded_with_its_full_path(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    call_command("backup", "--output", "by-hand.zip")

    backup = Backup.objects.get()
    assert backup.name == str(tmp_path / "by-hand.zip") and services.verify(backup)


def test_restore_refuses_a_number_it_cannot_read_with_exit_2(data):
    with pytest.raises(CommandError) as refused:
        call_command("restore", "²", "--yes")  # a digit to str.isdigit(), not to int()
    assert refused.value.returncode == 2
