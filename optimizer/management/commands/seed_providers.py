import os

from django.core.management.base import BaseCommand

from optimizer.llm.pricing import catalog_prices
from optimizer.llm.seed import KNOWN_PROVIDERS, providers_seed


class Command(BaseCommand):
    help = (
        "Create providers and models for the API keys in the environment (OPENAI_API_KEY, "
        "ANTHROPIC_API_KEY, XAI_API_KEY, GEMINI_API_KEY; OPENAI_BASE_URL for a local server). "
        "Existing providers are left alone. make run calls this on every start."
    )

    def handle(self, *args, **options):
        created = providers_seed(os.environ)
        for provider in created:
            models = list(provider.models.values_list("model_id", flat=True))
            self.stdout.write(f"Added provider {provider.name} ({', '.join(models)}) at {provider.base_url}.")
            self._say_prices(provider, models)
        if not created and options["verbosity"] > 1:
            self.stdout.write("Providers are up to date.")

    def _say_prices(self, provider, models: list[str]) -> None:
        """Where the new models' prices come from, above all at a server other than the provider's own."""
        own_server = any(known.base_url == provider.base_url for known in KNOWN_PROVIDERS)
        priced = [name for name in models if catalog_prices(provider.price_catalog, name)]
        unpriced = [name for name in models if name not in priced]
        if priced and not own_server:
            self.stdout.write(
                f"  Priced at genai-prices' {provider.price_catalog} list prices, since their names match: "
                f"{', '.join(priced)}. If {provider.base_url} bills otherwise (a model on your own "
                "hardware costs nothing), set its prices in the admin: Costs → Model prices."
            )
        if unpriced:
            self.stdout.write(
                f"  Unpriced (genai-prices does not list them): {', '.join(unpriced)}. Their calls are "
                "counted but not priced until you set prices in the admin: Costs → Model prices."
            )
