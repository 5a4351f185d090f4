import itertools

from chartjs.views.lines import BaseLineChartView
from django.contrib import messages
from django.http import HttpResponseBadRequest, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header, url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_POST, require_safe

from costs import selectors
from costs.budgets import alerts_visible_to
from costs.forecast import METHOD, MIN_DAYS
from costs.forms import DateRangeForm
from costs.selectors import Scope
from costs.usage_days import usage_days
from optimizer.exporting import csv_stream, read_ahead
from optimizer.forms import errors_text


def scope_of(request) -> Scope:
    """Whose figures a page shows (the Costs and Analytics pages): staff see the whole site unless
    they ask for their own (``?scope=mine``); others, their own."""
    if request.user.is_staff and request.GET.get("scope") != "mine":
        return Scope(user_id=None)
    return Scope(user_id=request.user.pk)


def range_of(request) -> tuple[DateRangeForm, tuple]:
    """The date range asked for (the last 30 days by default) and its form, filled in either way."""
    form = DateRangeForm(request.GET or None)
    start, end = form.range()
    if not form.is_bound:  # show the default range in the date fields
        form = DateRangeForm(initial={"start": start, "end": end})
    return form, (start, end)


@require_safe
def dashboard(request):
    scope = scope_of(request)
    form, (start, end) = range_of(request)
    if form.is_bound and not form.is_valid():
        messages.error(request, errors_text(form))
    query = {"start": start.isoformat(), "end": end.isoformat()} | ({} if scope.site else {"scope": "mine"})
    context = selectors.cost_dashboard(scope=scope, start=start, end=end)
    return render(
        request,
        "costs/dashboard.html",
        context
        | {"title": "Costs", "form": form, "scope": scope, "start": start, "end": end}
        | {
            "days": (end - start).days + 1,
            "query_string": urlencode(query),
            "method": METHOD,
            "min_days": MIN_DAYS,
            "charts": [{"title": title, "url": reverse(name), "type": kind} for title, name, kind in CHARTS],
        },
    )


CHARTS = [  # title, URL name, Chart.js type (bars for sums: a day's, a model's)
    ("Spend per day", "costs:chart-spend-per-day", "bar"),
    ("Tokens per day", "costs:chart-tokens-per-day", "bar"),
    ("Spend by model", "costs:chart-by-model", "bar"),
    ("Spend by provider", "costs:chart-by-provider", "bar"),
    ("Spend by stage", "costs:chart-by-operation", "bar"),
]


@require_safe
def usage_export(request):
    """The usage records of the range as CSV, streamed from the database in chunks (memory stays
    flat whatever the count), spreadsheet formulas escaped."""
    scope = scope_of(request)
    form, (start, end) = range_of(request)
    if form.is_bound and not form.is_valid():  # a file of another range would pass for the one asked
        return HttpResponseBadRequest(errors_text(form), content_type="text/plain; charset=utf-8")
    records = selectors.usage_in_range(scope=scope, start=start, end=end)
    return _usage_csv(records, f"usage-{start}-to-{end}.csv")


@require_safe
def usage_export_mine(request):
    """Every usage record of the user's own, of all dates (the records of their runs and calls, to
    keep beside History's export of the runs): staff get only theirs here too."""
    records = Scope(user_id=request.user.pk).records()
    return _usage_csv(records, f"usage-{request.user.get_username()}-all.csv")


