import json
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.db import connections
from django.utils import timezone
from django_q.brokers import get_broker

from costs.models import UsageRecord
from optimizer import pipeline, services
from optimizer.builtin_engine.rubric import score
from optimizer.llm.fake_provider import FakeProvider
from optimizer.models import OptimizationRun
from tests.optimizer.llm.conftest import SECRET, add_model

TEXT = "Write a short story about {hero} who finds a map. Don't make it scary."


def settings_for(model="builtin", preset="auto", techniques=(), keep_spans=True, prompt_type="creative"):
    return services.run_settings_build(
        prompt_type=prompt_type,
        preset=preset,
        techniques=list(techniques),
        model=model,
        keep_spans=keep_spans,
    )


@pytest.fixture(autouse=True)
def _clean_cache(db):
    caches["default"].clear()
    yield
    caches["default"].clear()


def submit(owner, text=TEXT, **kwargs):
    return services.run_submit(owner=owner, text=text, run_settings=settings_for(**kwargs))


def test_the_builtin_pipeline_runs_all_four_stages_and_stores_every_output(owner):
    run = submit(owner)
    assert run.status == OptimizationRun.Status.QUEUED

    pipeline.run_optimization(run_id=run.pk)
    run.refresh_from_db()

    assert run.status == OptimizationRun.Status.DONE
    assert set(run.stage_timings) == set(OptimizationRun.STAGES)
    assert run.engine == "builtin" and run.cost == 0 and not run.degraded_reason
    assert "{hero}" in run.optimized_text
    assert run.deconstruction["placeholders"] == ["{hero}"]
    assert run.changes and run.techniques
    assert run.score_gain == run.score_after - run.score_before
    assert run.scores["before"] == score(TEXT) and run.score_before == run.scores["before"]["overall"]
    assert (
        run.scores["after"] == score(run.optimized_text) and run.score_after == run.scores["after"]["overall"]
    )
    assert "verdict" not in run.scores  # only a model judges the pair
    assert isinstance(run.questions, list) and not run.kept_original
    assert run.finished_at and run.duration_ms is not None


def test_a_preset_and_picked_techniques_are_combined_with_reasons(owner):
    run = submit(owner, preset="reasoning", techniques=["few-shot"])
    pipeline.run_optimization(run_id=run.pk)
    run.refresh_from_db()

    reasons = {t["slug"]: t["reason"] for t in run.techniques}
    assert reasons["plan-and-solve"] == "Part of the Reasoning preset."
    assert reasons["few-shot"] == "You picked it."


def test_a_task_delivered_twice_does_the_work_once(owner):
    run = submit(owner)
    pipeline.run_optimization(run_id=run.pk)
    first = OptimizationRun.objects.get(pk=run.pk)

    pipeline.run_optimization(run_id=run.pk)

    assert OptimizationRun.objects.get(pk=run.pk).finished_at == first.finished_at


def test_a_run_whose_worker_died_is_queued_again_when_its_page_is_opened_and_then_runs(owner, settings):
    run = submit(owner)
    silent = timezone.now() - timedelta(seconds=settings.RUN_DEAD_AFTER_S + 5)
    OptimizationRun.objects.filter(pk=run.pk).update(
        status="running", started_at=silent, heartbeat_at=silent, stage="design", attempts=1
    )

    services.run_expire_stale(run=OptimizationRun.objects.get(pk=run.pk))
    run.refresh_from_db()
    assert run.status == "queued" and run.attempts == 1 and not run.error

    pipeline.run_optimization(run_id=run.pk)  # the token the sweep queued
    run.refresh_from_db()
    assert run.status == "done" and run.attempts == 2


def test_a_result_cache_hit_completes_at_once_without_a_task_or_cost(
    owner, django_capture_on_commit_callbacks
):
    first = submit(owner)
    pipeline.run_optimization(run_id=first.pk)
    first.refresh_from_db()
    queued_before = get_broker().queue_size()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = submit(owner, text=TEXT + "  \n\n\n")  # the same prompt, normalized

    assert callbacks == []
    assert get_broker().queue_size() == queued_before
    assert again.status == "done" and again.cached and again.cost == 0
    assert again.optimized_text == first.optimized_text
    assert again.score_after == first.score_after
    assert first.questions and again.questions == first.questions  # the author is asked the same


