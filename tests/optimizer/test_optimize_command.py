import json
import re

import pytest
from django.core.cache import caches
from django.core.management import CommandError, call_command

from optimizer.models import OptimizationRun


@pytest.fixture(autouse=True)
def _clean_cache(db):
    caches["default"].clear()
    yield
    caches["default"].clear()


def test_optimize_prints_the_prompt_and_a_summary_and_saves_the_run(staff_user, capsys):
    call_command(
        "optimize", "Explain recursion to {audience}.", "--type", "technical", "--preset", "reasoning"
    )

    out, err = capsys.readouterr()
    run = OptimizationRun.objects.get()
    assert "{audience}" in out and out.strip() == run.optimized_text.strip()
    assert err.startswith(f"Checklist {run.score_before} → {run.score_after} · Built-in engine")
    assert run.owner == staff_user and run.settings["preset"] == "reasoning" and run.status == "done"


def test_optimize_reads_stdin_and_prints_json(staff_user, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("Summarize the text below.\n\nTides rise."))
    call_command("optimize", "--json", "--engine", "builtin", "--technique", "delimiters")

    data = json.loads(capsys.readouterr().out)
    assert data["engine"] == "builtin" and data["settings"]["techniques"] == ["delimiters"]
    assert data["scores"]["after"]["overall"] == data["score_after"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["   "], "this one is empty"),
        (["ok", "--technique", "nope"], "Unknown technique 'nope'"),
        (["ok", "--preset", "none"], "--preset none needs at least one --technique"),
        (["ok", "--engine", "llm"], "--engine llm needs an enabled language model"),
        (["ok", "--model", "Nobody/none"], "No enabled model 'Nobody/none'"),
        (["ok", "--user", "ghost"], "No user named 'ghost'"),
        (["bad\x00text"], "control character (U+0000)"),
        (["ok", "--answer", "audience"], "--answer 'audience' is not KEY=VALUE"),
        (["ok", "--answer", "=team leads"], "--answer '=team leads' is not KEY=VALUE"),
        (["ok", "--answer", "audience=" + "x" * 501], "--answer audience: This answer is 501 characters"),
        (["ok", "--answer", "tone=calm\x1b[0m"], "--answer tone: The answer contains a control character"),
        (["ok", "--answer", "tone="], "--answer tone= has no answer"),
        (["ok", "--answer", "colour=blue"], "the built-in engine asks no question with that key"),
    ],
)
def test_bad_arguments_get_a_clear_message_and_change_nothing(staff_user, args, message):
    with pytest.raises(CommandError, match=re.escape(message)) as error:
        call_command("optimize", *args)
    assert error.value.returncode == 2
    assert not OptimizationRun.objects.exists()


def test_without_any_user_it_says_how_to_get_one(db):
    with pytest.raises(CommandError, match="No superuser yet"):
        call_command("optimize", "Explain tides.")


def test_answers_go_into_the_runs_settings_and_the_json_lists_the_open_questions(staff_user, capsys):
    call_command(
        "optimize", "Write a blog post about remote work.", "--json", "--engine", "builtin",
        "--answer", "audience=team leads", "--answer", "length = about 800 words ",
    )  # fmt: skip

    data = json.loads(capsys.readouterr().out)
    run = OptimizationRun.objects.get()
    assert run.settings["answers"] == {"audience": "team leads", "length": "about 800 words"}
    assert data["settings"]["answers"] == run.settings["answers"]
    assert data["questions"] == run.questions and isinstance(data["questions"], list)
    assert {"optimized", "score_before", "score_after"} <= set(data)  # scripts read these
    assert data["optimized"] == run.optimized_text and data["score_after"] == run.score_after


def test_without_answers_the_settings_carry_none(staff_user, capsys):
    call_command("optimize", "Write a blog post about remote work.", "--engine", "builtin")
    assert "answers" not in OptimizationRun.objects.get().settings


