"""How runs reach a worker, fairly, and come back when a worker dies.

Two queues, each served by a cluster of its own (see ``Q_CLUSTER`` in settings): runs that call a
language model, and the fast queue (built-in runs and the sweep), so a run that needs no model never
waits behind model calls.

A task in a queue is a *token*, not a run: the worker that takes it claims the fairest queued run of
its queue when it starts (the oldest run of the user with the fewest runs in progress), so one user
who submitted a hundred runs does not make everyone else wait for all of them. Tokens are
interchangeable, so a lost one is replaced by any other, and a spare one costs one query and does
nothing.

While a run is in progress its worker writes a heartbeat. The sweep (a schedule every minute on the
fast queue, once when a worker starts, and when someone opens a run) queues again a run whose
heartbeat stopped (its worker died) and adds tokens where queued runs outnumber the tokens in the
broker (the Redis broker loses the tasks a killed cluster had fetched). Every change is a conditional
update, so several clusters sweeping at once requeue a run once, and only the worker holding the
latest attempt of a run may finish it.
"""

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Min, Q
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.tasks import async_task

from config.request_context import NO_REQUEST, request_id_get
from optimizer.models import OptimizationRun, StageAnswer

logger = logging.getLogger(__name__)

Engine = OptimizationRun.Engine
Status = OptimizationRun.Status

SWEEP_SCHEDULE = "optimizer: recover runs whose worker died"
RECONCILE_SCHEDULE = "costs: reconcile budget totals with usage records"
BACKUP_SCHEDULE = "backups: the daily backup, with rotation"
GRACE_S = 5  # a queued run younger than this may still have its token on the way (a spare one is harmless)
GAVE_UP = (
    "The worker running this optimization stopped {attempts} times, so it was not started again. "
    "Optimize the prompt again; if it keeps happening, the prompt may be too large for the worker."
)


def queue_name(engine: str) -> str:
    return settings.FAST_QUEUE if engine == Engine.BUILTIN else settings.Q_CLUSTER["name"]


def enqueue(engine: str, count: int = 1) -> int:
    """Put ``count`` tokens in the queue of ``engine``'s runs; returns how many went in. A broker
    that does not answer is logged, not raised: the run stays queued and the sweep tries again."""
    sent = 0
    # The request (or task) that queued the run: the task logs under the same id (X-Request-ID).
    carried = {} if (request_id := request_id_get()) == NO_REQUEST else {"request_id": request_id}
    try:
        for _ in range(count):
            async_task(
                "optimizer.tasks.run_next_task",
                engine,
                cluster=queue_name(engine),
                group="optimize",
                **carried,
            )
            sent += 1
    except Exception as exc:  # noqa: BLE001 - the broker's failure must not lose or fail the run
        logger.warning(
            "the task queue %s did not answer (%s); the sweep will queue the run again",
            queue_name(engine),
            type(exc).__name__,
        )
    return sent


# --- Claiming -----------------------------------------------------------------------------------


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[: OptimizationRun.worker.field.max_length]


def _claim_update(queryset) -> bool:
    now = timezone.now()
    return (
        queryset.filter(status=Status.QUEUED).update(
            status=Status.RUNNING,
            started_at=now,
            heartbeat_at=now,
            worker=worker_name(),
            stage="",
            attempts=F("attempts") + 1,
        )
        == 1
    )


def claim(run_id: int) -> OptimizationRun | None:
    """Claim this queued run; None when it is not queued (done already, or another worker has it)."""
    if not _claim_update(OptimizationRun.objects.filter(pk=run_id)):
        return None
    return OptimizationRun.objects.select_related("prompt").get(pk=run_id)


