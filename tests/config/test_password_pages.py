"""Changing one's password, and resetting it by email when the site can send email (SMTP_HOST)."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from tests.factories import PASSWORD, UserFactory
from tests.html import inline_code

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-fresh-and-unusual-passphrase-42"


@pytest.fixture
def smtp(settings):
    """The site as configured with SMTP_HOST; tests send through Django's in-memory outbox."""
    settings.SMTP_HOST = "smtp.example.com"


@pytest.fixture
def no_smtp(settings):
    settings.SMTP_HOST = None


def password_of(user) -> bool:
    user = get_user_model().objects.get(pk=user.pk)
    return user.check_password(NEW_PASSWORD), user.check_password(PASSWORD)


def assert_csp_clean(html: str) -> None:
    found = inline_code(html)
    assert found.inline_scripts == 0 and found.style_elements == 0
    assert found.style_attributes == [] and found.event_handlers == []


# --- Change ---------------------------------------------------------------------------------------


def test_the_header_links_to_change_password(owner_client):
    html = owner_client.get(reverse("optimizer:optimize")).content.decode()

    assert f'href="{reverse("password_change")}"' in html
    assert "Change password" in html


def test_changing_the_password_needs_a_login(client):
    response = client.get(reverse("password_change"))

    assert response.status_code == 302
    assert response.headers["Location"].startswith(reverse("login") + "?next=")


def test_a_user_changes_their_password_and_stays_logged_in(owner_client, owner):
    page = owner_client.get(reverse("password_change"))
    assert page.status_code == 200
    assert 'class="site-header"' in page.content.decode()
    assert_csp_clean(page.content.decode())

    response = owner_client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )

    assert response.redirect_chain == [(reverse("password_change_done"), 302)]
    assert "Your password was changed" in response.content.decode()
    assert password_of(owner) == (True, False)
    assert owner_client.get(reverse("optimizer:history")).status_code == 200  # session kept


def test_a_wrong_old_password_changes_nothing(owner_client, owner):
    response = owner_client.post(
        reverse("password_change"),
        {"old_password": "not-it", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 200
    assert "Your old password was entered incorrectly" in response.content.decode()
    assert password_of(owner) == (False, True)


def test_a_weak_or_mismatched_new_password_is_refused_with_the_reason(owner_client, owner):
    weak = owner_client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": "12345678", "new_password2": "12345678"},
    ).content.decode()
    mismatched = owner_client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD + "x"},
    ).content.decode()

    assert "This password is too common" in weak
    assert "didn’t match" in mismatched
    assert password_of(owner) == (False, True)


# --- Reset without SMTP ---------------------------------------------------------------------------


def test_without_smtp_the_login_page_offers_no_reset(client, no_smtp):
    html = client.get(reverse("login")).content.decode()

    assert "Forgot your password?" not in html


def test_without_smtp_the_reset_page_says_to_ask_an_administrator(client, no_smtp, owner):
    page = client.get(reverse("password_reset"))
    sent = client.post(reverse("password_reset"), {"email": owner.email})

    for response in (page, sent):
        html = response.content.decode()
        assert response.status_code == 200
        assert "ask an administrator" in html
        assert "manage.py changepassword" in html
        assert 'name="email"' not in html
    assert mail.outbox == []


# --- Reset by email -------------------------------------------------------------------------------


def test_with_smtp_the_login_page_links_to_the_reset(client, smtp):
    html = client.get(reverse("login")).content.decode()

    assert "Forgot your password?" in html
    assert f'href="{reverse("password_reset")}"' in html


def test_a_reset_email_carries_a_link_that_sets_a_new_password(client, smtp, owner):
    page = client.get(reverse("password_reset"))
    assert 'name="email"' in page.content.decode()
    assert_csp_clean(page.content.decode())

    response = client.post(reverse("password_reset"), {"email": owner.email}, follow=True)

    assert response.redirect_chain == [(reverse("password_reset_done"), 302)]
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [owner.email]
    assert "Prompt Optimizer" in message.subject
    link = re.search(r"http://testserver(/password/reset/\S+/\S+/)", message.body).group(1)
    assert owner.username in message.body

    form = client.get(link, follow=True)
    assert 'name="new_password1"' in form.content.decode()
    assert_csp_clean(form.content.decode())
    new_password = {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    done = client.post(form.redirect_chain[-1][0], new_password, follow=True)

    assert done.redirect_chain == [(reverse("password_reset_complete"), 302)]
    assert "Your password is set" in done.content.decode()
    assert password_of(owner) == (True, False)
    logged_in = client.post(reverse("login"), {"username": owner.username, "password": NEW_PASSWORD})
    assert logged_in.status_code == 302
    client.post(reverse("logout"))
    again = client.get(link, follow=True).content.decode()
    assert "This link was already used or has expired" in again
    assert 'name="new_password1"' not in again


def test_known_and_unknown_emails_get_the_same_answer(smtp, owner):
    no_password = UserFactory(username="no-password", email="unusable@example.com")
    no_password.set_unusable_password()
    no_password.save()
    answers = []
    for email in (owner.email, "nobody@example.com", owner.email.upper()):
        response = Client().post(reverse("password_reset"), {"email": email}, follow=True)
        answers.append((response.status_code, response.redirect_chain, response.content.decode()))

    assert answers[0][:2] == answers[1][:2] == answers[2][:2]
    without_token = [re.sub(r"[A-Za-z0-9]{64}", "", html) for _, _, html in answers]  # CSRF tokens
    assert without_token[0] == without_token[1] == without_token[2]
    assert [message.to for message in mail.outbox] == [[owner.email], [owner.email]]


def test_a_forged_reset_link_sets_nothing(client, smtp, owner):
    response = client.get(reverse("password_reset_confirm", args=["MQ", "forged-token"]), follow=True)

    assert response.status_code == 200
    assert "This link was already used or has expired" in response.content.decode()
    assert password_of(owner) == (False, True)


def test_a_bad_email_is_a_form_error(client, smtp):
    response = client.post(reverse("password_reset"), {"email": "not-an-address"})

    assert response.status_code == 200
    assert "Enter a valid email address" in response.content.decode()
    assert mail.outbox == []


def test_the_reset_form_needs_the_csrf_token(smtp, owner):
    response = Client(enforce_csrf_checks=True).post(reverse("password_reset"), {"email": owner.email})

    assert response.status_code == 403
    assert mail.outbox == []


@pytest.mark.parametrize(
    "url_name", ["password_reset", "password_reset_done", "password_reset_complete", "login"]
)
def test_the_reset_pages_are_public_and_in_our_layout(client, smtp, url_name):
    response = client.get(reverse(url_name))

    assert response.status_code == 200
    assert 'class="site-header"' in response.content.decode()
    assert_csp_clean(response.content.decode())
