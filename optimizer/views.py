import hashlib
import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import partial

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import LogoutView
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseBadRequest, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url, replace_url, reswap, retarget

from optimizer import diffing, limits, selectors, services
from optimizer.builtin_engine.catalogue import PRESETS, TECHNIQUES
from optimizer.builtin_engine.rubric import CRITERIA
from optimizer.exporting import csv_stream, read_ahead
from optimizer.forms import AnswerForm, HistoryFilterForm, OptimizeForm, RunEditForm, again_text, errors_text
from optimizer.health import health_report, run_check
from optimizer.models import BatchItem, OptimizationRun, Prompt
from optimizer.navigation import nav_items, nav_links_html

HISTORY_PAGE_SIZE = 25


@require_http_methods(["GET", "HEAD", "POST"])
@vary_on_headers("HX-Request", "HX-History-Restore-Request")
def optimize(request):
    """The optimize form (``?from=<run>``: filled with that run's text and settings, to change and
    submit as a new version of it); a valid submission saves the prompt and a run, then shows its page."""
    source = None
    if request.method == "GET" and "from" in request.GET:
        source = _run_from(request)
        form = OptimizeForm.again_with(source, owner=request.user)
    else:
        form = OptimizeForm(request.POST or None, owner=request.user)
    refusal = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with limits.run_limit_held(owner=request.user):
                run = services.run_submit(
                    owner=request.user,
                    text=data["text"],
                    title=data["title"],
                    tags=data["tags"],
                    run_settings=services.run_settings_build(
                        prompt_type=data["type"],
                        preset=data["preset"],
                        techniques=data["techniques"],
                        model=data["model"],
                        keep_spans=data["keep_spans"],
                    ),
                    parent=data["parent"],
                )
        except limits.RunLimitExceeded as error:
            refusal = error
            form.add_error(None, error.message)
        else:
            return _to_run_page(request, run)
    if form.is_bound:
        source = getattr(form, "cleaned_data", {}).get("parent")
    template = (
        "optimizer/optimize.html#optimize-form" if _partial_wanted(request) else "optimizer/optimize.html"
    )
    context = _optimize_context(form) | {
        "source": source,
        "starts_from": source and again_text(source)[1],
    }
    return _render(request, template, context, refusal)


def _run_from(request) -> OptimizationRun:
    """The run named by ``?from=``: the user's own, or 404 (as for any other address of a run)."""
    pk = request.GET["from"]
    if not pk.isdigit():
        raise Http404("No such optimization.")
    return selectors.run_for_user(request.user, int(pk))


def _render(request, template: str, context: dict, refusal: limits.RunLimitExceeded | None = None):
    """The page; after a refusal by the per-user run limit, with 429 and when to retry (Retry-After).
    htmx swaps that response in like a 200 (base.html's htmx-config), so the message shows."""
    if refusal is None:
        return render(request, template, context)
    response = render(request, template, context, status=429)
    response["Retry-After"] = str(refusal.retry_after_s)
    return response


def _to_run_page(request, run: OptimizationRun):
    """After a submission, the run's own page, so the address and the page always agree. An htmx
    request gets that page in the same response, swapped in as the whole body (title, breadcrumb,
    nav and versions included) with its address pushed, scrolled to the top: one round trip, where
    a client redirect took two."""
    if not request.htmx:
        return redirect("optimizer:run", pk=run.pk)
    # Drawn for the address pushed, not the one posted to: no section is current, as on a reload.
    items = [item | {"current": False} for item in nav_items(request)]
    context = _run_context(run, lazy_diff=True) | {
        "chain": selectors.version_chain(run, new=True),
        "nav_items": items,
        "nav_links": nav_links_html(items),
    }
    response = render(request, "optimizer/run.html", context)
    response = reswap(retarget(response, "body"), "innerHTML show:window:top")
    return push_url(response, run.urls["run"])


def _optimize_context(form) -> dict:
    return {
        "form": form.with_model_choices(),
        "presets": PRESETS,
        "techniques": TECHNIQUES.values(),
        "criteria": CRITERIA.values(),
        "broker": run_check("task_broker"),  # only to warn when no worker runs
    }


