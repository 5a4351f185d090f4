from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class CostsConfig(AppConfig):
    name = "costs"
    verbose_name = "Costs"

    def ready(self):
        from costs import snapshot
        from costs.models import Budget, ModelPrice

        # Every process keeps prices and budgets in memory (costs.snapshot); any save or delete,
        # whichever door it came through, tells them all to read again once it commits.
        for model in (Budget, ModelPrice):
            post_save.connect(snapshot.changed, sender=model, dispatch_uid=f"snapshot-{model.__name__}-save")
            post_delete.connect(
                snapshot.changed, sender=model, dispatch_uid=f"snapshot-{model.__name__}-delete"
            )
        post_save.connect(budget_saved, sender=Budget, dispatch_uid="budget-spend-after-save")


def budget_saved(sender, instance, created, **_kwargs):
    """A budget whose user or period changed counts other records: its running totals are created
    again from the records on next use (a changed limit or mode keeps them valid, but a save is rare
    enough that telling the cases apart is not worth it)."""
    if not created:
        from costs.models import BudgetSpend

        BudgetSpend.objects.filter(budget=instance).delete()
