"""``manage.py budgets_reconcile``: compare each budget's running total with its usage records."""

from django.core.management.base import BaseCommand

from costs.budgets import spend_reconcile
from costs.snapshot import current


class Command(BaseCommand):
    help = (
        "Compare each enabled budget's running total for its current period with the usage records, "
        "repair the ones that differ and list them (the task queue does this every hour). Run it after "
        "writing or moving usage records outside the app."
    )

    def handle(self, *args, **options):
        budgets = len(current().budgets)
        drifts = spend_reconcile()
        for drift in drifts:
            self.stdout.write(f"repaired: {drift}")
        if not drifts:
            self.stdout.write(f"Every running total matches its records ({budgets} enabled budgets).")
        else:
            self.stdout.write(f"{len(drifts)} of {budgets} running totals repaired.")
