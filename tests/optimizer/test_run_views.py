import csv
import datetime as dt
import io
import json

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from costs.models import UsageRecord
from optimizer import caching, pipeline, services
from optimizer.models import OptimizationRun, Prompt
from tests.html import inline_code

HTMX = {"HTTP_HX_REQUEST": "true"}
VALID = {"text": "Write a haiku about {season}.", "type": "creative", "preset": "auto", "model": "builtin",
         "keep_spans": "on"}  # fmt: skip


@pytest.fixture(autouse=True)
def _clean_cache(db):
    caches["default"].clear()
    yield
    caches["default"].clear()


def make_run(owner, text="Explain how tides work.", prompt_type="general", done=True, **settings):
    run = services.run_submit(
        owner=owner,
        text=text,
        run_settings=services.run_settings_build(
            prompt_type=prompt_type,
            preset=settings.get("preset", "auto"),
            techniques=[],
            model="builtin",
            keep_spans=True,
        ),
    )
    if done:
        pipeline.run_optimization(run_id=run.pk)
        run.refresh_from_db()
    return run


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"text": "   "}, "text", "this one is empty"),
        ({"text": "x" * 101}, "text", "the limit is 100"),
        ({"text": "Write\x07 a poem"}, "text", "control character (U+0007) at position 6"),
        ({"type": "poetry"}, "type", "Select a valid choice"),
        ({"techniques": ["no-such-technique"]}, "techniques", "Select a valid choice"),
        ({"preset": "none"}, "techniques", "Tick at least one technique"),
        ({"model": "999"}, "model", "Select a valid choice"),
    ],
)
@pytest.mark.parametrize("htmx", [True, False])
def test_a_rejected_form_says_why_and_stores_nothing(owner_client, settings, change, field, message, htmx):
    settings.PROMPT_MAX_CHARS = 100
    response = owner_client.post(reverse("optimizer:optimize"), VALID | change, **(HTMX if htmx else {}))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert field in response.context["form"].errors
    assert not Prompt.objects.exists() and not OptimizationRun.objects.exists()
    assert ("<html" in response.content.decode()) is not htmx  # htmx gets the form partial only


def test_an_htmx_submission_loads_the_run_page_whole(owner_client, owner):
    """Not the run's panel swapped into the Optimize page: the address and the page must agree (title,
    breadcrumb, nav, a reload showing the same). The run page comes in the same response, swapped in
    as the whole body, with its address pushed."""
    response = owner_client.post(reverse("optimizer:optimize"), VALID, **HTMX)

    run = OptimizationRun.objects.get(owner=owner)
    url = reverse("optimizer:run", args=[run.pk])
    assert response.status_code == 200 and response["HX-Push-Url"] == url
    assert response["HX-Retarget"] == "body" and response["HX-Reswap"].startswith("innerHTML")
    assert run.prompt.tags == [] and run.settings["type"] == "creative"

    swapped = response.content.decode()
    reloaded = owner_client.get(url).content.decode()
    for html in (swapped, reloaded):
        assert f"<title>{run.prompt.title} · Prompt Optimizer</title>" in html
        assert f'<a href="{reverse("optimizer:history")}">History</a> ›' in html
        assert 'id="checklist"' not in html and "Presets and techniques" not in html
        assert f'hx-get="{reverse("optimizer:run-progress", args=[run.pk])}" hx-trigger="every 1s"' in html


