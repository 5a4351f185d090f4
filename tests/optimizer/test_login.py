import pytest
from django.urls import reverse

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_logging_in_returns_to_the_page_asked_for(client, owner):
    response = client.post(
        reverse("login") + "?next=/history/",
        {"username": owner.username, "password": PASSWORD, "next": "/history/"},
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "/history/"
    assert client.get("/history/").status_code == 200


def test_logging_in_without_a_next_page_opens_optimize(client, owner):
    response = client.post(reverse("login"), {"username": owner.username, "password": PASSWORD})

    assert response.headers["Location"] == reverse("optimizer:optimize")


def test_a_wrong_password_says_so_and_signs_nobody_in(client, owner):
    response = client.post(reverse("login"), {"username": owner.username, "password": "wrong"})

    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert "_auth_user_id" not in client.session


def test_next_cannot_send_a_user_to_another_site(client, owner):
    response = client.post(
        reverse("login"), {"username": owner.username, "password": PASSWORD, "next": "https://evil.example/"}
    )

    assert response.headers["Location"] == reverse("optimizer:optimize")


def test_logout_is_a_post_and_returns_to_the_login_page(owner_client):
    assert owner_client.get(reverse("logout")).status_code == 405

    response = owner_client.post(reverse("logout"), follow=True)

    assert response.redirect_chain == [(reverse("login"), 302)]
    assert b'class="message message-info">You are logged out.' in response.content
    assert owner_client.get(reverse("optimizer:optimize")).status_code == 302


def test_a_signed_in_user_visiting_login_goes_home(owner_client):
    response = owner_client.get(reverse("login"))

    assert response.status_code == 302
    assert response.headers["Location"] == reverse("optimizer:optimize")
