"""The Monitoring page (staff only: 404 for anyone else), its 5-second partial, its JSON export and
its two actions: reset a model's circuit breaker, clear a cache tier (each a POST; the tier asks for
confirmation first)."""

from django.contrib import messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from backups.views import staff_required
from optimizer.models import ModelChoice
from optimizer.monitoring import selectors, services, thresholds

PAGE = "optimizer/monitoring/page.html"


def _snapshot() -> dict:
    return selectors.monitoring_snapshot(now=timezone.now(), limits=thresholds.current())


@staff_required
@never_cache
@require_safe
def monitoring(request):
    """The page; an HTMX request (the 5-second refresh) gets only its tiles."""
    context = {"title": "Monitoring", "snapshot": _snapshot(), "tier_names": services.TIER_NAMES}
    return render(request, f"{PAGE}#monitoring-tiles" if request.htmx else PAGE, context)


@staff_required
@never_cache
@require_safe
def monitoring_export(request):
    """What the page shows, as JSON (money as decimal strings, times in ISO 8601 UTC)."""
    response = JsonResponse(_snapshot(), encoder=DjangoJSONEncoder, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="monitoring-{timezone.now():%Y%m%d-%H%M%S}.json"'
    return response


@staff_required
@require_POST
def breaker_reset(request, pk: int):
    try:
        choice = services.breaker_reset(model_choice_id=pk)
    except ModelChoice.DoesNotExist:
        raise Http404("No such model.") from None
    messages.success(request, f"The circuit breaker of {choice} is closed again; its counters start over.")
    return redirect("optimizer:monitoring")


@staff_required
@require_http_methods(["GET", "HEAD", "POST"])
def cache_clear(request, tier: str):
    """GET: what clearing this tier does, and a button; POST: clear it."""
    if tier not in services.TIER_PREFIXES:
        raise Http404("No such cache tier.")
    name = services.TIER_NAMES[tier]
    if request.method == "POST":
        try:
            deleted = services.cache_tier_clear(tier=tier)
        except services.CacheUnavailable as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"The {name} cache is empty: {deleted:,} entries deleted.")
        return redirect("optimizer:monitoring")
    context = {
        "title": f"Clear the {name} cache",
        "tier": tier,
        "name": name,
        "action": reverse("optimizer:monitoring-cache-clear", args=[tier]),
    }
    return render(request, "optimizer/monitoring/cache_clear.html", context)
