"""Budgets: calendar periods in the site's time zone, what a period has spent, and the gate the
gateway asks before every paid call.

The gate's check and its reservation happen in one transaction that no other gate can interleave
with: PostgreSQL locks the budgets' rows (``SELECT ... FOR UPDATE``), SQLite runs every transaction
``IMMEDIATE`` (the write lock is taken at ``BEGIN``). So two workers racing for the last cent of a
budget queue one behind the other, and the second sees the first one's reservation.
"""

import logging
import secrets
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Case, DateField, F, Func, Q, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from costs.models import Budget, BudgetAlert, BudgetReservation, UsageRecord, usd

logger = logging.getLogger(__name__)

RESERVATION_TTL = timedelta(minutes=10)  # longer than any call's deadline


# --- Periods --------------------------------------------------------------------------------


def site_zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def local_midnight(day: date) -> datetime:
    """The instant ``day`` begins in the site's time zone (a DST change never falls at midnight in
    the zones that matter, and ``fold`` handles the ones where it would)."""
    return datetime.combine(day, time(0), tzinfo=site_zone())


def range_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[local midnight of ``start``, local midnight after ``end``)."""
    return local_midnight(start), local_midnight(end + timedelta(days=1))


def period_bounds(period: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end) of the calendar day or month containing ``now``, in the site's time zone."""
    today = timezone.localtime(now or timezone.now(), site_zone()).date()
    if period == Budget.Period.DAILY:
        return local_midnight(today), local_midnight(today + timedelta(days=1))
    first = today.replace(day=1)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return local_midnight(first), local_midnight(following)


def local_date(field: str, since: datetime, until: datetime, *, vendor: str):
    """An expression for the site-local calendar date of the datetime column ``field``, for rows
    between ``since`` and ``until``.

    PostgreSQL converts natively (``TruncDate``). On SQLite, Django's ``TruncDate`` calls back into
    Python for every row (4 µs each: 0.4 s for 100,000 records); here the zone's UTC offsets over
    the range are known beforehand, so the date is SQLite's own ``date()`` of the stored UTC time
    shifted by the offset in force, with one ``CASE`` branch per change of offset (DST).
    """
    if vendor != "sqlite":
        return TruncDate(field, tzinfo=site_zone())
    segments = _offset_segments(since, until)

    def shifted(offset: int) -> Func:
        return Func(F(field), Value(f"{offset:+d} seconds"), function="date", output_field=DateField())

    *changing, (_end, last) = segments
    if not changing:
        return shifted(last)
    branches = [When(**{f"{field}__lt": end}, then=shifted(offset)) for end, offset in changing]
    return Case(*branches, default=shifted(last), output_field=DateField())


def _offset_segments(since: datetime, until: datetime) -> list[tuple[datetime, int]]:
    """[(end of segment, UTC offset in seconds)] covering [since, until): offsets change at most a
    few times a year, so a daily walk finds each change and a bisection its exact second."""
    zone = site_zone()

    def offset(moment: datetime) -> int:
        return int(moment.astimezone(zone).utcoffset().total_seconds())

    segments, moment, current = [], since, offset(since)
    while moment < until:
        following = min(moment + timedelta(days=1), until)
        if offset(following) != current:
            low, high = moment, following  # offset(low) == current != offset(high)
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if offset(middle) == current else (low, middle)
            segments.append((high, current))
            current = offset(high)
            following = high
        moment = following
    segments.append((until, current))
    return segments


# --- Spend ----------------------------------------------------------------------------------


def records_for(budget: Budget):
    """The usage records a budget counts: the site's, or one user's."""
    records = UsageRecord.objects.all()
    return records if budget.user_id is None else records.filter(user_id=budget.user_id)


def spent(budget: Budget, start: datetime, end: datetime) -> Decimal:
    """What the priced calls of the period cost (unpriced calls are flagged on the dashboard)."""
    total = records_for(budget).filter(created_at__gte=start, created_at__lt=end).aggregate(total=Sum("cost"))
    return total["total"] or Decimal(0)


def reserved(budget: Budget) -> Decimal:
    """Estimates of calls in flight (the gate clears expired ones before it asks)."""
    return budget.reservations.aggregate(total=Sum("amount"))["total"] or Decimal(0)


def headroom(user_id: int | None) -> Decimal | None:
    """What the tightest hard budget lets this user spend now (its period's spend and the open
    reservations counted), or None when no hard budget applies. A hint for choosing a model: the
    gate's locked check still decides each call."""
    rooms = []
    live = timezone.now() - RESERVATION_TTL
    for budget in applicable(user_id).filter(mode=Budget.Mode.HARD):
        start, end = period_bounds(budget.period)
        held = budget.reservations.filter(created_at__gte=live).aggregate(total=Sum("amount"))["total"]
        rooms.append(budget.limit - spent(budget, start, end) - (held or Decimal(0)))
    return min(rooms) if rooms else None


def applicable(user_id: int | None):
    """Enabled budgets a call by this user counts against: the site's and the user's own."""
    scope = Q(user__isnull=True) | Q(user_id=user_id) if user_id is not None else Q(user__isnull=True)
    return Budget.objects.filter(scope, enabled=True).select_related("user")


# --- The gate -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetDecision:
    allowed: bool
    reason: str = ""
    reservation_id: str | None = None
    budget_ids: tuple[int, ...] = ()


