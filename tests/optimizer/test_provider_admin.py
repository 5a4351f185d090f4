"""The Provider admin: a key variable that is not a provider key is refused with a field error, and
the "key in environment" column never tells whether an arbitrary variable is set."""

import re

import pytest
from django.urls import reverse

from optimizer.models import Provider

pytestmark = pytest.mark.django_db


def form_data(**fields) -> dict:
    """What the add and change pages post, with no model rows inline."""
    data = {
        "name": "Somewhere",
        "kind": Provider.Kind.OPENAI,
        "base_url": "https://llm.example/v1",
        "api_key_env": "OPENAI_API_KEY",
        "price_catalog": "",
        "enabled": "on",
        "fallback_order": "100",
        "connect_timeout_s": "5.0",
        "read_timeout_s": "60.0",
        "max_concurrency": "8",
        "models-TOTAL_FORMS": "0",
        "models-INITIAL_FORMS": "0",
        "models-MIN_NUM_FORMS": "0",
        "models-MAX_NUM_FORMS": "1000",
    }
    return data | fields


def saved_provider(name: str, api_key_env: str = "") -> Provider:
    return Provider.objects.create(
        name=name, kind=Provider.Kind.OPENAI, base_url="https://llm.example/v1", api_key_env=api_key_env
    )


def field_errors(html: str, field: str) -> str:
    row = re.search(rf'<div class="form-row[^"]*field-{field}[^"]*">(.*?)</fieldset>', html, re.S)
    assert row is not None, f"no {field} row on the page"
    errors = re.search(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', row.group(1), re.S)
    return errors.group(1) if errors else ""


@pytest.mark.parametrize(
    "name", ["ADMIN_PASSWORD", "SECRET_KEY", "DATABASE_URL", "SMTP_PASSWORD", "HOME_TOKEN"]
)
def test_the_add_form_refuses_a_variable_that_is_not_a_provider_key(staff_client, name):
    response = staff_client.post(reverse("admin:optimizer_provider_add"), form_data(api_key_env=name))

    assert response.status_code == 200
    errors = field_errors(response.content.decode(), "api_key_env")
    assert name in errors and "e.g. OPENAI_API_KEY" in errors
    assert not Provider.objects.filter(name="Somewhere").exists()


def test_the_add_form_says_which_names_it_accepts_and_saves_one(staff_client):
    page = staff_client.get(reverse("admin:optimizer_provider_add")).content.decode()
    assert "one ending in _API_KEY, e.g. OPENAI_API_KEY, or one listed in PROVIDER_KEY_VARIABLES" in page

    response = staff_client.post(reverse("admin:optimizer_provider_add"), form_data(api_key_env="MY_API_KEY"))

    assert response.status_code == 302
    assert Provider.objects.get(name="Somewhere").api_key_env == "MY_API_KEY"


def test_the_change_form_refuses_it_and_changes_nothing(staff_client):
    saved = saved_provider("Somewhere", "OPENAI_API_KEY")
    url = reverse("admin:optimizer_provider_change", args=[saved.pk])

    moved = form_data(api_key_env="ADMIN_PASSWORD", base_url="https://elsewhere.example/v1")

    response = staff_client.post(url, moved)

    assert response.status_code == 200
    errors = field_errors(response.content.decode(), "api_key_env")
    assert "ADMIN_PASSWORD is one of Prompt Optimizer" in errors
    saved.refresh_from_db()
    assert (saved.api_key_env, saved.base_url) == ("OPENAI_API_KEY", "https://llm.example/v1")


def key_cell(staff_client, provider: Provider) -> str:
    html = staff_client.get(reverse("admin:optimizer_provider_changelist")).content.decode()
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    row = next(row for row in rows if f"/{provider.pk}/change/" in row)
    return re.search(r'<td class="field-key_present">(.*?)</td>', row, re.S).group(1).strip()


@pytest.mark.parametrize("name", ["ADMIN_PASSWORD", "SOME_OTHER_TOKEN"])
def test_the_key_column_says_a_refused_name_is_refused_whether_or_not_it_is_set(
    staff_client, monkeypatch, name
):
    stored = saved_provider("Old row")
    Provider.objects.filter(pk=stored.pk).update(api_key_env=name)  # saved before names were checked

    monkeypatch.setenv(name, "a value")
    when_set = key_cell(staff_client, stored)
    monkeypatch.delenv(name)
    when_unset = key_cell(staff_client, stored)

    assert when_set == when_unset == "refused: not a provider key variable"


def test_the_key_column_says_whether_a_provider_key_is_set(staff_client, monkeypatch):
    stored = saved_provider("Proxy", "PROXY_API_KEY")
    builtin = Provider.objects.get(kind=Provider.Kind.BUILTIN)  # made by a migration

    monkeypatch.setenv("PROXY_API_KEY", "sk-proxy")
    assert key_cell(staff_client, stored) == "set"
    monkeypatch.delenv("PROXY_API_KEY")
    assert key_cell(staff_client, stored) == "not set"
    assert key_cell(staff_client, builtin) == "-"  # needs no key
