"""The Analytics page: each figure against runs with known scores, verdicts, techniques and questions,
the scope (a user's own runs; staff the site), the date range, and query counts that do not grow."""

from datetime import timedelta

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from costs.budgets import local_midnight
from optimizer.builtin_engine.catalogue import TECHNIQUES
from optimizer.models import OptimizationRun, Prompt
from tests.html import inline_code
from tests.optimizer.analytics.factories import PromptFactory, RunFactory, technique

pytestmark = pytest.mark.django_db
CHARTS = [
    "runs-per-day",
    "scores-by-type",
    "scores-by-engine",
    "scores-by-model",
    "verdicts-by-type",
    "verdicts-by-model",
    "technique-usage",
    "technique-effect",
    "prompt-types",
]
LLM = OptimizationRun.Engine.LLM
UNSCORED = {"score_before": None, "score_after": None, "score_gain": None}
FAILED = {"status": OptimizationRun.Status.FAILED} | UNSCORED


def days_ago(days: int, hour: int = 12):
    return local_midnight(timezone.localdate() - timedelta(days=days)) + timedelta(hours=hour)


def chart(client, name: str, **query) -> dict:
    response = client.get(reverse("optimizer:analytics-chart", args=[name]), query)
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    return response.json()


def series(payload: dict) -> dict[str, list]:
    return {dataset["label"]: dataset["data"] for dataset in payload["datasets"]}


def llm_run(owner, model: str = "gpt-5-mini", **fields) -> OptimizationRun:
    return RunFactory(owner=owner, engine=LLM, provider="OpenAI", model=model, **fields)


def test_runs_per_day_by_engine_with_hand_edits_and_failures_apart(owner_client, owner):
    RunFactory(owner=owner, when=days_ago(2))
    RunFactory(owner=owner, when=days_ago(2))
    llm_run(owner, when=days_ago(2))
    RunFactory(owner=owner, when=days_ago(0), settings={"edited": True})
    RunFactory(owner=owner, when=days_ago(0), status=OptimizationRun.Status.FAILED, score_gain=None)
    RunFactory(owner=owner, when=days_ago(0), status=OptimizationRun.Status.QUEUED, score_gain=None)
    start = timezone.localdate() - timedelta(days=3)

    data = chart(owner_client, "runs-per-day", start=start.isoformat())

    assert data["labels"] == [(start + timedelta(days=n)).isoformat() for n in range(4)]
    assert series(data) == {
        "Built-in engine": [0, 2, 0, 0],
        "Language model": [0, 1, 0, 0],
        "Edited by hand": [0, 0, 0, 1],
        "Failed": [0, 0, 0, 1],
    }


def test_scores_before_after_and_gain_by_prompt_type_engine_and_model(owner_client, owner):
    coding = PromptFactory(owner=owner, type=Prompt.Type.CODING)
    RunFactory(owner=owner, prompt=coding, score_before=30, gain=20)
    RunFactory(owner=owner, prompt=coding, score_before=50, gain=5)
    llm_run(owner, score_before=20, gain=40)
    llm_run(owner, model="gpt-5", score_before=60, gain=-6)
    RunFactory(owner=owner, **FAILED)

    by_type = chart(owner_client, "scores-by-type")
    by_engine = chart(owner_client, "scores-by-engine")
    by_model = chart(owner_client, "scores-by-model")

    assert by_type["labels"] == ["Coding", "General"]
    assert series(by_type) == {
        "Mean score before": [40, 40],
        "Mean score after": [52.5, 57],
        "Mean gain": [12.5, 17],
        "Runs": [2, 2],
    }
    assert by_engine["labels"] == ["Built-in engine", "Language model"]
    assert series(by_engine)["Mean gain"] == [12.5, 17]
    assert by_model["labels"] == ["Built-in engine", "OpenAI / gpt-5", "OpenAI / gpt-5-mini"]
    assert series(by_model)["Mean gain"] == [12.5, -6, 40]
    assert [dataset["hidden"] for dataset in by_model["datasets"]] == [False, False, False, True]


