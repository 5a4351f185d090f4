"""The real stack: `manage.py serve` starts gunicorn and the django-q2 cluster as processes; we log
in over HTTP, load pages, have the real worker run a task, and stop everything with Ctrl-C."""

import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from django.conf import global_settings
from django_q.tasks import async_task, result

from tests.factories import PASSWORD, UserFactory
from tests.support import PROJECT_ROOT, clean_env, free_port, manage

START_TIMEOUT_S = 90


class ServeProcess:
    """`manage.py serve` in the background, its output collected line by line."""

    def __init__(self, env: dict[str, str], port: int):
        self.port = port
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "manage.py"), "serve", "--port", str(port)],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self):
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never saw {text!r}; output so far:\n{self.output}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


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
    serve = ServeProcess(env, free_port())
    yield serve
    serve.stop()


def test_the_real_stack_serves_pages_runs_tasks_and_stops_on_ctrl_c(stack):
    user = UserFactory(username="smoke")
    stack.wait_for("is running at", START_TIMEOUT_S)
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
