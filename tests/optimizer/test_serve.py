"""`manage.py serve` refuses bad addresses with a message that says what to do, starting nothing;
once started, it keeps the web server and both task workers up until it is told to stop."""

import os
import signal
import socket

import httpx
import pytest
from django.conf import settings

from tests.optimizer.processes import (
    MODEL_QUEUE,
    alive,
    children,
    cluster,
    descendants,
    embedded_env,
    poll_until,
    running,
    web_server,
)
from tests.support import clean_env, free_port, manage


@pytest.fixture
def busy_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_port_in_use_is_reported_with_the_way_out(tmp_path, busy_port):
    completed = manage("serve", "--port", str(busy_port), env=clean_env(DATA_DIR=str(tmp_path)))

    assert completed.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{busy_port}" in completed.stderr
    assert f"PORT={busy_port + 1} make run" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize(
    ("variables", "arguments", "message"),
    [
        ({"PORT": "eighty"}, [], "PORT must be a whole number, not 'eighty'"),
        ({}, ["--port", "70000"], "PORT must be >= 1 and <= 65535, not 70000"),
        ({"WEB_CONCURRENCY": "many"}, [], "WEB_CONCURRENCY must be a whole number"),
    ],
)
def test_bad_port_or_concurrency_is_refused(tmp_path, variables, arguments, message):
    completed = manage("serve", *arguments, env=clean_env(DATA_DIR=str(tmp_path), **variables))

    assert completed.returncode == 1
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.fixture(scope="module")
def serve_env(tmp_path_factory) -> dict[str, str]:
    return embedded_env(tmp_path_factory.mktemp("serve-data"))


@pytest.fixture
def serve(serve_env):
    """`manage.py serve` on a free port, its web server answering and both clusters running."""
    port = free_port()
    with running("serve", "--port", str(port), env=serve_env) as served:
        served.wait_for("is running at")
        served.port = port
        yield served


def healthz_status(port: int) -> int | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code
    except httpx.TransportError:
        return None


def test_serve_runs_the_web_server_the_task_worker_and_the_fast_task_worker(serve):
    pid = serve.process.pid

    assert web_server(pid) is not None
    assert cluster(pid, MODEL_QUEUE) is not None
    assert cluster(pid, settings.FAST_QUEUE) is not None
    assert len(children(pid)) == 3
    assert healthz_status(serve.port) == 200


def test_a_killed_task_worker_is_restarted_and_the_site_stays_up(serve):
    pid = serve.process.pid
    old, fast = cluster(pid, MODEL_QUEUE), cluster(pid, settings.FAST_QUEUE)
    old_cluster = descendants(old)

    os.kill(old, signal.SIGKILL)

    new = poll_until(
        lambda: cluster(pid, MODEL_QUEUE, excluding=[old, *old_cluster]),
        timeout=10,
        failure=lambda: f"no new task worker; output:\n{serve.output}",
    )
    serve.wait_for(f"[{MODEL_QUEUE}] running.", count=2, timeout=15)
    assert serve.process.poll() is None
    assert f"The task worker (pid {old}) was killed by SIGKILL" in serve.output
    assert "restarting it in 1 s" in serve.output
    assert f"Restarted the task worker (pid {new})." in serve.output
    assert alive(old_cluster) == []  # none of its workers goes on taking tasks beside the new ones
    assert cluster(pid, settings.FAST_QUEUE) == fast
    assert healthz_status(serve.port) == 200


def test_a_killed_web_server_is_restarted_on_the_same_port(serve):
    pid = serve.process.pid
    old = web_server(pid)
    old_workers = descendants(old)

    os.kill(old, signal.SIGKILL)

    new = poll_until(
        lambda: web_server(pid, excluding=[old, *old_workers]),
        timeout=15,
        failure=lambda: f"no new web server; output:\n{serve.output}",
    )
    poll_until(
        lambda: healthz_status(serve.port) == 200,
        timeout=15,
        failure=lambda: f"/healthz does not answer; output:\n{serve.output}",
    )
    assert serve.process.poll() is None
    assert f"The web server (pid {old}) was killed by SIGKILL" in serve.output
    assert f"Restarted the web server (pid {new})." in serve.output
    assert alive(old_workers) == []
    assert serve.output.count("is running at") == 1  # the banner is not shown again


def test_sigterm_stops_every_child_and_leaves_no_process_behind(serve):
    everything = descendants(serve.process.pid)
    assert (
        len(everything) >= 3 + 1 + 2 * 4
    )  # gunicorn's worker; each cluster's guard, worker, monitor, pusher

    serve.process.send_signal(signal.SIGTERM)

    assert serve.finish(timeout=40) == 0
    assert "Stopped the web server, the task worker and the fast task worker." in serve.output
    assert alive(everything) == []
    assert healthz_status(serve.port) is None