def test_a_cache_hit_saves_the_prompt_and_a_finished_run(owner_client, owner):
    source = make_run(owner, text=VALID["text"], prompt_type="creative")
    response = owner_client.post(reverse("optimizer:optimize"), VALID | {"tags": "haiku, seasons"}, **HTMX)

    hit = OptimizationRun.objects.select_related("prompt").exclude(pk=source.pk).get(owner=owner)
    assert response["HX-Push-Url"] == reverse("optimizer:run", args=[hit.pk])
    assert hit.cached and hit.status == "done" and hit.duration_ms == 0 and hit.finished_at
    for name in caching.RESULT_FIELDS:
        assert getattr(hit, name) == getattr(source, name), name
    assert hit.settings == source.settings and hit.parent_id is None and hit.created_at > source.created_at
    assert (hit.prompt.owner, hit.prompt.text, hit.prompt.type) == (owner, VALID["text"], "creative")
    assert hit.prompt.tags == ["haiku", "seasons"] and hit.prompt.title == "Write a haiku about {season}."
    assert hit.prompt.created_at and hit.prompt.pk != source.prompt_id
    history = owner_client.get(reverse("optimizer:history")).context["rows"]
    assert [row.url for row in history] == [reverse("optimizer:run", args=[run.pk]) for run in (hit, source)]


def test_a_cache_hit_costs_the_same_queries_whatever_the_history(owner_client, owner, settings):
    """The hit's queries do not grow with the owner's runs, and it saves the prompt and the run without
    a savepoint of its own (the test's transaction adds the one of the run limit's block)."""
    settings.RUNS_PER_MINUTE = 1000
    make_run(owner, text=VALID["text"], prompt_type="creative")  # fills the result cache

    def hit() -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            response = owner_client.post(reverse("optimizer:optimize"), VALID, **HTMX)
        assert response.status_code == 200 and "Cached result" in response.content.decode()
        return [query["sql"] for query in queries]

    hit()  # whatever a first request reads once per process
    few = hit()
    for number in range(60):
        run = make_run(owner, text=f"Prompt number {number}", done=number % 10 == 0)
        if run.questions:  # some with versions of their own
            services.run_answer(run=run, answers={run.questions[0]["key"]: "my team"})
    many = hit()

    assert len(many) == len(few), many
    inserts = [sql for sql in many if sql.startswith(("INSERT", "WITH"))]
    assert len(inserts) == (1 if connection.vendor == "postgresql" else 2)  # the prompt and the run
    assert sum(sql.startswith("SAVEPOINT") for sql in many) == 1


def test_a_plain_submission_redirects_to_the_run_page(owner_client, owner):
    response = owner_client.post(reverse("optimizer:optimize"), VALID | {"tags": "poetry, seasons, poetry"})

    run = OptimizationRun.objects.get(owner=owner)
    assert response.status_code == 302 and response["Location"] == reverse("optimizer:run", args=[run.pk])
    assert run.prompt.tags == ["poetry", "seasons"]


def test_the_progress_panel_polls_until_done_then_shows_the_result(owner_client, owner):
    run = make_run(owner, done=False)
    url = reverse("optimizer:run-progress", args=[run.pk])

    waiting = owner_client.get(url, **HTMX).content.decode()
    assert 'hx-trigger="every 1s"' in waiting and "Queued" in waiting

    pipeline.run_optimization(run_id=run.pk)
    done = owner_client.get(url, **HTMX).content.decode()
    assert 'hx-trigger="every 1s"' not in done  # polling stops
    assert "Optimized prompt" in done and 'id="optimized-text"' in done
    assert f'hx-get="{reverse("optimizer:run-diff", args=[run.pk])}?mode=inline" hx-trigger="load"' in done


def test_the_result_page_shows_everything_stored_without_recomputing(owner_client, owner):
    run = make_run(owner, text="Summarize this review in one sentence:\n\nGreat phone, awful battery.")
    with CaptureQueriesContext(connection) as queries:
        response = owner_client.get(reverse("optimizer:run", args=[run.pk]))
    html = response.content.decode()

    for expected in ("Optimized prompt", "What changed", "Checklist", "Diagnosis", "Changes", "Techniques",
                     "Deconstruction", "<meter", "<ins>", "Built-in engine", "Cost $0"):  # fmt: skip
        assert expected in html, expected
    assert f"{run.score_before}</span> → <strong>{run.score_after}" in html
    assert inline_code(html).inline_scripts == 0
    assert not any("optimizationrun" in q["sql"].lower() and "update" in q["sql"].lower() for q in queries)


