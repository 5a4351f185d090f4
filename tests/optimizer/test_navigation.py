import pytest
from django.urls import get_script_prefix, reverse, set_script_prefix

from optimizer.navigation import RUN_ROUTES, run_urls
from tests.html import inline_code

pytestmark = pytest.mark.django_db

SECTIONS = ["Optimize", "History", "Batch", "Costs", "Analytics"]


def nav_labels(html: str) -> list[str]:
    nav = html.split('<nav class="site-nav"', 1)[1].split("</nav>", 1)[0]
    return [part.split("</a>", 1)[0].rsplit(">", 1)[1] for part in nav.split("<a ")[1:]]


def test_a_user_sees_every_section_but_not_the_backups_or_the_admin(owner_client):
    html = owner_client.get(reverse("optimizer:optimize")).content.decode()

    assert nav_labels(html) == SECTIONS


def test_staff_also_see_the_backups_and_the_admin(staff_client):
    html = staff_client.get(reverse("optimizer:optimize")).content.decode()

    assert nav_labels(html) == [*SECTIONS, "Monitoring", "Backups", "Admin"]


@pytest.mark.parametrize(
    ("url_name", "label"),
    [
        ("optimizer:optimize", "Optimize"),
        ("optimizer:batch", "Batch"),
        ("optimizer:history", "History"),
        ("costs:dashboard", "Costs"),
        ("optimizer:analytics", "Analytics"),
    ],
)
def test_the_current_section_is_marked(owner_client, url_name, label):
    html = owner_client.get(reverse(url_name)).content.decode()

    assert f'aria-current="page">{label}</a>' in html
    assert html.count('aria-current="page"') == 1


def test_the_monitoring_section_is_marked_for_staff(staff_client):
    html = staff_client.get(reverse("optimizer:monitoring")).content.decode()

    assert 'aria-current="page">Monitoring</a>' in html
    assert html.count('aria-current="page"') == 1


def test_the_home_page_is_the_optimize_form_and_warns_when_no_worker_runs(owner_client):
    html = owner_client.get(reverse("optimizer:optimize")).content.decode()

    assert 'name="text"' in html
    assert "No task worker is running" in html  # no qcluster runs during the tests
    assert inline_code(html).inline_scripts == 0


def test_the_login_page_has_no_navigation(client):
    html = client.get(reverse("login")).content.decode()

    assert 'class="site-nav"' not in html
    assert "/static/css/app.css" in html


@pytest.mark.parametrize("pk", [1, 10, 2024, 8_765_432_109])
@pytest.mark.parametrize("prefix", ["/", "/tools/po/"])
def test_a_runs_addresses_are_what_reverse_gives_under_any_script_prefix(pk, prefix):
    kept = get_script_prefix()
    set_script_prefix(prefix)
    try:
        urls = run_urls(pk)
        expected = {name: reverse(url_name, args=[pk]) for name, url_name in RUN_ROUTES.items()}
        expected |= {"optimize": reverse("optimizer:optimize"), "history": reverse("optimizer:history")}
        assert urls == expected
        assert urls["diff"].startswith(prefix) and f"/{pk}/" in urls["diff"]
    finally:
        set_script_prefix(kept)
