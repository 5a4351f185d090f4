"""`manage.py worker`: both task worker clusters without the web server, kept up the way `serve`
keeps its children up, for machines that only take tasks."""

import os
import signal

import pytest
from django.conf import settings

from tests.optimizer.processes import (
    MODEL_QUEUE,
    alive,
    cluster,
    descendants,
    embedded_env,
    poll_until,
    running,
    web_server,
)
from tests.support import clean_env, free_port, manage


@pytest.fixture
def worker(tmp_path):
    with running("worker", env=embedded_env(tmp_path)) as started:
        yield started


def test_worker_keeps_both_clusters_up_and_stops_them_all_on_sigterm(worker):
    pid = worker.process.pid
    assert web_server(pid) is None
    assert cluster(pid, MODEL_QUEUE) is not None
    old = cluster(pid, settings.FAST_QUEUE)
    old_cluster = descendants(old)

    os.kill(old, signal.SIGKILL)

    new = poll_until(
        lambda: cluster(pid, settings.FAST_QUEUE, excluding=[old, *old_cluster]),
        timeout=10,
        failure=lambda: f"no new fast task worker; output:\n{worker.output}",
    )
    worker.wait_for(f"[{settings.FAST_QUEUE}] running.", count=2, timeout=15)
    assert f"The fast task worker (pid {old}) was killed by SIGKILL" in worker.output
    assert f"Restarted the fast task worker (pid {new})." in worker.output
    assert alive(old_cluster) == []
    everything = descendants(pid)

    worker.process.send_signal(signal.SIGTERM)

    assert worker.finish(timeout=40) == 0
    assert "Stopped the task worker and the fast task worker." in worker.output
    assert alive(everything) == []


@pytest.mark.parametrize(
    ("arguments", "hint"),
    [(["worker"], "run manage.py worker again"), (["serve", "--port", "{port}"], "run make run again")],
)
def test_an_unreachable_database_is_reported_in_one_line_before_anything_starts(tmp_path, arguments, hint):
    """The check is the worker's; serve makes it too. Neither starts a child."""
    database_port = free_port()
    env = clean_env(
        DATA_DIR=str(tmp_path),
        DATABASE_URL=f"postgresql://app:hunter2@127.0.0.1:{database_port}/prompts",
        SECRET_KEY="k" * 50,
    )

    completed = manage(*(argument.format(port=free_port()) for argument in arguments), env=env, timeout=60)

    assert completed.returncode == 1
    assert completed.stdout == ""  # no child started: no banner, no worker output
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert "DATABASE_URL" in lines[0]
    assert f"127.0.0.1:{database_port}" in lines[0]
    assert hint in lines[0]
    assert "hunter2" not in lines[0]
