"""Task-queue entry points: thin, safe to deliver twice, and safe to lose (the sweep replaces them)."""

from optimizer import pipeline, runqueue


def run_next_task(engine: str) -> None:
    """A token of ``engine``'s queue: run the fairest queued run, if any is left."""
    pipeline.run_next(engine=engine)


def optimization_run_task(run_id: int) -> None:
    """A task queued before tokens (an upgrade with runs waiting): run that run, if still queued."""
    pipeline.run_optimization(run_id=run_id)


def sweep_task() -> str:
    return str(runqueue.sweep())
