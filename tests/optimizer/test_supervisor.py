"""The supervisor's restart policy, with real child processes that fail on purpose."""

import re
import sys
import threading
import time

from optimizer.supervisor import Child, Supervisor
from tests.optimizer.processes import is_gone


def run_until(supervisor: Supervisor, condition, *, timeout: float = 20) -> None:
    """Run ``supervisor`` until ``condition()`` holds, then stop it; fail after ``timeout``."""
    stop, deadline = threading.Event(), time.monotonic() + timeout
    timed_out = []

    def check():
        if condition():
            stop.set()
        elif time.monotonic() > deadline:
            timed_out.append(True)
            stop.set()

    supervisor.run(stop, on_tick=check)
    assert not timed_out, "the condition never held"


def delays(lines: list[str]) -> list[float]:
    return [float(match[1]) for line in lines if (match := re.search(r"restarting it in ([\d.]+) s", line))]


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def supervise(child: Child, *, until, **policy) -> list[str]:
    """What the supervisor of ``child`` said until ``until(lines)`` held."""
    lines: list[str] = []
    run_until(Supervisor([child], say=lines.append, **policy), lambda: until(lines))
    return lines


def deaths(lines: list[str], name: str) -> list[str]:
    return [line for line in lines if line.startswith(f"The {name} (pid ")]


def test_a_child_that_keeps_failing_soon_after_starting_waits_longer_each_time_and_is_reported():
    policy = {"first_delay_s": 0.05, "longest_delay_s": 0.2, "stable_after_s": 10, "report_after_failures": 3}

    lines = supervise(
        Child("flaky", python("raise SystemExit(3)")),
        until=lambda lines: len(deaths(lines, "flaky")) >= 5,
        **policy,
    )

    died = deaths(lines, "flaky")
    assert delays(lines) == [0.05, 0.1, 0.2, 0.2, 0.2]
    assert all("exited with code 3" in line for line in died)
    reports = [line for line in lines if "has stopped 3 times in a row" in line]
    assert len(reports) == 1
    assert lines.index(reports[0]) == lines.index(died[2]) + 1
    assert "restarted every 0.2 s until it stays up" in reports[0]
    assert "(4 times in a row)" in died[3]
    assert sum(line.startswith("Restarted the flaky (pid ") for line in lines) >= 4  # never given up


def test_a_child_that_ran_long_enough_starts_over_at_the_first_delay():
    steady = Child("steady", python("import time; time.sleep(0.4); raise SystemExit(1)"))

    lines = supervise(
        steady, until=lambda lines: len(deaths(lines, "steady")) >= 3, first_delay_s=0.05, stable_after_s=0.3
    )

    assert delays(lines) == [0.05, 0.05, 0.05]


def test_what_a_dead_child_leaves_is_stopped_before_the_child_starts_again(tmp_path):
    """A child that dies leaving a process of its group running (as a cluster leaves its workers)."""
    pids = tmp_path / "left.txt"
    leaves_one = (
        "import subprocess, sys; "
        "left = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "open(sys.argv[1], 'a').write(f'{left.pid}\\n'); raise SystemExit(1)"
    )
    first_left_gone_at_restart = []

    def restarted(lines: list[str]) -> bool:
        if any(line.startswith("Restarted the leaky") for line in lines):
            first_left_gone_at_restart.append(is_gone(int(pids.read_text().split()[0])))
            return True
        return False

    supervise(Child("leaky", python(leaves_one, str(pids))), until=restarted, first_delay_s=0.05)

    assert first_left_gone_at_restart == [True]
    assert all(is_gone(int(pid)) for pid in pids.read_text().split())  # stop() left none either
