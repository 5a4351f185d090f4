"""The Batch pages on the real database and task path: the New batch form and its refusals (nothing
stored), the preview of a draft, Start, the live progress and results (built-in runs executed by
``pipeline.run_next`` as a worker does), Cancel, Resume, Retry failed, Delete, the filters, the
ownership of every address and a query count that does not grow with the batch."""

import re
from decimal import Decimal

import pytest
from django.core.cache import caches
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from costs.models import UsageRecord
from optimizer import pipeline, services
from optimizer.batches import services as batch_services
from optimizer.batches.parsing import Item, Parsed
from optimizer.models import Batch, BatchItem, OptimizationRun, Prompt

pytestmark = pytest.mark.django_db
BUILTIN = OptimizationRun.Engine.BUILTIN
HTMX = {"HTTP_HX_REQUEST": "true"}
SETTINGS = {"type": "general", "preset": "auto", "model": "builtin", "keep_spans": "on"}
PROMPTS = [
    "Explain how tides work to a ten-year-old.",
    "Summarize this article for a busy manager in five bullet points.",
    "Write a short poem about autumn leaves.",
]


@pytest.fixture(autouse=True)
def _clean_cache(db):
    caches["default"].clear()
    yield
    caches["default"].clear()


def _settings() -> dict:
    return services.run_settings_build(
        prompt_type="general", preset="auto", techniques=[], model="builtin", keep_spans=True
    )


def make_batch(owner, count: int = 3, *, duplicates: dict[int, int] | None = None, name: str = "") -> Batch:
    duplicates = duplicates or {}
    items = [
        Item(
            row=row,
            text=f"Explain topic {duplicates.get(row, row)} to a new colleague in three short paragraphs.",
            title=f"Topic {row}",
            duplicate_of=duplicates.get(row),
        )
        for row in range(1, count + 1)
    ]
    parsed = Parsed(format="text", items=items, skipped=[], empty_rows=0, columns=[])
    return batch_services.batch_create(
        owner=owner, parsed=parsed, run_settings=_settings(), source="pasted text", name=name
    )


def run_batch(batch: Batch, capture) -> Batch:
    """Start it and run every item as a worker does (each run's end dispatches the next ones)."""
    with capture(execute=True):
        batch_services.batch_start(batch=batch)
    with capture(execute=True):
        pipeline.run_next(engine=BUILTIN)
    batch.refresh_from_db()
    return batch


def _page(client, batch: Batch, query: str = "", **extra) -> str:
    response = client.get(reverse("optimizer:batch-detail", args=[batch.pk]) + query, **extra)
    assert response.status_code == 200
    return response.content.decode()


# The form and the preview


def test_pasted_prompts_are_previewed_as_a_draft_and_nothing_runs(owner_client, owner):
    text = "\n".join([PROMPTS[0], "", PROMPTS[1], PROMPTS[0], "Write\x07 a poem"])
    response = owner_client.post(reverse("optimizer:batch"), {"text": text, "name": "Tuesday"} | SETTINGS)

    batch = Batch.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "optimizer:batch-detail", args=[batch.pk]
    )
    assert (batch.name, batch.status, batch.size, batch.empty_rows) == ("Tuesday", "draft", 3, 1)
    assert batch.settings == _settings()
    assert not OptimizationRun.objects.exists() and not Prompt.objects.exists()
    html = _page(owner_client, batch)
    assert "Before anything runs" in html
    assert "2 prompts to optimize" in html and "1 duplicate that shares an earlier row" in html
    assert "2 rows left out (1 empty)" in html
    assert re.search(r"<strong>Row 5</strong>: .*control character", html)
    assert "of row 1" in html  # the duplicate, flagged in the list
    assert "no model call, no cost" in html  # the built-in engine's estimate
    assert reverse("optimizer:batch-start", args=[batch.pk]) in html
    assert reverse("optimizer:batch-delete", args=[batch.pk]) in html
    assert 'hx-trigger="every 2s"' not in html  # a draft does not poll
    assert "No task worker is running" in html  # no qcluster runs during the tests


