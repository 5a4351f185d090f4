from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

BUILTIN_PROVIDER = "Built-in engine"  # the provider name on the built-in engine's (free) records


class UsageRecord(models.Model):
    """One model call, cache hit or miss, success or failure. A record: written once, never edited."""

    class Status(models.TextChoices):
        OK = "ok", "Answered"
        CACHE_HIT = "cache_hit", "Answered from cache"
        ERROR = "error", "Failed"
        INVALID = "invalid", "Invalid answer"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    run = models.ForeignKey(
        "optimizer.OptimizationRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,  # deleting a run from history keeps what it cost
        related_name="usage_records",
        help_text="The optimization run this call served, if any.",
    )
    provider = models.CharField(max_length=60)
    model = models.CharField(max_length=120)
    operation = models.CharField(max_length=60, help_text="Pipeline stage or other purpose of the call.")
    input_tokens = models.PositiveIntegerField(default=0, help_text="All input tokens, cached ones included.")
    output_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    tokens_estimated = models.BooleanField(default=False, help_text="The provider reported no usage.")
    cost = models.DecimalField(
        max_digits=14,
        decimal_places=8,
        null=True,
        blank=True,
        help_text="Blank: the model has no known price.",
    )
    saved_cost = models.DecimalField(
        max_digits=14, decimal_places=8, default=0, help_text="What a cache hit would have cost."
    )
    latency_ms = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=12, choices=Status)
    error_class = models.CharField(max_length=80, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "created_at"]),
            models.Index(fields=["provider", "model", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.provider}/{self.model} {self.operation}"

    @property
    def unpriced(self) -> bool:
        return self.cost is None


PRICE_FIELD = {"max_digits": 12, "decimal_places": 6, "validators": [MinValueValidator(0)]}


class ModelPrice(models.Model):
    """An admin's price for one model from a moment on. A model's price at a given time is its latest
    override from before then, else genai-prices' list price. A change of price is a new row, so the
    calls already made keep the price they were charged at (their records hold their cost)."""

    model = models.ForeignKey("optimizer.ModelChoice", on_delete=models.CASCADE, related_name="prices")
    valid_from = models.DateTimeField(
        default=timezone.now, help_text="Calls from this moment on are charged at this price."
    )
    input = models.DecimalField("input $/M tokens", **PRICE_FIELD)
    output = models.DecimalField("output $/M tokens", **PRICE_FIELD)
    cached_input = models.DecimalField(
        "cached input $/M tokens", null=True, blank=True, help_text="Blank: the input price.", **PRICE_FIELD
    )
    note = models.CharField(max_length=200, blank=True, help_text="Why, e.g. a negotiated rate.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model_id", "-valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["model", "valid_from"], name="one_price_per_model_and_moment")
        ]

    def __str__(self) -> str:
        return f"{self.model.model_id} from {self.valid_from:%Y-%m-%d %H:%M}"


def usd(amount: Decimal) -> str:
    """Dollars for people: cents, or as many decimals as a sub-cent amount needs to not read as 0."""
    if amount == 0:
        return "$0"
    if abs(amount) >= Decimal("0.01"):
        return f"${amount:,.2f}"
    return "$" + f"{amount:.8f}".rstrip("0")


def thresholds_validate(value: str) -> None:
    """ "80, 100": whole percentages, 1 to 1000, at most five."""
    try:
        numbers = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise ValidationError(
            "Write the thresholds as whole percentages separated by commas, e.g. 80, 100."
        ) from None
    if not numbers or len(numbers) > 5 or any(not 1 <= number <= 1000 for number in numbers):
        raise ValidationError("Give one to five thresholds, each a percentage from 1 to 1000, e.g. 80, 100.")


class Budget(models.Model):
    """A spending limit for one calendar period, for the whole site (no user) or for one user.

    Periods follow the calendar in the site's time zone (``TIME_ZONE``): a daily budget starts again
    at local midnight, a monthly one on the 1st. A soft budget only alerts; a hard one refuses, before
    it is made, any call whose estimated cost would take the period's spend past the limit.
    """

    class Period(models.TextChoices):
        DAILY = "daily", "Daily"
        MONTHLY = "monthly", "Monthly"

    class Mode(models.TextChoices):
        SOFT = "soft", "Soft: alert only"
        HARD = "hard", "Hard: refuse calls that would cross it"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="budgets",
        help_text="Blank: a budget for the whole site, all users together.",
    )
    period = models.CharField(max_length=8, choices=Period)
    limit = models.DecimalField(
        "limit (USD)", max_digits=12, decimal_places=4, validators=[MinValueValidator(Decimal("0.0001"))]
    )
    mode = models.CharField(max_length=4, choices=Mode, default=Mode.SOFT)
    thresholds = models.CharField(
        max_length=60,
        default="80, 100",
        validators=[thresholds_validate],
        help_text="Alert when the period's spend reaches these percentages of the limit.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user_id", "period"]
        constraints = [
            models.UniqueConstraint(
                fields=["period"], condition=models.Q(user__isnull=True), name="one_site_budget_per_period"
            ),
            models.UniqueConstraint(
                fields=["user", "period"],
                condition=models.Q(user__isnull=False),
                name="one_user_budget_per_period",
            ),
        ]

    def __str__(self) -> str:
        whose = self.user.get_username() if self.user_id else "Site"
        return f"{whose}: {self.get_period_display().lower()} {usd(self.limit)} ({self.mode})"

    @property
    def threshold_list(self) -> list[int]:
        return sorted({int(part) for part in self.thresholds.split(",") if part.strip()})


