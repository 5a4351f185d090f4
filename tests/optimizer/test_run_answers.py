"""The result page's clarifying questions, the model's verdict and the author's choice of prompt."""

import csv
import io
import json

import pytest
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import escape

from optimizer import pipeline, services
from optimizer.builtin_engine.rubric import CRITERIA
from optimizer.models import OptimizationRun, Prompt
from tests.html import inline_code

HTMX = {"HTTP_HX_REQUEST": "true"}
TEXT = "Write a blog post about remote work."
QUESTIONS = [
    {"key": "audience", "question": "Who will read the post?", "why": "It sets the depth and the words.",
     "examples": ["team leads", "new hires"]},
    {"key": "length", "question": "How long should it be?", "why": "A post can be 300 or 3,000 words.",
     "examples": ["about 800 words"]},
]  # fmt: skip
WORSE = {
    "winner": "original",
    "confidence": "high",
    "criteria": [
        {
            "name": "No contradictions or filler",
            "reasoning": "The rewrite adds filler.",
            "better": "original",
        },
        {"name": "Clear task", "reasoning": "Both ask for one post.", "better": "tie"},
    ],
    "summary": "The original says the same with fewer words.",
}


@pytest.fixture(autouse=True)
def _clean_cache(db):
    caches["default"].clear()
    yield
    caches["default"].clear()


def done_run(owner, *, questions=QUESTIONS, answers=None, text=TEXT, **fields) -> OptimizationRun:
    """A finished built-in run whose open questions (and any other stored output) are set here, so the
    page is tested on what it is given, whatever the engine asks today."""
    run = services.run_submit(
        owner=owner,
        text=text,
        run_settings=services.run_settings_build(
            prompt_type="general", preset="auto", techniques=[], model="builtin", keep_spans=True,
            answers=answers,
        ),
    )  # fmt: skip
    if run.status != OptimizationRun.Status.DONE:
        pipeline.run_optimization(run_id=run.pk)
    fields.setdefault("optimized_text", f"{text}\n\nGive it a title and three sections.")  # a real rewrite
    OptimizationRun.objects.filter(pk=run.pk).update(questions=questions, **fields)
    run.refresh_from_db()
    return run


def page(client, run, **params) -> str:
    return client.get(reverse("optimizer:run", args=[run.pk]), params).content.decode()


def answer_url(run) -> str:
    return reverse("optimizer:run-answer", args=[run.pk])


def keep_url(run) -> str:
    return reverse("optimizer:run-keep-original", args=[run.pk])


# --- Questions and answers -----------------------------------------------------------------------


def test_the_result_page_shows_each_open_question_with_an_input_in_one_form(owner_client, owner):
    run = done_run(owner)
    html = page(owner_client, run)

    assert html.count('id="answers"') == 1 and f'action="{answer_url(run)}"' in html
    assert "Answer and optimize again" in html
    for question in QUESTIONS:
        assert question["question"] in html and question["why"] in html
        assert f'name="answer-{question["key"]}"' in html
        assert all(example in html for example in question["examples"])
    form = html[html.index('id="answers"') : html.index("</form>", html.index('id="answers"'))]
    assert "csrfmiddlewaretoken" in form
    assert inline_code(html).inline_scripts == 0 and not inline_code(html).style_attributes


def test_the_answer_limit_is_said_beside_each_input_and_a_long_paste_is_never_cut(owner_client, owner):
    """A maxlength would drop the end of a longer paste without a word: the limit is said instead, and
    an answer over it comes back whole with the server's message, to be shortened by its author."""
    run = done_run(owner, questions=[QUESTIONS[0], {"key": "tone", "question": "Which tone?", "why": "",
                                                    "examples": []}])  # fmt: skip
    html = page(owner_client, run)
    form = html[html.index('id="answers"') : html.index("</form>", html.index('id="answers"'))]

    assert "maxlength" not in form and form.count("Up to 500 characters.") == 2
    assert 'aria-describedby="id_answer-tone-why"' in form and 'id="id_answer-tone-why"' in form

    pasted = "team leads " * 50
    rejected = owner_client.post(answer_url(run), {"answer-audience": pasted}, **HTMX).content.decode()
    assert f"This answer is {len(pasted)} characters long; the limit is 500." in rejected
    assert f'value="{pasted}"' in rejected
    assert not OptimizationRun.objects.filter(parent=run).exists()


