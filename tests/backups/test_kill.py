"""A restore killed with SIGKILL in the middle of its transaction leaves the database exactly as it
was, on SQLite and on PostgreSQL.

`manage.py restore FILE --yes` runs in a process of its own over the test database. It is frozen
(SIGSTOP) again and again until, frozen, it is provably inside the restore's transaction and past
emptying the tables: on PostgreSQL its session has an open transaction that holds the lock of the
prompts' DELETE and is inserting usage records; on SQLite the write-ahead log ends with pages that
no commit frame follows (a transaction in progress, big enough to spill). Frozen, it cannot commit
between that look and the SIGKILL, so the kill lands mid-transaction every time, without a sleep.

And a backup whose process was killed does not stay "running" for ever.
"""

import os
import signal
import struct
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from backups import services
from backups.models import Backup
from costs.models import UsageRecord
from optimizer.models import OptimizationRun, Prompt
from tests.backups.test_backup_restore import data  # noqa: F401 - a fixture
from tests.optimizer.processes import poll_until
from tests.support import PROJECT_ROOT, clean_env, manage

ROWS = 10_000  # enough for the restore's pages to spill into SQLite's WAL before it commits
CATCH_TIMEOUT_S = 120
# More pages than any small transaction's commit writes (a Backup row, a cache entry): only the
# restore's own transaction has this many in the log before its commit frame.
SPILLED_PAGES = 64


@pytest.fixture
def big_data(data, transactional_db):  # noqa: F811 - the fixture imported above
    run = OptimizationRun.objects.first()
    common = {"user": data, "run": run, "provider": "OpenAI", "model": "gpt-5-mini", "status": "ok"}
    UsageRecord.objects.bulk_create(
        UsageRecord(**common, operation=f"design-{n % 7}", input_tokens=1000 + n, cost=Decimal("0.00012345"))
        for n in range(ROWS)
    )
    return data


def wal_in_transaction(database: str) -> bool:
    """Whether SQLite's write-ahead log ends with many frames of the current generation that no
    commit frame follows: pages a writer has spilled from a big transaction it has not committed."""
    wal = Path(f"{database}-wal")
    try:
        file = wal.open("rb")
    except FileNotFoundError:
        return False
    with file:
        header = file.read(32)
        if len(header) < 32:
            return False
        page_size, salts = struct.unpack(">I", header[8:12])[0], header[16:24]
        uncommitted, offset = 0, 32
        while True:
            file.seek(offset)
            frame = file.read(24)
            if len(frame) < 24 or frame[8:16] != salts:
                return uncommitted >= SPILLED_PAGES
            commit = struct.unpack(">I", frame[4:8])[0]
            uncommitted = 0 if commit else uncommitted + 1
            offset += 24 + page_size


def postgresql_in_transaction(pid_seen: list[int]) -> bool:
    """Whether a session of another process has a transaction open that deleted the prompts (it
    holds their table's lock) and is inserting the usage records."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.pid FROM pg_stat_activity a
            JOIN pg_locks l ON l.pid = a.pid AND l.mode = 'RowExclusiveLock' AND l.granted
            JOIN pg_class c ON c.oid = l.relation AND c.relname = %s
            WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
              AND a.backend_xid IS NOT NULL AND a.query LIKE %s
            """,
            [Prompt._meta.db_table, f'INSERT INTO "{UsageRecord._meta.db_table}"%'],
        )
        found = [row[0] for row in cursor.fetchall()]
    pid_seen[:] = found
    return bool(found)


def session_gone(pids: list[int]) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids])
        return cursor.fetchone()[0] == 0


def stopped(pid: int) -> bool:
    """Whether the kernel has stopped the process (SIGSTOP takes effect asynchronously)."""
    state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    return state in ("T", "t")


def frozen_inside(process: subprocess.Popen, inside) -> bool:
    """Freeze the process; keep it frozen when ``inside()`` says it is mid-transaction, else let it
    go on a moment. Raises when it ended before it could be caught."""
    if process.poll() is not None:
        raise AssertionError(
            f"the restore ended (exit {process.returncode}) before it was caught mid-transaction"
        )
    os.kill(process.pid, signal.SIGSTOP)
    poll_until(lambda: stopped(process.pid), timeout=10, failure=lambda: "the restore did not stop")
    if inside():
        return True
    os.kill(process.pid, signal.SIGCONT)
    time.sleep(0.02)
    return False


@pytest.mark.usefixtures("big_data")
def test_a_restore_killed_mid_transaction_leaves_the_database_as_it_was(
    database_url_for_subprocess, settings, tmp_path
):
    env = clean_env(
        DATABASE_URL=database_url_for_subprocess,
        SECRET_KEY=settings.SECRET_KEY,
        DATA_DIR=str(tmp_path / "site"),
        BACKUP_DIR=str(tmp_path / "backups"),
    )
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    backup = tmp_path / "before.zip"
    made = manage("backup", "--output", str(backup), env=env)
    assert made.returncode == 0, made.stderr
    wanted = services.content_digests()
    Prompt.objects.filter(pk=Prompt.objects.order_by("pk").first().pk).delete()
    UsageRecord.objects.filter(pk__in=UsageRecord.objects.order_by("pk").values("pk")[:100]).delete()
    before = services.content_digests()
    assert before != wanted

    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "manage.py"), "restore", str(backup), "--yes"],
        env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    sessions: list[int] = []
    if connection.vendor == "postgresql":
        inside = lambda: postgresql_in_transaction(sessions)  # noqa: E731
    else:
        inside = lambda: wal_in_transaction(connection.settings_dict["NAME"])  # noqa: E731
    try:
        poll_until(
            lambda: frozen_inside(process, inside),
            timeout=CATCH_TIMEOUT_S,
            failure=lambda: "the restore was never seen inside its transaction",
        )
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        output = process.communicate(timeout=30)[0].decode(errors="replace")
    assert process.returncode == -signal.SIGKILL, output
    if sessions:  # its server session ends (rolling back) once it sees the client gone
        poll_until(lambda: session_gone(sessions), timeout=30, failure=lambda: "the session stayed")

    assert services.content_digests() == before
    assert "Restored" not in output and "Safety backup" not in output
    # And the database is sound: the same restore, not killed, brings the backup back.
    done = manage("restore", str(backup), "--yes", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert services.content_digests() == wanted


@pytest.mark.django_db
def test_a_backup_whose_process_was_killed_is_failed_by_the_rotation(settings, tmp_path):
    """Its record said "running" for ever (the killed process could not say otherwise)."""
    settings.BACKUP_DIR = tmp_path / "backups"
    stopped = Backup.objects.create(name=str(tmp_path / "backups" / "backup-stopped.zip"))
    running = Backup.objects.create(name=str(tmp_path / "backups" / "backup-running.zip"))
    Backup.objects.filter(pk=stopped.pk).update(started_at=timezone.now() - timedelta(hours=13))

    services.prune(keep_days=30, keep_last=7)

    stopped.refresh_from_db()
    running.refresh_from_db()
    assert stopped.status == "failed" and "stopped before it was done" in stopped.error
    assert running.status == "running"
