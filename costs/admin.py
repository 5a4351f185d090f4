from django.contrib import admin
from django.db.models import Count, Q, Sum

from costs.models import UsageRecord


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """A record of what happened: readable and filterable, never edited."""

    list_display = [
        "created_at", "user", "provider", "model", "operation", "status", "input_tokens",
        "output_tokens", "cached_tokens", "cost_display", "latency_ms",
    ]  # fmt: skip
    list_filter = [
        "status",
        "provider",
        "model",
        "operation",
        ("created_at", admin.DateFieldListFilter),
        "user",
    ]
    search_fields = ["provider", "model", "operation", "error_class"]
    date_hierarchy = "created_at"
    list_select_related = ["user"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="cost (USD)", ordering="cost")
    def cost_display(self, record: UsageRecord) -> str:
        return "unpriced" if record.unpriced else f"{record.cost:.6f}"

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            response.context_data["totals"] = changelist.queryset.aggregate(
                calls=Count("id"),
                total_cost=Sum("cost"),
                total_saved=Sum("saved_cost"),
                unpriced=Count("id", filter=Q(cost__isnull=True)),
            )
        return response
