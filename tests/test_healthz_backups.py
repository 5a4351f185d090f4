"""/healthz tells the last good backup's age: a warning past 48 hours or with none, never a failure
of the probe, and nothing but the age (no file name, path or user)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from backups.models import Backup
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def a_backup(hours_ago: float, status=Backup.Status.DONE) -> Backup:
    backup = Backup.objects.create(
        name="/srv/secret-place/backup-of-alice.zip",
        status=status,
        created_by=UserFactory(username=f"alice{Backup.objects.count()}"),
        note="alice's note",
    )
    Backup.objects.filter(pk=backup.pk).update(started_at=timezone.now() - timedelta(hours=hours_ago))
    return backup


def healthz(client) -> tuple[int, dict, str]:
    response = client.get(reverse("optimizer:healthz"))
    return response.status_code, response.json(), response.content.decode()


def test_a_backup_an_hour_old_is_fine(client):
    a_backup(1)

    status, body, text = healthz(client)

    assert status == 200 and body["status"] == "ok"
    assert body["backup"] == {"status": "ok", "age_hours": 1.0} and body["warnings"] == []
    assert "secret-place" not in text and "alice" not in text


def test_a_backup_49_hours_old_is_a_warning_but_the_site_stays_healthy(client):
    a_backup(49)
    a_backup(2, status=Backup.Status.FAILED)  # newer, but no good
    a_backup(3, status=Backup.Status.RUNNING)

    status, body, text = healthz(client)

    assert status == 200 and body["status"] == "ok" and body["failed"] == []
    assert body["backup"] == {"status": "warning", "age_hours": 49.0} and body["warnings"] == ["backup"]
    assert "secret-place" not in text and "alice" not in text


def test_no_backup_at_all_is_a_warning(client):
    status, body, _ = healthz(client)

    assert status == 200 and body["backup"] == {"status": "warning", "age_hours": None}
    assert body["warnings"] == ["backup"]


def test_an_uploaded_file_does_not_count_as_a_fresh_backup(client):
    a_backup(49)
    Backup.objects.create(name="/srv/upload.zip", status=Backup.Status.DONE, trigger=Backup.Trigger.UPLOAD)

    _, body, _ = healthz(client)

    assert body["backup"] == {"status": "warning", "age_hours": 49.0}  # made who knows when