def test_an_uploaded_csv_is_read_with_its_titles_and_types(owner_client):
    data = "prompt,title,type\nExplain recursion with an example.,Recursion,coding\nWrite a limerick.,,\n"
    upload = SimpleUploadedFile("library.csv", data.encode(), content_type="text/csv")
    response = owner_client.post(reverse("optimizer:batch"), {"file": upload} | SETTINGS)

    batch = Batch.objects.get()
    assert response.status_code == 302 and batch.format == "csv" and batch.name.startswith("library (")
    assert list(batch.items.values_list("row", "title", "type")) == [
        (2, "Recursion", "coding"),
        (3, "", "general"),  # a row that names no type gets the form's
    ]


def test_what_the_reader_decided_is_told_on_the_preview(owner_client):
    data = "prompt,type\nExplain recursion with an example.,TEXT\nDraw a cat.,IMAGE\n"
    upload = SimpleUploadedFile("prompts.csv", data.encode(), content_type="text/csv")
    response = owner_client.post(reverse("optimizer:batch"), {"file": upload} | SETTINGS, follow=True)

    html = response.content.decode()
    assert response.redirect_chain and 'class="message message-info"' in html
    assert "type" in re.search(r'message-info">([^<]*)<', html).group(1)
    assert set(Batch.objects.get().items.values_list("type", flat=True)) == {"general"}


@pytest.mark.parametrize(
    ("data", "files", "message"),
    [
        ({"text": "  \n \n"}, {}, "There is nothing to optimize"),
        ({"text": "Explain tides."}, {"file": ("a.txt", b"Explain tides.")}, "not both"),
        ({}, {"file": ("a.csv", b"title,text\nA,Explain tides.\n")}, "No \u201cprompt\u201d column"),
        ({}, {"file": ("a.json", b'[{"prompt": "x"')}, "JSON"),
        ({}, {"file": ("a.txt", "Explain tides.".encode("utf-16"))}, "not UTF-8"),
        ({"text": "Write\x07 a poem\nAnd\x01 this"}, {}, "nothing to optimize"),
        ({"text": "Explain tides.", "model": "999"}, {}, "that model is not enabled"),
        ({"text": "Explain tides.", "preset": "none"}, {}, "Tick at least one technique"),
        ({"text": "Explain tides.", "type": "poetry"}, {}, "Select a valid choice"),
    ],
)
def test_a_refused_input_says_why_and_stores_nothing(owner_client, data, files, message):
    uploads = {name: SimpleUploadedFile(filename, content) for name, (filename, content) in files.items()}
    response = owner_client.post(reverse("optimizer:batch"), SETTINGS | data | uploads)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Batch.objects.exists() and not BatchItem.objects.exists()


