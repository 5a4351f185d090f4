"""The Backups page: who may see and do what (anonymous, user, staff, superuser, on every URL), the
list with the last good backup's age, downloads streamed as stored, uploads verified or refused
with nothing changed."""

import io
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from backups import forms, services
from backups.models import Backup
from tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_only(db):
    """Staff who is not a superuser: sees the page, may not restore."""
    return UserFactory(username="staffer", is_staff=True)


@pytest.fixture
def superuser(db):
    return StaffFactory(username="root")


def signed_in(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def urls(backup: Backup) -> list[tuple[str, str, str]]:
    """(method, URL, who may: "staff" or "superuser") for every address of the page."""
    return [
        ("get", reverse("backups:index"), "staff"),
        ("post", reverse("backups:now"), "staff"),
        ("get", reverse("backups:progress", args=["0" * 32]), "staff"),
        ("post", reverse("backups:upload"), "staff"),
        ("get", reverse("backups:download", args=[backup.pk]), "staff"),
        ("get", reverse("backups:restore", args=[backup.pk]), "superuser"),
        ("post", reverse("backups:restore", args=[backup.pk]), "superuser"),
    ]


def test_anonymous_visitors_go_to_the_login_page_and_users_get_404(owner):
    backup = services.backup_create(note="x")
    for method, url, _ in urls(backup):
        anonymous = getattr(signed_in(None), method)(url)
        assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("login")), url
        assert getattr(signed_in(owner), method)(url).status_code == 404, url
    assert Backup.objects.count() == 1  # nobody's request made or restored anything


def test_staff_use_the_page_and_only_superusers_restore(staff_only, superuser):
    backup = services.backup_create(note="x")
    for method, url, who in urls(backup):
        staff_status = getattr(signed_in(staff_only), method)(url).status_code
        if who == "superuser":
            assert staff_status == 404, url
        else:
            assert staff_status != 404 and staff_status < 500, url
    super_page = signed_in(superuser).get(reverse("backups:restore", args=[backup.pk]))
    assert super_page.status_code == 200 and b"Restore backup" in super_page.content
    restore_link = reverse("backups:restore", args=[backup.pk])
    assert restore_link not in signed_in(staff_only).get(reverse("backups:index")).content.decode()
    assert restore_link in signed_in(superuser).get(reverse("backups:index")).content.decode()


def test_the_list_shows_each_backup_and_the_error_of_a_failed_one(staff_only):
    done = services.backup_create(note="before the upgrade", user=staff_only)
    Backup.objects.create(
        name="/nowhere/x.zip",
        status=Backup.Status.FAILED,
        trigger=Backup.Trigger.SCHEDULE,
        error="OSError: disk full",
    )

    page = signed_in(staff_only).get(reverse("backups:index")).content.decode()

    assert "before the upgrade" in page and "staffer" in page and "Command" in page and "Schedule" in page
    assert "OSError: disk full" in page and ">failed<" in page
    assert reverse("backups:download", args=[done.pk]) in page
    assert "Last good backup: 0" in page and "minutes ago" in page


def test_the_page_says_when_there_is_no_backup_yet_and_what_to_do(staff_only):
    page = signed_in(staff_only).get(reverse("backups:index")).content.decode()

    assert "No backup yet." in page and "manage.py backup" in page


def test_the_page_warns_when_the_last_good_backup_is_older_than_48_hours(staff_only):
    backup = services.backup_create()
    Backup.objects.filter(pk=backup.pk).update(started_at=timezone.now() - timedelta(hours=49))

    page = signed_in(staff_only).get(reverse("backups:index")).content.decode()

    assert "The last good backup is 2" in page and "more than 48 hours" in page
    assert "Last good backup:" not in page


def test_a_download_streams_the_stored_bytes_as_an_attachment(staff_only):
    backup = services.backup_create()

    response = signed_in(staff_only).get(reverse("backups:download", args=[backup.pk]))

    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == f'attachment; filename="{Path(backup.name).name}"'
    assert b"".join(response.streaming_content) == Path(backup.name).read_bytes()


def test_a_download_of_a_backup_not_done_or_gone_is_a_404_with_a_message(staff_only, tmp_path):
    gone = services.backup_create()
    Path(gone.name).unlink()
    running = Backup.objects.create(name=str(tmp_path / "never.zip"))
    client = signed_in(staff_only)

    for backup, said in ((gone, "is gone"), (running, "is running")):
        response = client.get(reverse("backups:download", args=[backup.pk]))
        assert response.status_code == 404 and said in response.content.decode()
    assert client.get(reverse("backups:download", args=[999_999])).status_code == 404


def upload(client, content: bytes, name="backup.zip"):
    return client.post(reverse("backups:upload"), {"file": SimpleUploadedFile(name, content)})


def test_an_uploaded_backup_is_verified_listed_and_downloads_as_uploaded(staff_only, owner):
    made = services.backup_create()
    content = Path(made.name).read_bytes()
    client = signed_in(staff_only)

    response = upload(client, content, name="../../etc/passwd.zip")

    assert response.status_code == 302
    uploaded = Backup.objects.get(trigger=Backup.Trigger.UPLOAD)
    assert uploaded.status == Backup.Status.DONE and uploaded.created_by == staff_only
    assert Path(uploaded.name).parent == Path(made.name).parent and "passwd" not in uploaded.name
    assert "it can be restored" in client.get(reverse("backups:index")).content.decode()
    download = client.get(reverse("backups:download", args=[uploaded.pk]))
    assert b"".join(download.streaming_content) == content


def not_ours() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.json", '{"kind": "something else"}')
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"PK\x03\x04 this is not really a zip", "not a ZIP file"),
        (not_ours(), "is not a backup of this site"),
        (b"", "That file is empty"),
    ],
)
def test_a_bad_upload_is_refused_with_its_reason_and_nothing_changes(staff_only, content, said, settings):
    services.backup_create()
    before = (list(Backup.objects.values_list("pk", "name")), sorted(Path(settings.BACKUP_DIR).iterdir()))

    response = upload(signed_in(staff_only), content)

    assert response.status_code == 400 and said in response.content.decode()
    assert (
        list(Backup.objects.values_list("pk", "name")),
        sorted(Path(settings.BACKUP_DIR).iterdir()),
    ) == before


def test_an_upload_without_a_file_says_to_choose_one(staff_only):
    response = signed_in(staff_only).post(reverse("backups:upload"), {})

    assert response.status_code == 400 and "Choose a backup file to upload." in response.content.decode()


def test_an_upload_past_the_size_limit_is_stopped_and_says_so(staff_only, monkeypatch, settings):
    monkeypatch.setattr(forms, "MAX_UPLOAD_BYTES", 64 * 1024)
    made = services.backup_create()
    big = Path(made.name).read_bytes() + b"\0" * (128 * 1024)

    response = upload(signed_in(staff_only), big)

    assert response.status_code == 400
    assert (
        "larger than the 64.0" in response.content.decode()
        and "manage.py restore PATH" in response.content.decode()
    )
    assert Backup.objects.count() == 1


def test_an_upload_needs_the_csrf_token(staff_only):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_only)
    made = services.backup_create()

    response = upload(client, Path(made.name).read_bytes())

    assert response.status_code == 403 and Backup.objects.count() == 1
