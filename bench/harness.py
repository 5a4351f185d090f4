"""Shared pieces for benchmarks: percentiles, and a real server on loopback to measure against.

Benchmarks measure; they never assert timings (tests do not time things). Each bench_*.py module
has a ``run()`` that returns rows of results for bench/run.py to print.
"""

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Result:
    name: str
    samples: int
    p50_ms: float
    p95_ms: float
    note: str = ""


def summarize(name: str, seconds: list[float], note: str = "") -> Result:
    """p50 and p95 of a list of durations in seconds, as milliseconds."""
    ordered = sorted(seconds)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return Result(name, len(ordered), round(cuts[49] * 1000, 3), round(cuts[94] * 1000, 3), note)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, str(PROJECT_ROOT / "manage.py"), *args], env=env, check=True)


@contextlib.contextmanager
def running_server(workers: int = 1, threads: int = 4) -> Iterator[tuple[str, dict[str, str]]]:
    """gunicorn on a free loopback port over a fresh embedded-default data directory.

    Yields the base URL and the environment, so a benchmark can prepare data with manage.py.
    """
    with tempfile.TemporaryDirectory(prefix="po-bench-") as scratch:
        env = {
            **os.environ,
            "DATA_DIR": f"{scratch}/data",
            "STATIC_ROOT": f"{scratch}/static",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        _manage("migrate", "--noinput", "-v0", env=env)
        _manage("createcachetable", env=env)
        _manage("collectstatic", "--noinput", "-v0", env=env)
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
