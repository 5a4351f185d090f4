"""Batches and their items in the admin: read-only records with filters; no add, change or delete
(those go through the batch services), and nothing for a user who is not staff."""

import pytest
from django.urls import reverse

from optimizer.models import Batch, BatchItem
from tests.optimizer.batches.test_views import make_batch, run_batch

pytestmark = pytest.mark.django_db


def test_staff_see_batches_with_their_filters(staff_client, owner, other_user):
    make_batch(owner, 2, name="Owner's library")
    make_batch(other_user, 1, name="Other's library")
    changelist = reverse("admin:optimizer_batch_changelist")

    everything = staff_client.get(changelist).content.decode()
    drafts = staff_client.get(changelist + "?status__exact=draft&format__exact=text").content.decode()
    owners = staff_client.get(changelist + f"?owner__id__exact={owner.pk}").content.decode()

    assert "Owner&#x27;s library" in everything and "Other&#x27;s library" in everything
    assert "By status" in everything and "By format" in everything and "By owner" in everything
    assert "2 batches" in drafts
    assert "Owner&#x27;s library" in owners and "Other&#x27;s library" not in owners


def test_staff_see_items_with_their_runs_status(staff_client, owner, django_capture_on_commit_callbacks):
    batch = run_batch(make_batch(owner, 3, duplicates={3: 1}), django_capture_on_commit_callbacks)
    changelist = reverse("admin:optimizer_batchitem_changelist")

    html = staff_client.get(changelist).content.decode()
    done = staff_client.get(changelist + "?run__status__exact=done").content.decode()
    of_batch = staff_client.get(changelist + f"?batch__id__exact={batch.pk}&type__exact=general")

    assert "Topic 1" in html and "duplicate" in html and "Done" in html
    assert "2 batch items" in done  # the duplicate has no run of its own
    assert of_batch.status_code == 200 and "3 batch items" in of_batch.content.decode()


def test_batches_cannot_be_added_changed_or_deleted_in_the_admin(staff_client, owner):
    batch = make_batch(owner, 2)
    item = batch.items.get(row=1)

    assert staff_client.get(reverse("admin:optimizer_batch_add")).status_code == 403
    assert staff_client.get(reverse("admin:optimizer_batchitem_add")).status_code == 403
    view = staff_client.get(reverse("admin:optimizer_batch_change", args=[batch.pk]))
    assert view.status_code == 200 and 'name="_save"' not in view.content.decode()  # shown, not editable
    posted = staff_client.post(reverse("admin:optimizer_batch_change", args=[batch.pk]), {"name": "Renamed"})
    assert posted.status_code == 403
    assert (
        staff_client.post(
            reverse("admin:optimizer_batch_delete", args=[batch.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    deleted = staff_client.post(
        reverse("admin:optimizer_batchitem_delete", args=[item.pk]), {"post": "yes"}
    ).status_code
    assert deleted == 403
    bulk = staff_client.post(
        reverse("admin:optimizer_batch_changelist"),
        {"action": "delete_selected", "_selected_action": [batch.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302)
    assert Batch.objects.get().name == batch.name and BatchItem.objects.count() == 2


def test_a_user_who_is_not_staff_is_sent_to_the_admin_login(owner_client, owner):
    batch = make_batch(owner, 1)

    response = owner_client.get(reverse("admin:optimizer_batch_change", args=[batch.pk]))

    assert response.status_code == 302 and "/login/" in response["Location"]