VERDICT_WORDS = {"rewrite": "better", "original": "worse", "tie": "no different"}
SIDE_WORDS = {"rewrite": "the rewrite", "original": "your original", "tie": "neither"}
SERIOUS = ("high", "medium")
SIDES = ("before", "after")


def _run_context(
    run: OptimizationRun,
    diff_mode: str = "inline",
    *,
    lazy_diff: bool = False,
    answer_form: AnswerForm | None = None,
    edit_form: RunEditForm | None = None,
) -> dict:
    """What the run panel shows. ``lazy_diff``: the diff, the heaviest part, is fetched by htmx right
    after the panel is swapped in, so the result appears sooner."""
    context = {"run": run, "criteria": CRITERIA, "diff_mode": diff_mode, "lazy_diff": lazy_diff}
    if run.status == OptimizationRun.Status.DONE:
        # Shown only inside the result's cached fragment: a template calls them when it draws that
        # fragment, not on a run whose result it has drawn before (every result-cache hit).
        context["score_rows"] = partial(_score_rows, run)
        context["penalties"] = partial(_penalties, run)
        context["unchanged"] = run.optimized_text.strip() == run.prompt.text.strip()
        context["verdict"] = None if context["unchanged"] else _verdict(run)  # nothing to compare
        context["serious"] = any(
            issue.get("severity") in SERIOUS for issue in (run.diagnosis or {}).get("issues", [])
        )
        answered = bool((run.settings or {}).get("answers"))
        context["edited"] = edited = bool((run.settings or {}).get("edited"))  # by hand: no engine wrote it
        context["reoptimized"] = bool(run.parent_id) and not answered  # its prompt is the previous result
        context["good_shape"] = (
            run.engine == OptimizationRun.Engine.BUILTIN
            and not context["serious"]
            and not answered
            and not edited
        )
        # The built-in engine is idempotent: a second pass over its own result changes nothing.
        context["can_reoptimize"] = (
            not context["unchanged"] and run.engine != OptimizationRun.Engine.BUILTIN and not edited
        )
        context["answer_form"] = answer_form or AnswerForm(run.questions)
        context["edit_form"] = edit_form or RunEditForm(initial={"text": again_text(run)[0]})
        context["answers_given"] = sorted((run.settings.get("answers") or {}).items())
        context["body_key"] = _result_digest(run)
        context["deconstruction_rows"] = partial(_deconstruction_rows, run)
        context["diff"] = None if lazy_diff else _diff(run, diff_mode)
        context["calls"] = _call_rows(run)
        context["calls_failed"] = any(call["failed"] or call["retried"] for call in context["calls"])
    else:
        context["stages"] = _stage_rows(run)
    return context


def _deconstruction_rows(run: OptimizationRun) -> list[tuple[str, str]]:
    return [
        (key.replace("_", " ").capitalize(), "; ".join(map(str, value)) if isinstance(value, list) else value)
        for key, value in (run.deconstruction or {}).items()
    ]


def _result_digest(run: OptimizationRun) -> str:
    """Names what the result part of the panel shows, so its rendering is reused by every run with the
    same result (each result-cache hit, each reload of a finished run) and never by another."""
    shown = (
        run.optimized_text, run.scores, run.diagnosis, run.changes, run.techniques, run.deconstruction,
        run.stage_timings,
    )  # fmt: skip
    return hashlib.blake2b(repr(shown).encode(), digest_size=16).hexdigest()


def _call_rows(run: OptimizationRun) -> list[dict]:
    """How each stage's model call went, cost as money, with whether anything failed on the way."""
    rows = []
    for call in run.stage_calls or []:
        cost = call.get("cost")
        rows.append(call | {"cost": None if cost is None else Decimal(cost)})
    return rows