def test_a_run_without_open_questions_shows_no_answer_form(owner_client, owner):
    assert 'id="answers"' not in page(owner_client, done_run(owner, questions=[]))


def test_answering_creates_a_child_of_the_original_text_with_the_answers_merged(owner_client, owner):
    run = done_run(owner, answers={"tone": "friendly"})

    response = owner_client.post(answer_url(run), {"answer-audience": "  team leads ", "answer-length": ""})

    child = OptimizationRun.objects.get(parent=run)
    assert response.status_code == 302 and response["Location"] == reverse("optimizer:run", args=[child.pk])
    assert child.prompt.text == TEXT and child.prompt.text != run.optimized_text
    assert child.settings == run.settings | {"answers": {"tone": "friendly", "audience": "team leads"}}
    assert child.owner == owner and child.prompt.title.endswith("(answered)")

    pipeline.run_optimization(run_id=child.pk)
    html = page(owner_client, child)
    assert "Made with your answers to 2 questions" in html and "team leads" in html
    assert "Versions" in html and reverse("optimizer:run", args=[run.pk]) in html


def test_an_htmx_answer_loads_the_new_versions_page_whole(owner_client, owner):
    run = done_run(owner)

    response = owner_client.post(answer_url(run), {"answer-length": "about 800 words"}, **HTMX)

    child = OptimizationRun.objects.get(parent=run)
    assert response["HX-Push-Url"] == reverse("optimizer:run", args=[child.pk])
    assert response.status_code == 200 and response["HX-Retarget"] == "body"
    assert f"<title>{child.prompt.title} · Prompt Optimizer</title>" in response.content.decode()
    assert child.settings["answers"] == {"length": "about 800 words"}

    pipeline.run_optimization(run_id=child.pk)
    html = owner_client.get(response["HX-Push-Url"]).content.decode()
    assert f"<title>{child.prompt.title} · Prompt Optimizer</title>" in html
    assert "<h2>Versions</h2>" in html and reverse("optimizer:run", args=[run.pk]) in html


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"answer-audience": " ", "answer-length": ""}, "Answer at least one question"),
        ({}, "Answer at least one question"),
        ({"answer-audience": "x" * 501}, "the limit is 500"),
        ({"answer-audience": "team\x07leads"}, "control character (U+0007) at position 5"),
        ({"answer-audience": "team leads", "answer-mood": "calm"}, "“mood” is not one of this optimization"),
    ],
)
@pytest.mark.parametrize("htmx", [True, False])
def test_a_rejected_answer_says_why_and_changes_nothing(owner_client, owner, data, message, htmx):
    run = done_run(owner)
    before = (OptimizationRun.objects.count(), Prompt.objects.count())

    response = owner_client.post(answer_url(run), data, **(HTMX if htmx else {}))

    html = response.content.decode()
    assert response.status_code == 200 and message in html
    assert 'id="answers"' in html and ("<html" in html) is not htmx
    assert (OptimizationRun.objects.count(), Prompt.objects.count()) == before
    assert OptimizationRun.objects.get(pk=run.pk).settings == run.settings


def test_answering_a_run_that_has_not_finished_is_refused(owner, db):
    run = services.run_submit(
        owner=owner,
        text=TEXT,
        run_settings=services.run_settings_build(
            prompt_type="general", preset="auto", techniques=[], model="builtin", keep_spans=True
        ),
    )
    with pytest.raises(ValidationError, match="Only a finished optimization"):
        services.run_answer(run=run, answers={"audience": "team leads"})
    assert OptimizationRun.objects.count() == 1


