"""The run's own page as a place to go on from: a new prompt, "Optimize again with…" (the form filled with
the run's text and settings) and the author's own edit saved as a new version."""

import re

import pytest
from django.core.cache import caches
from django.urls import reverse

from costs.models import UsageRecord
from optimizer import pipeline, selectors, services
from optimizer.builtin_engine.rubric import score
from optimizer.models import OptimizationRun, Prompt
from tests.optimizer.test_run_views import VALID, make_run

HTMX = {"HTTP_HX_REQUEST": "true"}
OPTIMIZE = "/"


@pytest.fixture(autouse=True)
def _clean_cache(db):
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.fixture
def run(owner):
    """A finished run with settings of every kind set away from their defaults."""
    run = services.run_submit(
        owner=owner,
        text="Write a function that merges two sorted lists.",
        tags=["lists", "python"],
        run_settings=services.run_settings_build(
            prompt_type="coding",
            preset="reasoning",
            techniques=["few-shot", "step-back"],
            model="builtin",
            keep_spans=False,
        ),
    )
    pipeline.run_optimization(run_id=run.pk)
    run.refresh_from_db()
    OptimizationRun.objects.filter(pk=run.pk).update(optimized_text=f"{run.prompt.text}\n\nUse Python 3.")
    run.refresh_from_db()
    return run


def edit(client, run, text, **headers):
    return client.post(reverse("optimizer:run-edit", args=[run.pk]), {"edit-text": text}, **headers)


# --- The way on from a run's page ----------------------------------------------------------------


def test_the_run_page_offers_a_new_prompt_and_optimize_again_with(owner_client, run):
    html = owner_client.get(reverse("optimizer:run", args=[run.pk])).content.decode()

    assert f'href="{OPTIMIZE}">New prompt</a>' in html
    assert f'href="{OPTIMIZE}?from={run.pk}">Optimize again with…</a>' in html
    assert f'action="/runs/{run.pk}/edit/"' in html and "Save as a new version" in html


def test_the_page_a_submission_lands_on_holds_the_run_alone_and_marks_no_section(owner_client):
    """Swapped in for the address pushed (/runs/N/), not the one posted to (/): as on a reload, no
    section of the menu is current, and nothing of the Optimize page is left around the run."""
    swapped = owner_client.post(OPTIMIZE, VALID, **HTMX).content.decode()
    reloaded = owner_client.get(reverse("optimizer:run", args=[OptimizationRun.objects.get().pk]))

    for html in (swapped, reloaded.content.decode()):
        assert 'aria-current="page"' not in html
        assert 'id="optimize-form"' not in html and "Presets and techniques" not in html
        assert f'href="{OPTIMIZE}">New prompt</a>' in html


def test_new_prompt_is_an_empty_form(owner_client, run):
    html = owner_client.get(OPTIMIZE).content.decode()

    assert "<h1>Optimize a prompt</h1>" in html and run.prompt.text not in html
    assert 'name="parent"' not in html


# --- Optimize again with… ------------------------------------------------------------------------


def test_optimize_again_with_fills_the_form_with_the_runs_result_and_settings(owner_client, run):
    response = owner_client.get(OPTIMIZE, {"from": run.pk})
    html = response.content.decode()
    form = response.context["form"]

    assert "<h1>Optimize again with…</h1>" in html and "Filled with the result and the settings of" in html
    assert form["text"].value() == run.optimized_text
    assert '<option value="coding" selected>' in html
    assert '<option value="reasoning" selected>' in html
    assert '<option value="builtin" selected>' in html
    assert form["techniques"].value() == ["few-shot", "step-back"]
    ticked = re.findall(r'<input type="checkbox" name="(\w+)" value="([\w-]+)"[^>]* checked>', html)
    assert ticked == [("techniques", "few-shot"), ("techniques", "step-back")]
    assert 'name="keep_spans"' in html and form["keep_spans"].value() is False
    assert form["title"].value() == f"{run.prompt.title} (again)"
    assert form["tags"].value() == "lists, python"
    assert f'<input type="hidden" name="parent" value="{run.pk}"' in html


def test_optimize_again_with_starts_from_the_original_the_author_kept(owner_client, run):
    services.run_keep_original_set(run=run, kept=True)

    response = owner_client.get(OPTIMIZE, {"from": run.pk})

    assert response.context["form"]["text"].value() == run.prompt.text
    assert "Filled with the prompt and the settings of" in response.content.decode()


def test_submitting_it_changed_makes_a_new_version_of_the_run(owner_client, owner, run):
    changed = VALID | {
        "text": run.optimized_text,
        "type": "technical",
        "preset": "lite",
        "techniques": ["react"],
        "parent": run.pk,
        "title": "Merge, again",
    }
    response = owner_client.post(OPTIMIZE, changed, **HTMX)

    child = OptimizationRun.objects.select_related("prompt").get(parent=run)
    assert response["HX-Push-Url"] == reverse("optimizer:run", args=[child.pk])
    assert child.settings["type"] == "technical" and child.settings["preset"] == "lite"
    assert child.settings["techniques"] == ["react"] and child.prompt.text == run.optimized_text
    assert [version.pk for version in selectors.version_chain(child)] == [run.pk, child.pk]
    assert "Versions" in response.content.decode()


@pytest.mark.parametrize("value", ["abc", "999999", ""])
def test_optimize_again_with_a_run_that_is_not_there_is_404(owner_client, run, value):
    assert owner_client.get(OPTIMIZE, {"from": value}).status_code == 404


