from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from costs.budgets import alerts_visible_to


@require_POST
def alert_dismiss(request, pk: int):
    """Hide one alert from the banner (for everyone who sees it: it is one event). 404 when the
    user may not see it."""
    alert = get_object_or_404(alerts_visible_to(request.user), pk=pk)
    alert.dismissed_at = timezone.now()
    alert.save(update_fields=["dismissed_at"])
    back = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return redirect(back if safe else "/")