def _file_of(size: int) -> bytes:
    """Prompts, one a line, filling ``size`` bytes but for the last line's end."""
    line = "Explain topic {:05d} to a new colleague. " + "Keep it short and plain. " * 84 + "\n"
    data = "".join(line.format(row) for row in range(size // len(line) + 1)).encode()[:size]
    return data[: data.rfind(b"\n") + 1]


def test_a_file_of_the_full_10_mb_is_previewed(owner_client, settings):
    """Larger than what Django keeps in memory (2.5 MB): the upload is a file on disk, read once."""
    assert settings.BATCH_MAX_BYTES == 10 * 1024 * 1024 and settings.BATCH_MAX_ITEMS == 5000
    data = _file_of(settings.BATCH_MAX_BYTES)
    assert len(data) > 9.5 * 1024 * 1024
    response = owner_client.post(
        reverse("optimizer:batch"), {"file": SimpleUploadedFile("many.txt", data)} | SETTINGS
    )

    assert response.status_code == 302
    assert Batch.objects.get().size == data.count(b"\n") > 4800
    assert owner_client.get(response["Location"]).status_code == 200


def test_a_file_over_the_limit_is_refused_by_its_size_and_not_by_django(owner_client, settings):
    data = _file_of(settings.BATCH_MAX_BYTES) + b"x" * (settings.BATCH_MAX_BYTES // 100)
    response = owner_client.post(
        reverse("optimizer:batch"), {"file": SimpleUploadedFile("big.txt", data)} | SETTINGS
    )

    assert response.status_code == 200
    assert (
        f"The file is {len(data):,} bytes; the limit is 10,485,760 bytes (10.0 MiB"
        in response.content.decode()
    )
    assert not Batch.objects.exists()


def test_the_list_shows_the_users_batches_newest_first_with_their_cost(
    owner_client, owner, other_user, django_capture_on_commit_callbacks
):
    first = run_batch(make_batch(owner, 2, name="First one"), django_capture_on_commit_callbacks)
    for run in OptimizationRun.objects.filter(batch=first):  # what each paid, as the gateway records it
        UsageRecord.objects.create(
            user=owner,
            run=run,
            provider="p",
            model="m",
            operation="design",
            status="ok",
            cost=Decimal("0.25"),
        )
    make_batch(owner, 3, name="Second one")
    make_batch(other_user, 1, name="Not yours")

    html = owner_client.get(reverse("optimizer:batch")).content.decode()

    assert html.index("Second one") < html.index("First one")
    assert "Not yours" not in html
    assert "$0.50" in html and "2 prompts" in html and "done" in html and "not started" in html
    assert 'name="text"' in html and 'type="file"' in html and "“prompt” (required)" in html


def test_the_list_is_paged(owner_client, owner):
    for number in range(23):
        make_batch(owner, 1, name=f"Batch number {number:02d}")

    first = owner_client.get(reverse("optimizer:batch")).content.decode()
    second = owner_client.get(reverse("optimizer:batch") + "?page=2").content.decode()
    nonsense = owner_client.get(reverse("optimizer:batch") + "?page=zz")

    assert "Batch number 22" in first and "Batch number 02" not in first
    assert "Batch number 02" in second and "Batch number 22" not in second
    assert nonsense.status_code == 200


# Running


def test_start_runs_the_items_and_the_page_follows_them(
    owner_client, owner, django_capture_on_commit_callbacks
):
    batch = make_batch(owner, 3, duplicates={3: 1})
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("optimizer:batch-start", args=[batch.pk]))
    assert response.status_code == 302
    batch.refresh_from_db()
    assert batch.status == "running"

    running = _page(owner_client, batch, **HTMX)
    assert 'id="batch-progress"' in running and 'hx-trigger="every 2s"' in running
    assert 'hx-swap-oob="true"' in running and 'id="batch-results"' in running
    assert "<html" not in running  # the live region alone
    assert "Cancel" in running
    filtered = _page(owner_client, batch, "?state=queued&sort=-row&page=1", **HTMX)
    poll = f'hx-get="{reverse("optimizer:batch-detail", args=[batch.pk])}?state=queued&amp;sort=-row"'
    assert poll in filtered  # the poll keeps asking for what the table shows
    assert _rows(filtered) == ["2", "1"]

    with django_capture_on_commit_callbacks(execute=True):
        pipeline.run_next(engine=BUILTIN)
    done = _page(owner_client, batch, **HTMX)
    assert 'hx-trigger="every 2s"' not in done  # polling stops
    assert "<strong>100%</strong>" in done
    run = batch.items.get(row=1).run
    assert done.count(f'href="{reverse("optimizer:run", args=[run.pk])}"') == 2  # the item and its duplicate
    assert f"{run.score_before} → {run.score_after}" in done
    whole = _page(owner_client, batch)
    assert "Export every item" in whole and "<html" in whole
    assert "No task worker is running" not in whole  # it is done: nothing waits for one


def test_the_run_page_names_its_batch_and_item(owner_client, owner, django_capture_on_commit_callbacks):
    batch = run_batch(make_batch(owner, 2, name="Library"), django_capture_on_commit_callbacks)
    run = batch.items.get(row=2).run

    html = owner_client.get(reverse("optimizer:run", args=[run.pk])).content.decode()

    link = f'href="{reverse("optimizer:batch-detail", args=[batch.pk])}">Library</a>'
    assert f"Item 2 of batch <a {link}" in html

    # A failed try that was retried is no item's run any more: still the batch's.
    OptimizationRun.objects.filter(pk=run.pk).update(status="failed", error="gave up")
    batch_services.batch_retry_failed(batch=batch)
    html = owner_client.get(reverse("optimizer:run", args=[run.pk])).content.decode()
    assert f"An earlier try of an item of batch <a {link}" in html


def test_a_long_file_name_keeps_the_date_in_the_batch_name(owner):
    parsed = Parsed(format="text", items=[Item(row=1, text=PROMPTS[0])], skipped=[], empty_rows=0, columns=[])
    batch = batch_services.batch_create(
        owner=owner, parsed=parsed, run_settings=_settings(), source="x" * 200 + ".csv"
    )

    assert len(batch.name) == 120
    assert re.search(r" \(\d{4}-\d\d-\d\d \d\d:\d\d\)$", batch.name)


def test_a_paste_larger_than_a_form_may_be_says_to_upload_a_file(owner_client, settings):
    text = _file_of(3 * 1024 * 1024).decode()  # over Django's 2.5 MB for a form's fields

    response = owner_client.post(reverse("optimizer:batch"), {"text": text} | SETTINGS)

    assert response.status_code == 400
    html = response.content.decode()
    assert "larger than a form may be (2.5\xa0MB)" in html and "upload it on the" in html
    assert not Batch.objects.exists()
    # The same prompts as a file are read.
    upload = SimpleUploadedFile("many.txt", text.encode())
    assert owner_client.post(reverse("optimizer:batch"), {"file": upload} | SETTINGS).status_code == 302


def test_cancel_resume_and_the_refusals_on_the_way(
    owner_client, owner, settings, django_capture_on_commit_callbacks
):
    settings.BATCH_CONCURRENCY = 2
    batch = make_batch(owner, 5)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("optimizer:batch-start", args=[batch.pk]))

    refused = owner_client.post(reverse("optimizer:batch-delete", args=[batch.pk]), follow=True)
    assert "This batch is running: cancel it first" in refused.content.decode()
    assert Batch.objects.filter(pk=batch.pk).exists()
    resumed = owner_client.post(reverse("optimizer:batch-resume", args=[batch.pk]), follow=True)
    assert "Only a cancelled batch can be resumed." in resumed.content.decode()

    cancelled = owner_client.post(reverse("optimizer:batch-cancel", args=[batch.pk]), follow=True)
    html = cancelled.content.decode()
    assert "Cancelled: 2 queued item(s) taken back" in html
    assert "Resume" in html and 'hx-trigger="every 2s"' not in html
    batch.refresh_from_db()
    assert batch.status == "cancelled" and not OptimizationRun.objects.filter(batch=batch).exists()

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("optimizer:batch-resume", args=[batch.pk]))
    with django_capture_on_commit_callbacks(execute=True):
        pipeline.run_next(engine=BUILTIN)
    batch.refresh_from_db()
    assert batch.status == "done" and batch.items.filter(run__status="done").count() == 5


