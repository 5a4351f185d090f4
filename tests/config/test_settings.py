"""Settings load from the environment in both configurations, and bad values stop the start."""

import json
import stat
import subprocess
import sys

import pytest
from django.db import connection

from tests.support import PROJECT_ROOT, clean_env, manage

DUMP = """
import json, django
django.setup()
from django.conf import settings as s
db = s.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "name": str(db["NAME"]), "host": db.get("HOST"), "options": db.get("OPTIONS", {}),
    "cache": s.CACHES["default"]["BACKEND"], "cache_location": s.CACHES["default"].get("LOCATION"),
    "q_cluster": s.Q_CLUSTER, "debug": s.DEBUG, "secret_key": s.SECRET_KEY, "allowed_hosts": s.ALLOWED_HOSTS,
    "session_cookie_secure": s.SESSION_COOKIE_SECURE, "csrf_cookie_secure": s.CSRF_COOKIE_SECURE,
    "hsts": s.SECURE_HSTS_SECONDS, "ssl_redirect": s.SECURE_SSL_REDIRECT, "data_dir": str(s.DATA_DIR),
    "mailer": s.MAILERS["default"], "from_email": s.DEFAULT_FROM_EMAIL,
}))
"""


def load_settings(env: dict[str, str]) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", DUMP],
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(completed.stdout)


def test_embedded_default_needs_no_environment(tmp_path):
    data_dir = tmp_path / "data"
    loaded = load_settings(clean_env(DATA_DIR=str(data_dir)))

    assert loaded["engine"] == "django.db.backends.sqlite3"
    assert loaded["name"] == str(data_dir / "db.sqlite3")
    assert loaded["options"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in loaded["options"]["init_command"]
    assert loaded["options"]["timeout"] >= 5
    assert loaded["cache"] == "config.cache.DatabaseCache"  # Django's, with a one-statement set
    assert loaded["q_cluster"]["orm"] == "default"
    assert "django_redis" not in loaded["q_cluster"]
    assert loaded["q_cluster"]["retry"] > loaded["q_cluster"]["timeout"]
    assert loaded["debug"] is False
    assert loaded["allowed_hosts"] == ["localhost", "127.0.0.1", "[::1]"]
    assert loaded["session_cookie_secure"] is False


def test_secret_key_is_generated_once_and_kept_owner_only(tmp_path):
    data_dir = tmp_path / "data"
    env = clean_env(DATA_DIR=str(data_dir))
    first = load_settings(env)["secret_key"]
    second = load_settings(env)["secret_key"]

    key_file = data_dir / "secret_key"
    assert first == second == key_file.read_text().strip()
    assert len(first) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


def test_scaled_out_configuration_uses_postgresql_and_redis(tmp_path):
    loaded = load_settings(
        clean_env(
            DATA_DIR=str(tmp_path),
            DATABASE_URL="postgresql://app:s3cret@db.internal:5432/prompts",
            REDIS_URL="redis://cache.internal:6379/2",
            SECRET_KEY="k" * 50,
        )
    )

    assert loaded["engine"] == "django.db.backends.postgresql"
    assert loaded["name"] == "prompts"
    assert loaded["host"] == "db.internal"
    assert loaded["options"]["connect_timeout"] == 5
    assert loaded["cache"] == "config.cache.RedisCache"  # django-redis, clearing only our keys
    assert loaded["cache_location"] == "redis://cache.internal:6379/2"
    assert loaded["q_cluster"]["django_redis"] == "default"
    assert "orm" not in loaded["q_cluster"]
    assert loaded["secret_key"] == "k" * 50
    assert not (tmp_path / "secret_key").exists()


def test_email_goes_to_the_console_until_an_smtp_host_is_set(tmp_path):
    embedded = load_settings(clean_env(DATA_DIR=str(tmp_path)))
    smtp = load_settings(
        clean_env(
            DATA_DIR=str(tmp_path), SMTP_HOST="mail.example.com", SMTP_PORT="465", SMTP_SSL="1",
            SMTP_STARTTLS="0", SMTP_USER="alerts", SMTP_PASSWORD="app-password",
            EMAIL_FROM="costs@example.com",
        )
    )  # fmt: skip

    assert embedded["mailer"]["BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    assert smtp["mailer"]["BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    options = smtp["mailer"]["OPTIONS"]
    assert (options["host"], options["port"], options["use_ssl"], options["use_tls"]) == (
        "mail.example.com", 465, True, False,
    )  # fmt: skip
    assert options["username"] == "alerts" and smtp["from_email"] == "costs@example.com"


def test_https_turns_on_secure_cookies_and_hsts(tmp_path):
    loaded = load_settings(clean_env(DATA_DIR=str(tmp_path), HTTPS="1"))

    assert loaded["session_cookie_secure"] is True
    assert loaded["csrf_cookie_secure"] is True
    assert loaded["hsts"] >= 31_536_000
    assert loaded["ssl_redirect"] is True


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"DEBUG": "yes"}, "DEBUG must be 1 or 0"),
        ({"DATABASE_URL": "mysql://root:hunter2@db/app"}, "DATABASE_URL uses the scheme 'mysql'"),
        ({"DATABASE_URL": "postgresql://app@db.internal:5432/app"}, "SECRET_KEY must be set"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must look like redis://"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be at least 32 characters"),
        ({"TIME_ZONE": "Mars/Olympus"}, "TIME_ZONE must be an IANA time zone"),
        ({"TASK_WORKERS": "0"}, "TASK_WORKERS must be >= 1"),
        ({"CSRF_TRUSTED_ORIGINS": "prompts.example.com"}, "need a scheme"),
        ({"ALLOWED_HOSTS": ", , "}, "ALLOWED_HOSTS has an empty entry"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL must be one of"),
        ({"SMTP_HOST": "mail.example.com", "SMTP_PORT": "smtp"}, "SMTP_PORT must be a whole number"),
        ({"SMTP_HOST": "mail.example.com", "SMTP_SSL": "1", "SMTP_PASSWORD": "hunter2"}, "not both"),
    ],
)
def test_bad_configuration_stops_with_a_message_that_says_what_to_do(tmp_path, variables, message):
    completed = manage("check", env=clean_env(DATA_DIR=str(tmp_path), **variables))

    assert completed.returncode == 2
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
    assert "hunter2" not in completed.stderr  # a URL's password is never echoed


@pytest.mark.django_db
def test_sqlite_connections_use_wal_and_a_busy_timeout():
    if connection.vendor != "sqlite":
        pytest.skip("embedded-default configuration only")
    with connection.cursor() as cursor:
        assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert cursor.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_the_embedded_database_is_created_readable_by_its_owner_only(tmp_path):
    data_dir = tmp_path / "data"
    load_settings(clean_env(DATA_DIR=str(data_dir)))

    assert (data_dir / "db.sqlite3").stat().st_mode & 0o777 == 0o600
    existing = tmp_path / "kept"
    existing.mkdir()
    (existing / "db.sqlite3").write_bytes(b"")
    (existing / "db.sqlite3").chmod(0o640)
    load_settings(clean_env(DATA_DIR=str(existing)))
    assert (existing / "db.sqlite3").stat().st_mode & 0o777 == 0o640  # an existing file is left as it is
