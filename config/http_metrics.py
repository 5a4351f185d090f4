"""The web's own Prometheus metrics: requests by method and status, their duration, and the
database statements they ran (count, duration, errors), with prometheus-client, which adds them up
over gunicorn's worker processes in its multiprocess mode (``config.metrics``).

django-prometheus would give the same, but it declares Django < 6.1 (its 2.5.0 refuses to install
beside Django 6.1): the few metrics it would have kept are these, named as ours."""

from prometheus_client import Counter, Histogram

PREFIX = "prompt_optimizer"
# Seconds: a page is milliseconds, an export or a slow provider's page seconds.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STATEMENT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)

requests_total = Counter(
    f"{PREFIX}_http_requests", "HTTP requests answered, by method and status.", ["method", "status"]
)
request_seconds = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Time to answer an HTTP request, middleware included.",
    ["method"],
    buckets=REQUEST_BUCKETS,
)
db_statements_total = Counter(
    f"{PREFIX}_db_statements", "Database statements run by web requests.", ["alias", "vendor"]
)
db_statement_seconds = Histogram(
    f"{PREFIX}_db_statement_duration_seconds",
    "Time of a database statement run by a web request.",
    ["alias", "vendor"],
    buckets=STATEMENT_BUCKETS,
)
db_errors_total = Counter(
    f"{PREFIX}_db_errors",
    "Database statements of web requests that raised, by error.",
    ["alias", "vendor", "error"],
)
