"""Providers and models created from the environment on start, when an API key is present.

Idempotent: a provider that exists (by name) is left as the admin configured it.
"""

from dataclasses import dataclass

from optimizer.llm.pricing import catalog_prices
from optimizer.models import ModelChoice, Provider

FAST, BALANCED, BEST = ModelChoice.Tier.FAST, ModelChoice.Tier.BALANCED, ModelChoice.Tier.BEST


@dataclass(frozen=True)
class KnownProvider:
    name: str
    kind: str
    key_env: str
    base_url: str
    catalog: str
    models: tuple[tuple[str, str], ...]
    fallback_order: int


KNOWN_PROVIDERS = (
    KnownProvider(
        "OpenAI", Provider.Kind.OPENAI, "OPENAI_API_KEY", "https://api.openai.com/v1", "openai",
        (("gpt-5-nano", FAST), ("gpt-5-mini", BALANCED), ("gpt-5", BEST)), 10,
    ),
    KnownProvider(
        "Anthropic", Provider.Kind.ANTHROPIC, "ANTHROPIC_API_KEY",
        "https://api.anthropic.com/v1", "anthropic",
        (("claude-haiku-4-5", FAST), ("claude-sonnet-4-5", BALANCED), ("claude-opus-4-1", BEST)), 20,
    ),
    KnownProvider(
        "xAI", Provider.Kind.OPENAI, "XAI_API_KEY", "https://api.x.ai/v1", "x-ai",
        (("grok-4-fast-non-reasoning", FAST), ("grok-3-mini", BALANCED), ("grok-4", BEST)), 30,
    ),
    KnownProvider(
        "Google Gemini", Provider.Kind.OPENAI, "GEMINI_API_KEY",
        "https://generativelanguage.googleapis.com/v1beta/openai", "google",
        (("gemini-2.5-flash-lite", FAST), ("gemini-2.5-flash", BALANCED), ("gemini-2.5-pro", BEST)), 40,
    ),
)  # fmt: skip


def providers_seed(environ) -> list[Provider]:
    """Create the provider (and its models) for each API key set in ``environ`` that has none yet.

    ``OPENAI_BASE_URL`` points the OpenAI-compatible provider elsewhere (Ollama, vLLM, a proxy),
    with or without a key; ``OPENAI_MODELS`` (comma-separated) names the models it serves there.
    Those genai-prices lists under OpenAI are priced at its list prices (``seed_providers`` says so).
    """
    created = []
    for known in KNOWN_PROVIDERS:
        base_url, models, catalog, key_env = known.base_url, known.models, known.catalog, known.key_env
        if known.key_env == "OPENAI_API_KEY" and environ.get("OPENAI_BASE_URL", "").strip():
            base_url = environ["OPENAI_BASE_URL"].strip()
            if "api.openai.com" not in base_url:
                key_env = key_env if environ.get(key_env, "").strip() else ""
                names = [m.strip() for m in environ.get("OPENAI_MODELS", "").split(",") if m.strip()]
                if names:
                    models = tuple((name, BALANCED) for name in names)
                # A local or third-party server: its models are priced at OpenAI's list prices only
                # when genai-prices lists their names there (a proxy, the fake provider's demo);
                # others (llama3.1:8b) stay unpriced until an admin sets prices.
                if not any(catalog_prices(catalog, model_id) for model_id, _tier in models):
                    catalog = ""
        elif not environ.get(known.key_env, "").strip():
            continue
        if Provider.objects.filter(name=known.name).exists():
            continue
        provider = Provider.objects.create(
            name=known.name,
            kind=known.kind,
            base_url=base_url,
            api_key_env=key_env,
            price_catalog=catalog,
            fallback_order=known.fallback_order,
        )
        for order, (model_id, tier) in enumerate(models):
            ModelChoice.objects.create(provider=provider, model_id=model_id, tier=tier, fallback_order=order)
        created.append(provider)
    return created
