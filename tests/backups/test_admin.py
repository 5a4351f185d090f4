"""The admin's list of backups: read-only, with filters (a record and its file go together, so the
admin neither adds, changes nor deletes one)."""

import pytest

from backups.models import Backup

pytestmark = pytest.mark.django_db
LIST = "/admin/backups/backup/"


@pytest.fixture
def records():
    here = Backup.objects.create(name="/srv/backups/backup-1.zip", status=Backup.Status.DONE)
    offsite = Backup.objects.create(
        name="backup-2.zip.enc", status=Backup.Status.DONE, place=Backup.Place.STORAGE, encrypted=True
    )
    return here, offsite


def test_staff_see_the_list_filtered_by_place_and_encryption(staff_client, records):
    here, offsite = records

    page = staff_client.get(LIST).content.decode()
    assert here.name in page and offsite.name in page and "Backup storage" in page

    filtered = staff_client.get(LIST, {"place__exact": "storage", "encrypted__exact": "1"}).content.decode()
    assert offsite.name in filtered and here.name not in filtered


def test_the_admin_neither_adds_changes_nor_deletes_a_backup(staff_client, records):
    here, _offsite = records

    assert staff_client.get(f"{LIST}add/").status_code == 403
    assert staff_client.post(f"{LIST}{here.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [here.pk], "post": "yes"}
    staff_client.post(LIST, bulk)
    assert Backup.objects.filter(pk=here.pk).exists()


def test_other_users_do_not_see_it(owner_client):
    assert owner_client.get(LIST).status_code == 302  # to the admin's login