def test_a_cache_miss_enqueues_one_task_in_the_fast_queue(
    owner, settings, django_capture_on_commit_callbacks
):
    broker = get_broker(settings.FAST_QUEUE)  # a built-in run never waits behind model calls
    before = broker.queue_size()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        submit(owner, text="Describe a sunrise over the sea in 3 lines.")
    assert len(callbacks) == 1
    assert broker.queue_size() == before + 1
    broker.purge_queue()


def test_other_settings_miss_the_result_cache_but_hit_the_analysis_cache(owner):
    first = submit(owner)
    pipeline.run_optimization(run_id=first.pk)

    second = submit(owner, preset="lite")
    assert second.status == "queued"
    pipeline.run_optimization(run_id=second.pk)
    second.refresh_from_db()

    assert second.analysis_cached and not second.cached
    assert second.diagnosis == OptimizationRun.objects.get(pk=first.pk).diagnosis


def test_reoptimizing_links_the_new_run_to_its_parent_and_changes_nothing_more(owner):
    run = submit(
        owner, text="Summarize this review in two sentences:\n\nGreat phone, awful battery, rude support."
    )
    pipeline.run_optimization(run_id=run.pk)
    run.refresh_from_db()
    assert run.optimized_text != run.prompt.text  # the review was set apart
    with pytest.raises(ValidationError, match="second pass over its own result changes nothing"):
        services.run_reoptimize(run=run)  # the built-in engine's result: nothing to gain

    OptimizationRun.objects.filter(pk=run.pk).update(engine=OptimizationRun.Engine.LLM)  # as a model's
    run.refresh_from_db()
    child = services.run_reoptimize(run=run)
    pipeline.run_optimization(run_id=child.pk)
    child.refresh_from_db()

    assert child.parent == run and child.prompt.text == run.optimized_text
    assert child.optimized_text == run.optimized_text  # a second pass changes nothing


def test_an_unchanged_result_is_not_optimized_again(owner):
    run = submit(owner)
    pipeline.run_optimization(run_id=run.pk)
    run.refresh_from_db()
    assert run.optimized_text == run.prompt.text

    with pytest.raises(ValidationError):
        services.run_reoptimize(run=run)
    assert OptimizationRun.objects.count() == 1


def test_a_bug_in_a_stage_fails_the_run_with_a_message_instead_of_leaving_it_running(owner):
    run = submit(owner)
    OptimizationRun.objects.filter(pk=run.pk).update(settings={})  # as if written by an older version

    pipeline.run_optimization(run_id=run.pk)
    run.refresh_from_db()

    assert run.status == "failed"
    assert "failed unexpectedly" in run.error and run.finished_at


# --- The LLM engine, against the fake provider over real HTTP -----------------------------------


@pytest.fixture
def fake():
    server = FakeProvider().start()
    yield server
    server.stop()


@pytest.fixture
def llm_settings(settings, monkeypatch):
    settings.LLM_RETRY = {"wait_initial": 0.01, "wait_max": 0.05, "wait_jitter": 0.0, "deadline_s": 10.0}
    monkeypatch.setenv("PO_TEST_API_KEY", SECRET)


def finish(run):
    worker = threading.Thread(target=_run_and_close, args=(run.pk,))
    worker.start()  # as the task worker does: another thread, its own connections
    worker.join(30)
    run.refresh_from_db()
    return run