def test_verdicts_by_type_and_model_in_the_words_of_the_result_page(owner_client, owner):
    data = PromptFactory(owner=owner, type=Prompt.Type.DATA)
    llm_run(owner, prompt=data, winner="rewrite")
    llm_run(owner, prompt=data, winner="rewrite")
    llm_run(owner, prompt=data, winner="original")
    llm_run(owner, model="claude", winner="tie")
    RunFactory(owner=owner)  # no verdict: not counted

    by_type = chart(owner_client, "verdicts-by-type")
    by_model = chart(owner_client, "verdicts-by-model")
    page = owner_client.get(reverse("optimizer:analytics")).content.decode()

    assert by_type["labels"] == ["Data", "General"]
    assert series(by_type) == {"Better": [2, 0], "Tie": [0, 1], "Worse": [1, 0]}
    assert by_model["labels"] == ["OpenAI / gpt-5-mini", "OpenAI / claude"]
    assert series(by_model) == {"Better": [2, 0], "Tie": [0, 1], "Worse": [1, 0]}
    assert "The model&#x27;s verdicts by prompt type" in page or "The model's verdicts by prompt type" in page


def test_without_any_verdict_the_verdict_charts_are_not_shown(owner_client, owner):
    RunFactory(owner=owner)

    page = owner_client.get(reverse("optimizer:analytics")).content.decode()

    assert 'id="verdicts-by-type"' not in page and 'id="verdicts-by-model"' not in page
    assert 'id="scores-by-type"' in page and "No run in the range has a verdict" in page
    assert chart(owner_client, "verdicts-by-model")["labels"] == []


def test_technique_usage_counts_applied_apart_and_its_gain_and_better_share_come_from_applying_runs(
    owner_client, owner
):
    RunFactory(owner=owner, gain=20, winner="rewrite", techniques=[technique("role"), technique("few-shot")])
    RunFactory(owner=owner, gain=10, winner="tie", techniques=[technique("role")])
    # Chosen and not applied: it counts as chosen, its run's gain and verdict do not count for it.
    RunFactory(owner=owner, gain=-4, winner="original", techniques=[technique("few-shot", applied=False)])
    RunFactory(
        owner=owner,
        status=OptimizationRun.Status.FAILED,
        score_gain=None,
        techniques=[technique("role")],
    )

    usage = chart(owner_client, "technique-usage")
    effect = chart(owner_client, "technique-effect")

    names = usage["labels"]
    assert len(names) == 2 and names == effect["labels"]
    assert series(usage) == {"Applied": [2, 1], "Chosen, not applied": [0, 1]}
    assert series(effect) == {
        "Mean gain of the runs that applied it": [15, 20],
        "Judged better (% of verdicts)": [50, 100],
        "Verdicts": [2, 1],
    }
    assert names == ["Role / persona", TECHNIQUES["few-shot"].name]  # the catalogue's names, not slugs


def test_prompt_type_distribution_counts_runs_and_finished_ones(owner_client, owner):
    creative = PromptFactory(owner=owner, type=Prompt.Type.CREATIVE)
    RunFactory(owner=owner, prompt=creative)
    RunFactory(owner=owner, prompt=creative, status=OptimizationRun.Status.FAILED, score_gain=None)
    RunFactory(owner=owner, prompt=PromptFactory(owner=owner, type=Prompt.Type.CREATIVE))
    RunFactory(owner=owner)

    data = chart(owner_client, "prompt-types")

    assert data["labels"] == ["Creative", "General"]
    assert series(data) == {"Runs": [3, 1], "Finished": [2, 1]}


def test_most_improved_prompts_link_to_their_best_run_once_each(owner_client, owner):
    favourite = PromptFactory(owner=owner, title="Tidal charts")
    best = RunFactory(owner=owner, prompt=favourite, gain=30)
    RunFactory(owner=owner, prompt=favourite, gain=25)
    second = RunFactory(owner=owner, prompt=PromptFactory(owner=owner, title="Release notes"), gain=12)
    RunFactory(owner=owner, prompt=PromptFactory(owner=owner, title="Unchanged one"), gain=0)

    page = owner_client.get(reverse("optimizer:analytics")).content.decode()

    listed = page.split("Most improved prompts", 1)[1].split("</table>", 1)[0]
    assert listed.count("Tidal charts") == 1 and "Unchanged one" not in listed
    assert listed.index(f'href="{reverse("optimizer:run", args=[best.pk])}"') < listed.index(
        f'href="{reverse("optimizer:run", args=[second.pk])}"'
    )
    assert "+30" in listed and "+12" in listed


