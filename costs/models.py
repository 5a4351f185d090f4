from django.conf import settings
from django.db import models


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