def _stage_rows(run: OptimizationRun) -> list[dict]:
    return [
        {
            "name": stage,
            "done": stage in run.stage_timings,
            "current": run.stage == stage,
            "ms": run.stage_timings.get(stage),
        }
        for stage in OptimizationRun.STAGES
    ]


def _score_rows(run: OptimizationRun) -> list[dict]:
    """One row per checklist criterion that either text was checked on (some count only where they
    apply, such as material to work on), with each side's reason for its score."""
    scores = run.scores or {}
    before = {item["key"]: item for item in scores.get("before", {}).get("criteria", [])}
    after = {item["key"]: item for item in scores.get("after", {}).get("criteria", [])}
    return [
        {
            "name": name,
            "weight": weight,
            "before": before.get(key, {}).get("score"),
            "after": after.get(key, {}).get("score"),
            "rationales": _rationales(before.get(key, {}), after.get(key, {})),
        }
        for key, (name, weight, _) in CRITERIA.items()
        if key in before or key in after
    ]


def _rationales(before: dict, after: dict) -> list[tuple[str, str]]:
    """(label, reason) pairs: one unlabelled reason when both sides say the same, else each side's."""
    said = {"Before": before.get("rationale", ""), "After": after.get("rationale", "")}
    if said["Before"] == said["After"]:
        return [("", said["After"])] if said["After"] else []
    return [(side, reason) for side, reason in said.items() if reason]


def _penalties(run: OptimizationRun) -> list[tuple[str, list[dict]]]:
    """The points the checklist took off each side (contradictions, filler), or [] when neither lost
    any; runs scored before penalties were recorded have none."""
    scores = run.scores or {}
    sides = [(side.capitalize(), (scores.get(side) or {}).get("penalties") or []) for side in SIDES]
    return sides if any(items for _, items in sides) else []


def _verdict(run: OptimizationRun) -> dict | None:
    """The model's blind comparison of the original and the rewrite, in words, or None without one."""
    verdict = (run.scores or {}).get("verdict")
    if not verdict or verdict.get("winner") not in VERDICT_WORDS:
        return None
    return {
        **verdict,
        "word": VERDICT_WORDS[verdict["winner"]],
        "criteria": [
            {**item, "side": SIDE_WORDS.get(item.get("better"), "neither")}
            for item in verdict.get("criteria", [])
        ],
    }


def _diff(run: OptimizationRun, mode: str) -> object:
    if mode == "side":
        return diffing.side_by_side(run.prompt.text, run.optimized_text)
    return diffing.inline_diff(run.prompt.text, run.optimized_text)


@require_safe
def run_detail(request, pk: int):
    run = services.run_expire_stale(run=selectors.run_for_user(request.user, pk))
    context = _run_context(run, request.GET.get("diff", "inline")) | {"chain": selectors.version_chain(run)}
    if run.batch_id:  # which item of its batch it is (a failed try that was retried is no item's now)
        context["batch_item"] = BatchItem.objects.filter(run=run).values("row", "batch__name").first() or {
            "row": None,
            "batch__name": run.batch.name,
        }
    return render(request, "optimizer/run.html", context)


@require_safe
@never_cache
def run_progress(request, pk: int):
    """The live panel: the stages while the run works, the result once it is done."""
    run = services.run_expire_stale(run=selectors.run_for_user(request.user, pk))
    context = _run_context(run, lazy_diff=True)
    if run.status == OptimizationRun.Status.DONE and run.parent_id:
        # The Versions card lies outside the polled panel: once the run is done it is sent along
        # (out of band), so this version's line shows its checklist without a reload.
        context |= {"chain": selectors.version_chain(run), "oob_versions": True}
    return render(request, "optimizer/run.html#run-panel", context)


@require_safe
def run_diff(request, pk: int):
    run = selectors.run_for_user(request.user, pk)
    if run.status != OptimizationRun.Status.DONE:
        raise Http404("This run has no result yet.")
    mode = "side" if request.GET.get("mode") == "side" else "inline"
    return render(request, "optimizer/run.html#diff", _run_context(run, mode))