def _run_and_close(run_id):
    try:
        pipeline.run_optimization(run_id=run_id)
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_the_llm_engine_answers_every_stage_through_the_gateway(fake, llm_settings):
    from tests.factories import UserFactory

    owner = UserFactory(username="llm-owner")
    model = add_model(fake.url, name="OpenAI test")
    run = finish(submit(owner, model=str(model.pk)))

    assert run.status == "done" and run.engine == "llm" and not run.degraded_reason, run.degraded_reason
    assert (run.provider, run.model) == ("OpenAI test", "gpt-4o-mini")
    assert "{hero}" in run.optimized_text  # the fake's rewrite keeps the prompt
    assert run.scores["verdict"]["winner"] in ("original", "rewrite", "tie") and run.scores["after"]
    assert "llm_before" not in run.scores and "llm_after" not in run.scores
    records = UsageRecord.objects.filter(run=run)
    operations = sorted(records.values_list("operation", flat=True))
    assert operations == ["deconstruct", "design", "diagnose", "evaluate"]  # one comparison, no score each
    assert run.cost > 0 and run.cost == sum((r.cost for r in records), Decimal(0))
    sent = " ".join(str(r["body"]) for r in fake.requests)
    assert "<prompt>" in sent and SECRET not in sent


@pytest.mark.django_db(transaction=True)
def test_a_failing_provider_degrades_the_run_to_the_builtin_engine_and_says_why(fake, llm_settings):
    from tests.factories import UserFactory

    owner = UserFactory(username="llm-owner")
    model = add_model(fake.url, name="OpenAI test")
    fake.enqueue(*[{"status": 500}] * 3)  # deconstruct fails after its retries

    run = finish(submit(owner, model=str(model.pk)))

    assert run.status == "done"
    assert run.degraded_reason.startswith("deconstruct: OpenAI test/gpt-4o-mini")
    assert "HTTP 500" in run.degraded_reason
    assert "{hero}" in run.optimized_text
    assert "verdict" not in run.scores  # no model judged the pair
    assert (
        caches["default"].get(  # a degraded result is not cached for the next user
            __import__("optimizer.caching", fromlist=["x"]).result_key(
                TEXT, run.settings, pipeline.engine_version(run.settings), owner_id=run.owner_id
            )
        )
        is None
    )


@pytest.mark.django_db(transaction=True)
def test_a_hard_budget_that_would_be_crossed_degrades_the_run_before_any_paid_call(
    fake, llm_settings, client
):
    from costs.models import Budget, BudgetAlert
    from tests.factories import UserFactory

    owner = UserFactory(username="llm-owner")
    model = add_model(fake.url, name="OpenAI test")
    Budget.objects.create(user=owner, period="daily", limit=Decimal("0.0001"), mode="hard")

    run = finish(submit(owner, model=str(model.pk)))

    assert run.status == "done", run.error
    assert "budget refused: llm-owner's daily budget would be crossed ($0 of $0.0001" in run.degraded_reason
    assert fake.requests == []  # refused before it was made
    assert BudgetAlert.objects.get(budget__user=owner).refused
    assert (run.provider, run.model) == ("", "")  # no language model answered: not "Built-in engine"
    client.force_login(owner)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Language model, finished by the built-in engine" in page


@pytest.mark.django_db(transaction=True)
def test_auto_picks_a_model_per_stage_and_the_run_shows_why(fake, llm_settings, client):
    from optimizer.models import ModelChoice
    from tests.factories import UserFactory

    owner = UserFactory(username="llm-owner")
    fast = add_model(fake.url, name="OpenAI test", model_id="gpt-5-nano")
    ModelChoice.objects.filter(pk=fast.pk).update(tier="fast")
    ModelChoice.objects.create(provider=fast.provider, model_id="gpt-5-mini", tier="balanced")

    run = finish(submit(owner, model="auto"))

    assert run.status == "done" and not run.degraded_reason, run.degraded_reason
    assert [choice["stage"] for choice in run.model_selection] == [
        "deconstruct",
        "diagnose",
        "design",
        "evaluate",
    ]
    chosen = {choice["stage"]: choice["chosen"] for choice in run.model_selection}
    assert chosen["deconstruct"] == chosen["evaluate"] == "OpenAI test / gpt-5-nano"
    assert chosen["design"] == "OpenAI test / gpt-5-mini"
    assert run.model_selection[2]["passed_over"] == [
        {"model": "OpenAI test / gpt-5-nano", "why": "its tier (fast) is below the balanced this call needs"}
    ]
    used = dict(UsageRecord.objects.filter(run=run).values_list("operation", "model").distinct())
    assert used["design"] == "gpt-5-mini" and used["diagnose"] == "gpt-5-nano"
    assert (run.provider, run.model) == ("OpenAI test", "gpt-5-nano, gpt-5-mini")  # each model once
    client.force_login(owner)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Which model Auto chose for each stage, and why" in page
    assert "its tier (fast) is below the balanced" in page
    assert "Language model: OpenAI test / gpt-5-nano, gpt-5-mini" in page


