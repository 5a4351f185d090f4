"""Prices and budgets as every model call reads them: from memory, read again only after a change.

Each model call needs the admin's price for its model and the budgets that count its user's calls.
Both change rarely (someone edits them) and are read on every call, so each process keeps them in
memory together with the version they were read at. The version lives in the shared cache
(``VERSION_KEY``). The gateway reads it in the round trip that reads the API cache entry and the
breaker state. Others call ``current()``, which costs one cache read.

Saving or deleting a price or a budget, through any door (the admin, the forms, a command, the
shell), sets a new version once its transaction commits (signals, connected in ``costs.apps``).
Every process then reads the data again on its next call.

Correct before fast (and never older than ``MAX_AGE_S``, should an announcement be lost):
- When the cache does not answer or has lost the key, the data comes from the database.
- Inside a transaction the data is read from the database and not kept: that transaction may
  have changed it and may yet roll back, and nothing would announce that.
- A version is only kept when it is still the one in the cache after the read, so a change made
  while a process was reading is never hidden.
"""

import bisect
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.core.cache import caches
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from optimizer.llm.pricing import PricePerMillion

logger = logging.getLogger(__name__)

VERSION_KEY = "costs:snapshot:v1"
MAX_AGE_S = 60  # read again after this long whatever the version says: a lost announcement heals


@dataclass(frozen=True)
class BudgetLine:
    """What the gate needs of one enabled budget."""

    id: int
    user_id: int | None
    username: str
    period: str
    period_label: str
    limit: Decimal
    hard: bool
    thresholds: tuple[int, ...]

    @property
    def name(self) -> str:
        whose = "the site's" if self.user_id is None else f"{self.username}'s"
        return f"{whose} {self.period_label.lower()} budget"


@dataclass(frozen=True)
class Snapshot:
    version: str | None
    read_at: float = 0.0  # time.monotonic() of the read
    # model id → [(valid_from, price)], oldest first
    prices: dict[int, list[tuple[datetime, PricePerMillion]]] = field(default_factory=dict)
    budgets: tuple[BudgetLine, ...] = ()

    def price(self, model_id: int, at: datetime | None = None) -> PricePerMillion | None:
        """The admin's price for the model in force at ``at`` (now), or None."""
        history = self.prices.get(model_id)
        if not history:
            return None
        position = bisect.bisect_right(history, at or timezone.now(), key=lambda entry: entry[0])
        return history[position - 1][1] if position else None

    def budgets_for(self, user_id: int | None) -> tuple[BudgetLine, ...]:
        """The enabled budgets a call by this user counts against: the site's and the user's own,
        in id order (the order the gate locks them in)."""
        return tuple(budget for budget in self.budgets if budget.user_id is None or budget.user_id == user_id)


_kept: Snapshot | None = None
_lock = threading.Lock()
_MISSING = object()


def current(found: dict | object | None = _MISSING) -> Snapshot:
    """The prices and budgets in force. ``found`` is what a caller's own ``get_many`` that included
    ``VERSION_KEY`` returned (None when the cache did not answer); without it the version is read
    here."""
    global _kept
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        # This transaction may have changed them, and may yet roll back: read, and keep nothing.
        return _read(None, keep=False)
    if found is _MISSING:
        found = _cache_get_many()
    version = None if found is None else found.get(VERSION_KEY)
    kept = _kept
    if (
        version is not None
        and kept is not None
        and kept.version == version
        and time.monotonic() - kept.read_at < MAX_AGE_S
    ):
        return kept
    snapshot = _read(version)
    if snapshot.version is not None:
        with _lock:
            _kept = snapshot
    return snapshot


def _read(version: str | None, *, keep: bool = True) -> Snapshot:
    from costs.models import Budget, ModelPrice

    prices: dict[int, list[tuple[datetime, PricePerMillion]]] = {}
    for row in ModelPrice.objects.order_by("model_id", "valid_from").values_list(
        "model_id", "valid_from", "input", "output", "cached_input"
    ):
        prices.setdefault(row[0], []).append((row[1], PricePerMillion(row[2], row[3], row[4])))
    labels = dict(Budget.Period.choices)
    budgets = tuple(
        BudgetLine(
            id=budget.pk,
            user_id=budget.user_id,
            username=budget.user.get_username() if budget.user_id else "",
            period=budget.period,
            period_label=labels.get(budget.period, budget.period),
            limit=budget.limit,
            hard=budget.mode == Budget.Mode.HARD,
            thresholds=tuple(budget.threshold_list),
        )
        for budget in Budget.objects.filter(enabled=True).select_related("user").order_by("pk")
    )
    if not keep:
        return Snapshot(None, time.monotonic(), prices, budgets)
    if version is None:
        version = _version_start()
    elif _cache_get() != version:
        version = None  # changed while we read: read again next time
    return Snapshot(version, time.monotonic(), prices, budgets)


def _cache_get_many() -> dict | None:
    try:
        return caches["default"].get_many([VERSION_KEY])
    except Exception:  # noqa: BLE001 - a cache outage: read the database each time
        return None


def _cache_get() -> str | None:
    found = _cache_get_many()
    return None if found is None else found.get(VERSION_KEY)


def _version_start() -> str | None:
    """A first version when the cache has none (new, cleared or evicted); None when another
    process set one meanwhile (then this read may predate its change)."""
    token = secrets.token_hex(8)
    try:
        return token if caches["default"].add(VERSION_KEY, token, timeout=None) else None
    except Exception:  # noqa: BLE001
        return None


def changed(**_signal) -> None:
    """A price or a budget changed (the receiver of their models' saves and deletes): every process
    reads them again once the change is committed (reads inside a transaction never use what is
    kept)."""
    transaction.on_commit(_bump)


def forget() -> None:
    """Drop what this process keeps (tests that empty the tables without signals)."""
    global _kept
    with _lock:
        _kept = None


def _bump() -> None:
    forget()
    try:
        caches["default"].set(VERSION_KEY, secrets.token_hex(8), timeout=None)
    except Exception as exc:  # noqa: BLE001 - a model call must not fail for it
        logger.warning(
            "could not announce a change of prices or budgets (%s); other processes see it within %d s",
            type(exc).__name__,
            MAX_AGE_S,
        )
