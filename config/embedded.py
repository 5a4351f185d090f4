"""The embedded default: a data directory holding the SQLite database and the generated secret key.

Also turns ``DATABASE_URL`` / ``REDIS_URL`` into Django settings, so settings.py reads as a list of
decisions rather than parsing code.
"""

import contextlib
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret

# Seconds a connection waits for a lock held by another process before "database is locked".
SQLITE_BUSY_TIMEOUT_S = 20
SQLITE_CONN_MAX_AGE_S = 600  # a worker thread keeps its connection this long


def data_dir_prepare(path: Path) -> Path:
    """Create the data directory (owner-only) if needed and return it."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"Cannot create the data directory {path} ({exc.strerror}). Set DATA_DIR to a writable folder."
        ) from None
    return path


def owner_only_file_prepare(path: Path) -> Path:
    """Create ``path`` empty and readable by its owner only, unless it exists: SQLite then opens it
    as it is (an empty file is an empty database), so the database never starts world-readable."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


def secret_key_load_or_create(data_dir: Path) -> str:
    """Return the secret key kept in the data directory, generating it on first use.

    The key is written to a temporary file and linked into place, so a web process and a worker
    starting at the same moment agree on one key.
    """
    key_path = data_dir / SECRET_KEY_FILE
    if not key_path.exists():
        temporary = data_dir / f".{SECRET_KEY_FILE}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
        try:
            os.link(temporary, key_path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    key = key_path.read_text().strip()
    if len(key) < 32:
        raise ImproperlyConfigured(
            f"The secret key in {key_path} is too short. Delete the file to generate a new one "
            "(signed-in users will have to log in again)."
        )
    return key


def sqlite_database(path: Path) -> dict:
    """SQLite tuned so the web process and the task worker share it without "database is locked".

    WAL lets readers run beside a writer; IMMEDIATE takes the write lock when a transaction begins,
    so two writers queue on the busy timeout instead of failing on a lock upgrade. A connection is
    kept across requests: opening one runs the pragmas and makes SQLite parse the whole schema again,
    which cost a database-touching request more than its own queries.
    """
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "CONN_MAX_AGE": SQLITE_CONN_MAX_AGE_S,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            "timeout": SQLITE_BUSY_TIMEOUT_S,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        },
        "TEST": {"NAME": str(path.with_name(f"test-{path.name}"))},
    }


def database_from_url(url: str, *, conn_max_age: int) -> dict:
    """Django's DATABASES entry for a PostgreSQL or SQLite URL (the URL itself is never echoed)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        parsed = dj_database_url.parse(url)
        if parsed["NAME"] in ("", ":memory:"):
            raise ImproperlyConfigured(
                "DATABASE_URL for SQLite needs a file path, e.g. sqlite:////srv/prompt-optimizer/db.sqlite3."
            )
        return sqlite_database(Path(parsed["NAME"]))
    if scheme not in ("postgres", "postgresql", "pgsql"):
        raise ImproperlyConfigured(
            f"DATABASE_URL uses the scheme {scheme or '(none)'!r}; use "
            "postgresql://user:password@host:5432/name (or leave DATABASE_URL unset for the embedded SQLite)."
        )
    try:
        config = dj_database_url.parse(url, conn_max_age=conn_max_age, conn_health_checks=True)
    except ValueError:
        raise ImproperlyConfigured(
            "DATABASE_URL is not a valid URL; expected postgresql://user:password@host:5432/name."
        ) from None
    if not config.get("NAME"):
        raise ImproperlyConfigured("DATABASE_URL must name a database: postgresql://user@host:5432/name.")
    config.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    return config


def redis_url_check(url: str) -> str:
    """Return ``url`` if it is a Redis URL redis-py can open, else explain the expected form."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
        raise ImproperlyConfigured(
            "REDIS_URL must look like redis://[:password@]host:6379/0 (or rediss:// for TLS)."
        )
    return url
