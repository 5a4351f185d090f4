import itertools

from chartjs.views.lines import BaseLineChartView
from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_safe

from costs.views import range_of, scope_of
from optimizer.analytics import selectors
from optimizer.forms import errors_text

CHARTS = {  # name: title (each figure's chart and table; bars: counts and means of groups)
    "runs-per-day": "Runs per day by engine",
    "scores-by-type": "Checklist score by prompt type",
    "scores-by-engine": "Checklist score by engine",
    "scores-by-model": "Checklist score by model",
    "verdicts-by-type": "The model's verdicts by prompt type",
    "verdicts-by-model": "The model's verdicts by model",
    "technique-usage": "Technique usage",
    "technique-effect": "What each technique gained",
    "prompt-types": "Prompt types",
}
VERDICT_CHARTS = ("verdicts-by-type", "verdicts-by-model")  # shown only when some run has a verdict


@require_safe
def analytics(request):
    scope = scope_of(request)
    form, (start, end) = range_of(request)
    if form.is_bound and not form.is_valid():
        messages.error(request, errors_text(form))
    query = {"start": start.isoformat(), "end": end.isoformat()} | ({} if scope.site else {"scope": "mine"})
    found = selectors.analytics(scope=scope, start=start, end=end)
    judged = found["summary"]["judged"] > 0
    charts = [
        {"name": name, "title": title, "figure": found["figures"][name], "url": _chart_url(name)}
        for name, title in CHARTS.items()
        if judged or name not in VERDICT_CHARTS
    ]
    context = found | {"title": "Analytics", "form": form, "scope": scope, "start": start, "end": end}
    return render(
        request,
        "optimizer/analytics/analytics.html",
        context | {"days": (end - start).days + 1, "query_string": urlencode(query), "charts": charts},
    )


def _chart_url(name: str) -> str:
    return reverse("optimizer:analytics-chart", args=[name])


class AnalyticsChart(BaseLineChartView):
    """A django-chartjs JSON view of one figure of the page (labels and datasets, as Chart.js takes
    them), for the asked range and scope. Every dataset is on the page script's "count" axis (runs,
    scores, points and percents are all plain numbers)."""

    http_method_names = ["get", "head"]
    colors = [(79, 70, 229), (13, 148, 136), (217, 119, 6), (190, 24, 93), (100, 116, 139)]

    def get(self, request, *args, **kwargs):
        if kwargs["name"] not in CHARTS:
            raise Http404("No such chart.")
        form, (start, end) = range_of(request)
        if form.is_bound and not form.is_valid():
            return JsonResponse({"error": errors_text(form)}, status=400)
        self.figure = selectors.figure(name=kwargs["name"], scope=scope_of(request), start=start, end=end)
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.pop("view", None)  # TemplateView's own entry: not data
        context.pop("name", None)  # the URL's argument: not data
        return context

    def get_labels(self):
        return self.figure.labels

    def get_providers(self):
        return [series.name for series in self.figure.series]

    def get_data(self):
        return [series.values for series in self.figure.series]

    def get_colors(self):
        return itertools.cycle(self.colors)

    def get_dataset_options(self, index, color):
        hidden = self.figure.series[index].hidden
        return super().get_dataset_options(index, color) | {"yAxisID": "count", "hidden": hidden}