def test_reoptimizing_optimizes_the_rewrite_which_already_carries_the_answers(owner_client, owner):
    run = done_run(owner, answers={"audience": "team leads"}, engine="llm")  # a model's rewrite
    owner_client.post(reverse("optimizer:run-reoptimize", args=[run.pk]))

    child = OptimizationRun.objects.get(parent=run)
    assert child.prompt.text == run.optimized_text
    assert run.settings["answers"] and child.settings == {
        k: v for k, v in run.settings.items() if k != "answers"
    }


# --- The verdict and the checklist ---------------------------------------------------------------


def test_a_rewrite_the_model_judged_worse_says_so_at_the_top_and_offers_the_original(owner_client, owner):
    run = done_run(owner, scores={"before": {}, "after": {}, "verdict": WORSE})
    html = page(owner_client, run)

    top = html.index("The model judged this rewrite worse than your original.")
    assert top < html.index('class="result-head"')
    banner = html[top : html.index("</form>", top)]
    assert f'action="{keep_url(run)}"' in banner and 'class="button">Keep my original' in banner
    assert html.count("Keep my original") == 1  # the prominent offer replaces the quiet one
    assert "The model judged the rewrite <strong>worse</strong> (confidence high)" in html
    details = html[html.index('class="verdict-reasons"') :]
    assert "No contradictions or filler</strong>: your original" in details
    assert "The rewrite adds filler." in details and "Clear task</strong>: neither" in details


@pytest.mark.parametrize(("winner", "word"), [("rewrite", "better"), ("tie", "no different")])
def test_a_verdict_is_the_headline_with_the_checklist_below(owner_client, owner, winner, word):
    run = done_run(owner)
    run.scores["verdict"] = WORSE | {"winner": winner, "confidence": "medium"}
    run.save(update_fields=["scores"])
    html = page(owner_client, run)

    headline = html.index(f"The model judged the rewrite <strong>{word}</strong> (confidence medium)")
    assert headline < html.index("Checklist <span")
    assert "judged this rewrite worse" not in html
    assert 'class="button button-quiet">Keep my original' in html


def test_without_a_verdict_the_score_is_named_a_checklist_and_links_to_its_criteria(owner_client, owner):
    run = done_run(owner)
    html = page(owner_client, run)

    assert "The model judged" not in html
    head = html[html.index('class="result-head"') : html.index("</div>", html.index('class="result-head"'))]
    assert "Checklist" in head and f"{run.score_before}</span> → <strong>{run.score_after}" in head
    assert "<h2>Checklist</h2>" in html and "not a measure of its quality" in html
    assert f'href="{reverse("optimizer:optimize")}#checklist"' in html
    assert 'class="button button-quiet">Keep my original' in html  # always offered, quietly

    optimize = owner_client.get(reverse("optimizer:optimize")).content.decode()
    published = optimize[optimize.index('id="checklist"') :]
    assert "not a measure of quality" in published
    for name, weight, what in CRITERIA.values():
        assert f"<td>{escape(name)}</td><td>{weight}%</td><td>{escape(what)}</td>" in published


def test_an_older_run_with_the_models_per_prompt_scores_still_renders(owner_client, owner):
    old_scores = {
        side: {"overall": 50, "criteria": []} for side in ("before", "after", "llm_before", "llm_after")
    }
    run = done_run(owner, questions=[], scores=old_scores)

    response = owner_client.get(reverse("optimizer:run", args=[run.pk]))
    assert response.status_code == 200 and "<h2>Checklist</h2>" in response.content.decode()


@pytest.mark.parametrize(
    ("severities", "shown"),
    [((), True), (("low", "low"), True), (("low", "medium"), False), (("high",), False)],
)
def test_a_prompt_with_nothing_serious_is_said_to_be_in_good_shape(owner_client, owner, severities, shown):
    issues = [{"code": "x", "title": f"Issue {n}", "severity": s, "detail": "", "fix": ""}
              for n, s in enumerate(severities)]  # fmt: skip
    run = done_run(owner, diagnosis={"issues": issues, "questions": []})

    assert ("Already in good shape" in page(owner_client, run)) is shown


# --- Keep my original ----------------------------------------------------------------------------


