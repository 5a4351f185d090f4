"""Security headers, the CSP, and CSRF protection on every kind of page."""

import logging
import re

import pytest
from django.test import Client
from django.urls import reverse

from optimizer.navigation import NAV_ITEMS
from tests.factories import PASSWORD
from tests.html import inline_code

pytestmark = pytest.mark.django_db


def csp_directives(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


@pytest.mark.parametrize("url_name", ["login", "optimizer:healthz"])
def test_public_responses_carry_the_security_headers(client, url_name):
    response = client.get(reverse(url_name))

    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    directives = csp_directives(response)
    assert directives["script-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]


def test_csp_allows_no_inline_script_or_style(owner_client):
    directives = csp_directives(owner_client.get(reverse("optimizer:optimize")))

    for directive in ("default-src", "script-src", "style-src"):
        assert "'unsafe-inline'" not in directives[directive]
        assert "'unsafe-eval'" not in directives[directive]


@pytest.mark.parametrize("url_name", ["login", *(item.url_name for item in NAV_ITEMS)])
def test_pages_contain_nothing_the_csp_would_block(staff_client, url_name):
    if url_name == "login":
        staff_client.logout()
    response = staff_client.get(reverse(url_name))

    assert response.status_code == 200
    found = inline_code(response.content.decode())
    assert found.inline_scripts == 0
    assert found.style_elements == 0
    assert found.style_attributes == []
    assert found.event_handlers == []
    assert all(source.startswith("/static/") for source in found.script_sources)


def test_pages_load_htmx_from_our_static_files_and_send_the_csrf_token(owner_client):
    html = owner_client.get(reverse("optimizer:optimize")).content.decode()

    assert re.search(r'<script src="/static/django_htmx/htmx-2(\.min)?\.js" defer>', html)
    token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([A-Za-z0-9]+)"\}\'', html)
    assert token and len(token.group(1)) >= 32
    assert 'name="htmx-config"' in html and '"includeIndicatorStyles": false' in html


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(owner):
    client = Client(enforce_csrf_checks=True)

    response = client.post(reverse("login"), {"username": owner.username, "password": PASSWORD})

    assert response.status_code == 403
    assert b"This form has expired" in response.content
    assert "_auth_user_id" not in client.session


def test_a_post_with_the_csrf_token_from_the_page_is_accepted(owner):
    client = Client(enforce_csrf_checks=True)
    page = client.get(reverse("login")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    response = client.post(
        reverse("login"), {"username": owner.username, "password": PASSWORD, "csrfmiddlewaretoken": token}
    )

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(owner.pk)


def test_a_bad_host_header_is_one_warning_line_without_a_traceback(client, caplog):
    # Anyone can send any Host: a traceback per request would let them flood the log.
    with caplog.at_level(logging.INFO):
        response = client.get(reverse("optimizer:healthz"), HTTP_HOST="evil.example")

    assert response.status_code == 400
    records = _not_access(caplog.records)  # besides the access line every request has
    assert [(record.name, record.levelname) for record in records] == [
        ("django.security.DisallowedHost", "WARNING")
    ]
    assert records[0].exc_info is None
    assert "evil.example" in records[0].getMessage()
    assert "Traceback" not in caplog.text


def test_other_security_errors_stay_errors(client, caplog, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 2
    with caplog.at_level(logging.INFO):
        response = client.post(reverse("login"), {"a": "1", "b": "2", "c": "3"})

    assert response.status_code == 400
    assert [(record.name, record.levelname) for record in _not_access(caplog.records)] == [
        ("django.security.TooManyFieldsSent", "ERROR")
    ]


def _not_access(records: list) -> list:
    """The records but the one access line of each request (config.middleware)."""
    return [record for record in records if record.name != "access"]


def test_pages_and_exports_for_a_user_are_never_stored_by_a_cache(owner_client):
    urls = (reverse("optimizer:history"), reverse("optimizer:history-export-csv"), reverse("costs:dashboard"))
    for url in urls:
        response = owner_client.get(url)
        assert response.status_code == 200, url
        assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"], url


def test_header_blocks_are_never_logged_whatever_the_log_level(caplog):
    """hpack logs each encoded header block (an API key among them) at DEBUG; so may httpcore."""
    caplog.set_level(logging.DEBUG)
    for name in ("hpack", "hpack.hpack", "httpcore", "httpcore.http2"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