def test_retry_failed_runs_the_failed_items_again(owner_client, owner, django_capture_on_commit_callbacks):
    batch = run_batch(make_batch(owner, 3), django_capture_on_commit_callbacks)
    failed = batch.items.get(row=2).run
    OptimizationRun.objects.filter(pk=failed.pk).update(status="failed", error="The worker gave up.")

    html = _page(owner_client, batch)
    assert "Retry failed (1)" in html and "The worker gave up." in html
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("optimizer:batch-retry-failed", args=[batch.pk]), follow=True)
    assert "1 failed item(s) will run again." in response.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        pipeline.run_next(engine=BUILTIN)

    item = batch.items.get(row=2)
    assert item.run.status == "done" and item.run_id != failed.pk
    again = owner_client.post(reverse("optimizer:batch-retry-failed", args=[batch.pk]), follow=True)
    assert "No item of this batch has failed." in again.content.decode()


def test_a_degraded_batch_says_from_which_item_on_and_why(
    owner_client, owner, django_capture_on_commit_callbacks
):
    batch = run_batch(make_batch(owner, 4), django_capture_on_commit_callbacks)
    reason = "The hard daily budget is spent."
    later = BatchItem.objects.filter(batch=batch, row__gte=3).values_list("run_id", flat=True)
    OptimizationRun.objects.filter(pk__in=list(later)).update(degraded_reason=reason)

    html = _page(owner_client, batch)

    assert "2 items ran on the built-in engine instead of the model, the first at row 3" in html
    assert reason in html