@pytest.mark.django_db(transaction=True)
def test_a_rewrite_that_drops_a_placeholder_is_replaced_by_the_builtin_design(fake, llm_settings):
    from tests.factories import UserFactory

    owner = UserFactory(username="llm-owner")
    model = add_model(fake.url, name="OpenAI test")
    fake.rewrite = lambda original: "Write a story about a hero."

    run = finish(submit(owner, model=str(model.pk)))

    assert run.status == "done"
    assert "dropped '{hero}'" in run.degraded_reason
    assert "{hero}" in run.optimized_text


QUESTIONS = [
    {"key": "audience", "question": "Who will read the story?", "why": "It sets the words and the length.",
     "examples": ["children of six", "adults"]},
    {"key": "length", "question": "How long should it be?", "why": "A short story can be 100 or 3,000 words.",
     "examples": ["300 words"]},
]  # fmt: skip


def design_answer(questions, text=TEXT):
    return {"data": {
        "analysis": "A story prompt with a placeholder.", "optimized_prompt": f"{text}\nKeep it warm.",
        "changes": [{"what": "Added a tone line", "why": "Not scary, said positively."}],
        "rejected_issues": [], "questions": questions, "skipped_techniques": [],
    }}  # fmt: skip


TIE = {"data": {
    "criteria": [
        {"name": "Clear task", "reasoning": "Prompt A and Prompt B ask for one story.", "better": "tie"},
    ],
    "verdict": "tie", "confidence": "medium", "summary": "Prompt B adds one line that Prompt A lacks.",
}}  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_the_run_stores_the_designs_open_questions_and_the_models_verdict(fake, llm_settings):
    from tests.factories import UserFactory

    owner = UserFactory(username="llm-owner")
    model = add_model(fake.url, name="OpenAI test")
    fake.enqueue("ok", "ok", design_answer(QUESTIONS), TIE)  # deconstruct, diagnose, design, evaluate

    run = finish(submit(owner, model=str(model.pk)))

    assert run.status == "done" and not run.degraded_reason, run.degraded_reason
    assert run.questions == QUESTIONS
    verdict = run.scores["verdict"]
    assert (verdict["winner"], verdict["confidence"]) == ("tie", "medium")
    assert [(c["name"], c["better"]) for c in verdict["criteria"]] == [("Clear task", "tie")]
    assert run.scores["before"]["overall"] == run.score_before  # the checklist stays beside the verdict


@pytest.mark.django_db(transaction=True)
def test_answering_makes_a_child_run_of_the_original_whose_design_gets_every_answer(fake, llm_settings):
    from tests.factories import UserFactory

    owner = UserFactory(username="llm-owner")
    model = add_model(fake.url, name="OpenAI test")
    fake.enqueue("ok", "ok", design_answer(QUESTIONS), TIE)
    parent = finish(submit(owner, model=str(model.pk)))
    OptimizationRun.objects.filter(pk=parent.pk).update(
        settings=parent.settings | {"answers": {"tone": "gentle"}}  # answered in an earlier version
    )
    parent.refresh_from_db()
    fake.reset()
    fake.enqueue(design_answer(QUESTIONS[1:]), TIE)  # the analysis comes from the cache this time

    child = finish(services.run_answer(run=parent, answers={"audience": "  children of six ", "length": ""}))

    assert child.status == "done" and not child.degraded_reason, child.degraded_reason
    assert child.parent == parent and child.prompt.text == TEXT != parent.optimized_text
    assert child.settings == parent.settings | {"answers": {"tone": "gentle", "audience": "children of six"}}
    design_request = next(r for r in fake.requests if "optimized_prompt" in json.dumps(r["body"]))
    sent = json.dumps(design_request["body"], ensure_ascii=False)
    assert "children of six" in sent and "gentle" in sent
    assert [q["key"] for q in child.questions] == ["length"]