def test_the_diff_partial_switches_between_inline_and_side_by_side(owner_client, owner):
    run = make_run(owner)
    url = reverse("optimizer:run-diff", args=[run.pk])

    side = owner_client.get(url, {"mode": "side"}, **HTMX).content.decode()
    inline = owner_client.get(url, {"mode": "inline"}, **HTMX).content.decode()

    assert 'class="diff-table"' in side and "<html" not in side
    assert 'class="prompt-text diff-inline"' in inline
    assert (
        'class="diff-table"'
        in owner_client.get(reverse("optimizer:run", args=[run.pk]), {"diff": "side"}).content.decode()
    )


def test_a_cached_result_says_so(owner_client, owner):
    make_run(owner)
    again = make_run(owner, done=False)

    html = owner_client.get(reverse("optimizer:run", args=[again.pk])).content.decode()
    assert again.cached and "Cached result: no new work, no cost" in html


def test_a_reused_result_rendering_belongs_to_its_result_only(owner_client, owner):
    """The result part of the panel is rendered once per result: every run with the same result shows
    it, a run with another result never does, even one whose only difference is a single issue."""
    first = make_run(owner, text="Explain how tides work.")
    hit = make_run(owner, text="Explain how tides work.", done=False)
    second_hit = make_run(owner, text="Explain how tides work.", done=False)
    other = make_run(owner, text="Summarize this report for the board. Use bullet points.")

    def body(run):
        html = owner_client.get(reverse("optimizer:run", args=[run.pk])).content.decode()
        return html[
            html.index("<h2>Checklist</h2>") : html.index("</section>", html.index("<h2>Checklist</h2>"))
        ]

    assert hit.cached and body(hit) == body(second_hit)
    assert "Stage times" in body(first) and "Stage times" not in body(hit)  # a hit did no stage work
    assert body(other) != body(first)
    for issue in other.diagnosis["issues"]:
        assert issue["title"] in body(other)
    dropped, *kept = other.diagnosis["issues"]
    other.diagnosis["issues"] = kept
    other.save(update_fields=["diagnosis"])
    assert f"<strong>{dropped['title']}</strong>" not in body(other)


def test_favorite_toggles_with_and_without_htmx(owner_client, owner):
    run = make_run(owner)
    url = reverse("optimizer:run-favorite", args=[run.pk])

    partial = owner_client.post(url, {"favorite": "1"}, **HTMX).content.decode()
    assert 'aria-pressed="true"' in partial and "<html" not in partial
    assert Prompt.objects.get(pk=run.prompt_id).favorite

    assert owner_client.post(url, {"favorite": "0"}).status_code == 302
    assert not Prompt.objects.get(pk=run.prompt_id).favorite


def test_reoptimize_starts_a_linked_version_shown_in_the_chain(owner_client, owner):
    run = make_run(owner)
    run.optimized_text = f"{run.prompt.text}\n\nAnswer in three sentences."  # a model's rewrite
    run.engine = OptimizationRun.Engine.LLM
    run.save(update_fields=["optimized_text", "engine"])
    response = owner_client.post(reverse("optimizer:run-reoptimize", args=[run.pk]))
    child = OptimizationRun.objects.get(parent=run)
    pipeline.run_optimization(run_id=child.pk)

    assert response["Location"] == reverse("optimizer:run", args=[child.pk])
    html = owner_client.get(reverse("optimizer:run", args=[child.pk])).content.decode()
    assert "Versions" in html and reverse("optimizer:run", args=[run.pk]) in html


def test_reoptimizing_an_unfinished_run_is_refused_with_a_message(owner_client, owner):
    run = make_run(owner, done=False)
    response = owner_client.post(reverse("optimizer:run-reoptimize", args=[run.pk]), follow=True)

    assert "Only a finished optimization" in response.content.decode()
    assert OptimizationRun.objects.count() == 1


