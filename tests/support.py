"""Helpers shared by tests that start real processes."""

import os
import socket
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Variables that choose a configuration; a subprocess starts from none of them unless given.
CONFIG_VARIABLES = (
    "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "HTTPS", "DATA_DIR",
    "STATIC_ROOT", "TIME_ZONE", "LOG_LEVEL", "CSRF_TRUSTED_ORIGINS", "TASK_WORKERS", "PORT", "HOST",
    "ADMIN_USERNAME", "ADMIN_PASSWORD", "ADMIN_EMAIL", "WEB_CONCURRENCY", "DB_CONN_MAX_AGE",
    "LOGIN_FAILURE_LIMIT", "LOGIN_COOLOFF_MINUTES", "TRUSTED_PROXY_COUNT", "BACKUP_DIR",
    "BACKUP_ENCRYPTION_KEY", "BACKUP_STORAGE", "BACKUP_STORAGE_OPTIONS",
)  # fmt: skip


def free_port() -> int:
    """A TCP port on loopback with nothing listening on it (at the moment of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_env(**overrides: str) -> dict[str, str]:
    """The current environment without any configuration variable, plus ``overrides``."""
    env = {key: value for key, value in os.environ.items() if key not in CONFIG_VARIABLES}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``manage.py`` in a fresh interpreter with exactly ``env``."""
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "manage.py"), *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