def test_the_cache_keeps_answered_versions_apart(owner):
    plain = submit(owner)
    pipeline.run_optimization(run_id=plain.pk)
    answered = services.run_submit(
        owner=owner, text=TEXT, run_settings=services.run_settings_build(
            prompt_type="creative", preset="auto", techniques=[], model="builtin", keep_spans=True,
            answers={"audience": "children of six"},
        ),
    )  # fmt: skip
    assert answered.status == "queued" and not answered.cached  # not served the unanswered result
    assert "answers" not in plain.settings  # none given: absent, so every unanswered run shares a key


def test_cache_tier_stats_count_hits_and_misses_of_each_tier(owner):
    from optimizer.selectors import cache_tier_stats

    first = submit(owner)
    pipeline.run_optimization(run_id=first.pk)  # both tiers miss
    submit(owner)  # result hit
    other = submit(owner, preset="lite")
    pipeline.run_optimization(run_id=other.pk)  # result miss, analysis hit

    assert cache_tier_stats() == {"result": {"hits": 1, "misses": 2}, "analysis": {"hits": 1, "misses": 1}}


def test_auto_reads_the_prompt_itself_to_ground_an_answer_in_its_material(owner):
    text = (
        "Which region's sales are falling? Answer in one sentence.\nregion,q1,q2\nnorth,100,80\nsouth,50,70"
    )
    run = submit(owner, text=text, prompt_type="analytical")
    pipeline.run_optimization(run_id=run.pk)
    run.refresh_from_db()

    applied = {item["slug"] for item in run.techniques if item["applied"]}
    assert {"delimiters", "grounding"} <= applied
    assert "Base the answer on what is inside <data>" in run.optimized_text


def test_an_answered_version_shows_what_the_answers_settled_not_the_originals_gaps(owner):
    text = "Write a blog post about remote work."
    plain = submit(owner, text=text, prompt_type="general")
    pipeline.run_optimization(run_id=plain.pk)
    plain.refresh_from_db()
    child = services.run_answer(
        run=plain, answers={"audience": "engineering managers", "length": "600 words"}
    )
    pipeline.run_optimization(run_id=child.pk)
    child.refresh_from_db()

    before = {issue["code"] for issue in plain.diagnosis["issues"]}
    after = {issue["code"] for issue in child.diagnosis["issues"]}
    assert {"no-audience", "unbounded-length"} <= before
    assert not {"no-audience", "unbounded-length"} & after
    assert {item["resolved_by"] for item in child.diagnosis["resolved"]} == {"audience", "length"}
    assert child.deconstruction["audience"] == "engineering managers"
    assert (
        "audience" not in child.deconstruction["missing"] and "length" not in child.deconstruction["missing"]
    )


def test_a_prompts_title_drops_the_colon_of_its_lead_in(owner):
    run = submit(owner, text="Summarize this review:\n\nGreat phone, awful battery.")
    assert run.prompt.title == "Summarize this review"


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("---\ntitle: Weekly report\nauthor: sam\n---\n\nWrite the report.", "Weekly report"),
        ("---\nauthor: sam\n---\n# Support bot\n\nYou answer tickets.", "Support bot"),  # 49k prompt: "---"
        ("---\n\nYou are a helpful assistant.", "You are a helpful assistant."),
        ("```\nprint(1)\n```\nExplain the code above.", "Explain the code above."),
        ("<instructions>\nSummarize the text.\n</instructions>", "Summarize the text."),
        ("## **Role**: analyst", "Role: analyst"),
        ("════════\n■ ROLE\nYou review.", "■ ROLE"),
        ("Use <topic> and {audience}.", "Use <topic> and {audience}."),  # placeholders are words
        ("```\nSELECT 1;\n```", "SELECT 1;"),  # all code: its first line
    ],
)
def test_a_prompts_title_skips_front_matter_and_markup(owner, text, title):
    assert submit(owner, text=text).prompt.title == title