def test_keep_my_original_makes_the_original_the_prompt_to_copy_and_can_be_undone(owner_client, owner):
    run = done_run(owner)

    assert owner_client.post(keep_url(run), {"kept": "1"}).status_code == 302
    assert OptimizationRun.objects.get(pk=run.pk).kept_original
    html = page(owner_client, run)
    copy = html.index('data-copy="#original-text"')
    assert html.count("data-copy=") == 1 and html.index('<pre id="original-text"') > copy
    original = html[html.index('<pre id="original-text"') :]
    assert original[original.index(">") + 1 :].startswith(TEXT)
    assert "Use the rewrite" in html and "Keep my original" not in html
    history = owner_client.get(reverse("optimizer:history")).content.decode()
    assert "original kept" in history

    partial = owner_client.post(keep_url(run), {"kept": "0"}, **HTMX).content.decode()
    assert not OptimizationRun.objects.get(pk=run.pk).kept_original
    assert 'id="run-panel"' in partial and "<html" not in partial
    assert 'data-copy="#optimized-text"' in partial and 'id="original-text"' not in partial
    assert "original kept" not in owner_client.get(reverse("optimizer:history")).content.decode()


def test_keeping_the_original_of_an_unfinished_run_is_refused(owner_client, owner):
    run = services.run_submit(
        owner=owner,
        text=TEXT,
        run_settings=services.run_settings_build(
            prompt_type="general", preset="auto", techniques=[], model="builtin", keep_spans=True
        ),
    )
    response = owner_client.post(keep_url(run), {"kept": "1"}, follow=True)
    assert "no rewrite yet" in response.content.decode()
    assert not OptimizationRun.objects.get(pk=run.pk).kept_original


def test_nobody_answers_or_keeps_another_users_run(client, owner, other_user):
    run = done_run(owner)
    client.force_login(other_user)

    assert client.post(answer_url(run), {"answer-audience": "team leads"}).status_code == 404
    assert client.post(keep_url(run), {"kept": "1"}, **HTMX).status_code == 404
    assert OptimizationRun.objects.count() == 1 and not OptimizationRun.objects.get().kept_original


def test_answer_and_keep_take_posts_only(owner_client, owner):
    run = done_run(owner)
    assert owner_client.get(answer_url(run)).status_code == 405
    assert owner_client.get(keep_url(run)).status_code == 405


# --- Export ---------------------------------------------------------------------------------------


def test_the_history_export_carries_the_questions_and_the_choice(owner_client, owner):
    run = done_run(owner, kept_original=True)

    rows = json.loads(b"".join(owner_client.get(reverse("optimizer:history-export-json")).streaming_content))
    assert rows[0]["questions"] == QUESTIONS and rows[0]["kept_original"] is True

    response = owner_client.get(reverse("optimizer:history-export-csv"))
    (row,) = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig")))
    assert row["questions"] == "audience: Who will read the post?\nlength: How long should it be?"
    assert row["kept_original"] == "True" and row["id"] == str(run.pk)


def test_the_admin_lists_and_filters_runs_whose_author_kept_the_original(staff_client, staff_user):
    kept = done_run(staff_user, kept_original=True)
    done_run(staff_user, text="Explain tides.")

    response = staff_client.get(
        reverse("admin:optimizer_optimizationrun_changelist"), {"kept_original__exact": "1"}
    )
    assert [run.pk for run in response.context["cl"].result_list] == [kept.pk]


def test_a_prompt_handed_back_unchanged_says_so_instead_of_a_verdict(owner_client, owner):
    tie = {"winner": "tie", "confidence": "high", "criteria": [], "summary": "Unchanged."}
    run = done_run(owner, optimized_text=TEXT + "\n", scores={"before": {}, "after": {}, "verdict": tie})
    html = page(owner_client, run)

    assert "Returned as you wrote it" in html and "The model judged" not in html


GUESS = "Returned as you wrote it: the built-in engine adds nothing it would have to guess."


