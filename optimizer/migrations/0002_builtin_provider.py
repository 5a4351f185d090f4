from decimal import Decimal

from django.db import migrations


def create_builtin(apps, schema_editor):
    provider_model = apps.get_model("optimizer", "Provider")
    model_choice = apps.get_model("optimizer", "ModelChoice")
    provider, _ = provider_model.objects.get_or_create(
        kind="builtin", defaults={"name": "Built-in engine", "fallback_order": 1000}
    )
    model_choice.objects.get_or_create(
        provider=provider,
        model_id="builtin",
        defaults={
            "tier": "fast",
            "fallback_order": 1000,
            "input_price": Decimal(0),
            "output_price": Decimal(0),
            "cached_input_price": Decimal(0),
        },
    )


class Migration(migrations.Migration):
    dependencies = [("optimizer", "0001_initial")]

    operations = [migrations.RunPython(create_builtin, migrations.RunPython.noop)]
