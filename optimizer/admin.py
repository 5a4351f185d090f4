import os

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from costs.models import usd
from costs.selectors import price_override
from optimizer import services
from optimizer.llm.breaker import CircuitBreaker
from optimizer.llm.key_names import key_variable_refusal
from optimizer.llm.pricing import catalog_prices
from optimizer.models import Batch, BatchItem, ModelChoice, OptimizationRun, Prompt, Provider

TITLE_CHARS = 40  # of a prompt's title in the run list


class ModelChoiceInline(admin.TabularInline):
    model = ModelChoice
    extra = 0
    fields = [
        "model_id",
        "tier",
        "enabled",
        "fallback_order",
    ]


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "base_url", "api_key_env", "key_present", "enabled", "fallback_order"]
    list_filter = ["kind", "enabled"]
    list_editable = ["enabled", "fallback_order"]
    search_fields = ["name", "base_url"]
    inlines = [ModelChoiceInline]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["help_texts"] = {
            "api_key_env": "Name of the environment variable holding the key: one ending in _API_KEY, "
            "e.g. OPENAI_API_KEY, or one listed in PROVIDER_KEY_VARIABLES. Blank for servers that "
            "need none (Ollama, vLLM)."
        }
        return super().get_form(request, obj, change, **kwargs)

    @admin.display(description="key in environment")
    def key_present(self, provider: Provider) -> str | None:
        """Whether the named variable is set in this process; the key itself is never shown. For a
        name no provider may use, only that: otherwise the column would tell whether any variable
        of this process exists."""
        if not provider.api_key_env:
            return None
        if key_variable_refusal(provider.api_key_env):
            return "refused: not a provider key variable"
        return "set" if os.environ.get(provider.api_key_env, "").strip() else "not set"


@admin.register(ModelChoice)
class ModelChoiceAdmin(admin.ModelAdmin):
    list_display = ["model_id", "provider", "tier", "enabled", "prices", "breaker_state"]
    list_filter = ["tier", "enabled", "provider"]
    search_fields = ["model_id", "provider__name"]
    actions = ["reset_breakers"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("provider")

    @admin.display(description="$/M tokens in · out · cached, now")
    def prices(self, choice: ModelChoice) -> str:
        if choice.provider.kind == Provider.Kind.BUILTIN:
            return "free (runs here, no model call)"
        own = price_override(model_id=choice.pk)
        prices = own or catalog_prices(choice.provider.price_catalog, choice.model_id)
        if prices is None:
            url = reverse("admin:costs_modelprice_add") + f"?model={choice.pk}"
            return format_html('unpriced: <a href="{}">add a price</a>', url)
        cached = prices.cached_input if prices.cached_input is not None else "—"
        return f"{prices.input} · {prices.output} · {cached} ({'override' if own else 'genai-prices'})"

    @admin.display(description="circuit breaker")
    def breaker_state(self, choice: ModelChoice) -> str:
        status = CircuitBreaker(choice.breaker_key).status()
        return (
            f"{status['state'].value.replace('_', '-')} · {status['failures_last_window']}/"
            f"{status['calls_last_window']} failed in the last minute"
        )

    @admin.action(description="Reset the circuit breaker of the selected models")
    def reset_breakers(self, request, queryset):
        for choice in queryset:
            CircuitBreaker(choice.breaker_key).reset()
        self.message_user(request, f"Reset {queryset.count()} circuit breaker(s).", messages.SUCCESS)


class RunInline(admin.TabularInline):
    model = OptimizationRun
    extra = 0
    fields = ["status", "engine", "model", "score_before", "score_after", "cost", "created_at"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "type", "favorite", "created_at"]
    list_filter = ["type", "favorite", "created_at"]
    search_fields = ["title", "text", "owner__username"]
    raw_id_fields = ["owner"]
    inlines = [RunInline]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner")


@admin.register(OptimizationRun)
class OptimizationRunAdmin(admin.ModelAdmin):
    """Runs are records of what happened: read-only here, deletable (through the same service as
    the history page, so a prompt left with no run goes too)."""

    # Nine short columns, so the list fits 1280 px beside its filters (twelve, with the prompt's
    # whole title, ran off the page): what was dropped is a filter or on the run's own page.
    list_display = ["id", "title", "owner", "status", "engine", "model", "checklist", "dollars", "created_at"]
    list_filter = ["status", "engine", "cached", "kept_original", "created_at"]
    search_fields = ["prompt__title", "owner__username", "model"]
    list_select_related = ["prompt", "owner"]
    date_hierarchy = "created_at"

    @admin.display(description="prompt", ordering="prompt__title")
    def title(self, run: OptimizationRun) -> str:
        title = run.prompt.title
        if len(title) <= TITLE_CHARS:
            return title
        cut = title[: TITLE_CHARS - 1]
        return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;:") + "…"  # at a word's end

    @admin.display(description="checklist", ordering="score_gain")
    def checklist(self, run: OptimizationRun) -> str:
        if run.score_before is None or run.score_after is None:
            return "—"
        return f"{run.score_before} → {run.score_after}" + (" (cached)" if run.cached else "")

    @admin.display(description="cost", ordering="cost")
    def dollars(self, run: OptimizationRun) -> str:
        return usd(run.cost)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_queryset(self, request, queryset):
        for run in queryset.select_related("prompt"):
            services.run_delete(run=run)

    def delete_model(self, request, obj):
        services.run_delete(run=obj)


class ReadOnlyRecordAdmin(admin.ModelAdmin):
    """A record shown as it is: batches change only through their services (the Batch pages, the
    batch command), never by editing rows here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Batch)
class BatchAdmin(ReadOnlyRecordAdmin):
    list_display = ["name", "owner", "status", "format", "size", "created_at", "started_at", "finished_at"]
    list_filter = ["status", "format", "owner"]
    search_fields = ["name", "source", "owner__username"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"


@admin.register(BatchItem)
class BatchItemAdmin(ReadOnlyRecordAdmin):
    list_display = ["id", "batch", "row", "title", "type", "run_status", "dispatched_at"]
    list_filter = ["type", "run__status", "batch"]
    search_fields = ["title", "text", "batch__name"]
    list_select_related = ["batch", "run"]
    raw_id_fields = ["batch", "duplicate_of", "run"]

    @admin.display(description="run", ordering="run__status")
    def run_status(self, item: BatchItem) -> str:
        if item.duplicate_of_id is not None:
            return "duplicate"
        if item.run is None:
            return "not started" if item.dispatched_at is None else "deleted"
        return item.run.get_status_display()