class BudgetSpend(models.Model):
    """What a budget's period has spent so far: the running total the gate reads, one row, instead
    of summing the period's usage records on every call.

    Each priced usage record adds its cost here in the transaction that writes it, so the total and
    the records agree at every commit. A period's row is created on first use from the records
    already there. ``costs.budgets.spend_reconcile`` (hourly, and ``manage.py budgets_reconcile``)
    compares each current total with its records and repairs and reports any difference (records
    written around the product, a restore)."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="spends")
    period_start = models.DateTimeField()
    spent = models.DecimalField(max_digits=16, decimal_places=8, default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["budget", "period_start"], name="one_spend_per_budget_and_period")
        ]

    def __str__(self) -> str:
        return f"{self.budget}: ${self.spent} since {self.period_start:%Y-%m-%d}"


class BudgetReservation(models.Model):
    """The estimated cost of a call in flight, counted against a budget until the call returns
    (settled: the usage record now carries the real cost) or fails (released). A worker that dies
    mid-call leaves one behind; it stops counting after ``RESERVATION_TTL``."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="reservations")
    token = models.CharField(max_length=32, db_index=True)
    amount = models.DecimalField(max_digits=14, decimal_places=8)
    created_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"${self.amount} reserved on {self.budget}"


class BudgetAlert(models.Model):
    """A budget's spend reached one of its thresholds: once per threshold per period."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateTimeField()
    threshold = models.PositiveSmallIntegerField(help_text="Percent of the limit.")
    spent = models.DecimalField(max_digits=14, decimal_places=8)
    limit = models.DecimalField(max_digits=12, decimal_places=4)
    refused = models.BooleanField(default=False, help_text="A hard budget refused a call.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    dismissed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period_start", "threshold"], name="one_alert_per_threshold_and_period"
            )
        ]

    def __str__(self) -> str:
        return f"{self.budget}: {self.threshold}% reached"

    @property
    def message(self) -> str:
        whose = "The site's" if self.budget.user_id is None else "Your"
        period = "daily" if self.budget.period == Budget.Period.DAILY else "monthly"
        if self.refused:
            return (
                f"{whose} {period} budget of {usd(self.limit)} stopped a call ({usd(self.spent)} spent): "
                "calls that would cross it are refused and runs finish with the built-in engine."
            )
        return f"{whose} {period} budget: {usd(self.spent)} spent, {self.threshold}% of {usd(self.limit)}."
