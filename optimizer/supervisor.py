"""Keeps a few long-running child processes up: the web server and the task workers of `serve`,
the task workers of `worker`.

Each child runs in a process group of its own. One that dies is restarted after a backoff (1 s,
doubling while it keeps dying soon after starting, at most 30 s); what is left of its group (a
cluster's workers, a web server's workers) is stopped first, so no orphan keeps a port or takes
tasks beside its successor. A child that keeps failing is reported and retried at the longest
backoff rather than given up on: the usual causes (a database restarting, a port not yet free)
pass, and giving up would stop the children that work. Only ``stop()`` ends it all.
"""

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
TICK_S = 0.2
FIRST_DELAY_S = 1.0
LONGEST_DELAY_S = 30.0
STABLE_AFTER_S = 30.0  # a child that ran this long started well: its next restart waits FIRST_DELAY_S
REPORT_AFTER_FAILURES = 5
REMAINS_GRACE_S = 10.0  # what is left of a dead child's group gets SIGTERM, then SIGKILL after this
STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Child:
    """One process to keep running: its name in messages ("task worker"), its command line and
    the environment variables it needs beyond ours."""

    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class _Slot:
    child: Child
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0  # deaths in a row, each soon after starting
    restart_at: float = 0.0
    remains: int | None = None  # process group of a dead child whose members may still run
    remains_kill_at: float = 0.0


def _prctl(option: int, value: object) -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(option, value)


@contextmanager
def _subreaper():
    """While it lasts, orphans of our children's children are re-parented to us (Linux), so we
    can stop and reap what a dead child left; whatever the process was before is restored."""
    was = ctypes.c_int(0)
    _prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(was))
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        yield
    finally:
        _prctl(PR_SET_CHILD_SUBREAPER, was.value)


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, get SIGTERM if the supervisor dies, even by SIGKILL,
    so no orphaned server keeps the port and the database open."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_group(group: int, signum: int) -> bool:
    """Send ``signum`` to every process of ``group``; False when none is left."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    return True


def _reap_group(group: int) -> None:
    """Collect the members of ``group`` that ended after becoming ours (we are their subreaper,
    or PID 1), so they do not linger as zombies that still count as the group."""
    try:
        while os.waitpid(-group, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _how_it_ended(returncode: int) -> str:
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"was killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"was killed by signal {-returncode}"


def stop_requested() -> threading.Event:
    """An event that Ctrl-C, SIGTERM and SIGHUP set (call from the main thread)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    return stop


class Supervisor:
    """Starts ``children``, restarts each one that dies (``tend()``), stops them all (``stop()``).
    ``say`` receives one line per event worth telling a person: a death, a restart, a streak."""

    def __init__(
        self,
        children: list[Child],
        *,
        say: Callable[[str], None],
        first_delay_s: float = FIRST_DELAY_S,
        longest_delay_s: float = LONGEST_DELAY_S,
        stable_after_s: float = STABLE_AFTER_S,
        report_after_failures: int = REPORT_AFTER_FAILURES,
    ):
        self._slots = [_Slot(child) for child in children]
        self._say = say
        self._first_delay_s = first_delay_s
        self._longest_delay_s = longest_delay_s
        self._stable_after_s = stable_after_s
        self._report_after_failures = report_after_failures

    @property
    def names(self) -> str:
        """The children in a sentence: "the web server, the task worker and the fast task worker"."""
        names = [f"the {slot.child.name}" for slot in self._slots]
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"

    def run(self, stop: threading.Event, *, on_tick: Callable[[], None] | None = None) -> None:
        """Start the children and keep them up until ``stop`` is set, then stop them all.
        ``on_tick`` is called after each look at the children (every TICK_S)."""
        with _subreaper():
            self.start()
            try:
                while not stop.wait(TICK_S):
                    self.tend()
                    if on_tick is not None:
                        on_tick()
            finally:
                self.stop()

    def start(self) -> None:
        for slot in self._slots:
            self._spawn(slot)

    def tend(self) -> None:
        """Notice children that died, clear what they left, restart those whose delay is over."""
        now = time.monotonic()
        for slot in self._slots:
            if slot.process is not None and slot.process.poll() is not None:
                self._on_death(slot, now)
            if slot.process is None:
                if slot.remains is not None:
                    self._clear_remains(slot, now)
                if slot.remains is None and now >= slot.restart_at:
                    self._spawn(slot)
                    self._say(f"Restarted the {slot.child.name} (pid {slot.process.pid}).")

    def stop(self) -> None:
        """One SIGTERM to each child, SIGKILL to the group of any still running after
        STOP_TIMEOUT_S; then nothing of any child's group is left."""
        running = [slot for slot in self._slots if slot.process is not None]
        for slot in running:
            if slot.process.poll() is None:
                slot.process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for slot in running:
            try:
                slot.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(slot.process.pid, signal.SIGKILL)
                slot.process.wait()
        # A child that stopped cleanly leaves nothing; a crashed or killed one may leave workers.
        groups = [slot.process.pid for slot in running] + [
            slot.remains for slot in self._slots if slot.remains is not None
        ]
        deadline = time.monotonic() + REMAINS_GRACE_S
        while groups and time.monotonic() < deadline:
            for group in groups:
                _reap_group(group)
            groups = [group for group in groups if _signal_group(group, signal.SIGKILL)]
            if groups:
                time.sleep(0.05)

    def _spawn(self, slot: _Slot) -> None:
        # A process group of its own: Ctrl-C reaches only the supervisor, which then stops each
        # child with exactly one SIGTERM (a qcluster hit by SIGINT and SIGTERM at once can hang).
        slot.process = subprocess.Popen(
            slot.child.command,
            env={**os.environ, **slot.child.env},
            process_group=0,
            preexec_fn=_die_with_parent,
        )
        slot.started_at = time.monotonic()

    def _on_death(self, slot: _Slot, now: float) -> None:
        process, name = slot.process, slot.child.name
        ran_s = now - slot.started_at
        slot.failures = 1 if ran_s >= self._stable_after_s else slot.failures + 1
        delay_s = min(self._first_delay_s * 2 ** (slot.failures - 1), self._longest_delay_s)
        streak = f" ({slot.failures} times in a row)" if slot.failures > self._report_after_failures else ""
        self._say(
            f"The {name} (pid {process.pid}) {_how_it_ended(process.returncode)} after running "
            f"{ran_s:.0f} s; restarting it in {delay_s:g} s{streak}."
        )
        if slot.failures == self._report_after_failures:
            self._say(
                f"The {name} has stopped {slot.failures} times in a row, each within "
                f"{self._stable_after_s:g} s of starting: its output above says why. It will be "
                f"restarted every {self._longest_delay_s:g} s until it stays up; fix the cause, "
                "or press Ctrl-C to stop everything."
            )
        slot.process = None
        slot.restart_at = now + delay_s
        if _signal_group(process.pid, signal.SIGTERM):
            slot.remains, slot.remains_kill_at = process.pid, now + REMAINS_GRACE_S

    def _clear_remains(self, slot: _Slot, now: float) -> None:
        _reap_group(slot.remains)
        if not _signal_group(slot.remains, 0):
            slot.remains = None
        elif now >= slot.remains_kill_at + REMAINS_GRACE_S:
            self._say(f"Processes left by the old {slot.child.name} do not stop; starting a new one anyway.")
            slot.remains = None
        elif now >= slot.remains_kill_at:
            _signal_group(slot.remains, signal.SIGKILL)
