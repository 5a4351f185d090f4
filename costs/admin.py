from django.contrib import admin
from django.contrib.admin.options import ActionLocation
from django.db.models import Count, Q, Sum
from django.utils import timezone

from costs.budgets import period_bounds, spent
from costs.forms import ModelPriceForm
from costs.models import Budget, BudgetAlert, ModelPrice, UsageRecord
from optimizer.llm.pricing import catalog_prices


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


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ["__str__", "user", "period", "limit", "mode", "thresholds", "enabled", "spent_now"]
    list_filter = ["period", "mode", "enabled"]
    list_select_related = ["user"]
    autocomplete_fields = ["user"]

    @admin.display(description="spent this period (USD)")
    def spent_now(self, budget: Budget) -> str:
        start, end = period_bounds(budget.period)
        return f"{spent(budget, start, end):.4f}"


@admin.register(BudgetAlert)
class BudgetAlertAdmin(admin.ModelAdmin):
    """Alerts are events: read them, dismiss them from the banner; their figures are not edited."""

    list_display = ["created_at", "budget", "threshold", "spent", "limit", "refused", "dismissed_at"]
    list_filter = ["refused", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["budget__user"]
    readonly_fields = ["budget", "period_start", "threshold", "spent", "limit", "refused", "created_at"]
    fields = [*readonly_fields, "dismissed_at"]
    actions = ["dismiss"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Dismiss the selected alerts")
    def dismiss(self, request, queryset):
        count = queryset.filter(dismissed_at__isnull=True).update(dismissed_at=timezone.now())
        self.message_user(request, f"Dismissed {count} alert(s).")


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """Dated prices: a new price is a new row, so an existing one's figures are not edited (the
    calls made at it keep their cost); a price not yet in force can be deleted."""

    form = ModelPriceForm
    list_display = ["model", "valid_from", "input", "output", "cached_input", "list_price", "note"]
    list_filter = ["model__provider"]
    list_select_related = ["model__provider"]
    search_fields = ["model__model_id", "note"]
    date_hierarchy = "valid_from"

    def get_readonly_fields(self, request, obj=None):
        return ["model", "valid_from", "input", "output", "cached_input"] if obj else []

    def has_delete_permission(self, request, obj=None):
        in_force = obj is not None and obj.valid_from <= timezone.now()
        return not in_force and super().has_delete_permission(request, obj)

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location)
        actions.pop("delete_selected", None)  # it would not ask each price whether it is in force yet
        return actions

    def get_fields(self, request, obj=None):
        fields = ["model", "valid_from", "input", "output", "cached_input", "note"]
        return fields if obj else [*fields, "confirm"]

    @admin.display(description="genai-prices $/M in · out · cached")
    def list_price(self, price: ModelPrice) -> str:
        listed = catalog_prices(price.model.provider.price_catalog, price.model.model_id)
        if listed is None:
            return "not listed"
        return f"{listed.input} · {listed.output} · {listed.cached_input or '—'}"