def test_discard_deletes_a_draft_and_delete_asks_first(
    owner_client, owner, django_capture_on_commit_callbacks
):
    draft = make_batch(owner, 2, name="Draft one")
    response = owner_client.post(reverse("optimizer:batch-delete", args=[draft.pk]), follow=True)
    assert "Discarded “Draft one”: nothing ran." in response.content.decode()
    assert not Batch.objects.filter(pk=draft.pk).exists() and not BatchItem.objects.exists()

    done = run_batch(make_batch(owner, 2, name="Done one"), django_capture_on_commit_callbacks)
    confirm = owner_client.get(reverse("optimizer:batch-delete", args=[done.pk]))
    assert confirm.status_code == 200 and "Delete this batch?" in confirm.content.decode()
    assert Batch.objects.filter(pk=done.pk).exists()
    response = owner_client.post(reverse("optimizer:batch-delete", args=[done.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("optimizer:batch")
    assert not Batch.objects.exists() and not OptimizationRun.objects.exists()


# The results table


def test_the_results_filter_search_and_sort(owner_client, owner, django_capture_on_commit_callbacks):
    batch = run_batch(make_batch(owner, 4, duplicates={4: 1}), django_capture_on_commit_callbacks)
    BatchItem.objects.filter(batch=batch, row=2).update(title="Special one")

    duplicates = _page(owner_client, batch, "?state=duplicate")
    searched = _page(owner_client, batch, "?q=special")
    backwards = _page(owner_client, batch, "?sort=-row")

    assert _rows(duplicates) == ["4"]
    assert _rows(searched) == ["2"]
    assert _rows(backwards) == ["4", "3", "2", "1"]


def test_a_model_verdict_is_shown_in_words(owner_client, owner, django_capture_on_commit_callbacks):
    batch = run_batch(make_batch(owner, 2), django_capture_on_commit_callbacks)
    judged = batch.items.get(row=2).run
    verdict = {"winner": "original", "confidence": 0.7, "summary": "The original was clearer."}
    OptimizationRun.objects.filter(pk=judged.pk).update(scores=judged.scores | {"verdict": verdict})

    html = _page(owner_client, batch)

    cells = re.findall(r'<td data-label="Verdict">([^<]*)</td>', html)
    assert cells == ["–", "worse"]


@pytest.mark.parametrize(
    "query", ["?state=exploded", "?sort=;drop", "?page=-3", "?q=" + "x" * 500, "?state=&sort="]
)
def test_unknown_filter_values_show_the_default_table(owner_client, owner, query):
    batch = make_batch(owner, 3)

    html = _page(owner_client, batch, query)

    assert _rows(html) == ["1", "2", "3"]  # the default: every item, in their order


def test_the_results_are_paged(owner_client, owner, settings):
    batch = make_batch(owner, 55)

    first = _page(owner_client, batch)
    second = _page(owner_client, batch, "?page=2")

    assert len(_rows(first)) == 50 and _rows(second) == [str(row) for row in range(51, 56)]
    assert "Page 2 of 2 · 55 items" in second


def _rows(html: str) -> list[str]:
    return re.findall(r'<td data-label="Row">(\d+)</td>', html)


@pytest.mark.parametrize(
    ("shown", "expected"),
    # The draft's estimate reads the models, prices and budgets; the ORM broker's check (the worker
    # warning) two more, a Redis broker none.
    [("done", 10), ("done-partial", 9), ("draft", 14)],
)
def test_the_page_makes_the_same_queries_for_10_items_as_for_300(
    owner_client, owner, shown, expected, django_capture_on_commit_callbacks
):
    extra = HTMX if shown == "done-partial" else {}
    counts = []
    for size in (10, 300):
        batch = make_batch(owner, size, duplicates={size: 1})
        if shown != "draft":
            run_batch(batch, django_capture_on_commit_callbacks)
        _page(owner_client, batch, **extra)  # what the first request of a process reads once
        with CaptureQueriesContext(connection) as queries:
            html = _page(owner_client, batch, **extra)
        counts.append(len(queries))
        assert len(_rows(html)) == min(size, 50)
    assert counts[0] == counts[1] <= expected


# Who may see what


def _addresses(batch: Batch) -> list[tuple[str, str]]:
    pk = [batch.pk]
    return [
        ("get", reverse("optimizer:batch-detail", args=pk)),
        ("get", reverse("optimizer:batch-delete", args=pk)),
        ("get", reverse("optimizer:batch-export-csv", args=pk)),
        ("get", reverse("optimizer:batch-export-json", args=pk)),
        ("post", reverse("optimizer:batch-start", args=pk)),
        ("post", reverse("optimizer:batch-cancel", args=pk)),
        ("post", reverse("optimizer:batch-resume", args=pk)),
        ("post", reverse("optimizer:batch-retry-failed", args=pk)),
        ("post", reverse("optimizer:batch-delete", args=pk)),
    ]


def test_another_users_batch_does_not_exist_at_any_address(client, owner, other_user):
    batch = make_batch(owner, 2)
    client.force_login(other_user)

    for method, address in _addresses(batch):
        assert getattr(client, method)(address).status_code == 404, (method, address)
    batch.refresh_from_db()
    assert batch.status == "draft" and batch.items.count() == 2


def test_every_address_asks_an_anonymous_visitor_to_log_in(client, owner):
    batch = make_batch(owner, 2)

    index = reverse("optimizer:batch")
    for method, address in [("get", index), ("post", index), *_addresses(batch)]:
        response = getattr(client, method)(address)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), address
    assert Batch.objects.get().status == "draft"


def test_state_changes_are_post_only_and_need_the_csrf_token(
    owner, client, django_capture_on_commit_callbacks
):
    batch = make_batch(owner, 2)
    client.force_login(owner)
    for name in ("batch-start", "batch-cancel", "batch-resume", "batch-retry-failed"):
        assert client.get(reverse(f"optimizer:{name}", args=[batch.pk])).status_code == 405

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)
    assert strict.post(reverse("optimizer:batch-start", args=[batch.pk])).status_code == 403
    assert strict.post(reverse("optimizer:batch"), {"text": "Explain tides."} | SETTINGS).status_code == 403
    assert Batch.objects.get().status == "draft" and Batch.objects.count() == 1


def test_a_result_with_questions_links_to_them_and_counts_read_with_separators(
    owner_client, owner, django_capture_on_commit_callbacks, settings
):
    settings.BATCH_CONCURRENCY = 50
    parsed = Parsed(
        format="text",
        items=[
            Item(row=row, text=f"Summarize this article for me, version {row}: {{article}}")
            for row in range(1, 3)
        ],
        skipped=[],
        empty_rows=0,
        columns=[],
    )
    batch = run_batch(
        batch_services.batch_create(owner=owner, parsed=parsed, run_settings=_settings(), source="q.txt"),
        django_capture_on_commit_callbacks,
    )
    run = batch.items.get(row=1).run
    assert run.questions  # the built-in engine asks who reads the summary, how long...

    html = _page(owner_client, batch)

    count = len(run.questions)
    assert f'href="{reverse("optimizer:run", args=[run.pk])}#answers">{count} question' in html
    Batch.objects.filter(pk=batch.pk).update(size=1514)
    assert "1,514 prompts" in _page(owner_client, Batch.objects.get(pk=batch.pk))
