"""The Batch pages: the user's batches and the New batch form, a batch's preview before it starts,
its live progress and results while and after it runs, its state changes (POST), its exports."""

from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from optimizer import services as run_services
from optimizer.batches import exporting, selectors, services
from optimizer.batches.estimate import estimate
from optimizer.batches.forms import BatchForm, ItemFilterForm
from optimizer.exporting import csv_stream, read_ahead
from optimizer.forms import PRESET_CHOICES
from optimizer.health import run_check
from optimizer.models import Batch, BatchItem, ModelChoice, OptimizationRun
from optimizer.views import VERDICT_WORDS

LIST_PAGE_SIZE = 20
ITEMS_PAGE_SIZE = 50
SKIPPED_SHOWN = 200  # rows listed on the preview; the rest are counted
MODEL_WORDS = {"auto": "Auto", "builtin": "Built-in engine"}
PRESET_LABELS = {slug: label.split(":")[0] for slug, label in PRESET_CHOICES}


@require_http_methods(["GET", "HEAD", "POST"])
def batch_index(request):
    """The user's batches and the New batch form; a valid submission is stored as a draft (nothing
    runs) and its preview shown. A refused input is told on the form and stores nothing."""
    posted = request.method == "POST"
    form = BatchForm(request.POST if posted else None, request.FILES if posted else None, owner=request.user)
    if posted and form.is_valid():
        data = form.cleaned_data
        run_settings = run_services.run_settings_build(
            prompt_type=data["type"],
            preset=data["preset"],
            techniques=data["techniques"],
            model=data["model"],
            keep_spans=data["keep_spans"],
        )
        try:
            batch = services.batch_create(
                owner=request.user,
                parsed=data["parsed"],
                run_settings=run_settings,
                source=data["source"],
                name=data["name"],
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            for note in data["parsed"].notes:
                messages.info(request, note)
            return redirect("optimizer:batch-detail", pk=batch.pk)
    batches = selectors.batches_of(request.user).order_by("-created_at", "-id")  # grouped: no Meta order
    page = Paginator(batches, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "form": form.with_model_choices(),
        "page": page,
        "max_items": settings.BATCH_MAX_ITEMS,
        "max_bytes": settings.BATCH_MAX_BYTES,
    }
    return render(request, "optimizer/batches/index.html", context)


@require_safe
@never_cache
@vary_on_headers("HX-Request", "HX-History-Restore-Request")
def batch_detail(request, pk: int):
    """A draft's preview (what would run, what it would cost, Start or Discard), else its progress and
    results. htmx gets the live region alone: the 2 s poll while it runs, the filters and the pages."""
    batch = selectors.batch_of(request.user, pk)
    context = _live_context(request, batch)
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "optimizer/batches/batch.html#batch-live", context | {"oob": True})
    context["model_label"] = _model_label((batch.settings or {}).get("model", "auto"))
    preset = (batch.settings or {}).get("preset", "auto")
    context["preset_label"] = PRESET_LABELS.get(preset, preset)
    if batch.status in (Batch.Status.DRAFT, Batch.Status.RUNNING):
        context["broker"] = run_check("task_broker")  # only to warn when no worker runs
    if batch.status == Batch.Status.DRAFT:
        context |= _preview_context(batch)
    return render(request, "optimizer/batches/batch.html", context)


def _model_label(model: str) -> str:
    if model in MODEL_WORDS:
        return MODEL_WORDS[model]
    choice = (
        ModelChoice.objects.select_related("provider").filter(pk=model).first() if model.isdigit() else None
    )
    return f"{choice.provider.name} / {choice.model_id}" if choice else "a model no longer configured"


def _live_context(request, batch: Batch) -> dict:
    filters = ItemFilterForm(request.GET)
    values = filters.values()
    page = Paginator(selectors.items(batch, **values), ITEMS_PAGE_SIZE).get_page(request.GET.get("page"))
    progress = selectors.progress(batch)
    query = urlencode(
        [(name, value) for name, value in values.items() if value and (name, value) != ("sort", "row")]
    )
    page_query = "&".join(part for part in (query, f"page={page.number}" if page.number > 1 else "") if part)
    return {
        "batch": batch,
        "progress": progress,
        "eta": selectors.eta_text(progress.eta_s),
        "throughput": _throughput(progress.per_second),
        "running": batch.status == Batch.Status.RUNNING,
        "filters": filters,
        "filtered": bool(values["state"] or values["q"]),
        "page": page,
        "rows": [_row(item) for item in page.object_list],
        "query": query,
        "page_query": page_query,
        "states": selectors.ITEM_STATES,
    }


