"""The task workers' heartbeat rows: written when a worker process starts and every few seconds
after; a worker is alive while its row is recent."""

import datetime as dt
import os
import sqlite3
import threading

import pytest
from django.conf import settings
from django.utils import timezone
from django_q.conf import Conf
from django_q.signals import post_spawn

from optimizer.models import WorkerHeartbeat
from optimizer.monitoring import heartbeat, selectors
from tests.optimizer.monitoring.factories import WorkerHeartbeatFactory
from tests.optimizer.processes import embedded_env, poll_until, running


@pytest.fixture(autouse=True)
def _no_beater_left():
    yield
    for thread in list(heartbeat._started.values()):
        thread.stop_event.set()
        thread.join(timeout=5)
    heartbeat._started.clear()


@pytest.mark.django_db
def test_a_beat_writes_this_process_row_and_the_next_one_moves_it():
    first = heartbeat.worker_beat(cluster="prompt-optimizer")
    assert (first.pid, first.cluster, first.name) == (
        os.getpid(),
        "prompt-optimizer",
        heartbeat.process_name(),
    )
    assert first.rss_bytes > 10 * 1024 * 1024
    second = heartbeat.worker_beat(cluster="prompt-optimizer")
    assert WorkerHeartbeat.objects.count() == 1
    assert second.beat_at >= first.beat_at
    assert WorkerHeartbeat.objects.get().started_at == first.started_at


@pytest.mark.django_db
def test_a_new_process_forgets_rows_silent_for_a_day():
    WorkerHeartbeatFactory(beat_at=timezone.now() - dt.timedelta(days=2))
    kept = WorkerHeartbeatFactory(beat_at=timezone.now() - dt.timedelta(hours=2))
    heartbeat.worker_beat(cluster="prompt-optimizer")
    assert set(WorkerHeartbeat.objects.values_list("name", flat=True)) == {
        kept.name,
        heartbeat.process_name(),
    }


@pytest.mark.django_db
def test_post_spawn_starts_the_beat_for_the_cluster_this_process_serves():
    post_spawn.send(sender="django_q", proc_name="Worker-1")
    row = WorkerHeartbeat.objects.get(name=heartbeat.process_name())
    assert row.cluster == Conf.CLUSTER_NAME
    thread = heartbeat._started[heartbeat.process_name()]
    assert thread.is_alive() and thread.daemon
    post_spawn.send(sender="django_q", proc_name="Worker-1")  # a second start in the same process
    assert heartbeat._started[heartbeat.process_name()] is thread
    assert [cluster["alive"] for cluster in selectors.worker_clusters(now=timezone.now())
            if cluster["cluster"] == Conf.CLUSTER_NAME] == [1]  # fmt: skip


@pytest.mark.django_db
def test_a_worker_silent_longer_than_the_alive_window_is_not_alive():
    WorkerHeartbeatFactory(beat_at=timezone.now() - dt.timedelta(seconds=heartbeat.ALIVE_S + 1))
    [model_queue] = [
        c for c in selectors.worker_clusters(now=timezone.now()) if c["cluster"] == "prompt-optimizer"
    ]
    assert model_queue["alive"] == 0 and model_queue["workers"][0]["alive"] is False


@pytest.mark.django_db(transaction=True)
def test_the_thread_beats_again_and_again_until_stopped():
    stop = heartbeat.beating_start(cluster="prompt-optimizer", interval_s=0.1)
    first = WorkerHeartbeat.objects.get().beat_at
    poll_until(
        lambda: WorkerHeartbeat.objects.get().beat_at > first,
        timeout=10,
        failure=lambda: "the thread never beat again",
    )
    stop.set()
    thread: threading.Thread = heartbeat._started[heartbeat.process_name()]
    thread.join(timeout=5)
    assert not thread.is_alive()


@pytest.mark.skipif(not settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"), reason="embedded only")
def test_the_real_worker_processes_of_both_clusters_write_their_rows(tmp_path):
    env = embedded_env(tmp_path)
    with running("worker", env=env):

        def clusters():
            with sqlite3.connect(tmp_path / "db.sqlite3") as db:
                rows = db.execute("SELECT cluster, pid FROM optimizer_workerheartbeat").fetchall()
            found = {cluster for cluster, _pid in rows}
            return found if found >= {settings.Q_CLUSTER["name"], settings.FAST_QUEUE} else None

        found = poll_until(clusters, timeout=60, failure=lambda: "no heartbeat row from both clusters")
    assert found == {settings.Q_CLUSTER["name"], settings.FAST_QUEUE}
