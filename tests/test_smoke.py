"""The real stack: `manage.py serve` starts gunicorn and the django-q2 cluster as processes; we log
in over HTTP, load pages, have the real worker run a task, and stop everything with Ctrl-C."""

import re
import signal
import socket
import subprocess

import httpx
import pytest
from django.conf import global_settings
from django_q.tasks import async_task, result

from tests.factories import PASSWORD, UserFactory
from tests.optimizer.processes import Background
from tests.support import clean_env, free_port, manage

START_TIMEOUT_S = 90


def port_is_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.fixture
def stack(database_url_for_subprocess, tmp_path, settings):
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS  # the server must verify our user's
    env = clean_env(
        DATABASE_URL=database_url_for_subprocess,
        SECRET_KEY=settings.SECRET_KEY,  # the worker must verify the payloads this process signs
        DATA_DIR=str(tmp_path / "data"),
        STATIC_ROOT=str(tmp_path / "static"),
        TASK_WORKERS="1",
        WEB_CONCURRENCY="1",
    )
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    collected = manage("collectstatic", "--noinput", env=env)
    assert collected.returncode == 0, collected.stderr
    port = free_port()
    serve = Background("serve", "--port", str(port), env=env)
    serve.port = port
    yield serve
    if serve.process.poll() is None:
        serve.process.terminate()
        try:
            serve.finish(timeout=30)
        except subprocess.TimeoutExpired:
            serve.kill()


def test_the_real_stack_serves_pages_runs_tasks_and_stops_on_ctrl_c(stack):
    user = UserFactory(username="smoke")
    stack.wait_for("is running at", timeout=START_TIMEOUT_S)
    base = f"http://127.0.0.1:{stack.port}"

    with httpx.Client(base_url=base, timeout=10) as http:
        login_page = http.get("/login/")
        assert login_page.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
        credentials = {"username": user.username, "password": PASSWORD, "csrfmiddlewaretoken": token}
        signed_in = http.post("/login/", data=credentials)
        assert signed_in.status_code == 302
        assert signed_in.headers["location"] == "/"

        home = http.get("/")
        assert home.status_code == 200
        assert "Optimize" in home.text
        assert "smoke" in home.text
        stylesheet = re.search(r'href="(/static/css/app\.[0-9a-f]+\.css)"', home.text).group(1)
        assert http.get(stylesheet).status_code == 200  # hashed name, served by whitenoise

        health = http.get("/healthz").json()
        assert health["status"] == "ok"

    task_id = async_task("math.copysign", 2, -3)
    assert result(task_id, wait=30_000) == -2.0

    stack.process.send_signal(signal.SIGINT)
    assert stack.process.wait(timeout=40) == 0
    assert "Stopped the web server, the task worker and the fast task worker." in stack.output
    assert port_is_closed(stack.port)