def _usage_csv(records, filename: str) -> StreamingHttpResponse:
    records = records.order_by("created_at", "id")
    fields = EXPORT_FIELDS
    rows = read_ahead(records.values_list(*[source for _name, source in fields]).iterator(chunk_size=2000))
    response = StreamingHttpResponse(
        csv_stream([name for name, _source in fields], rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    return response


EXPORT_FIELDS = [
    ("created_at", "created_at"),
    ("user", "user__username"),
    ("run_id", "run_id"),
    ("provider", "provider"),
    ("model", "model"),
    ("operation", "operation"),
    ("status", "status"),
    ("input_tokens", "input_tokens"),
    ("cached_tokens", "cached_tokens"),
    ("output_tokens", "output_tokens"),
    ("tokens_estimated", "tokens_estimated"),
    ("cost_usd", "cost"),
    ("saved_usd", "saved_cost"),
    ("latency_ms", "latency_ms"),
    ("error_class", "error_class"),
    ("http_status", "http_status"),
]


class _UsageChart(BaseLineChartView):
    """A django-chartjs JSON view over the usage records of the asked range and scope (labels and
    datasets, as Chart.js takes them). Amounts go out as numbers rounded for display. Each dataset
    names its axis (``yAxisID``: "usd" for dollars, "count" for tokens and calls) and whether it
    starts hidden, so the page draws what the data calls for."""

    http_method_names = ["get", "head"]
    colors = [(79, 70, 229), (13, 148, 136), (217, 119, 6), (190, 24, 93), (100, 116, 139)]
    axes = ("usd",)  # of each dataset, in order

    def get(self, request, *args, **kwargs):
        self.scope = scope_of(request)
        form, (self.start, self.end) = range_of(request)
        if form.is_bound and not form.is_valid():
            return JsonResponse({"error": errors_text(form)}, status=400)
        self.usage = usage_days(user_id=self.scope.user_id, start=self.start, end=self.end)
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.pop("view", None)  # TemplateView's own entry: not data
        return context

    def get_colors(self):
        """Our palette (indigo, teal, amber...) instead of the package's, which starts with gray."""
        return itertools.cycle(self.colors)

    def get_dataset_options(self, index, color):
        return super().get_dataset_options(index, color) | {"yAxisID": self.axes[index]}


class SpendPerDayChart(_UsageChart):
    def get_labels(self):
        self.days = selectors.per_day(self.usage, self.start, self.end)
        return [row["day"].isoformat() for row in self.days]

    def get_providers(self):
        return ["Spend (USD)"]

    def get_data(self):
        return [[_dollars(row["spend"]) for row in self.days]]


class TokensPerDayChart(SpendPerDayChart):
    axes = ("count", "count", "count")

    def get_providers(self):
        return ["Input tokens (cached included)", "Cached input tokens", "Output tokens"]

    def get_data(self):
        return [
            [row[name] for row in self.days] for name in ("input_tokens", "cached_tokens", "output_tokens")
        ]


class SpendByChart(_UsageChart):
    """Spend and calls per model, provider or stage. The calls show from the legend on demand, or
    from the start when nothing in the range has a price (unpriced models): bars of $0 say nothing."""

    group = ""
    axes = ("usd", "count")

    def get_labels(self):
        self.rows = selectors.spend_by(self.usage, self.group)
        return [row["label"] for row in self.rows]

    def get_providers(self):
        return ["Spend (USD)", "Calls"]

    def get_data(self):
        return [[_dollars(row["spend"]) for row in self.rows], [row["calls"] for row in self.rows]]

    def get_datasets(self):
        spend, calls = super().get_datasets()
        paid = any(spend["data"])
        return [spend | {"hidden": not paid}, calls | {"hidden": paid}]


def _dollars(amount) -> float:
    return float(round(amount, 6))


@require_POST
def alert_dismiss(request, pk: int):
    """Hide one alert from the banner (for everyone who sees it: it is one event). 404 when the
    user may not see it."""
    alert = get_object_or_404(alerts_visible_to(request.user), pk=pk)
    back = _same_site_path(request, request.POST.get("next", "")) or reverse("costs:dashboard")
    alert.dismissed_at = timezone.now()
    alert.save(update_fields=["dismissed_at"])
    return HttpResponseRedirect(back)


def _same_site_path(request, url: str) -> str | None:
    """``url`` when it is a path on this site (``/history/?page=2``), else None: never a URL name
    (``redirect()`` would reverse ``logout``), another host, a scheme or a control character."""
    safe = (
        url.startswith("/")
        and url.isprintable()
        and url_has_allowed_host_and_scheme(
            url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
    )
    return url if safe else None