@require_POST
def run_reoptimize(request, pk: int):
    run = selectors.run_for_user(request.user, pk)
    try:
        with limits.run_limit_held(owner=request.user):
            child = services.run_reoptimize(run=run)
    except ValidationError as error:
        messages.error(request, error.messages[0])
        return redirect("optimizer:run", pk=run.pk)
    except limits.RunLimitExceeded as refusal:
        messages.error(request, refusal.message)
        context = _run_context(run) | {"chain": selectors.version_chain(run)}
        return _render(request, "optimizer/run.html", context, refusal)
    return redirect("optimizer:run", pk=child.pk)


@require_POST
def run_answer(request, pk: int):
    """The author's answers to a run's open questions make a new version of the original prompt."""
    run = selectors.run_for_user(request.user, pk)
    form = AnswerForm(run.questions, request.POST)
    refusal = None
    if form.is_valid():
        try:
            with limits.run_limit_held(owner=request.user):
                child = services.run_answer(run=run, answers=form.answers())
        except ValidationError as error:
            form.add_error(None, error)
        except limits.RunLimitExceeded as error:
            refusal = error
            form.add_error(None, error.message)
        else:
            return _to_run_page(request, child)
    if request.htmx:
        return _render(request, "optimizer/run.html#answers", {"run": run, "answer_form": form}, refusal)
    context = _run_context(run, answer_form=form) | {"chain": selectors.version_chain(run)}
    return _render(request, "optimizer/run.html", context, refusal)


@require_POST
def run_edit(request, pk: int):
    """The author's own edit of a run's text, saved as a new version of it (scored, no model call)."""
    run = selectors.run_for_user(request.user, pk)
    form = RunEditForm(request.POST)
    refusal = None
    if form.is_valid():
        try:
            with limits.run_limit_held(owner=request.user):
                child = services.run_edit_save(run=run, text=form.cleaned_data["text"])
        except ValidationError as error:
            if run.status != OptimizationRun.Status.DONE:  # its page has no edit form to say it in
                messages.error(request, error.messages[0])
                return redirect("optimizer:run", pk=run.pk)
            form.add_error(None, error)
        except limits.RunLimitExceeded as error:
            refusal = error
            form.add_error(None, error.message)
        else:
            return _to_run_page(request, child)
    if request.htmx:
        return _render(request, "optimizer/run.html#edit", {"run": run, "edit_form": form}, refusal)
    context = _run_context(run, edit_form=form) | {"chain": selectors.version_chain(run)}
    return _render(request, "optimizer/run.html", context, refusal)


@require_POST
def run_keep_original(request, pk: int):
    """Keep the original prompt instead of the rewrite (``kept=0``: use the rewrite after all)."""
    run = selectors.run_for_user(request.user, pk)
    try:
        services.run_keep_original_set(run=run, kept=request.POST.get("kept") != "0")
    except ValidationError as error:
        messages.error(request, error.messages[0])
        return redirect("optimizer:run", pk=run.pk)
    if request.htmx:
        return render(request, "optimizer/run.html#run-panel", _run_context(run))
    return redirect("optimizer:run", pk=run.pk)


@require_POST
def run_favorite(request, pk: int):
    run = selectors.run_for_user(request.user, pk)
    services.prompt_favorite_set(prompt=run.prompt, favorite=request.POST.get("favorite") == "1")
    if request.htmx:
        return render(request, "optimizer/run.html#favorite", {"run": run})
    return redirect("optimizer:run", pk=run.pk)


@require_http_methods(["GET", "HEAD", "POST"])
def run_delete(request, pk: int):
    run = selectors.run_for_user(request.user, pk)
    if request.method == "POST":
        services.run_delete(run=run)
        messages.success(request, f"Deleted “{run.prompt.title}”.")
        return redirect("optimizer:history")
    return render(request, "optimizer/run_delete.html", {"run": run})


