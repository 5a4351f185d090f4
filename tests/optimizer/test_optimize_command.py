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
    assert err.startswith(f"Score {run.score_before} → {run.score_after} · Built-in engine")
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
