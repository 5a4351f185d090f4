from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models


class Provider(models.Model):
    """An endpoint that answers model calls. Its API key is never stored: only the *name* of the
    environment variable that holds it."""

    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI-compatible Chat Completions"
        ANTHROPIC = "anthropic", "Anthropic Messages"
        BUILTIN = "builtin", "Built-in engine"

    name = models.CharField(max_length=60, unique=True)
    kind = models.CharField(max_length=20, choices=Kind)
    base_url = models.URLField(
        blank=True, help_text="API root, e.g. https://api.openai.com/v1 (blank for the built-in engine)."
    )
    api_key_env = models.CharField(
        "API key variable",
        max_length=80,
        blank=True,
        help_text="Name of the environment variable holding the key, e.g. OPENAI_API_KEY. "
        "Blank for servers that need none (Ollama, vLLM).",
    )
    price_catalog = models.CharField(
        max_length=40,
        blank=True,
        help_text="genai-prices provider id for default prices (openai, anthropic, x-ai, google, "
        "openrouter, groq...). Blank: unpriced unless a model has its own prices.",
    )
    enabled = models.BooleanField(default=True)
    fallback_order = models.PositiveSmallIntegerField(
        default=100, help_text="Lower is tried first when failing over."
    )
    connect_timeout_s = models.FloatField(default=5.0, validators=[MinValueValidator(0.1)])
    read_timeout_s = models.FloatField(default=60.0, validators=[MinValueValidator(0.1)])
    max_concurrency = models.PositiveSmallIntegerField(
        default=8, validators=[MinValueValidator(1)], help_text="Concurrent requests per process."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["fallback_order", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        if self.kind != self.Kind.BUILTIN and not self.base_url:
            raise ValidationError({"base_url": "Give the API's base URL, e.g. https://api.openai.com/v1."})


class ModelChoice(models.Model):
    """A model of a provider that calls may use. Prices left blank come from genai-prices."""

    class Tier(models.TextChoices):
        FAST = "fast", "Fast"
        BALANCED = "balanced", "Balanced"
        BEST = "best", "Best"

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="models")
    model_id = models.CharField(max_length=120, help_text="The provider's model name, e.g. gpt-4o-mini.")
    tier = models.CharField(max_length=10, choices=Tier, default=Tier.BALANCED)
    enabled = models.BooleanField(default=True)
    fallback_order = models.PositiveSmallIntegerField(default=100)
    input_price = models.DecimalField(
        "input $/M tokens", max_digits=12, decimal_places=6, null=True, blank=True,
        validators=[MinValueValidator(0)],
    )  # fmt: skip
    output_price = models.DecimalField(
        "output $/M tokens", max_digits=12, decimal_places=6, null=True, blank=True,
        validators=[MinValueValidator(0)],
    )  # fmt: skip
    cached_input_price = models.DecimalField(
        "cached input $/M tokens", max_digits=12, decimal_places=6, null=True, blank=True,
        validators=[MinValueValidator(0)],
    )  # fmt: skip
    max_output_tokens = models.PositiveIntegerField(default=4096)

    class Meta:
        ordering = ["provider__fallback_order", "fallback_order", "model_id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "model_id"], name="unique_model_per_provider")
        ]

    def __str__(self) -> str:
        return f"{self.provider.name} · {self.model_id}"

    @property
    def has_own_prices(self) -> bool:
        return self.input_price is not None and self.output_price is not None

    @property
    def breaker_key(self) -> str:
        return f"{self.provider_id}:{self.model_id}"
