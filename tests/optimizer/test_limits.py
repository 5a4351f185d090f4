"""The per-user limit on submissions (RUNS_PER_MINUTE): every door that creates a run refuses with
when to retry, creates nothing, and leaves other users alone."""

import re
import threading
from datetime import timedelta

import pytest
from django.core.cache import caches
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from optimizer import limits, pipeline, services
from optimizer.management.commands.optimize import EXIT_RATE_LIMITED
from optimizer.management.commands.optimize import Command as OptimizeCommand
from optimizer.models import OptimizationRun, Prompt
from tests.factories import UserFactory
from tests.optimizer.test_run_answers import done_run

HTMX = {"HTTP_HX_REQUEST": "true"}
VALID = {"text": "Write a haiku about {season}.", "type": "creative", "preset": "auto", "model": "builtin",
         "keep_spans": "on", "title": "Haiku draft", "tags": "poetry, seasons"}  # fmt: skip
RETRY_MESSAGE = re.compile(
    r"You have started (\d+) optimizations? in the last minute, the most allowed is (\d+)\. "
    r"Try again in (\d+) seconds?\."
)


@pytest.fixture(autouse=True)
def _clean_cache(db):
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.fixture
def limit(settings):
    settings.RUNS_PER_MINUTE = 3
    return settings


def fill(owner, count: int, *, text: str = "Explain how tides work.") -> list[OptimizationRun]:
    """``count`` runs just created for ``owner`` (queued: no worker needed)."""
    return [
        services.run_submit(
            owner=owner,
            text=f"{text} ({index})",
            run_settings=services.run_settings_build(
                prompt_type="general", preset="auto", techniques=[], model="builtin", keep_spans=True
            ),
            enqueue=False,
        )
        for index in range(count)
    ]


def age(runs: list[OptimizationRun], *seconds: int) -> None:
    """Move each run's creation ``seconds`` into the past (the window slides without sleeping)."""
    now = timezone.now()
    for run, ago in zip(runs, seconds, strict=True):
        OptimizationRun.objects.filter(pk=run.pk).update(created_at=now - timedelta(seconds=ago))


def refusal(html: str) -> tuple[int, int, int]:
    found = RETRY_MESSAGE.search(html)
    assert found, "the page does not say why it refused or when to retry"
    return tuple(int(value) for value in found.groups())


def counts() -> tuple[int, int]:
    return OptimizationRun.objects.count(), Prompt.objects.count()


# --- The optimize page -----------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True])
def test_over_the_limit_the_page_says_when_to_retry_keeps_the_form_and_creates_nothing(
    owner_client, owner, limit, htmx
):
    age(fill(owner, 3), 50, 40, 30)
    before = counts()

    response = owner_client.post(reverse("optimizer:optimize"), VALID, **(HTMX if htmx else {}))

    html = response.content.decode()
    assert response.status_code == 429
    assert response["Retry-After"] in ("9", "10")  # the oldest run leaves the window 10 s from now
    assert refusal(html) == (3, 3, int(response["Retry-After"]))
    assert counts() == before
    assert ("<html" in html) is not htmx  # htmx gets the form partial, as for any form error
    assert 'id="optimize-form"' in html and 'role="alert"' in html
    form = response.context["form"]
    assert form.data["text"] == VALID["text"] and escape(VALID["text"]) in html  # kept as typed
    assert 'value="Haiku draft"' in html and 'value="poetry, seasons"' in html


def test_under_the_limit_the_run_is_created_and_the_next_one_refused(owner_client, owner, limit):
    fill(owner, 2)

    created = owner_client.post(reverse("optimizer:optimize"), VALID)
    refused = owner_client.post(reverse("optimizer:optimize"), VALID)

    assert created.status_code == 302 and refused.status_code == 429
    assert OptimizationRun.objects.filter(owner=owner).count() == 3


