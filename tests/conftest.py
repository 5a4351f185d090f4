import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from tests.factories import StaffFactory, UserFactory


@pytest.fixture(scope="session")
def _static_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("staticfiles")


@pytest.fixture(autouse=True)
def _test_speedups(settings, _static_root):
    """Templates render without running collectstatic first (no manifest needed), and test users'
    passwords hash quickly; neither changes what the tests observe."""
    settings.STATIC_ROOT = _static_root
    settings.STORAGES = {
        **django_settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def django_db_modify_db_settings():
    """Remove WAL files a crashed earlier run left beside the SQLite test database: Django deletes
    the database file itself, and SQLite would read the stale journal as part of the new one."""
    name = django_settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if django_settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") and name:
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{name}{suffix}").unlink(missing_ok=True)


@pytest.fixture
def owner(db):
    return UserFactory(username="owner")


@pytest.fixture
def other_user(db):
    return UserFactory(username="other")


@pytest.fixture
def staff_user(db):
    return StaffFactory(username="staff")


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def pytest_runtest_setup(item):
    # Service tests skip when their service is not configured, and fail (not skip) when it is
    # configured but does not answer: CI sets both variables, so nothing is silently skipped there.
    if item.get_closest_marker("postgres") and not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("needs DATABASE_URL=postgresql://...")
    if item.get_closest_marker("redis") and not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL=redis://...")


@pytest.fixture
def database_url_for_subprocess(transactional_db) -> str:
    """A DATABASE_URL naming the test database, for the subprocesses of end-to-end tests."""
    conf = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{conf['NAME']}"
    credentials = conf["USER"] + (f":{conf['PASSWORD']}" if conf["PASSWORD"] else "")
    return f"postgresql://{credentials}@{conf['HOST'] or '127.0.0.1'}:{conf['PORT'] or 5432}/{conf['NAME']}"


@pytest.fixture(autouse=True)
def _costs_snapshot_forgotten():
    """Each test starts without the prices and budgets an earlier one left in this process's memory
    (a transactional test's tables are emptied without the signals that would announce it)."""
    from costs import snapshot

    snapshot.forget()
    yield
    snapshot.forget()