def _throughput(per_second: float | None) -> str:
    if per_second is None:
        return ""
    if per_second >= 1:
        return f"{per_second:.1f} items a second"
    return f"{per_second * 60:.1f} items a minute"


def _preview_context(batch: Batch) -> dict:
    texts = list(batch.items.filter(duplicate_of=None).values_list("text", flat=True))
    model = (batch.settings or {}).get("model", "auto")
    found = estimate(texts=texts, model=model, user_id=batch.owner_id)
    return {
        "estimate": found,
        "estimate_rows": [
            {"model": choice, "input": f"{choice.input_tokens:,}", "output": f"{choice.output_tokens:,}"}
            for choice in found.models
        ],
        "skipped": batch.skipped[:SKIPPED_SHOWN],
        "skipped_more": max(len(batch.skipped) - SKIPPED_SHOWN, 0),
    }


@dataclass(frozen=True)
class ItemRow:
    """One item as a row of the results table: a duplicate shows its first item's result."""

    item: BatchItem
    state: str
    run: OptimizationRun | None
    verdict: str

    @property
    def state_label(self) -> str:
        return selectors.ITEM_STATES.get(self.state, self.state)

    @property
    def has_result(self) -> bool:
        return self.run is not None and self.run.status == OptimizationRun.Status.DONE

    @property
    def unchanged(self) -> bool:
        """The engine returned the prompt as it was (nothing it would have to guess was missing)."""
        return self.has_result and self.run.optimized_text.strip() == self.item.text.strip()


def _row(item: BatchItem) -> ItemRow:
    run = selectors.result_run(item)
    winner = ((run.scores or {}).get("verdict") or {}).get("winner") if run is not None else None
    return ItemRow(
        item=item, state=selectors.item_state(item), run=run, verdict=VERDICT_WORDS.get(winner, "")
    )


def _act(request, pk: int, change, done: str):
    """A state change by its service: its message on the batch's page, or the service's refusal."""
    batch = selectors.batch_of(request.user, pk)
    try:
        result = change(batch=batch)
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        messages.success(request, done.format(count=result if isinstance(result, int) else 0))
    return redirect("optimizer:batch-detail", pk=batch.pk)


@require_POST
def batch_start(request, pk: int):
    return _act(
        request,
        pk,
        services.batch_start,
        "Started: its items run a few at a time, and this page follows them.",
    )


@require_POST
def batch_cancel(request, pk: int):
    return _act(
        request,
        pk,
        services.batch_cancel,
        "Cancelled: {count} queued item(s) taken back; the ones running now finish. Resume goes on from "
        "there.",
    )


@require_POST
def batch_resume(request, pk: int):
    return _act(request, pk, services.batch_resume, "Resumed: the items left run now.")


@require_POST
def batch_retry_failed(request, pk: int):
    return _act(request, pk, services.batch_retry_failed, "{count} failed item(s) will run again.")


@require_http_methods(["GET", "HEAD", "POST"])
def batch_delete(request, pk: int):
    """A confirmation page, then the deletion (POST); a draft's Discard posts here directly."""
    batch = selectors.batch_of(request.user, pk)
    if request.method != "POST":
        return render(request, "optimizer/batches/batch_delete.html", {"batch": batch})
    draft = batch.status == Batch.Status.DRAFT
    try:
        services.batch_delete(batch=batch)
    except ValidationError as error:
        messages.error(request, error.messages[0])
        return redirect("optimizer:batch-detail", pk=batch.pk)
    messages.success(
        request, f"Discarded “{batch.name}”: nothing ran." if draft else f"Deleted “{batch.name}”."
    )
    return redirect("optimizer:batch")


@require_safe
def batch_export(request, pk: int, fmt: str):
    """Every item with its result, streamed as CSV (formula-safe cells) or JSON."""
    batch = selectors.batch_of(request.user, pk)
    rows = read_ahead(exporting.export_rows(batch, origin=request.build_absolute_uri("/")[:-1]))
    if fmt == "json":
        response = StreamingHttpResponse(exporting.json_stream(rows), content_type="application/json")
    else:
        lines = ([row[name] for name in exporting.EXPORT_FIELDS] for row in rows)
        response = StreamingHttpResponse(
            csv_stream(exporting.EXPORT_FIELDS, lines), content_type="text/csv; charset=utf-8"
        )
    response["Content-Disposition"] = f'attachment; filename="batch-{batch.pk}.{fmt}"'
    return response