def test_delete_asks_first_then_deletes_the_run_and_its_prompt_but_keeps_the_cost_records(
    owner_client, owner
):
    run = make_run(owner)
    UsageRecord.objects.create(run=run, user=owner, provider="p", model="m", operation="design", status="ok")
    url = reverse("optimizer:run-delete", args=[run.pk])

    assert "Delete this optimization?" in owner_client.get(url).content.decode()
    assert OptimizationRun.objects.filter(pk=run.pk).exists()

    response = owner_client.post(url)
    assert response["Location"] == reverse("optimizer:history")
    assert not OptimizationRun.objects.filter(pk=run.pk).exists() and not Prompt.objects.exists()
    assert UsageRecord.objects.get().run is None


def test_history_searches_filters_sorts_and_paginates(owner_client, owner):
    first = make_run(owner, text="Explain how tides work.")
    make_run(owner, text="Write a limerick about a cat.", prompt_type="creative")
    services.prompt_favorite_set(prompt=first.prompt, favorite=True)
    url = reverse("optimizer:history")

    def titles(**params):
        return [row.title for row in owner_client.get(url, params).context["rows"]]

    assert titles() == ["Write a limerick about a cat.", "Explain how tides work."]
    assert titles(sort="oldest") == ["Explain how tides work.", "Write a limerick about a cat."]
    assert titles(q="LIMERICK") == ["Write a limerick about a cat."]
    assert titles(type="general") == ["Explain how tides work."]
    assert titles(favorite="on") == ["Explain how tides work."]
    assert titles(min_gain=101) == titles(min_gain=200) == titles()  # out of range: ignored, with a message
    assert titles(engine="llm") == []
    assert titles(date_from="2000-01-01", date_to="2000-01-02") == []
    bad = owner_client.get(url, {"date_from": "2030-01-02", "date_to": "2030-01-01"}).content.decode()
    assert "The end date is before the start date." in bad

    partial = owner_client.get(url, {"q": "tides"}, **HTMX).content.decode()
    assert 'id="history-results"' in partial and "<html" not in partial


def test_history_query_count_does_not_grow_with_the_number_of_runs(owner_client, owner):
    """The same queries for 3 runs as for 60 (a page of 25 of them): nothing is looked up per row."""
    url = reverse("optimizer:history")
    for number in range(3):
        make_run(owner, text=f"Prompt number {number}")
    with CaptureQueriesContext(connection) as few:
        owner_client.get(url)
    for number in range(3, 60):
        run = make_run(owner, text=f"Prompt number {number}", done=number % 2 == 0)
        services.prompt_favorite_set(prompt=run.prompt, favorite=number % 3 == 0)
    with CaptureQueriesContext(connection) as many:
        response = owner_client.get(url)

    assert len(response.context["rows"]) == 25
    assert len(many) == len(few), [query["sql"] for query in many]


def test_each_history_row_shows_its_runs_state(owner_client, owner, settings):
    settings.TIME_ZONE = "Europe/Paris"
    prompt = Prompt.objects.create(
        owner=owner, title="Tides <for kids>", text="x", type="data", tags=["a&b", "sea"]
    )
    services.prompt_favorite_set(prompt=prompt, favorite=True)
    run = OptimizationRun.objects.create(
        owner=owner, prompt=prompt, status="queued", engine="llm", model="gpt-4o-mini", cached=True,
        degraded_reason="the provider timed out", kept_original=True, score_before=40, score_after=35,
        score_gain=-5, cost="0.01230000",
    )  # fmt: skip
    OptimizationRun.objects.filter(pk=run.pk).update(created_at=dt.datetime(2026, 3, 1, 9, 5, tzinfo=dt.UTC))
    unscored = make_run(owner, text="Write a limerick about a cat.", done=False)
    OptimizationRun.objects.filter(pk=unscored.pk).update(cost="2")

    html = owner_client.get(reverse("optimizer:history")).content.decode()
    row = html[html.index(f'href="{reverse("optimizer:run", args=[run.pk])}"') - 60 :]
    row = row[: row.index("</tr>")]
    other = html[html.index(f'href="{reverse("optimizer:run", args=[unscored.pk])}"') :]
    other = other[: other.index("</tr>")]

    assert '<span title="Favorite">★</span>' in row and ">Tides &lt;for kids&gt;</a>" in row
    for badge in ("Queued", "cached", "degraded", "original kept"):
        assert f">{badge}</span>" in row
    assert '<span class="tag">a&amp;b</span><span class="tag">sea</span>' in row
    assert '<td data-label="Type">Data</td>' in row
    assert 'Language model<br> <span class="muted small">gpt-4o-mini</span>' in row
    assert '40 → 35 <span class="gain gain-down">-5</span>' in row
    assert "$0.012300</td>" in row and "$2</td>" in other
    assert '<time datetime="2026-03-01T10:05:00+01:00">2026-03-01 10:05</time>' in row  # the site's zone
    assert '<td data-label="Checklist">–</td>' in other and "★" not in other and "badge" in other


