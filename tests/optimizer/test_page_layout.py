"""How the pages are laid out, read from the stylesheet and the rendered HTML. On a phone (390px) the
narrow-screen rules stack what a wide screen lays out in columns, so no page is wider than the screen
(measured in a browser when written: the catalogue made the Optimize page 613px wide; the history
table scrolled sideways with Cost and When off-screen)."""

import re

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from optimizer import services
from tests.optimizer.test_run_answers import done_run, page

NARROW = "@media (max-width: 640px)"


def stylesheet_rules(media: str | None = None) -> dict[str, str]:
    """Selector -> declarations of each rule outside any @media block, or inside the one named."""
    with open(finders.find("css/app.css"), encoding="utf-8") as handle:
        css = re.sub(r"/\*.*?\*/", "", handle.read(), flags=re.DOTALL)
    if media:
        start = css.index("{", css.index(media)) + 1
        depth, end = 1, start
        while depth:
            depth += {"{": 1, "}": -1}.get(css[end], 0)
            end += 1
        css = css[start:end]
    else:
        css = re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", css)
    rules = {}
    for selectors, declarations in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        for selector in selectors.split(","):
            rules[selector.strip()] = rules.get(selector.strip(), "") + declarations
    return rules


def test_the_technique_catalogue_stacks_on_a_narrow_screen():
    assert "grid-template-columns: 1fr" in stylesheet_rules(NARROW)[".catalogue"]


@pytest.mark.django_db
def test_the_history_table_becomes_one_labelled_block_per_run_on_a_narrow_screen(owner_client, owner):
    services.run_submit(
        owner=owner,
        text="Explain how tides work.",
        run_settings=services.run_settings_build(
            prompt_type="general", preset="auto", techniques=[], model="builtin", keep_spans=True
        ),
    )
    html = owner_client.get(reverse("optimizer:history")).content.decode()
    row = html[html.index("<tbody>") : html.index("</tbody>")]

    for label in ("Type", "Engine", "Checklist", "Cost", "When"):
        assert f'<td data-label="{label}">' in row, label
    rules = stylesheet_rules(NARROW)
    assert "display: flex" in rules[".history tr"] and "flex-wrap: wrap" in rules[".history tr"]
    assert "display: block" in rules[".history td"]
    assert "content: attr(data-label)" in rules[".history td[data-label]::before"]


@pytest.mark.django_db
def test_the_answers_a_version_was_made_with_stand_apart_from_the_buttons_below(owner_client, owner):
    html = page(owner_client, done_run(owner, answers={"audience": "team leads"}))
    given = html.index("Made with your answer")

    assert '<details class="small answers-given">' in html[given - 200 : given]
    assert given < html.index('class="actions"')
    assert "margin: 0.25rem 0 1rem" in stylesheet_rules()[".answers-given"]


def test_a_form_heading_and_its_intro_leave_no_gap_of_stacked_margins():
    """A form is a grid, whose items' margins never collapse: the heading's bottom margin and the intro's
    top margin added up to a large gap under 'Questions only you can answer'."""
    rules = stylesheet_rules()

    assert "margin-bottom: 0" in rules[".form > h2"]
    assert "margin: 0 0 0.3rem" in rules[".form > p.muted"]