def test_questions_left_unanswered_leave_out_those_a_later_version_answered(owner_client, owner):
    def questions(*keys: str) -> list[dict]:
        return [{"key": key, "question": f"What {key}?", "why": "", "examples": []} for key in keys]

    asked = RunFactory(owner=owner, questions=questions("audience", "length"))
    RunFactory(owner=owner, parent=asked, settings={"answers": {"audience": "Nurses"}})
    RunFactory(owner=owner, questions=questions("audience", "tone"))
    RunFactory(owner=owner, questions=questions("audience"))
    RunFactory(owner=owner, questions=questions("tone"), **FAILED)

    page = owner_client.get(reverse("optimizer:analytics")).content.decode()

    listed = page.split("Questions most often left unanswered", 1)[1].split("</table>", 1)[0]
    rows = [row.split("</tr>")[0] for row in listed.split("<tr>")[2:]]
    assert [("What audience?" in row, "<td>2</td>" in row) for row in rows[:1]] == [(True, True)]
    assert len(rows) == 3 and all("<td>1</td>" in row for row in rows[1:])
    assert "(length)" in rows[1] + rows[2] and "(tone)" in rows[1] + rows[2]


def test_a_user_never_sees_another_users_runs(owner_client, owner, other_user):
    other = PromptFactory(owner=other_user, title="Someone else's secret", type=Prompt.Type.CODING)
    RunFactory(owner=other_user, prompt=other, gain=50, winner="rewrite", techniques=[technique("role")])
    RunFactory(owner=other_user, prompt=other, questions=[{"key": "budget", "question": "What budget?"}])
    RunFactory(owner=owner, gain=5)

    page = owner_client.get(reverse("optimizer:analytics")).content.decode()

    assert "Your runs." in page and "Someone else" not in page and "What budget?" not in page
    assert "Show the whole site" not in page
    assert chart(owner_client, "prompt-types")["labels"] == ["General"]
    assert chart(owner_client, "technique-usage")["labels"] == []
    assert chart(owner_client, "verdicts-by-type")["labels"] == []
    assert series(chart(owner_client, "scores-by-type", scope="site"))["Mean gain"] == [5]  # not staff


def test_staff_see_the_whole_site_or_only_their_own(client, staff_user, owner):
    RunFactory(owner=owner, prompt=PromptFactory(owner=owner, title="Owner's prompt"), gain=20)
    RunFactory(owner=staff_user, gain=4)
    client.force_login(staff_user)

    site = client.get(reverse("optimizer:analytics")).content.decode()
    mine = client.get(reverse("optimizer:analytics"), {"scope": "mine"}).content.decode()

    assert "Every user's runs." in site and "Owner&#x27;s prompt" in site
    assert "Your runs." in mine and "Owner&#x27;s prompt" not in mine
    assert series(chart(client, "scores-by-type"))["Runs"] == [2]
    assert series(chart(client, "scores-by-type", scope="mine"))["Runs"] == [1]


def test_the_range_filters_every_figure(owner_client, owner):
    RunFactory(owner=owner, when=days_ago(40), gain=30)
    RunFactory(owner=owner, when=days_ago(1), gain=10)
    old = (timezone.localdate() - timedelta(days=45)).isoformat()

    recent = series(chart(owner_client, "scores-by-type"))
    wide = series(chart(owner_client, "scores-by-type", start=old))

    assert recent["Runs"] == [1] and recent["Mean gain"] == [10]
    assert wide["Runs"] == [2] and wide["Mean gain"] == [20]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"start": "last tuesday"}, "Enter the dates as YYYY-MM-DD."),
        ({"start": "2026-05-02", "end": "2026-05-01"}, "The start date is after the end date: swap them."),
    ],
)
def test_a_bad_range_says_what_to_do(owner_client, owner, query, message):
    RunFactory(owner=owner)

    page = owner_client.get(reverse("optimizer:analytics"), query)
    data = owner_client.get(reverse("optimizer:analytics-chart", args=["prompt-types"]), query)

    assert page.status_code == 200 and message in page.content.decode()
    assert data.status_code == 400 and data.json() == {"error": message}


def test_the_page_draws_each_chart_from_its_json_view_with_a_table_and_no_inline_script(owner_client, owner):
    llm_run(owner, winner="rewrite", techniques=[technique("role")])

    html = owner_client.get(reverse("optimizer:analytics")).content.decode()

    assert inline_code(html).inline_scripts == 0 and "js/costs.js" in html and "js/Chart.min.js" in html
    for name in CHARTS:
        assert f'data-chart-url="{reverse("optimizer:analytics-chart", args=[name])}?' in html
    assert html.count('<table class="table">') == len(CHARTS) + 1  # and the most improved prompts
    assert 'aria-current="page">Analytics</a>' in html