def test_optimize_again_with_another_users_run_is_404_and_shows_nothing_of_it(client, run, other_user):
    client.force_login(other_user)

    response = client.get(OPTIMIZE, {"from": run.pk})

    assert response.status_code == 404 and run.prompt.text not in response.content.decode()


@pytest.mark.parametrize("htmx", [True, False])
def test_continuing_a_version_that_is_gone_or_not_yours_is_refused_and_then_new(
    client, run, other_user, htmx
):
    """A deleted (or someone else's) version is named the same way; nothing is saved, the form says
    what to do, and drawn again without it, submitting it again saves a new prompt."""
    client.force_login(other_user)
    headers = HTMX if htmx else {}

    response = client.post(OPTIMIZE, VALID | {"parent": run.pk}, **headers)
    html = response.content.decode()

    assert response.status_code == 200
    assert "The version this was to continue has been deleted. Press Optimize again" in html
    assert 'name="parent" value' not in html and run.prompt.title not in html
    assert OptimizationRun.objects.count() == 1
    again = client.post(OPTIMIZE, VALID, **headers)
    assert again.status_code in (200, 302)
    assert OptimizationRun.objects.filter(owner=other_user, parent=None).count() == 1


# --- Edited by hand ------------------------------------------------------------------------------


def test_an_edit_saved_is_a_new_version_scored_by_the_checklist_without_a_model(owner_client, run):
    text = f"{run.optimized_text}\nReturn only the code, in one block."
    response = edit(owner_client, run, text, **HTMX)

    child = OptimizationRun.objects.select_related("prompt").get(parent=run)
    assert response["HX-Push-Url"] == reverse("optimizer:run", args=[child.pk])
    assert child.status == "done" and child.optimized_text == text and child.cost == 0
    assert child.prompt.text == run.prompt.text and child.prompt.title == f"{run.prompt.title} (edited)"
    assert child.prompt.tags == ["lists", "python"] and child.settings == run.settings | {"edited": True}
    assert child.scores == {"before": score(run.prompt.text), "after": score(text)}
    assert (child.score_before, child.score_after) == (
        score(run.prompt.text)["overall"],
        score(text)["overall"],
    )
    assert child.score_gain == child.score_after - child.score_before
    assert child.diagnosis == run.diagnosis and child.questions == []
    assert not UsageRecord.objects.exists()

    html = owner_client.get(reverse("optimizer:run", args=[child.pk])).content.decode()
    assert "<span>Edited by hand</span>" in html and "Built-in engine" not in html
    assert "None: this version was edited by hand." in html
    assert f'href="{reverse("optimizer:run", args=[run.pk])}">{run.prompt.title}</a>' in html  # Versions
    assert f"checklist {child.score_before} → {child.score_after}" in html

    history = owner_client.get(reverse("optimizer:history")).content.decode()
    rows = {row.split('href="')[1].split('"')[0]: row for row in history.split("<tr>")[2:]}
    assert '<td data-label="Engine">Edited by hand</td>' in rows[reverse("optimizer:run", args=[child.pk])]
    assert "Edited by hand" not in rows[reverse("optimizer:run", args=[run.pk])]


def test_an_edit_of_a_kept_original_starts_from_the_original(owner_client, run):
    services.run_keep_original_set(run=run, kept=True)
    html = owner_client.get(reverse("optimizer:run", args=[run.pk])).content.decode()
    assert html.count("Edit by hand") == 1

    form = owner_client.get(reverse("optimizer:run", args=[run.pk])).context["edit_form"]
    assert form["text"].value() == run.prompt.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "The text is as it was. Change it, then save it as a new version."),
        ("   ", "Paste a prompt to optimize: this one is empty."),
        ("Write\x07 code", "control character (U+0007) at position 6"),
        ("original", "This is the prompt this version started from: use “Keep my original”"),
    ],
)
@pytest.mark.parametrize("htmx", [True, False])
def test_an_edit_that_cannot_be_saved_says_why_and_saves_nothing(owner_client, run, text, message, htmx):
    text = {None: run.optimized_text, "original": run.prompt.text}.get(text, text)
    response = edit(owner_client, run, text, **(HTMX if htmx else {}))
    html = response.content.decode()

    assert response.status_code == 200 and message in html
    assert ("<html" in html) is not htmx  # htmx gets the edit form alone, to swap in its place
    assert html.count('<form id="edit"') == 1
    assert OptimizationRun.objects.count() == 1 and Prompt.objects.count() == 1


def test_an_unfinished_run_cannot_be_edited(owner_client, owner):
    run = make_run(owner, done=False)

    response = edit(owner_client, run, "Explain the tides to a child.", follow=True)

    assert "text can be edited: wait for it to finish." in response.content.decode()
    assert OptimizationRun.objects.count() == 1


def test_an_edit_counts_towards_the_run_limit(owner_client, run, settings):
    settings.RUNS_PER_MINUTE = 1  # the run itself used it

    response = edit(owner_client, run, "Merge two sorted lists in Python.", **HTMX)

    assert response.status_code == 429 and "Try again in" in response.content.decode()
    assert OptimizationRun.objects.count() == 1


def test_nobody_edits_another_users_run(client, run, other_user):
    client.force_login(other_user)

    assert edit(client, run, "Something else entirely.").status_code == 404
    assert OptimizationRun.objects.count() == 1
