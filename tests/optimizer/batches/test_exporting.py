"""A batch's exports: every item with its result, streamed as CSV (cells a spreadsheet will not run as
formulas) and JSON; a duplicate carries its first item's result and says so."""

import csv
import io
import json
from decimal import Decimal

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse

from optimizer.batches.exporting import EXPORT_FIELDS
from optimizer.batches.parsing import Item, Parsed
from optimizer.batches.services import batch_create
from optimizer.models import BatchItem, OptimizationRun
from tests.optimizer.batches.test_views import _settings, make_batch, run_batch

pytestmark = pytest.mark.django_db


def _body(response) -> str:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode("utf-8")


def test_the_json_export_has_every_item_with_its_result(
    owner_client, owner, django_capture_on_commit_callbacks
):
    batch = run_batch(make_batch(owner, 3, duplicates={3: 1}), django_capture_on_commit_callbacks)
    first = batch.items.get(row=1).run
    OptimizationRun.objects.filter(pk=first.pk).update(
        cost=Decimal("0.00123400"),
        scores=first.scores | {"verdict": {"winner": "rewrite", "confidence": 0.8}},
    )

    response = owner_client.get(reverse("optimizer:batch-export-json", args=[batch.pk]))

    assert response["Content-Disposition"] == f'attachment; filename="batch-{batch.pk}.json"'
    rows = json.loads(_body(response))
    assert [row["row"] for row in rows] == [1, 2, 3]
    assert list(rows[0]) == list(EXPORT_FIELDS)
    one, _, duplicate = rows
    assert one["status"] == "done" and one["verdict"] == "rewrite" and one["cost"] == "0.00123400"
    assert one["optimized"] == first.optimized_text and one["original"] == batch.items.get(row=1).text
    assert (one["score_before"], one["score_after"], one["score_gain"]) == (
        first.score_before,
        first.score_after,
        first.score_gain,
    )
    assert one["run_url"] == f"http://testserver{reverse('optimizer:run', args=[first.pk])}"
    assert duplicate["status"] == "duplicate" and duplicate["duplicate_of"] == 1
    assert duplicate["optimized"] == first.optimized_text and duplicate["run_id"] == first.pk
    assert duplicate["cost"] == "0"  # it made no call: the total is not counted twice
    assert one["duplicate_of"] is None


def test_the_csv_export_is_formula_safe_and_has_the_items_not_started(owner_client, owner):
    items = [
        Item(row=1, text='=HYPERLINK("http://evil.example") explain tides', title="+Tides"),
        Item(row=2, text="Write a haiku about autumn.", title="Haiku"),
    ]
    batch = batch_create(
        owner=owner,
        parsed=Parsed(format="text", items=items, skipped=[], empty_rows=0, columns=[]),
        run_settings=_settings(),
        source="pasted text",
    )

    response = owner_client.get(reverse("optimizer:batch-export-csv", args=[batch.pk]))

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="batch-{batch.pk}.csv"'
    body = _body(response)
    assert body.startswith("\ufeff")
    header, *rows = list(csv.reader(io.StringIO(body.removeprefix("\ufeff"))))
    assert header == list(EXPORT_FIELDS)
    first = dict(zip(header, rows[0], strict=True))
    assert first["title"] == "'+Tides" and first["original"].startswith("'=HYPERLINK")
    assert first["status"] == "waiting" and first["optimized"] == "" and first["run_url"] == ""
    assert len(rows) == 2


def test_the_export_reads_the_items_in_chunks_with_a_fixed_number_of_queries(
    owner_client, owner, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    batch = run_batch(make_batch(owner, 40), django_capture_on_commit_callbacks)
    BatchItem.objects.filter(batch=batch, row=7).update(title="Seventh")

    with django_assert_max_num_queries(4):  # the session, the user, the batch, the items in one read
        body = _body(owner_client.get(reverse("optimizer:batch-export-json", args=[batch.pk])))

    rows = json.loads(body)
    assert len(rows) == 40 and rows[6]["title"] == "Seventh"
