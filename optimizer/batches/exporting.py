"""A batch's results as rows for its CSV and JSON exports, read from the database in chunks: every
item, in its order, a duplicate with its first item's result (and no cost of its own: it made no call)."""

import json
from collections.abc import Iterator
from decimal import Decimal

from optimizer.batches import selectors
from optimizer.models import Batch, OptimizationRun

EXPORT_FIELDS = (
    "row", "title", "type", "status", "original", "optimized", "score_before", "score_after",
    "score_gain", "verdict", "cost", "run_id", "run_url", "duplicate_of",
)  # fmt: skip
CHUNK = 500


def export_rows(batch: Batch, *, origin: str = "") -> Iterator[dict]:
    """One dict per item; ``origin`` ("https://host") makes the run addresses absolute."""
    for item in selectors.items(batch).iterator(chunk_size=CHUNK):
        run = selectors.result_run(item)
        done = run is not None and run.status == OptimizationRun.Status.DONE
        duplicate = item.duplicate_of_id is not None
        yield {
            "row": item.row,
            "title": item.title,
            "type": item.type,
            "status": selectors.item_state(item),
            "original": item.text,
            "optimized": run.optimized_text if done else "",
            "score_before": run.score_before if done else None,
            "score_after": run.score_after if done else None,
            "score_gain": run.score_gain if done else None,
            "verdict": (((run.scores or {}).get("verdict") or {}).get("winner") or "") if done else "",
            "cost": Decimal(0) if duplicate or run is None else run.cost,
            "run_id": run.pk if run is not None else None,
            "run_url": origin + run.urls["run"] if run is not None else "",
            "duplicate_of": item.duplicate_of.row if duplicate else None,
        }


def json_stream(rows) -> Iterator[str]:
    """A JSON array, one item a line; amounts as strings (exact, as Decimal)."""
    yield "["
    for index, row in enumerate(rows):
        yield ("," if index else "") + "\n" + json.dumps(row, ensure_ascii=False, default=str)
    yield "\n]\n"
