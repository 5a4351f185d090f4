import os

from django.core.management.base import BaseCommand

from optimizer.llm.seed import providers_seed


class Command(BaseCommand):
    help = (
        "Create providers and models for the API keys in the environment (OPENAI_API_KEY, "
        "ANTHROPIC_API_KEY, XAI_API_KEY, GEMINI_API_KEY; OPENAI_BASE_URL for a local server). "
        "Existing providers are left alone. make run calls this on every start."
    )

    def handle(self, *args, **options):
        created = providers_seed(os.environ)
        for provider in created:
            models = ", ".join(provider.models.values_list("model_id", flat=True))
            self.stdout.write(f"Added provider {provider.name} ({models}).")
        if not created and options["verbosity"] > 1:
            self.stdout.write("Providers are up to date.")