@pytest.mark.parametrize("allowed", [1, 5])
def test_the_limit_setting_is_honoured(owner_client, owner, settings, allowed):
    settings.RUNS_PER_MINUTE = allowed
    statuses = [
        owner_client.post(reverse("optimizer:optimize"), VALID).status_code for _ in range(allowed + 1)
    ]

    assert statuses == [302] * allowed + [429]
    assert OptimizationRun.objects.filter(owner=owner).count() == allowed


def test_another_user_is_not_limited_by_someone_elses_runs(client, owner, other_user, limit):
    fill(owner, 3)
    client.force_login(other_user)

    response = client.post(reverse("optimizer:optimize"), VALID)

    assert response.status_code == 302
    assert OptimizationRun.objects.filter(owner=other_user).count() == 1


def test_the_window_slides_a_run_older_than_a_minute_no_longer_counts(owner_client, owner, limit):
    runs = fill(owner, 3)
    assert owner_client.post(reverse("optimizer:optimize"), VALID).status_code == 429

    age(runs, 61, 10, 5)
    assert owner_client.post(reverse("optimizer:optimize"), VALID).status_code == 302
    assert owner_client.post(reverse("optimizer:optimize"), VALID).status_code == 429  # full again


def test_with_more_runs_than_allowed_the_retry_waits_until_enough_have_left(owner, limit):
    """Lowering the limit can leave more runs in the window than it allows: one more may start only
    once all but limit - 1 of them have left, i.e. when the limit-th newest leaves."""
    age(fill(owner, 5), 55, 45, 35, 25, 15)

    with pytest.raises(limits.RunLimitExceeded) as refused:
        limits.run_limit_check(owner=owner)

    assert refused.value.started == 5 and refused.value.allowed == 3
    assert refused.value.retry_after_s in (24, 25)  # the run made 35 s ago leaves in 25 s


def test_result_cache_hits_count_too(owner_client, owner, settings):
    settings.RUNS_PER_MINUTE = 2
    owner_client.post(reverse("optimizer:optimize"), VALID)
    pipeline.run_optimization(run_id=OptimizationRun.objects.get().pk)  # fills the result cache

    hit = owner_client.post(reverse("optimizer:optimize"), VALID)
    refused = owner_client.post(reverse("optimizer:optimize"), VALID)

    assert hit.status_code == 302 and OptimizationRun.objects.filter(cached=True).count() == 1
    assert refused.status_code == 429 and OptimizationRun.objects.count() == 2


def test_an_invalid_form_is_told_its_errors_not_the_limit(owner_client, owner, limit):
    fill(owner, 3)
    response = owner_client.post(reverse("optimizer:optimize"), VALID | {"text": "  "})

    assert response.status_code == 200 and "this one is empty" in response.content.decode()
    assert not RETRY_MESSAGE.search(response.content.decode())


# --- Answering questions and optimizing again -------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True])
def test_answering_questions_is_limited_too(owner_client, owner, settings, htmx):
    settings.RUNS_PER_MINUTE = 1
    run = done_run(owner)  # the one run this minute allows
    before = counts()

    response = owner_client.post(
        reverse("optimizer:run-answer", args=[run.pk]),
        {"answer-audience": "team leads"},
        **(HTMX if htmx else {}),
    )

    html = response.content.decode()
    assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 60
    assert refusal(html)[:2] == (1, 1)
    assert 'id="answers"' in html and ("<html" in html) is not htmx
    assert 'value="team leads"' in html or ">team leads</textarea>" in html  # the answer is kept
    assert counts() == before


def test_optimizing_again_is_limited_too(owner_client, owner, settings):
    settings.RUNS_PER_MINUTE = 1
    run = done_run(owner, engine="llm")  # a model's rewrite: optimizing it again is offered
    before = counts()

    response = owner_client.post(reverse("optimizer:run-reoptimize", args=[run.pk]))

    html = response.content.decode()
    assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 60
    assert refusal(html)[:2] == (1, 1)
    assert "Optimize again" in html  # the run's own page, with the button to try again later
    assert counts() == before and not OptimizationRun.objects.filter(parent=run).exists()


