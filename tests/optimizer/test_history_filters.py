"""The History page's filters and what follows them: the export links, the address pushed, Back."""

import json

import pytest
from django.core.cache import caches
from django.urls import reverse

from tests.optimizer.test_run_views import make_run

HTMX = {"HTTP_HX_REQUEST": "true"}
URL = "/history/"


@pytest.fixture(autouse=True)
def _clean_cache(db):
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.fixture
def runs(owner):
    """Two coding prompts among four."""
    return [
        make_run(owner, text="Explain how tides work."),
        make_run(owner, text="Write a Python function that sorts a list.", prompt_type="coding"),
        make_run(owner, text="Write a limerick about a cat.", prompt_type="creative"),
        make_run(owner, text="Write a SQL query for the top ten customers.", prompt_type="coding"),
    ]


def exported(client, href: str) -> list[str]:
    return [row["title"] for row in json.loads(b"".join(client.get(href).streaming_content))]


def export_href(html: str) -> str:
    start = html.index('href="/history/export.json') + len('href="')
    return html[start : html.index('"', start)].replace("&amp;", "&")


@pytest.mark.usefixtures("runs")
def test_the_export_links_of_a_filtered_htmx_request_export_what_it_shows(owner_client):
    """The links sit outside the region the filters swap: they come along out of band, carrying the
    filters of the request, and the file holds the rows the page shows (the search included)."""
    response = owner_client.get(URL, {"q": "write", "type": "coding", "engine": "", "sort": "newest"}, **HTMX)
    html = response.content.decode()

    assert '<p id="history-exports" class="exports small" hx-swap-oob="true">' in html
    href = export_href(html)
    assert href == "/history/export.json?q=write&type=coding&sort=newest"
    shown = [row.title for row in response.context["rows"]]
    assert len(shown) == 2 and exported(owner_client, href) == shown
    assert 'href="/history/export.csv?q=write&amp;type=coding&amp;sort=newest"' in html


@pytest.mark.usefixtures("runs")
def test_the_export_links_of_the_whole_page_carry_its_filters_and_only_once(owner_client):
    html = owner_client.get(URL, {"type": "coding"}).content.decode()

    assert html.count('id="history-exports"') == 1 and "hx-swap-oob" not in html
    assert exported(owner_client, export_href(html)) == [
        "Write a SQL query for the top ten customers.",
        "Write a Python function that sorts a list.",
    ]


@pytest.mark.usefixtures("runs")
def test_an_invalid_filter_shows_everything_and_so_does_its_export(owner_client):
    response = owner_client.get(URL, {"type": "coding", "min_gain": "500"}, **HTMX)
    html = response.content.decode()

    assert "Showing everything instead." in html
    assert export_href(html) == "/history/export.json" and "Export every run" in html
    assert len(exported(owner_client, export_href(html))) == len(response.context["rows"]) == 4


@pytest.mark.usefixtures("runs")
def test_an_htmx_filter_request_pushes_its_own_address(owner_client):
    """The address of the request answered (its empty fields left out), never the one before it."""
    response = owner_client.get(URL, {"q": "tides", "type": "", "date_from": "", "sort": "newest"}, **HTMX)
    assert response["HX-Push-Url"] == "/history/?q=tides&sort=newest"

    response = owner_client.get(URL, {"q": "cat", "type": "creative"}, **HTMX)
    assert response["HX-Push-Url"] == "/history/?q=cat&type=creative"

    assert owner_client.get(URL, {"q": ""}, **HTMX)["HX-Push-Url"] == URL


def test_a_page_of_the_filtered_history_pushes_its_number(owner_client, owner):
    for number in range(27):
        make_run(owner, text=f"Prompt number {number}", done=False)

    response = owner_client.get(URL, {"q": "Prompt", "page": "2"}, **HTMX)

    assert response["HX-Push-Url"] == "/history/?q=Prompt&page=2"
    assert 'href="?q=Prompt&amp;page=1"' in response.content.decode()


@pytest.mark.usefixtures("runs")
def test_the_same_address_again_is_no_new_step_back(owner_client):
    """Enter after the search already ran, or the search field's change on leaving it, asks the same
    again: the address is kept (replaced), not pushed a second time."""
    current = {"HTTP_HX_CURRENT_URL": "http://testserver/history/?q=tides&sort=newest"}
    response = owner_client.get(URL, {"q": "tides", "type": "", "sort": "newest"}, **HTMX, **current)

    assert "HX-Push-Url" not in response
    assert response["HX-Replace-Url"] == "/history/?q=tides&sort=newest"


@pytest.mark.usefixtures("runs")
def test_back_to_a_filtered_page_gets_the_whole_page_with_its_fields_filled(owner_client):
    """htmx keeps no snapshot of the page (hx-history="false": a snapshot loses what was typed), so
    Back asks the server for the address: the whole page, fields and results drawn from it alike."""
    restore = {"HTTP_HX_HISTORY_RESTORE_REQUEST": "true"}
    response = owner_client.get(URL, {"q": "write", "type": "coding", "sort": "gain"}, **HTMX, **restore)
    html = response.content.decode()

    assert "<html" in html and 'hx-history="false"' in html
    assert 'name="q" value="write"' in html
    assert '<option value="coding" selected>' in html and '<option value="gain" selected>' in html
    assert len(response.context["rows"]) == 2 and "HX-Push-Url" not in response
    assert "HX-History-Restore-Request" in response["Vary"]


def test_back_to_the_optimize_page_gets_the_whole_page(owner_client):
    restore = {"HTTP_HX_HISTORY_RESTORE_REQUEST": "true"}
    response = owner_client.get(reverse("optimizer:optimize"), **HTMX, **restore)

    assert "<html" in response.content.decode() and 'id="checklist"' in response.content.decode()
    assert "HX-History-Restore-Request" in response["Vary"]
