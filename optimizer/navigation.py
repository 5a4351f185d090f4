"""The main navigation: one list, so the header, the tests and later pages agree on it."""

from dataclasses import dataclass
from functools import lru_cache

from django.urls import get_script_prefix, reverse
from django.utils.functional import SimpleLazyObject
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe


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
    NavItem("Analytics", "optimizer:analytics"),
    NavItem("Monitoring", "optimizer:monitoring", staff_only=True),  # operators' page: 404 for others
    NavItem("Backups", "backups:index", staff_only=True),
    NavItem("Admin", "admin:index", staff_only=True),
)


def navigation(request) -> dict:
    """Context processor: the nav links this user may follow, the current section marked. Built only
    when a template shows them: an htmx partial never does."""
    items = SimpleLazyObject(lambda: nav_items(request))
    return {"nav_items": items, "nav_links": SimpleLazyObject(lambda: nav_links_html(items))}


def nav_links_html(items: list[dict]) -> str:
    """The links as list items: drawn once per set of links (a user's, with one section current)."""
    return _links_html(tuple((item["label"], item["url"], item["current"]) for item in items))


@lru_cache(maxsize=256)
def _links_html(links: tuple[tuple[str, str, bool], ...]) -> str:
    return format_html_join(
        "\n",
        '            <li><a href="{}"{}>{}</a></li>',
        ((url, mark_safe(' aria-current="page"') if current else "", label) for label, url, current in links),
    )


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


# The addresses a run's page links to, by the name its template uses: the run's own routes, and
# the two pages it leads back to.
RUN_ROUTES = {
    "run": "optimizer:run",
    "progress": "optimizer:run-progress",
    "diff": "optimizer:run-diff",
    "reoptimize": "optimizer:run-reoptimize",
    "answer": "optimizer:run-answer",
    "edit": "optimizer:run-edit",
    "keep_original": "optimizer:run-keep-original",
    "favorite": "optimizer:run-favorite",
    "delete": "optimizer:run-delete",
}
_SAMPLE_PK = 8_765_432_109_876_543  # split out of each address; no run has it (ids count up from 1)


def run_urls(pk: int) -> dict[str, str]:
    """``{"run": "/runs/7/", "diff": "/runs/7/diff/", …, "optimize": "/", "history": "/history/"}``:
    each address is reversed once per process and the id put in its place. The run page drew
    fifteen ``{% url %}`` tags, each a ``reverse()``."""
    routes, pages = _run_url_parts(get_script_prefix())
    return {name: f"{head}{pk}{tail}" for name, (head, tail) in routes.items()} | pages


@lru_cache(maxsize=8)
def _run_url_parts(script_prefix: str) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    sample = str(_SAMPLE_PK)
    routes = {}
    for name, url_name in RUN_ROUTES.items():
        head, found, tail = reverse(url_name, args=[_SAMPLE_PK]).partition(sample)
        if not found:
            raise ValueError(f"{url_name}'s address does not hold the run's id")
        routes[name] = (head, tail)
    return routes, {"optimize": reverse("optimizer:optimize"), "history": reverse("optimizer:history")}
