"""The session store (config.sessions): Django's database sessions, read with one plain statement."""

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db
HISTORY = reverse("optimizer:history")


def test_a_signed_in_request_reads_its_session_with_one_plain_statement(owner_client):
    with CaptureQueriesContext(connection) as queries:
        response = owner_client.get(HISTORY)

    assert response.status_code == 200
    sessions = [q["sql"] for q in queries.captured_queries if "django_session" in q["sql"]]
    assert len(sessions) == 1 and sessions[0].startswith('SELECT "session_data" FROM "django_session" WHERE')


def test_an_expired_session_signs_nobody_in(owner_client):
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))

    response = owner_client.get(HISTORY)

    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_an_unknown_or_malformed_session_key_signs_nobody_in_and_changes_nothing(client, owner):
    client.force_login(owner)
    kept = list(Session.objects.values_list("session_key", "session_data"))
    for key in ("x" * 32, "short", "' OR 1=1 --", ""):
        client.cookies["sessionid"] = key

        response = client.get(HISTORY)

        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert list(Session.objects.values_list("session_key", "session_data")) == kept


def test_signing_in_out_and_in_again_works_through_the_store(client, owner):
    owner.set_password("a long enough password 1")
    owner.save()
    login = {"username": owner.username, "password": "a long enough password 1"}

    assert client.post(reverse("login"), login).status_code == 302
    assert client.get(HISTORY).status_code == 200
    client.post(reverse("logout"))
    assert client.get(HISTORY).status_code == 302
    assert client.post(reverse("login"), login).status_code == 302
    assert client.get(HISTORY).status_code == 200
