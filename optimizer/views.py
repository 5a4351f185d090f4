from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import LogoutView
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from django.views.generic import TemplateView

from optimizer.health import health_report


@require_safe
def optimize(request):
    """Home page. The optimize form arrives with the pipeline; until then it shows system status."""
    checks = health_report()["checks"]
    services = [
        ("Database", checks["database"]),
        ("Cache", checks["cache"]),
        ("Task broker", checks["task_broker"]),
    ]
    return render(request, "optimizer/optimize.html", {"services": services})


@login_not_required
@never_cache
@require_safe
def healthz(request):
    """Public liveness/readiness probe: 200 when the database, cache and broker answer, else 503."""
    report = health_report()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


def coming_soon(title: str, summary: str):
    """A page that later work builds, shown as a short "coming" state until then (never a 500)."""
    return TemplateView.as_view(
        template_name="coming_soon.html", extra_context={"title": title, "summary": summary}
    )


class SignOutView(LogoutView):
    """Django's logout (POST only), confirming on the login page that it happened."""

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You are logged out.")
        return response
