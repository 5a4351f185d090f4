"""Task-queue entry points of the costs app."""

from costs.budgets import spend_reconcile


def spend_reconcile_task() -> str:
    """Hourly: repair and report running totals that differ from their records."""
    drifts = spend_reconcile()
    return "; ".join(map(str, drifts)) or "every running total matches its records"
