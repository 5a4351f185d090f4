"""Site-wide response rules that are not Django's own."""

import functools
import logging
import re
import time

from django.core.signals import request_finished
from django.db import connection
from django.utils.cache import patch_cache_control

from config import http_metrics
from config.request_context import NO_REQUEST, request_id_from, request_id_set

access_log = logging.getLogger("access")
# The methods a label may name: any other (a client may send any word) is "other", so a stranger
# cannot add series to /metrics without end.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# URL arguments that are secrets: a password-reset link's are a key to the account.
SECRET_ROUTE_ARGUMENTS = frozenset({"uidb64", "token"})


def no_store_for_users(get_response):
    """A page or an export made for a logged-in user holds private data: no shared cache (a proxy,
    a CDN) and no browser cache may keep it. Responses that set their own Cache-Control keep it."""

    def middleware(request):
        response = get_response(request)
        if request.user.is_authenticated and not response.has_header("Cache-Control"):
            patch_cache_control(response, private=True, no_store=True)
        return response

    return middleware


class QueryTimer:
    """An execute wrapper (``connection.execute_wrapper``) that adds up the time a request spends
    in the database, for its Server-Timing header, and feeds the database metrics (statements,
    errors, duration: ``config.http_metrics``) with the same measurement."""

    __slots__ = ("seconds",)

    def __init__(self):
        self.seconds = 0.0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        except Exception as exc:
            http_metrics.db_errors_total.labels(connection.alias, connection.vendor, type(exc).__name__).inc()
            raise
        finally:
            elapsed = time.perf_counter() - started
            self.seconds += elapsed
            statements, duration = _db_labelled()
            statements.inc(len(params) if many else 1)
            duration.observe(elapsed)


@functools.cache
def _db_labelled():
    """The labelled children of the database metrics, looked up once per process."""
    labels = (connection.alias, connection.vendor)
    return (
        http_metrics.db_statements_total.labels(*labels),
        http_metrics.db_statement_seconds.labels(*labels),
    )


def _logged_path(request) -> str:
    """The path without its query string (it may hold a search or a secret); a URL with a secret in
    its path (a password-reset link) is logged as its route, placeholders instead of values.
    Control characters are written as escapes: a decoded %0A in a path would otherwise forge a
    second log line (as Django escapes its own request lines)."""
    match = request.resolver_match
    if match is not None and SECRET_ROUTE_ARGUMENTS.intersection(match.kwargs):
        return "/" + match.route
    return CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", request.path)


def request_context(get_response):
    """Outermost: gives the request its id (the proxy's X-Request-ID when valid, else a new one) for
    every log line it writes and every task it queues, answers with ``X-Request-ID`` and
    ``Server-Timing`` (database and total time), and logs one line at INFO: method, path, status,
    duration. Never the query string, a body or a header."""

    # Django logs a 4xx or 5xx answer (django.request) after the middleware has returned: the id is
    # forgotten when the response is closed, after that line.
    request_finished.connect(_request_id_forget, dispatch_uid="config.middleware.request_id_forget")

    def middleware(request):
        started = time.perf_counter()
        request_id = request_id_from(request.META.get("HTTP_X_REQUEST_ID"))
        request_id_set(request_id)
        timer = QueryTimer()
        with connection.execute_wrapper(timer):
            response = get_response(request)
        elapsed = time.perf_counter() - started
        total_ms = elapsed * 1000
        method = request.method if request.method in METHODS else "other"
        http_metrics.requests_total.labels(method, response.status_code).inc()
        http_metrics.request_seconds.labels(method).observe(elapsed)
        response.headers["Server-Timing"] = f"db;dur={timer.seconds * 1000:.1f}, total;dur={total_ms:.1f}"
        response.headers["X-Request-ID"] = request_id
        if access_log.isEnabledFor(logging.INFO):
            path = _logged_path(request)
            access_log.info(
                "%s %s %s %.1fms",
                request.method,
                path,
                response.status_code,
                total_ms,
                extra={
                    "method": request.method,
                    "path": path,
                    "status": response.status_code,
                    "duration_ms": round(total_ms, 1),
                },
            )
        return response

    return middleware


def _request_id_forget(**kwargs) -> None:
    request_id_set(NO_REQUEST)