class BudgetGate:
    """Asked by the gateway before each paid call, with the call's estimated cost.

    A refusal is a reason to skip that model, never an exception. ``reserve`` counts the estimate
    against every applicable budget at once; ``settle`` (the call returned, its usage record holds
    the real cost) and ``release`` (it failed) take the reservation back, and ``settle`` raises the
    alerts of thresholds the real spend has reached.
    """

    def reserve(self, *, user_id: int | None, estimated_cost: Decimal | None) -> BudgetDecision:
        if not applicable(user_id).exists():
            return BudgetDecision(allowed=True)
        token = secrets.token_hex(16)
        with transaction.atomic():
            # Locked in one order (by id), so two gates never wait for each other's rows.
            budgets = list(applicable(user_id).select_related(None).order_by("pk").select_for_update())
            now = timezone.now()
            # Reservations of workers that died mid-call already stopped counting; clear them away.
            BudgetReservation.objects.filter(
                budget__in=budgets, created_at__lt=now - RESERVATION_TTL
            ).delete()
            for budget in budgets:
                if budget.mode != Budget.Mode.HARD:
                    continue
                if estimated_cost is None:
                    return BudgetDecision(
                        allowed=False,
                        reason=f"{_name(budget)} is a hard limit and this model has no price; set one in the "
                        "admin (Model prices) to use it",
                    )
                start, end = period_bounds(budget.period, now)
                committed = spent(budget, start, end) + reserved(budget)
                if committed + estimated_cost > budget.limit:
                    refusal = (
                        f"{_name(budget)} would be crossed ({usd(committed)} of {usd(budget.limit)} spent or "
                        f"reserved, this call up to {usd(estimated_cost)})"
                    )
                    break
            else:
                refusal = ""
            if not refusal:
                amount = estimated_cost or Decimal(0)
                BudgetReservation.objects.bulk_create(
                    BudgetReservation(budget=budget, token=token, amount=amount, created_at=now)
                    for budget in budgets
                )
                return BudgetDecision(
                    allowed=True, reservation_id=token, budget_ids=tuple(budget.pk for budget in budgets)
                )
        start, end = period_bounds(budget.period, now)
        if not budget.alerts.filter(period_start=start, threshold=100).exists():
            _alert(budget, start, end, refused=True)
        return BudgetDecision(allowed=False, reason=refusal)

    def settle(self, decision: BudgetDecision, *, actual_cost: Decimal | None) -> None:
        """The call returned and its usage record holds the real cost: drop the estimate, then alert
        on every threshold the period's spend has now reached."""
        if decision.reservation_id is None:
            return
        BudgetReservation.objects.filter(token=decision.reservation_id).delete()
        now = timezone.now()
        for budget in Budget.objects.filter(pk__in=decision.budget_ids).select_related("user"):
            start, end = period_bounds(budget.period, now)
            total = spent(budget, start, end)
            reached = {
                threshold for threshold in budget.threshold_list if total * 100 >= budget.limit * threshold
            }
            if reached:  # once a threshold has alerted, later calls of the period skip it in one query
                reached -= set(budget.alerts.filter(period_start=start).values_list("threshold", flat=True))
            for threshold in sorted(reached):
                _alert(budget, start, end, threshold=threshold, total=total)

    def release(self, decision: BudgetDecision) -> None:
        """The call failed: give the reserved amount back."""
        if decision.reservation_id is not None:
            BudgetReservation.objects.filter(token=decision.reservation_id).delete()


def _name(budget: Budget) -> str:
    whose = "the site's" if budget.user_id is None else f"{budget.user.get_username()}'s"
    return f"{whose} {budget.get_period_display().lower()} budget"


# --- Alerts ---------------------------------------------------------------------------------


def _alert(
    budget: Budget,
    start: datetime,
    end: datetime,
    *,
    threshold: int = 100,
    total: Decimal | None = None,
    refused: bool = False,
) -> BudgetAlert | None:
    """Record the alert and email it; None when this period already has it (a unique constraint
    makes that hold across processes)."""
    try:
        with transaction.atomic():
            alert = BudgetAlert.objects.create(
                budget=budget,
                period_start=start,
                threshold=threshold,
                spent=spent(budget, start, end) if total is None else total,
                limit=budget.limit,
                refused=refused,
            )
    except IntegrityError:  # another process recorded it first
        return None
    _email(alert)
    return alert


def alert_recipients(budget: Budget) -> list[str]:
    """The budget's user, or for a site budget every active superuser, who has an address."""
    if budget.user_id is not None:
        return [budget.user.email] if budget.user.email else []
    users = get_user_model().objects.filter(is_superuser=True, is_active=True).exclude(email="")
    return sorted(users.values_list("email", flat=True))


def _email(alert: BudgetAlert) -> None:
    recipients = alert_recipients(alert.budget)
    if not recipients:
        return
    try:
        send_mail(
            subject=f"Prompt Optimizer: budget alert ({alert.threshold}%)",
            message=f"{alert.message}\n\nSee the cost dashboard for where the money went.",
            from_email=None,
            recipient_list=recipients,
        )
    except Exception:  # a mail server being down must not fail a model call; the banner still shows
        logger.exception("Could not email budget alert %s", alert.pk)


def alerts_visible_to(user):
    """Undismissed alerts this user should see: of their own budgets, and of the site's for staff."""
    scope = Q(budget__user=user)
    if user.is_staff:
        scope |= Q(budget__user__isnull=True)
    return BudgetAlert.objects.filter(scope, dismissed_at__isnull=True).select_related("budget")
