"""Task-queue entry points: thin, safe to deliver twice, and safe to lose (the sweep replaces them)."""

from config.request_context import request_id_reset, request_id_set
from optimizer import pipeline, runqueue


def run_next_task(engine: str, request_id: str | None = None) -> None:
    """A token of ``engine``'s queue: run the fairest queued run, if any is left. ``request_id``: the
    id of the request that queued it, which the task's log lines carry."""
    token = request_id_set(request_id) if request_id else None
    try:
        pipeline.run_next(engine=engine)
    finally:
        if token is not None:
            request_id_reset(token)


def optimization_run_task(run_id: int) -> None:
    """A task queued before tokens (an upgrade with runs waiting): run that run, if still queued."""
    pipeline.run_optimization(run_id=run_id)


def sweep_task() -> str:
    return str(runqueue.sweep())
