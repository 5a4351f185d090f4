"""Helpers for the tests of `serve`, `worker` and the supervisor: a command in the background with
its output collected, and the process tree read from /proc (Linux)."""

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from tests.support import PROJECT_ROOT, clean_env, manage

PROC = Path("/proc")
MODEL_QUEUE = settings.Q_CLUSTER["name"]


def poll_until(condition: Callable[[], object], *, timeout: float, failure: Callable[[], str]):
    """``condition()``'s first true value, asked every 0.05 s; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(failure())
        time.sleep(0.05)


class Background:
    """`manage.py <args>` in the background, its stdout and stderr collected line by line."""

    def __init__(self, *args: str, env: dict[str, str]):
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "manage.py"), *args],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self):
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, *, count: int = 1, timeout: float = 30) -> None:
        poll_until(
            lambda: self.output.count(text) >= count,
            timeout=timeout,
            failure=lambda: f"never saw {text!r} {count} time(s); output so far:\n{self.output}",
        )

    def finish(self, timeout: float = 30) -> int:
        """Wait for the command to exit (its output all read) and return its exit status."""
        returncode = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return returncode

    def kill(self) -> None:
        """SIGKILL, for a command that did not stop when asked (its children get SIGTERM)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextmanager
def running(*args: str, env: dict[str, str]) -> Iterator[Background]:
    """`manage.py <args>` with both task clusters taking tasks (django-q2 says "[queue] running."
    for each); stopped with SIGTERM afterwards if it still runs."""
    command = Background(*args, env=env)
    try:
        command.wait_for(f"[{MODEL_QUEUE}] running.")
        command.wait_for(f"[{settings.FAST_QUEUE}] running.")
        yield command
    finally:
        if command.process.poll() is None:
            command.process.terminate()
            try:
                command.finish()
            except subprocess.TimeoutExpired:
                command.kill()


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name: state, ppid, pgid, ..."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rpartition(")")[2].split()


def is_gone(pid: int) -> bool:
    """The process has ended (a zombie has ended too: only its exit status waits to be read)."""
    fields = _stat(pid)
    return fields is None or fields[0] == "Z"


def children(pid: int) -> list[int]:
    """The living processes whose parent is ``pid``."""
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    below = children(pid)
    return below + [grandchild for child in below for grandchild in descendants(child)]


def command_line(pid: int) -> list[str]:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().decode().split("\0")
    except (FileNotFoundError, ProcessLookupError):
        return []


def environment(pid: int) -> dict[str, str]:
    try:
        raw = (PROC / str(pid) / "environ").read_bytes().decode()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def web_server(parent: int, *, excluding: Collection[int] = ()) -> int | None:
    """The pid of ``parent``'s gunicorn child, or None. (A subreaper's children include the
    orphans of a dead child for a moment: ``excluding`` leaves out the processes known before.)"""
    for pid in children(parent):
        if pid not in excluding and "gunicorn" in command_line(pid):
            return pid
    return None


def cluster(parent: int, queue: str, *, excluding: Collection[int] = ()) -> int | None:
    """The pid of ``parent``'s qcluster child that serves ``queue`` (django-q2 runs the cluster that
    Q_CLUSTER_NAME names, the default one when it is not set), or None."""
    for pid in children(parent):
        named = environment(pid).get("Q_CLUSTER_NAME", settings.Q_CLUSTER["name"])
        if pid not in excluding and "qcluster" in command_line(pid) and named == queue:
            return pid
    return None


def alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if not is_gone(pid)]


def embedded_env(path: Path, **variables: str) -> dict[str, str]:
    """The environment of a fresh embedded install in ``path`` (own database, migrated, and the
    cache table, as `make run` prepares them), one web and one task process each, plus ``variables``."""
    static = path / "static"
    static.mkdir()
    env = clean_env(
        DATA_DIR=str(path),
        STATIC_ROOT=str(static),
        TASK_WORKERS="1",
        FAST_TASK_WORKERS="1",
        WEB_CONCURRENCY="1",
        **variables,
    )
    for command in (["migrate", "--noinput", "--verbosity", "0"], ["createcachetable"]):
        completed = manage(*command, env=env)
        assert completed.returncode == 0, completed.stderr
    return env
