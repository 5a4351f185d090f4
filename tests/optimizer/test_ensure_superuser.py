import stat
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from django.test import RequestFactory

from optimizer.services import admin_password_file

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _data_dir(settings, tmp_path, monkeypatch):
    settings.DATA_DIR = tmp_path
    for variable in ("ADMIN_USERNAME", "ADMIN_PASSWORD", "ADMIN_EMAIL"):
        monkeypatch.delenv(variable, raising=False)


def run(**options) -> str:
    out = StringIO()
    call_command("ensure_superuser", stdout=out, **options)
    return out.getvalue()


def test_creates_admin_with_a_generated_password_printed_once_and_saved():
    output = run()

    password_file = admin_password_file()
    username, password = password_file.read_text().split()
    assert username == "admin"
    assert len(password) >= 16
    assert password in output
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    user = authenticate(RequestFactory().post("/login/"), username="admin", password=password)
    assert user is not None and user.is_superuser and user.is_staff


def test_a_second_run_changes_nothing_and_does_not_show_the_password_again():
    run()
    saved = admin_password_file().read_text()

    output = run()

    assert "nothing changed" in output
    assert saved.split()[1] not in output
    assert admin_password_file().read_text() == saved
    assert get_user_model().objects.count() == 1


def test_username_and_password_can_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("ADMIN_USERNAME", "ada")
    monkeypatch.setenv("ADMIN_PASSWORD", "a-long-and-unusual-passphrase")

    output = run()

    assert "ada" in output
    assert "a-long-and-unusual-passphrase" not in output
    login_request = RequestFactory().post("/login/")  # the login throttle needs the request
    assert authenticate(login_request, username="ada", password="a-long-and-unusual-passphrase") is not None
    assert not admin_password_file().exists()


def test_a_weak_password_from_the_environment_is_refused_and_nothing_is_created(monkeypatch):
    monkeypatch.setenv("ADMIN_PASSWORD", "12345")

    with pytest.raises(CommandError, match="too short"):
        run()

    assert not get_user_model().objects.exists()


def test_an_invalid_username_is_refused(monkeypatch):
    with pytest.raises(CommandError, match="Enter a valid username"):
        run(username="no spaces allowed")

    assert not get_user_model().objects.exists()


def test_an_existing_ordinary_user_with_that_name_is_not_taken_over(owner):
    with pytest.raises(CommandError, match="already exists but is not a superuser"):
        run(username=owner.username)

    owner.refresh_from_db()
    assert not owner.is_superuser


def test_a_password_file_from_an_earlier_database_is_kept_not_overwritten():
    earlier = admin_password_file()
    earlier.write_text("admin\nthe-first-databases-password\n")

    run()

    kept = [path for path in earlier.parent.iterdir() if path.name.startswith(earlier.name + ".")]
    assert len(kept) == 1
    assert kept[0].read_text() == "admin\nthe-first-databases-password\n"
    assert "the-first-databases-password" not in earlier.read_text()