def test_an_unknown_chart_is_not_found_and_every_view_needs_a_login(client, owner_client):
    assert owner_client.get(reverse("optimizer:analytics-chart", args=["nothing"])).status_code == 404
    client.logout()
    for url in [reverse("optimizer:analytics"), reverse("optimizer:analytics-chart", args=["prompt-types"])]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


CULL_CHECK = 'SELECT COUNT(*) FROM "django_cache"'  # the database cache's, once every 64 stores


def _query_counts(client) -> list[int]:
    counts = []
    charts = [reverse("optimizer:analytics-chart", args=[name]) for name in CHARTS]
    urls = [reverse("optimizer:analytics"), *charts]
    for url in urls:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        counts.append(sum(CULL_CHECK not in query["sql"] for query in queries.captured_queries))
    return counts


@pytest.mark.parametrize("viewer", ["owner", "staff_user"])
def test_the_query_count_does_not_grow_with_the_runs(client, owner, staff_user, viewer):
    """The page and every chart cost the same queries with 60 runs as with 150 over the same 20 days (two
    users, every prompt type, both engines, several models, verdicts, techniques, questions and
    answering versions), the first time (every day read from the runs) and later (kept days)."""
    client.force_login(owner if viewer == "owner" else staff_user)
    types = Prompt.Type.values

    def add(start: int, count: int) -> None:
        for index in range(start, start + count):
            user = staff_user if index % 3 == 0 else owner
            run = RunFactory(
                owner=user,
                prompt=PromptFactory(owner=user, type=types[index % len(types)]),
                engine=LLM if index % 2 else OptimizationRun.Engine.BUILTIN,
                model=f"m{index % 4}" if index % 2 else "",
                gain=index % 17,
                winner=("rewrite", "tie", "original", None)[index % 4],
                techniques=[technique("role"), technique("few-shot", applied=index % 2 == 0)],
                questions=[{"key": f"k{index % 5}", "question": "Who?"}],
                when=days_ago(index // 3 % 20),  # each day has both users' runs
            )
            if index % 5 == 0:
                answers = {"answers": {f"k{index % 5}": "x"}}
                RunFactory(owner=user, prompt=run.prompt, parent=run, settings=answers)

    def measure() -> tuple[list[int], list[int]]:
        caches["default"].clear()  # the first view computes the figures; the later ones read them
        return _query_counts(client), _query_counts(client)

    add(0, 60)
    few_cold, few_warm = measure()
    add(60, 90)
    many_cold, many_warm = measure()

    assert few_cold == many_cold and few_warm == many_warm
    # session, user, the fingerprints (2), the kept days, and, the first time, the figures' 6 queries
    # and the database cache's one store a day (Redis stores them all at once)
    assert many_cold[0] <= 12 + 20 and max(many_cold[1:]) <= 6
    assert many_warm[0] < many_cold[0] and max(many_warm) <= 6


def test_kept_figures_follow_every_change_of_the_runs(owner_client, owner):
    """The page's figures are kept while the runs stay the same: a run that finishes, fails, is
    added, answered or deleted shows at once, even an answer made after the range ended."""
    asked = RunFactory(
        owner=owner, when=days_ago(3), questions=[{"key": "audience", "question": "Who?"}], gain=10
    )
    waiting = RunFactory(owner=owner, status=OptimizationRun.Status.QUEUED, **UNSCORED)
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()

    def figures(**query) -> tuple[list, str]:
        html = owner_client.get(reverse("optimizer:analytics"), query).content.decode()
        return series(chart(owner_client, "scores-by-type", **query))["Runs"], html

    assert figures()[0] == [1] and "Who?" in figures(end=yesterday)[1]
    OptimizationRun.objects.filter(pk=waiting.pk).update(
        status=OptimizationRun.Status.DONE, score_before=40, score_after=50, score_gain=10
    )
    assert figures()[0] == [2]
    RunFactory(owner=owner, parent=asked, settings={"answers": {"audience": "Nurses"}})  # today
    assert "Who?" not in figures(end=yesterday)[1]
    OptimizationRun.objects.filter(pk=waiting.pk).delete()
    assert figures()[0] == [2]  # the answering version is scored too
    RunFactory(owner=owner, status=OptimizationRun.Status.RUNNING, **UNSCORED)
    RunFactory(owner=owner)
    assert figures()[0] == [3]
