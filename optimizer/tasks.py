"""Task-queue entry points: thin, by id, safe to deliver twice."""

from optimizer.pipeline import run_optimization


def optimization_run_task(run_id: int) -> None:
    run_optimization(run_id=run_id)
