"""How many optimizations one user may start in a minute (``settings.RUNS_PER_MINUTE``).

Every door that creates a run (the optimize page, answering questions, optimize again, the optimize
command) creates it inside ``run_limit_held``, which checks the limit in the same transaction.
"""

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from optimizer.models import OptimizationRun

WINDOW = timedelta(seconds=60)


class RunLimitExceeded(Exception):
    """The user has started as many runs in the last minute as are allowed; ``retry_after_s`` is how
    long until enough of them have left the window for one more."""

    def __init__(self, *, started: int, allowed: int, retry_after_s: int):
        self.started = started
        self.allowed = allowed
        self.retry_after_s = retry_after_s
        super().__init__(self.message)

    @property
    def message(self) -> str:
        runs = "optimization" if self.started == 1 else "optimizations"
        seconds = "second" if self.retry_after_s == 1 else "seconds"
        return (
            f"You have started {self.started} {runs} in the last minute, the most allowed is "
            f"{self.allowed}. Try again in {self.retry_after_s} {seconds}."
        )


def run_limit_check(*, owner) -> None:
    """Raise ``RunLimitExceeded`` when ``owner`` started ``RUNS_PER_MINUTE`` runs or more in the last
    60 seconds (result-cache hits included: they make a run too). A batch's runs are not counted: the
    batch bounds how many of them are in flight (``BATCH_CONCURRENCY``), and a user running one can
    still optimize a single prompt.

    One query when allowed, three when refused, whatever the owner's history: the index on
    (owner, -created_at) finds the limit-th newest run without reading the others."""
    allowed = settings.RUNS_PER_MINUTE
    now = timezone.now()
    if not _at_limit(owner.pk, since=now - WINDOW, allowed=allowed):
        return
    recent = OptimizationRun.objects.filter(owner=owner, batch=None, created_at__gt=now - WINDOW)
    # While the limit-th newest run is inside the window, the user is at the limit; once it leaves,
    # at most limit - 1 remain and one more may start.
    boundary = list(
        recent.order_by("-created_at").values_list("created_at", flat=True)[allowed - 1 : allowed]
    )
    if not boundary:
        return
    retry_after_s = max(1, math.ceil((boundary[0] + WINDOW - now).total_seconds()))
    raise RunLimitExceeded(started=recent.count(), allowed=allowed, retry_after_s=retry_after_s)


def _at_limit(owner_id: int, *, since, allowed: int) -> bool:
    """Whether the owner has ``allowed`` runs newer than ``since``: one plain statement on every
    submission (compiling the queryset took longer than running it); the refusal's details are
    worked out only when it is one."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {quote(OptimizationRun._meta.db_table)} WHERE {quote('owner_id')} = %s "  # noqa: S608
            f"AND {quote('batch_id')} IS NULL AND {quote('created_at')} > %s "
            f"ORDER BY {quote('created_at')} DESC LIMIT 1 OFFSET %s",
            [owner_id, connection.ops.adapt_datetimefield_value(since), allowed - 1],
        )
        return cursor.fetchone() is not None


@contextmanager
def run_limit_held(*, owner) -> Iterator[None]:
    """A transaction in which ``owner`` may create one run; raises ``RunLimitExceeded`` (nothing
    created) when over the limit.

    The owner's user row is locked first (FOR NO KEY UPDATE on PostgreSQL, so rows that merely refer
    to the user are not blocked), so one user's concurrent submissions queue here and each counts the
    runs the others committed; other users never wait. SQLite takes its write lock when the
    transaction begins (the embedded settings use IMMEDIATE), which serialises the same way."""
    with transaction.atomic():
        if connection.features.has_select_for_update:  # SQLite: the transaction's lock is enough
            users = get_user_model().objects.select_for_update(no_key=True)
            list(users.filter(pk=owner.pk).values_list("pk"))
        run_limit_check(owner=owner)
        yield
