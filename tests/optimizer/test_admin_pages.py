"""The admin as a door of its own: our icon on its pages, runs named so a list reads plainly."""

import pytest
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.urls import reverse

from optimizer import services


def icon_link() -> str:
    return f'<link rel="icon" href="{static("img/favicon.svg")}" type="image/svg+xml">'


def a_run(owner):
    return services.run_submit(
        owner=owner,
        text="Explain how tides work.",
        run_settings=services.run_settings_build(
            prompt_type="general", preset="auto", techniques=[], model="builtin", keep_spans=True
        ),
    )


def test_every_admin_page_links_our_icon(client, staff_client, staff_user):
    """Without a link the browser fetches /favicon.ico, which no URL serves: a 404 in every console."""
    icon = icon_link()
    run = a_run(staff_user)
    for url in (
        reverse("admin:index"),
        reverse("admin:optimizer_optimizationrun_changelist"),
        reverse("admin:optimizer_optimizationrun_change", args=[run.pk]),
    ):
        html = staff_client.get(url).content.decode()
        assert html.count(icon) == 1, url
    assert f"Run {run.pk} (prompt {run.prompt_id})" in html  # the change page's heading
    assert finders.find("img/favicon.svg") is not None

    client.logout()
    assert icon in client.get(reverse("admin:login")).content.decode()
    assert icon in client.get(reverse("login")).content.decode()


@pytest.mark.django_db
def test_a_run_is_named_by_its_number_and_its_prompts(owner):
    run = a_run(owner)

    assert str(run) == f"Run {run.pk} (prompt {run.prompt_id})"


def test_the_run_list_fits_a_laptop_screen_with_short_columns(staff_client, staff_user):
    """Twelve columns with each prompt's whole title ran off a 1280 px screen."""
    run = services.run_submit(
        owner=staff_user,
        text="Write a detailed onboarding guide for new support engineers joining the night shift team.",
        run_settings=services.run_settings_build(
            prompt_type="general", preset="auto", techniques=[], model="builtin", keep_spans=True
        ),
    )
    __import__("optimizer.pipeline", fromlist=["x"]).run_optimization(run_id=run.pk)
    run.refresh_from_db()

    html = staff_client.get(reverse("admin:optimizer_optimizationrun_changelist")).content.decode()

    assert 'id="nav-sidebar"' not in html  # 280 px the list needs; the index page lists the models
    table = html[html.index('<table id="result_list">') :]
    header = table[: table.index("</thead>")]
    assert header.count('<th scope="col"') == 10  # nine columns and the selection box
    assert "Write a detailed onboarding guide for…" in html
    assert f"{run.score_before} → {run.score_after}" in html and "$0" in html