@pytest.mark.parametrize(
    ("severities", "questions", "said", "success"),
    [
        ((), [], "Already in good shape: the diagnosis found nothing serious", True),
        (("low",), [], "Already in good shape: the diagnosis found nothing serious", True),
        ((), QUESTIONS, f"{GUESS} Answer the questions below to improve it.", False),
        (("high", "low"), QUESTIONS, f"{GUESS} Answer the questions below to improve it.", False),
        (("medium",), [], f"{GUESS} The diagnosis below says what is missing.", False),
    ],
)
def test_an_unchanged_prompt_is_called_good_only_when_the_diagnosis_agrees(
    owner_client, owner, severities, questions, said, success
):
    """Handed back as written is not 'nothing needed changing' when the diagnosis below lists serious
    issues or questions remain open: then it says why and what to do, without a success banner."""
    issues = [{"code": "x", "title": f"Issue {n}", "severity": s, "detail": "", "fix": ""}
              for n, s in enumerate(severities)]  # fmt: skip
    run = done_run(owner, questions=questions, optimized_text=TEXT, diagnosis={"issues": issues})
    html = page(owner_client, run)

    assert said in html and "nothing in it needed changing" not in html
    assert ("message-success" in html) is success


def test_with_the_builtin_engine_an_answer_is_woven_in_and_its_question_closed(owner_client, owner):
    run = services.run_submit(
        owner=owner,
        text=TEXT,
        run_settings=services.run_settings_build(
            prompt_type="general", preset="auto", techniques=[], model="builtin", keep_spans=True
        ),
    )
    pipeline.run_optimization(run_id=run.pk)
    run.refresh_from_db()
    assert run.questions, "a bare request leaves what only its author knows open"
    first = run.questions[0]
    assert first["question"] in page(owner_client, run)

    owner_client.post(answer_url(run), {f"answer-{first['key']}": "team leads at a small agency"})
    child = OptimizationRun.objects.get(parent=run)
    pipeline.run_optimization(run_id=child.pk)
    child.refresh_from_db()

    assert child.status == "done" and child.prompt.text == TEXT
    assert "team leads at a small agency" in child.optimized_text
    assert first["key"] not in [question["key"] for question in child.questions]
    html = page(owner_client, child)
    assert "Settled by your answers" in html and f"by your answer on {first['key']}" in html


def test_the_checklist_rows_are_the_criteria_either_text_was_checked_on(owner_client, owner):
    first, second, third, *_ = CRITERIA
    scores = {
        "before": {"overall": 40, "criteria": [{"key": first, "score": 40, "rationale": "Before."}]},
        "after": {"overall": 60, "criteria": [{"key": first, "score": 70, "rationale": "Quotes “x”."},
                                              {"key": second, "score": 55, "rationale": "Now there."}]},
    }  # fmt: skip
    html = page(owner_client, done_run(owner, scores=scores))
    table = html[html.index('<table class="table scores">') : html.index("</table>")]

    assert CRITERIA[first][0] in table and CRITERIA[second][0] in table and CRITERIA[third][0] not in table
    assert "Quotes “x”." in table and table.count("not counted") == 1 and "None" not in table


def test_each_side_of_the_checklist_shows_its_own_reason_and_the_points_taken_off(owner_client, owner):
    """A before score of 0 beside the after side's 'states the reader' contradicted itself: each side
    gives its own reason (once when both say the same), and the penalties of either side are listed."""
    first, second, *_ = CRITERIA
    scores = {
        "before": {"overall": 10, "criteria": [{"key": first, "score": 0, "rationale": "No reader named."},
                                               {"key": second, "score": 50, "rationale": "Same reason."}],
                   "penalties": [{"points": 15, "why": "Contradiction: asks for both brief and detailed."}]},
        "after": {"overall": 60, "criteria": [{"key": first, "score": 80, "rationale": "States the reader."},
                                              {"key": second, "score": 50, "rationale": "Same reason."}],
                  "penalties": []},
    }  # fmt: skip
    html = page(owner_client, done_run(owner, scores=scores))
    table = html[html.index('<table class="table scores">') : html.index("<h2>Diagnosis</h2>")]

    assert "Before:</span> No reader named." in table and "After:</span> States the reader." in table
    assert table.index("No reader named.") < table.index("States the reader.")
    assert table.count("Same reason.") == 1
    penalties = table[table.index("Points taken off") :]
    assert "−15 Contradiction: asks for both brief and detailed." in penalties
    assert '<dt>After</dt><dd><span class="muted">none</span></dd>' in penalties


