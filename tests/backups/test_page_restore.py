"""Restore from the Backups page (superusers only): a dry run naming the rows now and in the backup,
a confirmation, then the restore; what becomes of the restorer's own session when the users table
is replaced."""

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from backups import services
from backups.models import Backup
from optimizer.models import Prompt
from tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(db):
    return StaffFactory(username="root")


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def prompts(owner, *titles):
    for title in titles:
        Prompt.objects.create(owner=owner, title=title, text=f"Explain {title}.")


def test_the_dry_run_shows_the_rows_now_and_in_the_backup_and_changes_nothing(root, owner):
    prompts(owner, "tides", "stars")
    backup = services.backup_create()
    prompts(owner, "comets")
    client = signed_in(root)  # the login itself writes the user's last_login
    before = services.content_digests()

    page = client.get(reverse("backups:restore", args=[backup.pk])).content.decode()

    assert '<tr class="restore-changes"><th scope="row">Prompts' in page
    assert '<td class="number">3</td><td class="number">2</td>' in page  # now 3, in the backup 2
    assert "1 model choice, 3 prompts now here become the backup's 2 users," in page
    assert "1 model choice, 2 prompts." in page
    assert "Type RESTORE to replace the data" in page
    assert services.content_digests() == before


@pytest.mark.parametrize("typed", ["", "restore", "yes"])
def test_without_the_word_typed_nothing_is_restored(root, owner, typed):
    prompts(owner, "tides")
    backup = services.backup_create()
    prompts(owner, "comets")
    client = signed_in(root)
    before, backups = services.content_digests(), Backup.objects.count()

    response = client.post(reverse("backups:restore", args=[backup.pk]), {"confirm": typed})

    assert response.status_code == 400 and "Nothing was changed." in response.content.decode()
    assert services.content_digests() == before and Backup.objects.count() == backups


def test_confirmed_the_backup_comes_back_and_the_restorer_stays_signed_in(root, owner):
    prompts(owner, "tides", "stars")
    backup = services.backup_create()
    backed_up = services.content_digests()
    Prompt.objects.filter(title="stars").delete()
    prompts(owner, "comets")
    client = signed_in(root)
    client.get(reverse("backups:restore", args=[backup.pk]))  # the dry run first

    response = client.post(reverse("backups:restore", args=[backup.pk]), {"confirm": "RESTORE"})

    assert response.status_code == 302 and response["Location"] == reverse("backups:index")
    assert services.content_digests() == backed_up
    assert sorted(Prompt.objects.values_list("title", flat=True)) == ["stars", "tides"]
    safety = Backup.objects.get(trigger=Backup.Trigger.SAFETY)
    page = client.get(reverse("backups:index")).content.decode()
    assert f"Restored backup {backup.pk} (2 users, 1 provider, 1 model choice, 2 prompts)." in page
    assert f"The data it replaced is in backup {safety.pk}." in page


def test_a_restorer_missing_from_the_backup_is_logged_out_and_asked_to_log_in(owner):
    prompts(owner, "tides")
    backup = services.backup_create()  # before the superuser below existed
    newcomer = StaffFactory(username="newcomer")
    client = signed_in(newcomer)

    response = client.post(reverse("backups:restore", args=[backup.pk]), {"confirm": "RESTORE"}, follow=True)

    assert response.status_code == 200 and response.redirect_chain[-1][0] == reverse("login")
    html = response.content.decode()
    assert f"Restored backup {backup.pk}" in html and "log in again" in html
    assert not get_user_model().objects.filter(username="newcomer").exists()
    assert client.get(reverse("backups:index")).status_code == 302  # to the login page


def test_a_restorer_whose_password_differs_in_the_backup_is_logged_out(root):
    backup = services.backup_create()
    root.set_password("a new one since the backup")
    root.save()
    client = signed_in(root)

    response = client.post(reverse("backups:restore", args=[backup.pk]), {"confirm": "RESTORE"})

    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert client.get(reverse("backups:index"))["Location"].startswith(reverse("login"))


def test_a_restorer_who_is_no_superuser_in_the_backup_ends_on_a_page_they_may_see(root):
    get_user_model().objects.filter(pk=root.pk).update(is_superuser=False, is_staff=False)
    backup = services.backup_create()
    get_user_model().objects.filter(pk=root.pk).update(is_superuser=True, is_staff=True)
    client = signed_in(root)

    response = client.post(reverse("backups:restore", args=[backup.pk]), {"confirm": "RESTORE"}, follow=True)

    assert response.status_code == 200 and response.redirect_chain[-1][0] == reverse("optimizer:optimize")
    assert f"Restored backup {backup.pk}" in response.content.decode()


def test_a_backup_that_cannot_be_restored_says_why(root, tmp_path):
    gone = services.backup_create()
    Path(gone.name).unlink()
    failed = Backup.objects.create(name=str(tmp_path / "x.zip"), status=Backup.Status.FAILED, error="boom")
    client = signed_in(root)

    for backup, said in ((gone, "is gone"), (failed, "only a finished backup can be restored")):
        page = client.get(reverse("backups:restore", args=[backup.pk]))
        assert page.status_code == 404 and said in page.content.decode()
        confirmed = client.post(
            reverse("backups:restore", args=[backup.pk]), {"confirm": "RESTORE"}, follow=True
        )
        assert said in confirmed.content.decode()
    assert not Backup.objects.filter(trigger=Backup.Trigger.SAFETY).exists()


def test_staff_who_are_not_superusers_cannot_restore(owner):
    prompts(owner, "tides")
    backup = services.backup_create()
    prompts(owner, "comets")
    client = signed_in(UserFactory(username="staffer", is_staff=True))
    before = services.content_digests()

    response = client.post(reverse("backups:restore", args=[backup.pk]), {"confirm": "RESTORE"})

    assert response.status_code == 404 and services.content_digests() == before
