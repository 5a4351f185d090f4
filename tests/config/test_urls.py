"""Every URL of the project, walked from the URL conf: login required except on the public ones."""

import itertools
import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils.regex_helper import normalize

PUBLIC = {
    "login", "optimizer:healthz", "admin:login", "api:health",
    "password_reset", "password_reset_done", "password_reset_confirm", "password_reset_complete",
}  # fmt: skip
# Health probes answer 503 by design when a component is down (in the tests no task worker runs):
# a JSON report, not a server error.
PROBES = {"api:health"}
SAMPLE_VALUES = ("1", "auth", "x", "00000000-0000-0000-0000-000000000001")


def _strip_anchors(regex: str) -> str:
    return regex.removeprefix("^").removesuffix(r"\Z").removesuffix("$")


def walk(patterns=None, prefix="", namespace=""):
    """Yield (name, full regex) for every endpoint in the URL conf."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        regex = prefix + _strip_anchors(pattern.pattern.regex.pattern)
        if isinstance(pattern, URLResolver):
            inner = ":".join(filter(None, [namespace, pattern.namespace]))
            yield from walk(pattern.url_patterns, regex, inner)
        elif isinstance(pattern, URLPattern):
            name = ":".join(filter(None, [namespace, pattern.name])) if pattern.name else None
            yield name, regex


def sample_url(regex: str) -> str:
    """A concrete path that the pattern matches, with sample values for its parameters."""
    template, params = normalize(regex)[0]
    for values in itertools.product(SAMPLE_VALUES, repeat=len(params)):
        path = "/" + template % dict(zip(params, values, strict=True))
        if re.fullmatch(regex, path[1:]):
            return path
    raise AssertionError(f"no sample URL for {regex!r}")


ENDPOINTS = sorted({(name or "(unnamed)", sample_url(regex)) for name, regex in walk()})


def test_the_walk_finds_the_whole_url_conf():
    names = {name for name, _ in ENDPOINTS}
    assert {"optimizer:optimize", "costs:dashboard", "backups:index", "admin:index", "logout"} <= names
    assert len(ENDPOINTS) > 30  # the admin alone contributes dozens


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "url"), ENDPOINTS)
def test_anonymous_visitors_are_sent_to_the_login_page(client, name, url):
    response = client.get(url)

    if name in PROBES:
        assert response.status_code in (200, 503) and response.json()["status"], name
    elif name in PUBLIC:
        assert response.status_code == 200
    else:
        assert response.status_code == 302, f"{name} ({url}) answered {response.status_code}"
        # The admin's own login page also counts: it tells a signed-in non-staff user why not.
        login_pages = (reverse("login") + "?next=", reverse("admin:login") + "?next=")
        assert response.headers["Location"].startswith(login_pages)


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "url"), ENDPOINTS)
def test_signed_in_users_never_get_a_server_error(client, staff_user, owner, name, url):
    for user in (staff_user, owner):
        client.force_login(user)
        response = client.get(url)
        if name in PROBES:
            assert response.status_code in (200, 503) and response.json()["status"], name
            continue
        assert response.status_code < 500, f"{name} ({url}) as {user} answered {response.status_code}"
