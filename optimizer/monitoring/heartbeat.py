"""The task workers' heartbeat: django-q2 gives no health probe of its own, so each worker process
writes a ``WorkerHeartbeat`` row when it starts (django-q2's ``post_spawn``) and every ``BEAT_S``
seconds after, from a daemon thread of its own. A worker is alive while its row is younger than
``ALIVE_S``; the rows of processes silent for a day are deleted by the beats of the others.
"""

import logging
import os
import socket
import threading
from datetime import timedelta

import psutil
from django.db import connection
from django.utils import timezone

from optimizer.models import WorkerHeartbeat

logger = logging.getLogger(__name__)

BEAT_S = 10
ALIVE_S = 3 * BEAT_S  # three missed beats: the process is gone or hung
FORGET_AFTER = timedelta(days=1)

_started: dict[str, threading.Thread] = {}  # per process (a forked worker starts with none of its own)
_lock = threading.Lock()


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[: WorkerHeartbeat._meta.get_field("name").max_length]


def worker_beat(*, cluster: str) -> WorkerHeartbeat:
    """Write this process's heartbeat row now (created on its first beat); forget long-silent rows."""
    now = timezone.now()
    beat, created = WorkerHeartbeat.objects.update_or_create(
        name=process_name(),
        defaults={"cluster": cluster, "beat_at": now, "rss_bytes": psutil.Process().memory_info().rss},
        create_defaults={
            "cluster": cluster,
            "host": socket.gethostname()[:100],
            "pid": os.getpid(),
            "started_at": now,
            "beat_at": now,
            "rss_bytes": psutil.Process().memory_info().rss,
        },
    )
    if created:
        WorkerHeartbeat.objects.filter(beat_at__lt=now - FORGET_AFTER).delete()
    return beat


def _beat_forever(cluster: str, interval_s: float, stop: threading.Event) -> None:
    try:
        while not stop.wait(interval_s):
            try:
                worker_beat(cluster=cluster)
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried; the worker goes on
                logger.warning("worker heartbeat not written (%s)", type(exc).__name__)
            finally:
                connection.close()  # this thread's own connection: never left open between beats
    finally:
        connection.close()


def beating_start(*, cluster: str, interval_s: float = BEAT_S) -> threading.Event:
    """Beat once now and then every ``interval_s`` from a daemon thread (one per process: a second
    call while it runs does nothing). Returns the event that stops it."""
    key = process_name()
    with _lock:
        running = _started.get(key)
        if running is not None and running.is_alive():
            return running.stop_event
        worker_beat(cluster=cluster)
        stop = threading.Event()
        thread = threading.Thread(
            target=_beat_forever, args=(cluster, interval_s, stop), name="worker-heartbeat", daemon=True
        )
        thread.stop_event = stop
        thread.start()
        _started[key] = thread
    return stop


def on_worker_start(**_kwargs) -> None:
    """django-q2's post_spawn: a worker process starts; its cluster is the one this process serves."""
    from django_q.conf import Conf

    try:
        beating_start(cluster=Conf.CLUSTER_NAME)
    except Exception:  # a worker must start whatever its heartbeat meets; the next start tries again
        logger.exception("the worker heartbeat could not start")