@pytest.fixture
def fake_model(settings, monkeypatch):
    from optimizer.llm.fake_provider import FakeProvider
    from tests.optimizer.llm.conftest import SECRET, add_model

    settings.LLM_RETRY = {"wait_initial": 0.01, "wait_max": 0.05, "wait_jitter": 0.0, "deadline_s": 10.0}
    monkeypatch.setenv("PO_TEST_API_KEY", SECRET)
    server = FakeProvider().start()
    add_model(server.url, name="OpenAI test")
    yield server
    server.stop()


QUESTIONS = [
    {"key": "audience", "question": "Who will read the post?", "why": "It sets the depth.",
     "examples": ["team leads", "new hires"]},
    {"key": "length", "question": "How long should it be?", "why": "Posts vary.", "examples": []},
]  # fmt: skip


def test_the_plain_output_lists_the_open_questions_after_the_summary_with_how_to_answer(
    staff_user, capsys, fake_model
):
    design = {
        "analysis": "A vague request.", "optimized_prompt": "Write a blog post about remote work.",
        "changes": [], "rejected_issues": [], "questions": QUESTIONS, "skipped_techniques": [],
    }  # fmt: skip
    fake_model.enqueue("ok", "ok", {"data": design})
    call_command("optimize", "Write a blog post about remote work.", "--model", "OpenAI test/gpt-4o-mini")

    out, err = capsys.readouterr()
    assert out.strip() == "Write a blog post about remote work."  # stdout stays the prompt alone
    lines = err.splitlines()
    assert lines[0].startswith("Checklist ")
    assert "  audience: Who will read the post? (e.g. team leads; new hires)" in lines
    assert "  length: How long should it be?" in lines
    assert lines.index("  audience: Who will read the post? (e.g. team leads; new hires)") > 0
    assert "--answer audience=..." in lines[-1]


def test_a_model_with_the_builtin_engine_is_refused_as_conflicting(staff_user):
    with pytest.raises(CommandError, match="--model picks a language model") as error:
        call_command("optimize", "ok", "--engine", "builtin", "--model", "OpenAI/gpt-5")
    assert error.value.returncode == 2
    assert not OptimizationRun.objects.exists()


def test_no_prompt_on_a_terminal_is_a_usage_error_that_says_how(staff_user, monkeypatch):
    class Terminal(__import__("io").StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Terminal())
    with pytest.raises(CommandError, match="Give a prompt as an argument or on stdin") as error:
        call_command("optimize")
    assert error.value.returncode == 2


def test_an_empty_prompt_says_where_a_prompt_goes(staff_user):
    with pytest.raises(CommandError, match=re.escape("Give a prompt as an argument or on stdin")):
        call_command("optimize", "   ")


def test_the_model_is_named_as_the_pages_write_it_in_any_case(staff_user, fake_model, capsys, caplog):
    with caplog.at_level("INFO"):
        call_command("optimize", "Explain tides.", "--model", "openai TEST / GPT-4o-mini")

    run = OptimizationRun.objects.get()
    assert run.engine == "llm" and run.model == "gpt-4o-mini" and not run.degraded_reason
    assert not [r for r in caplog.records if r.name == "httpx"]  # quiet by default


def test_verbosity_2_shows_each_request_to_the_provider(staff_user, fake_model, capsys, caplog):
    with caplog.at_level("INFO"):
        call_command("optimize", "Explain tides.", "--model", "OpenAI test/gpt-4o-mini", verbosity=2)

    assert any(r.name == "httpx" and "POST" in r.getMessage() for r in caplog.records)
    assert __import__("logging").getLogger("httpx").level == __import__("logging").WARNING  # put back


def test_an_unknown_model_lists_the_enabled_ones(staff_user, fake_model):
    with pytest.raises(CommandError, match=re.escape("Enabled: OpenAI test / gpt-4o-mini")) as error:
        call_command("optimize", "ok", "--model", "OpenAI test/gpt-5")
    assert error.value.returncode == 2


def test_version_is_the_products():
    from tests.support import clean_env, manage

    shown = manage("optimize", "--version", env=clean_env())
    assert shown.returncode == 0 and shown.stdout.startswith("Prompt Optimizer "), shown.stderr
