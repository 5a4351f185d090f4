"""manage.py batch: a batch from a file or stdin, with the Batch page's checks, started; --wait runs it
here with a progress bar; --json prints it. On the real database, with the built-in engine (and a fake
provider on loopback where a run must take a while)."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from django.core.cache import caches
from django.core.management import CommandError, call_command

from optimizer import pipeline, runqueue
from optimizer.batches import selectors
from optimizer.batches.services import batch_cancel
from optimizer.management.commands.batch import POLL_S
from optimizer.models import Batch, BatchItem, OptimizationRun, Prompt
from tests.optimizer.processes import poll_until
from tests.prompts_csv import PROMPTS_CSV
from tests.support import PROJECT_ROOT, clean_env, manage

Status = OptimizationRun.Status
CSV = (
    "prompt,title,type\n"
    '"Explain recursion to a new programmer, with one example.",Recursion,technical\n'
    '"Write a haiku about the tides of the North Sea.",Tides,creative\n'
    ",,\n"
    '"Explain recursion to a new programmer, with one example.",Again,technical\n'
    '"Say hello\x01 to the team.",Control,\n'
    '"Summarize the report below in three bullet points.",Report,poetry\n'
)


@pytest.fixture(autouse=True)
def _clean_cache(db):
    caches["default"].clear()  # no result-cache hit from another test
    yield
    caches["default"].clear()


def _run(*args: str, stdin: bytes | None = None, monkeypatch=None) -> tuple[str, str]:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    out, err = io.StringIO(), io.StringIO()
    call_command("batch", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _nothing_stored() -> bool:
    return not (Batch.objects.exists() or BatchItem.objects.exists() or OptimizationRun.objects.exists())


def test_a_csv_file_is_stored_and_started_and_what_was_skipped_is_listed(
    staff_user, tmp_path, settings, django_capture_on_commit_callbacks
):
    settings.BATCH_CONCURRENCY = 2
    path = tmp_path / "library.csv"
    path.write_text(CSV, encoding="utf-8")
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = _run(str(path), "--preset", "reasoning", "--name", "Team library")

    batch = Batch.objects.get()
    assert batch.owner == staff_user and batch.name == "Team library" and batch.format == "csv"
    assert batch.status == Batch.Status.RUNNING and batch.settings["preset"] == "reasoning"
    assert list(batch.items.values_list("row", "title", "type")) == [
        (2, "Recursion", "technical"), (3, "Tides", "creative"), (5, "Again", "technical"),
    ]  # fmt: skip
    assert selectors.progress(batch).queued == 2  # BATCH_CONCURRENCY started, the rest waits
    lines = out.splitlines()
    assert lines[0] == (
        "Read library.csv (csv): 3 prompts, 1 the same as an earlier row (sharing its result, not run again)."
    )
    assert lines[1:5] == [
        "Skipped 3 rows:",
        "  row 6: contains a control character (U+0001) at character 10 of the prompt",
        "  row 7: unknown type “poetry”: use one of general, creative, technical, analytical, coding, data",
        "  1 empty row",
    ]
    assert f"Batch {batch.pk} “Team library” started: 2 to optimize with the built-in engine." in lines
    assert f"Its page: /batch/{batch.pk}/" in lines


@pytest.mark.django_db(transaction=True)
def test_wait_runs_every_item_here_with_a_bar_and_json_has_every_items_result(staff_user, tmp_path, settings):
    settings.BATCH_CONCURRENCY = 2
    prompts = [
        "Explain how vaccines train the immune system, for a curious teenager.",
        {
            "prompt": "Write a product description for a steel water bottle.",
            "title": "Bottle",
            "tags": "shop",
        },
        {"prompt": "List five questions to ask in a job interview for a data analyst.", "type": "data"},
        "Explain how vaccines train the immune system, for a curious teenager.",
        {"prompt": "Draft a polite reminder about an unpaid invoice.", "title": "Invoice"},
    ]
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps(prompts), encoding="utf-8")

    out, err = _run(str(path), "--wait", "--json", "--engine", "builtin")

    data = json.loads(out)  # stdout holds the JSON alone
    batch = Batch.objects.get()
    assert batch.status == Batch.Status.DONE and data["batch"]["status"] == "done"
    assert data["batch"]["id"] == batch.pk and data["batch"]["size"] == 5
    assert data["batch"]["counts"] == {
        "waiting": 0, "queued": 0, "running": 0, "done": 4, "degraded": 0, "cached": 0, "failed": 0,
        "duplicates": 1, "deleted": 0,
    }  # fmt: skip
    assert data["batch"]["cost"] == "0.00000000"
    runs = {run.pk: run for run in OptimizationRun.objects.filter(batch=batch)}
    assert len(runs) == 4 and {run.status for run in runs.values()} == {Status.DONE}
    assert [item["row"] for item in data["items"]] == [1, 2, 3, 4, 5]
    for item in data["items"]:
        run = runs[item["run"]]
        assert item["optimized"] == run.optimized_text and item["optimized"]
        assert item["scores"] == run.scores and item["score_after"] == run.score_after
    assert [item["status"] for item in data["items"]] == ["done", "done", "done", "duplicate", "done"]
    assert data["items"][3]["duplicate_of"] == 1 and data["items"][3]["run"] == data["items"][0]["run"]
    assert data["items"][3]["cost"] == "0" and data["items"][2]["type"] == "data"
    assert runs[data["items"][1]["run"]].prompt.tags == ["shop"]
    # What a person reads went to stderr: the report, the bar at its end, the summary.
    assert "Read prompts.json (json): 5 prompts, 1 the same as an earlier row" in err
    assert re.search(r"Batch \d+: 100%\|[^|]*\| 4/4 \[.*done 4, failed 0, \$0\.000000\]", err)
    assert re.search(rf"Batch {batch.pk} done: 4 done, 0 failed, 1 duplicate; cost \$0\.000000 in ", err)


def test_stdin_is_read_as_bytes_and_sniffed_and_json_without_wait_shows_the_batch_started(
    staff_user, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.BATCH_CONCURRENCY = 1
    lines = [{"prompt": "Explain the rules of chess to a child."}, {"prompt": "Écris un poème sur la mer."}]
    stdin = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode()
    with django_capture_on_commit_callbacks(execute=True):
        out, err = _run("-", "--json", "--technique", "delimiters", stdin=stdin, monkeypatch=monkeypatch)

    data = json.loads(out)
    batch = Batch.objects.get()
    assert batch.format == "jsonl" and batch.source == "stdin" and batch.name.startswith("stdin (")
    assert data["batch"]["settings"]["techniques"] == ["delimiters"]
    assert data["batch"]["status"] == "running"
    assert [(item["row"], item["status"]) for item in data["items"]] == [(1, "waiting"), (2, "waiting")]
    assert "Read stdin (jsonl): 2 prompts." in err and "The task workers run it" in err
    assert OptimizationRun.objects.get().prompt.text == "Explain the rules of chess to a child."


def test_the_real_prompts_csv_lists_each_skipped_row_and_counts_the_duplicates(
    staff_user, settings, django_capture_on_commit_callbacks
):
    if not PROMPTS_CSV.exists():
        pytest.skip("../shared/data is absent")
    settings.PROMPT_MAX_CHARS = 50_000
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = _run(str(PROMPTS_CSV))

    batch = Batch.objects.get()
    lines = out.splitlines()
    assert lines[0] == (
        "Read awesome-chatgpt-prompts.csv (csv): 1,514 prompts, 18 the same as an earlier row (sharing its "
        "result, not run again)."
    )
    assert lines[1] == "Skipped 15 rows:"
    skipped = lines[2:17]
    assert skipped == [f"  row {entry['row']:,}: {entry['reason']}" for entry in batch.skipped]
    assert "  row 53,422: 144,260 characters; the limit is 50,000" in skipped
    assert sum("contains a control character (U+001F)" in line for line in skipped) == 11
    assert lines[17].startswith("Note: The “type” column was ignored")
    assert f"Batch {batch.pk} “awesome-chatgpt-prompts (" in lines[18] and "1,496 to optimize" in lines[18]
    assert batch.size == 1514 and selectors.progress(batch).duplicates == 18


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (
            '[{"prompt": "ok"}, {"title": "x"}]',
            "a.json",
            "Element 2 of the array (counting from 1) is an object",
        ),
        ('[{"prompt": "ok"},', "a.json", "The JSON is malformed at line 1, column 19"),
        ("title\nnot a prompt column\n", "a.csv", "No “prompt” column: the columns found are “title”"),
        ("\n\n   \n", "a.txt", "There is nothing to optimize"),
    ],
)
def test_a_file_the_parser_refuses_gets_its_message_exit_2_and_nothing_is_stored(
    staff_user, tmp_path, content, name, message
):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CommandError, match=re.escape(message)) as error:
        _run(str(path), "--wait")
    assert error.value.returncode == 2
    assert _nothing_stored() and not Prompt.objects.exists()


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(staff_user, tmp_path, settings):
    settings.BATCH_MAX_BYTES = 1024
    path = tmp_path / "big.txt"
    path.write_text("Explain the water cycle.\n" * 100, encoding="utf-8")
    with pytest.raises(CommandError, match=r"is 2,500 bytes; the limit is 1,024 bytes \(BATCH_MAX_BYTES\)"):
        _run(str(path))
    assert _nothing_stored()


def test_stdin_over_the_size_limit_is_refused(staff_user, settings, monkeypatch):
    settings.BATCH_MAX_BYTES = 1024
    with pytest.raises(CommandError, match=r"stdin holds more than 1,024 bytes") as error:
        _run("-", stdin=b"Explain the water cycle.\n" * 100, monkeypatch=monkeypatch)
    assert error.value.returncode == 2 and _nothing_stored()


def test_a_missing_file_a_folder_or_a_terminal_on_stdin_is_a_usage_error_that_says_what_to_give(
    staff_user, tmp_path, monkeypatch
):
    for given, message in [
        (str(tmp_path / "nope.csv"), f"No file {str(tmp_path / 'nope.csv')!r}. Give the file to read"),
        (str(tmp_path), f"{str(tmp_path)!r} is a folder. Give the file to read"),
    ]:
        with pytest.raises(CommandError, match=re.escape(message)) as error:
            _run(given)
        assert error.value.returncode == 2
    monkeypatch.setattr("sys.stdin", type("Terminal", (io.StringIO,), {"isatty": lambda self: True})())
    with pytest.raises(
        CommandError, match=re.escape("or - to read it from stdin: manage.py batch prompts.csv")
    ):
        _run("-")
    assert _nothing_stored()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_says_so(staff_user, tmp_path):
    path = tmp_path / "secret.csv"
    path.write_text("prompt\nExplain tides.\n", encoding="utf-8")
    path.chmod(0)
    with pytest.raises(CommandError, match="cannot be read: permission denied") as error:
        _run(str(path))
    assert error.value.returncode == 2 and _nothing_stored()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--technique", "nope"], "Unknown technique 'nope'"),
        (["--preset", "none"], "--preset none needs at least one --technique"),
        (["--engine", "llm"], "--engine llm needs an enabled language model"),
        (["--model", "Nobody/none"], "No enabled model 'Nobody/none'"),
        (["--model", "Nobody/none", "--engine", "builtin"], "--model picks a language model and --engine"),
        (["--user", "ghost"], "No user named 'ghost'. Create one with manage.py createsuperuser"),
    ],
)
def test_bad_arguments_get_the_optimize_commands_message_exit_2_and_nothing_is_stored(
    staff_user, tmp_path, args, message
):
    path = tmp_path / "p.txt"
    path.write_text("Explain tides.\n", encoding="utf-8")
    with pytest.raises(CommandError, match=re.escape(message)) as error:
        _run(str(path), "--wait", *args)
    assert error.value.returncode == 2
    assert _nothing_stored()


def test_without_any_user_it_says_how_to_get_one(db, tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("Explain tides.\n", encoding="utf-8")
    with pytest.raises(CommandError, match="No superuser yet: run make run once, or pass --user NAME"):
        _run(str(path))
    assert _nothing_stored()


def test_user_names_whose_batch_it_is(staff_user, owner, tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("Explain tides.\n", encoding="utf-8")
    _run(str(path), "--user", "owner")
    assert Batch.objects.get().owner == owner


@pytest.fixture
def slow_model(settings, monkeypatch):
    """A language model on loopback whose every answer takes 0.4 s, so a run takes seconds."""
    from optimizer.llm.fake_provider import FakeProvider
    from tests.optimizer.llm.conftest import SECRET, add_model

    settings.LLM_RETRY = {"wait_initial": 0.01, "wait_max": 0.05, "wait_jitter": 0.0, "deadline_s": 10.0}
    monkeypatch.setenv("PO_TEST_API_KEY", SECRET)
    server = FakeProvider(latency=0.4).start()
    add_model(server.url, name="OpenAI test")
    yield server
    server.stop()


@pytest.mark.django_db(transaction=True)
def test_wait_exits_1_when_an_item_failed_here_one_whose_worker_died_after_its_last_attempt(
    staff_user, slow_model, tmp_path, settings
):
    """A worker elsewhere claims the second item while --wait runs the first, and dies (it never
    writes a heartbeat). With nothing left to claim, --wait does what the sweep does: the run's worker
    is dead and it had its last attempt, so the run fails as the worker gave up."""
    settings.BATCH_CONCURRENCY = 2
    settings.RUN_MAX_ATTEMPTS = 1
    settings.RUN_DEAD_AFTER_S = 1
    path = tmp_path / "two.txt"
    path.write_text("Explain how tides work.\nWrite a short welcome note for new hires.\n", encoding="utf-8")
    abandoned: list[OptimizationRun] = []

    def worker_that_dies():
        try:
            poll_until(  # --wait has claimed the first item and is inside its model calls
                lambda: OptimizationRun.objects.filter(status=Status.RUNNING, batch__isnull=False).exists(),
                timeout=30,
                failure=lambda: "--wait never started an item",
            )
            abandoned.append(runqueue.claim_next(OptimizationRun.Engine.LLM))
        finally:
            from django.db import connection

            connection.close()

    dying = threading.Thread(target=worker_that_dies)
    dying.start()
    with pytest.raises(CommandError, match=r"^1 of 2 items failed\. Their errors are in --json") as error:
        _run(str(path), "--wait", "--json", "--model", "OpenAI test/gpt-4o-mini")
    dying.join()

    assert error.value.returncode == 1
    assert abandoned[0] is not None and abandoned[0].attempts == 1
    failed = OptimizationRun.objects.get(pk=abandoned[0].pk)
    assert failed.status == Status.FAILED and failed.error == runqueue.GAVE_UP.format(attempts=1)
    batch = Batch.objects.get()
    assert batch.status == Batch.Status.DONE
    assert OptimizationRun.objects.filter(batch=batch, status=Status.DONE).count() == 1


@pytest.fixture
def subprocess_env(database_url_for_subprocess, tmp_path, settings):
    env = clean_env(
        DATABASE_URL=database_url_for_subprocess, SECRET_KEY=settings.SECRET_KEY, DATA_DIR=str(tmp_path / "d")
    )
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    else:  # the cache lives in the database: the test database needs its table
        assert manage("createcachetable", env=env).returncode == 0
    return env


def _sigint_as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_wait_exits_130_and_leaves_the_batch_running_for_the_workers(
    staff_user, subprocess_env, tmp_path
):
    path = tmp_path / "many.txt"
    path.write_text(
        "".join(
            # Enough that the command is still running when the signal comes, on a loaded machine too
            # (300 took 7 s in CI and ended before it).
            f"Explain topic number {n} to a new colleague, in three short paragraphs.\n"
            for n in range(1000)
        ),
        encoding="utf-8",
    )
    command = [sys.executable, str(PROJECT_ROOT / "manage.py"), "batch", str(path), "--wait"]
    process = subprocess.Popen(
        command,
        env=subprocess_env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # As from a terminal: a shell without job control starts a background job (`.ci/run &`)
        # with SIGINT ignored, its children inherit that, and the signal below would never arrive.
        preexec_fn=_sigint_as_in_a_terminal,
    )  # fmt: skip
    try:
        poll_until(
            lambda: OptimizationRun.objects.filter(status=Status.DONE).count() >= 10,
            timeout=60,
            failure=lambda: "the command finished no item",
        )
        time.sleep(2 * POLL_S + 0.2)  # the bar is redrawn twice meanwhile
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=90)  # a loaded machine: the item it was running ends first
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    batch = Batch.objects.get()
    assert process.returncode == 130, err
    # The bar moved while the command was inside run_next (one built-in token runs for up to 10 s).
    shown = {int(n) for n in re.findall(r"\| (\d+)/1000 \[", err)}
    assert len(shown - {0}) >= 2, err
    assert re.search(
        rf"Interrupted: batch {batch.pk} is still running, [\d,]+ items left; the task workers finish it",
        err,
    )
    assert batch.status == Batch.Status.RUNNING and selectors.progress(batch).remaining > 0
    # What the workers do next: the sweep queues again a run the command left running (its process
    # is gone), and the tokens finish the batch.
    runqueue.sweep()
    deadline = time.monotonic() + 120
    while selectors.progress(batch).remaining and time.monotonic() < deadline:
        if not pipeline.run_next(engine=OptimizationRun.Engine.BUILTIN):
            runqueue.sweep()
    batch.refresh_from_db()
    assert batch.status == Batch.Status.DONE and selectors.progress(batch).done == 1000


@pytest.mark.django_db(transaction=True)
def test_wait_ends_with_exit_1_when_the_batch_is_cancelled_on_its_page_once_its_running_item_finished(
    staff_user, slow_model, tmp_path, settings
):
    settings.BATCH_CONCURRENCY = 1
    path = tmp_path / "three.txt"
    path.write_text(
        "Explain how tides work.\nWrite a welcome note.\nList three uses of vinegar.\n", encoding="utf-8"
    )
    cancelled: list[int] = []

    def cancel_while_the_first_runs():
        try:
            poll_until(
                lambda: OptimizationRun.objects.filter(status=Status.RUNNING, batch__isnull=False).exists(),
                timeout=30,
                failure=lambda: "--wait never started an item",
            )
            cancelled.append(batch_cancel(batch=Batch.objects.get()))
        finally:
            from django.db import connection

            connection.close()

    canceller = threading.Thread(target=cancel_while_the_first_runs)
    canceller.start()
    with pytest.raises(
        CommandError, match=r"was cancelled with 2 items not run\. Resume it on /batch/"
    ) as error:
        _run(str(path), "--wait", "--model", "OpenAI test/gpt-4o-mini")
    canceller.join()

    assert error.value.returncode == 1 and cancelled == [0]  # nothing was queued: one item ran at a time
    batch = Batch.objects.get()
    assert batch.status == Batch.Status.CANCELLED
    assert list(OptimizationRun.objects.filter(batch=batch).values_list("status", flat=True)) == [Status.DONE]
