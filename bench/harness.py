"""Shared pieces for benchmarks: percentiles, and a real server on loopback to measure against.

Benchmarks measure; they never assert timings (tests do not time things). Each bench_*.py module
has a ``run()`` that returns rows of results for bench/run.py to print.
"""

import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_PASSWORD = "bench-password-123"  # noqa: S105 - a throwaway user in a throwaway database


@dataclass(frozen=True)
class Target:
    """What a figure must reach: ``p50``/``p95`` at most ``limit`` ms (or ``unit``, for a row whose
    figures are not times, such as a peak RSS in MiB), or ``ratio`` (the p50 over the floor's p50)
    at most ``limit`` times."""

    figure: str
    limit: float
    unit: str = "ms"

    def __str__(self) -> str:
        if self.figure == "ratio":
            return f"<= {self.limit:g}x floor"
        return f"{self.figure} <= {self.limit:g} {self.unit}"


@dataclass(frozen=True)
class Result:
    name: str
    samples: int
    p50_ms: float
    p95_ms: float
    note: str = ""
    target: Target | None = None
    floor_p50_ms: float | None = None  # the floor this figure is compared with, when it has one

    @property
    def ratio(self) -> float | None:
        """p50 over the floor's p50."""
        if not self.floor_p50_ms:
            return None
        return self.p50_ms / self.floor_p50_ms

    @property
    def holds(self) -> bool | None:
        """Whether the target holds; None without a target (or without samples)."""
        if self.target is None or not self.samples:
            return None
        figure = {"p50": self.p50_ms, "p95": self.p95_ms, "ratio": self.ratio}[self.target.figure]
        return figure is not None and figure <= self.target.limit

    def as_dict(self) -> dict:
        """For a benchmark measured in a child process (``from_dict`` reads it back)."""
        target = self.target and dict(vars(self.target))
        return {**self.__dict__, "target": target}

    @classmethod
    def from_dict(cls, row: dict, **changes) -> "Result":
        target = row.get("target") and Target(**row["target"])
        return cls(**{**row, "target": target, **changes})


def summarize(
    name: str,
    seconds: list[float],
    note: str = "",
    *,
    target: Target | None = None,
    floor: "Result | None" = None,
) -> Result:
    """p50 and p95 of a list of durations in seconds, as milliseconds; ``floor`` is what the
    figure is compared with (its ratio is printed beside it)."""
    ordered = sorted(seconds)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return Result(
        name,
        len(ordered),
        round(cuts[49] * 1000, 3),
        round(cuts[94] * 1000, 3),
        note,
        target=target,
        floor_p50_ms=floor.p50_ms if floor is not None else None,
    )


WARMUP = 50


def timed(send, count: int, warmup: int = WARMUP) -> list[float]:
    """Seconds each of ``count`` calls of ``send`` took, after ``warmup`` calls not counted."""
    for _ in range(warmup):
        send()
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        send()
        timings.append(time.perf_counter() - started)
    return timings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_server(
    workers: int = 1, threads: int = 4, *, database_url: str | None = None, redis_url: str | None = None
) -> Iterator[tuple[str, dict[str, str]]]:
    """gunicorn on a free loopback port over a fresh data directory: the embedded default (SQLite,
    database cache), or ``database_url`` (an empty PostgreSQL database the caller owns: it is
    migrated here) and ``redis_url`` (cache and broker) when given.

    Yields the base URL and the environment, so a benchmark can prepare data with manage.py.
    """
    with tempfile.TemporaryDirectory(prefix="po-bench-") as scratch:
        env = {
            **os.environ,
            "DATA_DIR": f"{scratch}/data",
            "STATIC_ROOT": f"{scratch}/static",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "RUNS_PER_MINUTE": "100000",  # a benchmark submits as one user, far faster than a person
        }
        for name, url in (("DATABASE_URL", database_url), ("REDIS_URL", redis_url)):
            if url:
                env[name] = url
            else:
                env.pop(name, None)
        manage(env, "migrate", "--noinput", "-v0")
        if not redis_url:
            manage(env, "createcachetable")
        manage(env, "collectstatic", "--noinput", "-v0")
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "config.wsgi:application", "--chdir", str(PROJECT_ROOT),
                "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
                "--log-level", "warning",
            ],
            env=env,
        )  # fmt: skip
        try:
            _wait_listening(port, server)
            yield f"http://127.0.0.1:{port}", env
        finally:
            server.terminate()
            server.wait(timeout=30)


def _wait_listening(port: int, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the benchmark server exited during start-up")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        time.sleep(0.1)
    raise RuntimeError(f"the benchmark server did not listen on {port} within {timeout} s")


def manage(env: dict, *args: str, stdin: str | None = None) -> None:
    """``manage.py`` with the benchmark server's environment, quietly; fails loudly."""
    subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "manage.py"), *args], env=env, input=stdin, text=True, check=True,
        capture_output=True,
    )  # fmt: skip


def bench_user_create(env: dict) -> None:
    """The superuser the page benchmarks log in as (``login``)."""
    manage(
        env, "shell", "-c",
        "from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_superuser('bench', '', '{BENCH_PASSWORD}')",
    )  # fmt: skip


def login(client) -> str:
    """Log ``client`` (an httpx client on the server) in as the bench user; returns the CSRF token."""
    page = client.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = client.post(
        "/login/",
        data={"username": "bench", "password": BENCH_PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": str(client.base_url) + "/login/"},
    )
    if answer.status_code != 302:
        raise RuntimeError("the benchmark user could not log in")
    return client.cookies["csrftoken"]


@contextlib.contextmanager
def scratch_database(server_url: str, label: str) -> Iterator[str]:
    """An empty PostgreSQL database of its own on the server of ``server_url`` (named after
    ``label`` and this process), dropped afterwards; the database that URL names is only connected
    to, never changed."""
    import psycopg
    from psycopg import sql

    name = f"po_bench_{label}_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