@require_safe
@vary_on_headers("HX-Request", "HX-History-Restore-Request")
def history(request):
    form = HistoryFilterForm(request.GET or None)
    valid = form.is_valid()
    runs = selectors.history_runs(owner=request.user, filters=form.cleaned_data if valid else {})
    page = Paginator(runs, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    query = _filters_query(form)
    context = {
        "form": form,
        "page": page,
        "rows": _history_rows(
            page.object_list.values(*selectors.HISTORY_ROW_FIELDS, **selectors.HISTORY_ROW_VALUES)
        ),
        "query": query,
        "export_query": query if valid else "",  # an invalid filter shows everything: so does the file
        "form_key": _form_key(form),
    }
    if not _partial_wanted(request):
        return render(request, "optimizer/history.html", context)
    response = render(request, "optimizer/history.html#history-results", context | {"oob_exports": True})
    # The address of the request answered, not one behind, so the page and a bookmark agree; the same
    # address again (Enter after the search has run) is no new step for Back.
    address = _address(reverse("optimizer:history"), query, f"page={page.number}" if page.number > 1 else "")
    if address == request.htmx.current_url_abs_path:
        return replace_url(response, address)
    return push_url(response, address)


def _partial_wanted(request) -> bool:
    """An htmx request gets the region it swaps; Back to a page htmx did not keep (a history restore)
    gets the whole page, drawn from its address alone."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def _filters_query(form) -> str:
    """The filters submitted, in the form's order and without the empty ones: what the address, the
    pages and the export links carry."""
    if not form.is_bound:
        return ""
    return urlencode(
        [(name, value) for name in form.fields for value in form.data.getlist(name) if value.strip()]
    )


def _address(path: str, *queries: str) -> str:
    query = "&".join(part for part in queries if part)
    return f"{path}?{query}" if query else path


TYPE_LABELS = dict(Prompt.Type.choices)
ENGINE_LABELS = dict(OptimizationRun.Engine.choices)
EDITED = "Edited by hand"  # a version saved by hand: no engine wrote it, whatever its engine column says
STATUS_BADGES = dict(OptimizationRun.Status.choices) | {OptimizationRun.Status.DONE: ""}  # done: no badge
MICRODOLLAR = Decimal("0.000001")


@dataclass(frozen=True)
class HistoryRow:
    """One run as a row of the history table, worked out once from the columns read (no model
    instance). It draws itself (``html``; format_html escapes each value as a template would): 25
    rows through template tags and filters were the largest part of the page's time."""

    url: str
    title: str
    favorite: bool
    tags: list[str]
    status: str  # the badge; empty when done
    cached: bool
    degraded: bool
    kept_original: bool
    type: str
    engine: str
    model: str
    scores: str | None  # "40 → 55", None before the checklist ran
    gain: str
    gain_class: str
    cost: str
    iso: str
    when: str

    def html(self) -> str:
        marks = [
            format_html('<span class="badge">{}</span>', self.status) if self.status else "",
            CACHED_BADGE if self.cached else "",
            DEGRADED_BADGE if self.degraded else "",
            KEPT_BADGE if self.kept_original else "",
        ]
        tags = format_html_join("", '<span class="tag">{}</span>', ((tag,) for tag in self.tags))
        model = format_html('<br> <span class="muted small">{}</span>', self.model) if self.model else ""
        checklist = (
            format_html('{} <span class="gain {}">{}</span>', self.scores, self.gain_class, self.gain)
            if self.scores
            else "\N{EN DASH}"
        )
        return format_html(
            HISTORY_ROW_HTML,
            favorite=FAVORITE_MARK if self.favorite else "",
            url=self.url,
            title=self.title,
            marks=mark_safe("".join(f"\n          {mark}" for mark in marks if mark)),  # noqa: S308 - escaped above
            tags=tags,
            type=self.type,
            engine=self.engine,
            model=model,
            checklist=checklist,
            cost=self.cost,
            iso=self.iso,
            when=self.when,
        )


HISTORY_ROW_HTML = """
      <tr>
        <td>{favorite}<a href="{url}">{title}</a>{marks}
          {tags}</td>
        <td data-label="Type">{type}</td>
        <td data-label="Engine">{engine}{model}</td>
        <td data-label="Checklist">{checklist}</td>
        <td data-label="Cost">${cost}</td>
        <td data-label="When"><time datetime="{iso}">{when}</time></td>
      </tr>"""
FAVORITE_MARK = mark_safe('<span title="Favorite">★</span> ')
CACHED_BADGE = mark_safe('<span class="badge">cached</span>')
DEGRADED_BADGE = mark_safe('<span class="badge badge-warn">degraded</span>')
KEPT_BADGE = mark_safe(
    '<span class="badge" title="You kept your original prompt instead of the rewrite">original kept</span>'
)


def _history_rows(runs) -> list[HistoryRow]:
    # Each row's address is "/runs/0/" with its own id: reversed once, not once a row.
    head, tail = reverse("optimizer:run", args=[0]).rsplit("0", 1)
    rows = []
    for run in runs:
        when = timezone.localtime(run["created_at"])
        after, gain = run["score_after"], run["score_gain"]
        rows.append(
            HistoryRow(
                url=f"{head}{run['id']}{tail}",
                title=run["prompt__title"],
                favorite=run["prompt__favorite"],
                tags=run["prompt__tags"],
                status=STATUS_BADGES.get(run["status"], run["status"]),
                cached=run["cached"],
                degraded=bool(run["degraded_reason"]),
                kept_original=run["kept_original"],
                type=TYPE_LABELS.get(run["prompt__type"], run["prompt__type"]),
                engine=EDITED if run["edited"] is True else ENGINE_LABELS.get(run["engine"], run["engine"]),
                model=run["model"],
                scores=None if after is None else f"{run['score_before']} → {after}",
                gain="" if gain is None else f"{gain:+d}",
                gain_class="gain-up" if gain and gain > 0 else "gain-down" if gain and gain < 0 else "",
                cost=_dollars(run["cost"]),
                iso=when.isoformat(),
                when=when.strftime("%Y-%m-%d %H:%M"),
            )
        )
    return rows


def _form_key(form) -> str:
    """Names the filter form's rendering, which follows from the values submitted alone: it is drawn
    once per set of values and reused (its widgets' templates were a fifth of the page's time)."""
    submitted = [(name, form.data.getlist(name)) for name in form.fields] if form.is_bound else []
    return hashlib.blake2b(repr(submitted).encode(), digest_size=16).hexdigest()


def _dollars(amount: Decimal) -> str:
    """An amount as ``floatformat:"-6"`` writes it: whole dollars bare, else six decimals."""
    if amount == amount.to_integral_value():
        return str(int(amount))
    return format(amount.quantize(MICRODOLLAR, ROUND_HALF_UP), "f")


@require_safe
def history_export(request, fmt: str):
    form = HistoryFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():  # a file of every run would pass for the filtered one asked
        return HttpResponseBadRequest(errors_text(form), content_type="text/plain; charset=utf-8")
    filters = form.cleaned_data if form.is_bound else {}
    rows = read_ahead(selectors.history_export_rows(owner=request.user, filters=filters))
    if fmt == "json":
        response = StreamingHttpResponse(_json_stream(rows), content_type="application/json")
    else:
        response = StreamingHttpResponse(_csv_stream(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="prompt-history.{fmt}"'
    return response


def _json_stream(rows):
    yield "["
    for index, row in enumerate(rows):
        yield ("," if index else "") + "\n" + json.dumps(row, ensure_ascii=False)
    yield "\n]\n"


def _csv_stream(rows):
    fields = selectors.EXPORT_FIELDS
    return csv_stream(
        fields,
        (
            [selectors.questions_text(row[name]) if name == "questions" else row[name] for name in fields]
            for row in rows
        ),
    )


@login_not_required
@never_cache
@require_safe
def healthz(request):
    """Public liveness/readiness probe: 200 when the database, cache and broker answer, else 503."""
    report = health_report()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


class SignOutView(LogoutView):
    """Django's logout (POST only), confirming on the login page that it happened."""

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You are logged out.")
        return response