def test_a_run_scored_before_penalties_were_recorded_lists_none(owner_client, owner):
    first, *_ = CRITERIA
    scores = {side: {"overall": 50, "criteria": [{"key": first, "score": 50, "rationale": "Why."}]}
              for side in ("before", "after")}  # fmt: skip
    html = page(owner_client, done_run(owner, scores=scores))

    assert "<h2>Checklist</h2>" in html and "Points taken off" not in html


# --- An unchanged prompt -------------------------------------------------------------------------


def test_an_unchanged_prompt_offers_neither_optimize_again_nor_keep_my_original(owner_client, owner):
    """Both would be pointless: optimizing the same text again makes an identical cached version, and
    the original is already the prompt shown. The page says what makes a new version instead."""
    rewritten = done_run(owner, engine="llm")
    changed = page(owner_client, rewritten)
    assert f'action="{reverse("optimizer:run-reoptimize", args=[rewritten.pk])}"' in changed
    assert "Keep my original" in changed

    run = done_run(owner, text="Explain tides.", optimized_text="Explain tides.")
    html = page(owner_client, run)

    assert reverse("optimizer:run-reoptimize", args=[run.pk]) not in html and ">Optimize again<" not in html
    assert "Keep my original" not in html and keep_url(run) not in html
    assert (
        "Optimizing again with the same settings would give the same result: answer the questions below, "
        "or use Optimize again with… to pick another model or techniques." in html
    )


def test_optimizing_an_unchanged_prompt_again_is_refused_with_a_message(owner_client, owner):
    run = done_run(owner, text="Explain tides.", optimized_text="Explain tides.\n")

    with pytest.raises(ValidationError, match="optimizing it again would give the same result"):
        services.run_reoptimize(run=run)
    response = owner_client.post(reverse("optimizer:run-reoptimize", args=[run.pk]), follow=True)

    assert response.redirect_chain == [(reverse("optimizer:run", args=[run.pk]), 302)]
    assert "Answer its questions, or edit the prompt, to make a new version." in response.content.decode()
    assert OptimizationRun.objects.count() == 1


def test_a_builtin_result_is_not_offered_optimize_again_its_second_pass_changes_nothing(owner_client, owner):
    run = done_run(owner)  # the built-in engine, with a rewrite
    html = page(owner_client, run)

    assert reverse("optimizer:run-reoptimize", args=[run.pk]) not in html
    assert (
        "(the built-in engine's second pass changes nothing): answer the questions below, or use Optimize "
        "again with… to pick another model or techniques." in html
    )
    assert f'href="{reverse("optimizer:optimize")}?from={run.pk}">Optimize again with…' in html
    with pytest.raises(ValidationError, match="second pass over its own result changes nothing"):
        services.run_reoptimize(run=run)
    assert OptimizationRun.objects.count() == 1


def test_the_versions_card_is_refreshed_with_the_panel_once_a_new_version_is_done(owner_client, owner):
    run = done_run(owner)
    child = services.run_answer(run=run, answers={"length": "about 800 words"})
    progress = reverse("optimizer:run-progress", args=[child.pk])
    running = owner_client.get(progress, **HTMX).content.decode()
    assert 'id="versions"' not in running  # still working: the panel alone

    pipeline.run_optimization(run_id=child.pk)
    child.refresh_from_db()
    done = owner_client.get(progress, **HTMX).content.decode()

    assert '<section id="versions" class="card" hx-swap-oob="true">' in done
    assert f"checklist {child.score_before} → {child.score_after}" in done
    first = owner_client.get(reverse("optimizer:run-progress", args=[run.pk]), **HTMX).content.decode()
    assert 'id="versions"' not in first  # the first version has no parent: nothing to refresh