def fairest_queued(engine: str) -> int | None:
    """The queued run of ``engine`` to start next: the oldest one of the user who has the fewest runs
    of that engine in progress (ties go to whoever has waited longest). Three queries, whatever the
    number of runs."""
    queued = OptimizationRun.objects.filter(status=Status.QUEUED, engine=engine)
    by_owner = queued.order_by().values("owner_id").annotate(since=Min("created_at"))
    waiting = dict(by_owner.values_list("owner_id", "since"))
    if not waiting:
        return None
    running = dict(
        OptimizationRun.objects.filter(status=Status.RUNNING, engine=engine, owner_id__in=list(waiting))
        .order_by()
        .values("owner_id")
        .annotate(n=Count("id"))
        .values_list("owner_id", "n")
    )
    owner = min(waiting, key=lambda owner_id: (running.get(owner_id, 0), waiting[owner_id], owner_id))
    return queued.filter(owner_id=owner).order_by("created_at", "id").values_list("id", flat=True).first()


def claim_next(engine: str) -> OptimizationRun | None:
    """Claim the fairest queued run of ``engine``; None when there is none left."""
    for _ in range(10):  # another worker may claim the same run between the pick and the update
        run_id = fairest_queued(engine)
        if run_id is None:
            return None
        if (run := claim(run_id)) is not None:
            return run
    return None


# --- The heartbeat --------------------------------------------------------------------------------


class Heartbeat:
    """Writes ``heartbeat_at`` every ``RUN_HEARTBEAT_S`` while the run it was started for is in
    progress in this attempt, in a thread of its own (with its own database connection)."""

    def __init__(self, run: OptimizationRun):
        self.run_id, self.attempt = run.pk, run.attempts
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run.pk}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=settings.RUN_HEARTBEAT_S + 5)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(settings.RUN_HEARTBEAT_S):
                try:
                    OptimizationRun.objects.filter(
                        pk=self.run_id, status=Status.RUNNING, attempts=self.attempt
                    ).update(heartbeat_at=timezone.now())
                except Exception as exc:  # noqa: BLE001 - a missed beat is retried; the run goes on
                    logger.warning("heartbeat of run %s not written (%s)", self.run_id, type(exc).__name__)
        finally:
            connection.close()


def mine(run: OptimizationRun):
    """The run as long as this attempt holds it: a worker that was taken for dead (and whose run was
    queued again) cannot finish or fail it."""
    return OptimizationRun.objects.filter(pk=run.pk, status=Status.RUNNING, attempts=run.attempts)


def stage_answers_forget(run_id: int | None = None) -> int:
    """Delete the stage answers (see StageAnswer) of ended runs, of this one or of all: a run
    queued again keeps its own until it ends."""
    ended = StageAnswer.objects.filter(run__status__in=[Status.DONE, Status.FAILED])
    return ended.filter(run_id=run_id).delete()[0] if run_id is not None else ended.delete()[0]


# --- The sweep ------------------------------------------------------------------------------------


@dataclass
class SweepReport:
    requeued: list[int]
    failed: list[int]
    tokens: dict[str, int]
    batches: int = 0  # items of running batches started (their worker died before it started them)

    def __str__(self) -> str:
        tokens = ", ".join(f"{count} to {queue}" for queue, count in self.tokens.items() if count)
        return (
            f"requeued {len(self.requeued)} run(s) whose worker died, ended {len(self.failed)}, "
            f"queued tokens: {tokens or 'none'}, batch items started: {self.batches}"
        )


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine with id ``pid`` runs (one of another user counts; an id
    too large to be one does not)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's
        return True
    return True


def _dead(run: OptimizationRun, silent_since) -> bool:
    """The run's worker is dead: its heartbeat stopped, or it ran on this machine and its process
    is gone (known at once, without waiting for the heartbeat to go stale)."""
    beat = run.heartbeat_at or run.started_at
    if beat is None or beat < silent_since:
        return True
    host, _, pid = run.worker.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