def test_optimizing_again_under_the_limit_still_makes_a_new_version(owner_client, owner, settings):
    settings.RUNS_PER_MINUTE = 2
    run = done_run(owner, engine="llm")

    response = owner_client.post(reverse("optimizer:run-reoptimize", args=[run.pk]))

    child = OptimizationRun.objects.get(parent=run)
    assert response.status_code == 302 and response["Location"] == reverse("optimizer:run", args=[child.pk])


# --- The optimize command ---------------------------------------------------------------------------


def test_the_command_over_the_limit_exits_with_its_own_code_and_one_line(staff_user, limit):
    age(fill(staff_user, 3), 50, 40, 30)
    before = counts()

    with pytest.raises(CommandError) as error:
        call_command("optimize", "Explain recursion.", "--engine", "builtin")

    assert error.value.returncode == EXIT_RATE_LIMITED != 2
    assert "\n" not in str(error.value)
    assert refusal(str(error.value)) in ((3, 3, 9), (3, 3, 10))
    assert counts() == before


def test_the_commands_help_documents_the_exit_codes():
    help_text = " ".join(OptimizeCommand().create_parser("manage.py", "optimize").format_help().split())
    assert f"{EXIT_RATE_LIMITED}: RUNS_PER_MINUTE reached" in help_text and "2: bad arguments" in help_text


def test_the_command_under_the_limit_optimizes(staff_user, limit, capsys):
    fill(staff_user, 2)
    call_command("optimize", "Explain recursion.", "--engine", "builtin")

    assert OptimizationRun.objects.filter(owner=staff_user, status="done").count() == 1
    assert capsys.readouterr().out.strip()


# --- Cost of the check and concurrent submissions ---------------------------------------------------


def test_the_check_costs_the_same_queries_whatever_the_users_history(owner, limit, django_assert_num_queries):
    with django_assert_num_queries(1):
        limits.run_limit_check(owner=owner)

    runs = fill(owner, 60)
    age(runs, *([3600] * 58), 20, 10)  # a long history, two runs this minute
    with django_assert_num_queries(1):
        limits.run_limit_check(owner=owner)

    age(runs[-3:], 30, 20, 10)  # at the limit: two more queries, for how many started and since when
    with django_assert_num_queries(3), pytest.raises(limits.RunLimitExceeded):
        limits.run_limit_check(owner=owner)


def test_the_held_limit_costs_a_lock_and_the_check(owner, limit, django_assert_num_queries):
    age(fill(owner, 40), *([3600] * 40))
    # A savepoint and its release (the test runs in a transaction), the lock of the user's row where
    # the database has row locks (SQLite's transaction holds the write lock already), the check.
    expected = 4 if connection.features.has_select_for_update else 3
    with django_assert_num_queries(expected), limits.run_limit_held(owner=owner):
        pass


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_of_one_user_do_not_overshoot(settings):
    """Eight submissions at once by one user with room for three: exactly three runs, five refusals;
    another user submitting at the same time is not held up by them."""
    settings.RUNS_PER_MINUTE = 3
    busy, other = UserFactory(username="busy"), UserFactory(username="calm")
    start = threading.Barrier(9)
    outcomes = []

    def submit(user):
        try:
            start.wait()
            with limits.run_limit_held(owner=user):
                fill(user, 1)
            outcomes.append((user.username, "created"))
        except limits.RunLimitExceeded:
            outcomes.append((user.username, "refused"))
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(busy,)) for _ in range(8)]
    threads.append(threading.Thread(target=submit, args=(other,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes).count(("busy", "created")) == 3
    assert sorted(outcomes).count(("busy", "refused")) == 5
    assert ("calm", "created") in outcomes
    assert OptimizationRun.objects.filter(owner=busy).count() == 3
