from django.utils.functional import SimpleLazyObject

from costs.budgets import alerts_banner


def budget_alerts(request) -> dict:
    """The budget alerts banner on every page, until each alert is dismissed. Queried only when a
    full page is drawn (htmx partials never show it)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"budget_alerts": []}
    return {"budget_alerts": SimpleLazyObject(lambda: alerts_banner(user))}