def requeue_if_dead(run: OptimizationRun, silent_since=None) -> str | None:
    """Queue again (or, after ``RUN_MAX_ATTEMPTS``, fail) a running run whose worker is dead.
    Returns "requeued", "failed" or None; the update is conditional on what was read, so of several
    sweeps that see the same dead run exactly one acts on it."""
    silent_since = silent_since or timezone.now() - timedelta(seconds=settings.RUN_DEAD_AFTER_S)
    if run.status != Status.RUNNING or not _dead(run, silent_since):
        return None
    same = OptimizationRun.objects.filter(
        pk=run.pk, status=Status.RUNNING, attempts=run.attempts, heartbeat_at=run.heartbeat_at
    )
    if run.attempts >= settings.RUN_MAX_ATTEMPTS:
        ended = same.update(
            status=Status.FAILED,
            stage="",
            error=GAVE_UP.format(attempts=run.attempts),
            finished_at=timezone.now(),
        )
        return "failed" if ended else None
    if not same.update(status=Status.QUEUED, stage="", worker="", heartbeat_at=None):
        return None
    logger.warning("run %s lost its worker %s; queued again", run.pk, run.worker or "(unknown)")
    enqueue(run.engine)
    return "requeued"


def sweep() -> SweepReport:
    """Recover runs whose worker died and queued runs whose token was lost. Safe to run anywhere,
    any number of times, in several processes at once."""
    report = SweepReport(requeued=[], failed=[], tokens={})
    silent_since = timezone.now() - timedelta(seconds=settings.RUN_DEAD_AFTER_S)
    for run in OptimizationRun.objects.filter(status=Status.RUNNING).only(
        "pk", "status", "attempts", "heartbeat_at", "started_at", "worker", "engine"
    ):
        outcome = requeue_if_dead(run, silent_since)
        if outcome == "requeued":
            report.requeued.append(run.pk)
        elif outcome == "failed":
            report.failed.append(run.pk)

    settled_before = timezone.now() - timedelta(seconds=GRACE_S)
    waiting = dict(
        OptimizationRun.objects.filter(status=Status.QUEUED)
        .order_by()
        .values("engine")
        .annotate(n=Count("id", filter=Q(created_at__lt=settled_before)))
        .values_list("engine", "n")
    )
    for engine, count in waiting.items():
        queue = queue_name(engine)
        try:
            in_broker = get_broker(queue).queue_size()
        except Exception as exc:  # noqa: BLE001 - try again at the next sweep
            logger.warning("the task queue %s did not answer (%s)", queue, type(exc).__name__)
            continue
        report.tokens[queue] = enqueue(engine, count - in_broker) if count > in_broker else 0
    stage_answers_forget()  # those of runs that ended where no worker could delete them
    from optimizer.batches.services import dispatch_running  # imports optimizer.services, which imports this

    report.batches = dispatch_running()
    if report.requeued or report.failed or any(report.tokens.values()) or report.batches:
        logger.warning("recovery sweep: %s", report)
    return report


def sweep_schedule_ensure() -> None:
    """The minute schedule of the sweep, the hourly reconciliation of the budgets' running totals and
    the daily backup, on the fast queue (never behind model calls); each created when missing, left
    alone when present (an administrator may have changed or paused it)."""
    schedule_ensure(SWEEP_SCHEDULE, "optimizer.tasks.sweep_task", minutes=1)
    schedule_ensure(RECONCILE_SCHEDULE, "costs.tasks.spend_reconcile_task", minutes=60)
    schedule_ensure(BACKUP_SCHEDULE, "backups.tasks.backup_scheduled_task", minutes=24 * 60)


def schedule_ensure(name: str, func: str, *, minutes: int) -> None:
    from django_q.models import Schedule

    schedules = Schedule.objects.filter(name=name)
    if not schedules.exists():
        Schedule.objects.create(
            name=name,
            func=func,
            schedule_type=Schedule.MINUTES,
            minutes=minutes,
            repeats=-1,
            cluster=settings.FAST_QUEUE,
        )
    # Workers starting at the same moment may each have created one (names are not unique in
    # django-q2): the oldest stays.
    first = schedules.order_by("pk").values_list("pk", flat=True).first()
    schedules.exclude(pk=first).delete()


def on_worker_start(**_kwargs) -> None:
    """django-q2's post_spawn: a worker process starts (a cluster starting, or a worker replaced)."""
    try:
        sweep_schedule_ensure()
        sweep()
    except Exception:  # a worker must start whatever the sweep meets
        logger.exception("the recovery sweep at worker start failed")
