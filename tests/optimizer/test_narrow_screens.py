"""Pages on a phone (390px): the stylesheet's narrow-screen rules stack what a wide screen lays out in
columns, so no page is wider than the screen. Measured in a browser when written (the catalogue made
the Optimize page 613px wide; the history table scrolled sideways with Cost and When off-screen)."""

import re

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from optimizer import services

NARROW = "@media (max-width: 640px)"


def narrow_rules() -> dict[str, str]:
    """Selector -> declarations of each rule inside the stylesheet's narrow-screen block."""
    with open(finders.find("css/app.css"), encoding="utf-8") as handle:
        css = handle.read()
    start = css.index("{", css.index(NARROW)) + 1
    depth, end = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(css[end], 0)
        end += 1
    block = re.sub(r"/\*.*?\*/", "", css[start:end])
    rules = {}
    for selectors, declarations in re.findall(r"([^{}]+)\{([^{}]*)\}", block):
        for selector in selectors.split(","):
            rules[selector.strip()] = rules.get(selector.strip(), "") + declarations
    return rules


def test_the_technique_catalogue_stacks_on_a_narrow_screen():
    assert "grid-template-columns: 1fr" in narrow_rules()[".catalogue"]


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
    rules = narrow_rules()
    assert "display: flex" in rules[".history tr"] and "flex-wrap: wrap" in rules[".history tr"]
    assert "display: block" in rules[".history td"]
    assert "content: attr(data-label)" in rules[".history td[data-label]::before"]
