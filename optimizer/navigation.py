"""The main navigation: one list, so the header, the tests and later pages agree on it."""

from dataclasses import dataclass
from functools import lru_cache

from django.urls import get_script_prefix, reverse
from django.utils.functional import SimpleLazyObject


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    staff_only: bool = False


NAV_ITEMS = (
    NavItem("Optimize", "optimizer:optimize"),
    NavItem("History", "optimizer:history"),
    NavItem("Batch", "optimizer:batch"),
    NavItem("Costs", "costs:dashboard"),
    NavItem("Monitoring", "optimizer:monitoring"),
    NavItem("Analytics", "optimizer:analytics"),
    NavItem("Backups", "backups:index", staff_only=True),
    NavItem("Admin", "admin:index", staff_only=True),
)


def navigation(request) -> dict:
    """Context processor: the nav links this user may follow, the current section marked. Built only
    when a template shows them: an htmx partial never does."""
    return {"nav_items": SimpleLazyObject(lambda: nav_items(request))}


def nav_items(request) -> list[dict]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return []
    items = []
    for item in NAV_ITEMS:
        if item.staff_only and not user.is_staff:
            continue
        url = _url(item.url_name, get_script_prefix())
        current = request.path == url if url == "/" else request.path.startswith(url)
        items.append({"label": item.label, "url": url, "current": current})
    return items


@lru_cache(maxsize=64)
def _url(url_name: str, script_prefix: str) -> str:
    """The links never change while the process runs (for a given script prefix): reversing them
    on every page was a tenth of a cached page's time."""
    return reverse(url_name)