def test_the_filter_form_shows_the_values_of_each_request(owner_client, owner):
    """The filter form's rendering is reused per set of values submitted, never for other values."""
    url = reverse("optimizer:history")
    typed = 'name="q" value="tides &amp; moon"'

    assert typed in owner_client.get(url, {"q": "tides & moon", "sort": "gain"}).content.decode()
    plain = owner_client.get(url).content.decode()
    assert 'name="q" maxlength' in plain and '<option value="gain" selected>' not in plain
    again = owner_client.get(url, {"q": "tides & moon", "sort": "gain"}).content.decode()
    assert typed in again and '<option value="gain" selected>' in again
    wrong = owner_client.get(url, {"date_from": "2030-01-02", "date_to": "2030-01-01"}).content.decode()
    assert 'value="2030-01-01" min="1900-01-01" max="2999-12-31" aria-invalid="true"' in wrong


def test_history_pages(owner_client, owner):
    for number in range(27):
        make_run(owner, text=f"Prompt number {number}", done=False)
    second = owner_client.get(reverse("optimizer:history"), {"page": 2, "q": "Prompt"}).content.decode()
    assert "Page 2 of 2" in second and "?q=Prompt&amp;page=1" in second


def test_export_json_and_csv_with_formula_cells_escaped(owner_client, owner):
    make_run(owner, text='=HYPERLINK("http://evil.example")  and explain it')
    make_run(owner, text="Write about tides.")

    data = json.loads(b"".join(owner_client.get(reverse("optimizer:history-export-json")).streaming_content))
    assert [row["original"] for row in data][1].startswith("=HYPERLINK")
    assert {"original", "optimized", "score_before", "score_after", "cost", "changes"} <= set(data[0])

    response = owner_client.get(reverse("optimizer:history-export-csv"), {"q": "HYPERLINK"})
    assert response["Content-Disposition"] == 'attachment; filename="prompt-history.csv"'
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert len(rows) == 1
    assert rows[0]["original"].startswith("'=HYPERLINK") and rows[0]["title"].startswith("'=")


def test_nobody_sees_or_acts_on_another_users_runs(client, owner, other_user):
    run = make_run(owner)
    client.force_login(other_user)
    for name in ("run", "run-progress", "run-diff", "run-delete"):
        assert client.get(reverse(f"optimizer:{name}", args=[run.pk])).status_code == 404, name
    for name in ("run-reoptimize", "run-favorite", "run-delete", "run-answer", "run-keep-original"):
        assert (
            client.post(reverse(f"optimizer:{name}", args=[run.pk]), {"favorite": "1"}).status_code == 404
        ), name
    assert OptimizationRun.objects.count() == 1 and not Prompt.objects.get().favorite
    assert client.get(reverse("optimizer:history")).context["page"].paginator.count == 0
    exported = json.loads(b"".join(client.get(reverse("optimizer:history-export-json")).streaming_content))
    assert exported == []