def test_the_result_and_analysis_caches_are_per_owner_so_nobody_learns_what_another_wrote(owner, other_user):
    mine = submit(owner)
    pipeline.run_optimization(run_id=mine.pk)

    theirs = submit(other_user)  # the same text and settings, another user
    assert theirs.status == "queued" and not theirs.cached  # no "Cached result" telling them mine existed
    pipeline.run_optimization(run_id=theirs.pk)
    theirs.refresh_from_db()
    assert theirs.status == "done" and not theirs.analysis_cached

    again = submit(owner)
    assert again.status == "done" and again.cached  # the owner's own cache still serves the owner


@pytest.mark.django_db(transaction=True)
def test_retries_and_failovers_are_shown_live_counted_and_kept_per_stage(fake, llm_settings, client):
    """The issue's case: a stage's first model answers 503 until it is given up, a second one
    answers after a retry. Each request that failed has its usage record, the breaker saw them, the
    progress said so while it happened, and the result page names what failed before the answer."""
    from optimizer.llm.breaker import CircuitBreaker
    from tests.factories import UserFactory

    owner = UserFactory(username="llm-owner")
    fake.latency = 0.05  # each request long enough for the watcher to see the note it caused
    first = add_model(fake.url, name="OpenAI test", model_id="gpt-5-nano", order=1)
    add_model(fake.url, name="Backup", model_id="gpt-5-mini", order=2)
    fake.enqueue(*[{"status": 503}] * 4)  # nano's three attempts, then mini's first
    notes = []

    run = submit(owner, model=str(first.pk))
    watcher = threading.Thread(target=lambda: _watch_notes(run.pk, notes), daemon=True)
    watcher.start()
    run = finish(run)
    watcher.join(5)

    assert run.status == "done" and not run.degraded_reason, run.degraded_reason
    failed = UsageRecord.objects.filter(run=run, status="error").order_by("pk")
    assert [(r.model, r.http_status) for r in failed] == [("gpt-5-nano", 503)] * 3 + [("gpt-5-mini", 503)]
    deconstruct = run.stage_calls[0]
    assert deconstruct["stage"] == "deconstruct" and deconstruct["answered_by"] == "Backup / gpt-5-mini"
    assert deconstruct["retried"] == ["HTTP 503"]
    assert deconstruct["failed"] == [
        {"model": "OpenAI test / gpt-5-nano", "why": "error (ProviderError, HTTP 503, 3 attempts)"}
    ]
    assert [call["stage"] for call in run.stage_calls] == ["deconstruct", "diagnose", "design", "evaluate"]
    assert all(call["failed"] == [] for call in run.stage_calls[1:])
    status = CircuitBreaker(first.breaker_key).status()
    assert status["failures_last_window"] == 3 and status["calls_last_window"] >= 3
    assert any(note.startswith("retrying OpenAI test / gpt-5-nano (HTTP 503)") for note in notes), notes
    assert any(note.startswith("failing over to Backup / gpt-5-mini") for note in notes), notes
    assert run.stage_note == ""
    client.force_login(owner)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Which model answered each stage, and what failed first" in page
    assert "Answered after 1 failed request: HTTP 503." in page
    assert "Tried first: OpenAI test / gpt-5-nano: error (ProviderError, HTTP 503, 3 attempts)." in page


def _watch_notes(run_id: int, notes: list[str]) -> None:
    """What the progress panel would have shown, polled as it does (faster)."""
    try:
        for _ in range(600):
            run = OptimizationRun.objects.filter(pk=run_id).values("status", "stage_note").first()
            if run["stage_note"] and run["stage_note"] not in notes:
                notes.append(run["stage_note"])
            if run["status"] in ("done", "failed"):
                return
            time.sleep(0.005)
    finally:
        connections.close_all()
