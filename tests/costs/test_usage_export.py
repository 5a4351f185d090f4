"""The usage-record exports of the Costs page: the range shown (the user's, or for staff the site's
unless they ask for their own), and every record of the user's own, whatever the date. A user only
ever gets their own."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.costs.test_dashboard import record, today_at

pytestmark = pytest.mark.django_db


def exported(client, name: str, **query) -> list[dict]:
    response = client.get(reverse(f"costs:{name}"), query)
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment; ")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_every_record_of_ones_own_whatever_its_date_and_none_of_anyone_elses(client, owner, other_user):
    long_ago = timezone.now() - timedelta(days=800)  # beyond the longest range the page shows
    record(owner, long_ago, "0.50", model="gpt-4o")
    record(owner, today_at(1), "0.25")
    record(other_user, today_at(1), "7.00", model="gpt-5")
    client.force_login(owner)

    rows = exported(client, "usage-export-mine")

    assert [(row["user"], row["model"], row["cost_usd"]) for row in rows] == [
        ("owner", "gpt-4o", "0.5"),
        ("owner", "gpt-5-mini", "0.25"),
    ]
    client.force_login(other_user)
    assert [row["cost_usd"] for row in exported(client, "usage-export-mine")] == ["7"]


def test_staff_get_only_their_own_records_from_the_export_of_theirs(client, owner, staff_user):
    record(owner, today_at(1), "0.25")
    record(staff_user, today_at(2), "1.00")
    client.force_login(staff_user)

    assert [row["user"] for row in exported(client, "usage-export-mine")] == ["staff"]
    assert [row["user"] for row in exported(client, "usage-export", scope="mine")] == ["staff"]
    assert sorted(row["user"] for row in exported(client, "usage-export")) == ["owner", "staff"]


def test_a_user_cannot_widen_the_range_export_to_the_site(client, owner, other_user):
    record(owner, today_at(1), "0.25")
    record(other_user, today_at(1), "7.00")
    client.force_login(owner)

    assert [row["user"] for row in exported(client, "usage-export", scope="site")] == ["owner"]


def test_the_range_export_follows_the_period_of_the_page(client, owner):
    record(owner, today_at(1) - timedelta(days=10), "0.10")
    record(owner, today_at(1), "0.20")
    client.force_login(owner)
    start = (timezone.localdate() - timedelta(days=2)).isoformat()

    rows = exported(client, "usage-export", start=start)

    assert [row["cost_usd"] for row in rows] == ["0.2"]
    page = client.get(reverse("costs:dashboard")).content.decode()
    assert f'href="{reverse("costs:usage-export-mine")}"' in page


def test_an_empty_export_is_a_header_alone(client, owner):
    client.force_login(owner)

    response = client.get(reverse("costs:usage-export-mine"))

    text = b"".join(response.streaming_content).decode("utf-8-sig")
    assert text.splitlines() == [text.splitlines()[0]] and text.startswith("created_at,user,run_id")
    assert response["Content-Disposition"] == 'attachment; filename="usage-owner-all.csv"'
