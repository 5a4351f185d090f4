"""A circuit breaker per provider and model, its state shared by every process.

CLOSED → OPEN when the last N calls all failed, when more than half of at least 10 calls in
the last minute failed (consecutive counting alone never trips on a provider that fails every
other call), or when two calls since the last success hung (no answer within the first-byte
timeout: each hung call holds a worker for that long, so the breaker must not wait for five).
OPEN → HALF_OPEN after a cool-down; exactly one process wins the single trial call
(an atomic ``add``); its success closes the breaker, its failure opens it again.

State lives in the Django cache (Redis when REDIS_URL is set, the database cache otherwise), under
``breaker:v1:<key>:…`` keys that all expire. No lock is held during a call, so concurrent calls
never queue behind each other. If the shared store fails, the breaker keeps working on state local
to this process and never blocks a call because of its own storage.

A successful call costs no write: ``allow()`` reads the state and the consecutive-failure count in
one round trip, and successes are counted in this process and added to the shared minute window
at most once a second (and before any failure is judged), so the failure rate stays current.
"""

import logging
import threading
import time
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings
from django.core.cache import caches

from optimizer.llm.throttled_log import warn_throttled

logger = logging.getLogger(__name__)

NAMESPACE = "breaker:v1"


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class Policy:
    consecutive_failures: int = 5
    hung_calls: int = 2  # calls that timed out since the last success
    window_s: int = 60
    bucket_s: int = 10
    min_calls: int = 10
    failure_rate: float = 0.5
    cooldown_s: float = 30.0
    trial_timeout_s: float = 120.0  # a trial that never reports back frees the slot after this

    @classmethod
    def from_settings(cls) -> "Policy":
        return cls(**getattr(settings, "LLM_BREAKER", {}))


@dataclass(frozen=True)
class Permit:
    allowed: bool
    state: State
    trial: bool = False
    consecutive_failures: int = 0  # as seen when the permit was given


FLUSH_INTERVAL_S = 1.0


class _PendingSuccesses:
    """Successes counted in this process, per breaker key and window bucket, not yet shared."""

    def __init__(self):
        self._counts: dict[str, dict[str, int]] = {}
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()

    def add(self, breaker_key: str, calls_key: str) -> None:
        with self._lock:
            bucket = self._counts.setdefault(breaker_key, {})
            bucket[calls_key] = bucket.get(calls_key, 0) + 1

    def due(self) -> bool:
        return time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S

    def take(self, breaker_key: str | None = None) -> dict[str, int]:
        """Remove and return pending counts: for one breaker, or (when due) for all."""
        with self._lock:
            if breaker_key is not None:
                return self._counts.pop(breaker_key, {})
            self._last_flush = time.monotonic()
            taken: dict[str, int] = {}
            for counts in self._counts.values():
                taken.update(counts)
            self._counts.clear()
            return taken


_pending = _PendingSuccesses()


class _LocalCache:
    """The subset of the cache API the breaker uses, in this process's memory."""

    def __init__(self):
        self._data: dict[str, tuple[object, float | None]] = {}
        self._lock = threading.Lock()

    def _live(self, key, now):
        value, expires = self._data.get(key, (None, None))
        if expires is not None and expires <= now:
            self._data.pop(key, None)
            return None
        return value

    def get_many(self, keys):
        now = time.monotonic()
        with self._lock:
            return {key: value for key in keys if (value := self._live(key, now)) is not None}

    def set(self, key, value, timeout=None):
        with self._lock:
            self._data[key] = (value, None if timeout is None else time.monotonic() + timeout)

    def add(self, key, value, timeout=None):
        with self._lock:
            if self._live(key, time.monotonic()) is not None:
                return False
            self._data[key] = (value, None if timeout is None else time.monotonic() + timeout)
            return True

    def incr(self, key, delta=1):
        with self._lock:
            value, expires = self._data[key]
            self._data[key] = (value + delta, expires)
            return value + delta

    def delete_many(self, keys):
        with self._lock:
            for key in keys:
                self._data.pop(key, None)


_local = _LocalCache()


class CircuitBreaker:
    def __init__(self, key: str, policy: Policy | None = None):
        self.key = key
        self.policy = policy or Policy.from_settings()
        self._prefix = f"{NAMESPACE}:{key}"

    # --- keys ---------------------------------------------------------------------------
    def _k(self, name: str) -> str:
        return f"{self._prefix}:{name}"

    def _buckets(self, now: float) -> list[int]:
        current = int(now // self.policy.bucket_s)
        return [current - i for i in range(self.policy.window_s // self.policy.bucket_s)]

    # --- storage with a local fallback --------------------------------------------------
    def _run(self, operation):
        try:
            return operation(caches["default"])
        except Exception as exc:  # noqa: BLE001 - the store's failure must never block a call
            warn_throttled(
                logger, "breaker-store", "circuit breaker store unavailable (%s); using local state",
                type(exc).__name__,
            )  # fmt: skip
            return operation(_local)

    # --- the public surface ---------------------------------------------------------------
    def state(self, now: float | None = None) -> State:
        now = time.time() if now is None else now
        opened_at = self._run(lambda c: c.get_many([self._k("opened")])).get(self._k("opened"))
        return self._state_from(opened_at, now)

    def _state_from(self, opened_at, now: float) -> State:
        if opened_at is None:
            return State.CLOSED
        return State.OPEN if now < opened_at + self.policy.cooldown_s else State.HALF_OPEN

    def state_keys(self) -> list[str]:
        """The keys ``allow()`` reads, for a caller that fetches them with its own keys at once."""
        return [self._k("opened"), self._k("consecutive")]  # "hung" is reset with "consecutive"

    def allow(self, prefetched: dict | None = None) -> Permit:
        """May a call go ahead now? In HALF_OPEN only the one process that wins the trial may.

        ``prefetched`` holds ``state_keys()`` already read from the shared store, if the caller did.
        """
        keys = self.state_keys()
        values = prefetched if prefetched is not None else self._run(lambda c: c.get_many(keys))
        state = self._state_from(values.get(keys[0]), time.time())
        consecutive = values.get(keys[1], 0)
        if state is State.CLOSED:
            return Permit(True, state, consecutive_failures=consecutive)
        if state is State.HALF_OPEN:
            won = self._run(lambda c: c.add(self._k("trial"), 1, timeout=self.policy.trial_timeout_s))
            return Permit(bool(won), state, trial=bool(won), consecutive_failures=consecutive)
        return Permit(False, state, consecutive_failures=consecutive)

    def record_success(self, permit: Permit) -> None:
        if permit.trial:
            self.reset()
            return
        _pending.add(self.key, self._k(f"calls:{self._buckets(time.time())[0]}"))
        if permit.consecutive_failures:  # a hung call counts as a failure too: both go
            self._run(lambda c: c.delete_many([self._k("consecutive"), self._k("hung")]))
        if _pending.due():
            self._flush(_pending.take())

    def record_failure(self, permit: Permit, *, hung: bool = False) -> bool:
        """Count a failed request (a retry is one too); ``hung``: it timed out waiting for the
        provider. Returns whether the breaker opened."""
        now = time.time()
        if permit.trial:
            self._open(now)
            return True
        consecutive, hung_calls, calls, failures = self._count(now=now, hung=hung)
        rate_tripped = calls >= self.policy.min_calls and failures / calls > self.policy.failure_rate
        if (
            consecutive >= self.policy.consecutive_failures
            or hung_calls >= self.policy.hung_calls
            or rate_tripped
        ):
            self._open(now)
            return True
        return False

    def reset(self) -> None:
        """Close the breaker and forget its counters (a successful trial, or an admin's reset)."""
        _pending.take(self.key)
        names = ["opened", "trial", "consecutive", "hung"] + [
            f"{kind}:{bucket}" for bucket in self._buckets(time.time()) for kind in ("calls", "fails")
        ]
        self._run(lambda c: c.delete_many([self._k(name) for name in names]))

    def status(self) -> dict:
        """State and counters, for the monitoring page and the admin."""
        self._flush(_pending.take(self.key))
        now = time.time()
        buckets = self._buckets(now)
        keys = [self._k("opened"), self._k("consecutive")]
        keys += [self._k(f"{kind}:{bucket}") for bucket in buckets for kind in ("calls", "fails")]
        values = self._run(lambda c: c.get_many(keys))
        opened_at = values.get(self._k("opened"))
        return {
            "state": self._state_from(opened_at, now),
            "opened_at": opened_at,
            "consecutive_failures": values.get(self._k("consecutive"), 0),
            "calls_last_window": sum(values.get(self._k(f"calls:{b}"), 0) for b in buckets),
            "failures_last_window": sum(values.get(self._k(f"fails:{b}"), 0) for b in buckets),
        }

    # --- internals ------------------------------------------------------------------------
    def _open(self, now: float) -> None:
        def write(cache):
            cache.set(self._k("opened"), now, timeout=self.policy.cooldown_s + 24 * 3600)
            cache.delete_many([self._k("trial")])

        self._run(write)
        logger.warning("circuit breaker %s opened", self.key)

    def _flush(self, counts: dict[str, int]) -> None:
        if not counts:
            return
        ttl = self.policy.window_s + self.policy.bucket_s

        def write(cache):
            for key, delta in counts.items():
                cache.add(key, 0, timeout=ttl)
                cache.incr(key, delta)

        self._run(write)

    def _count(self, *, now: float | None = None, hung: bool = False) -> tuple[int, int, int, int]:
        """Count a failure (and this breaker's pending successes); return the new counters:
        consecutive failures, hung calls since the last success, calls and failures in the window."""
        now = time.time() if now is None else now
        buckets = self._buckets(now)
        ttl = self.policy.window_s + self.policy.bucket_s
        counts = _pending.take(self.key)
        calls_key, fails_key = self._k(f"calls:{buckets[0]}"), self._k(f"fails:{buckets[0]}")
        counts[calls_key] = counts.get(calls_key, 0) + 1
        counts[fails_key] = counts.get(fails_key, 0) + 1

        def write(cache):
            for key, delta in counts.items():
                cache.add(key, 0, timeout=ttl)
                cache.incr(key, delta)
            cache.add(self._k("consecutive"), 0, timeout=self.policy.window_s * 10)
            consecutive = cache.incr(self._k("consecutive"))
            cache.add(self._k("hung"), 0, timeout=self.policy.window_s * 10)
            hung_calls = cache.incr(self._k("hung"), 1 if hung else 0)
            keys = [self._k(f"{kind}:{bucket}") for bucket in buckets for kind in ("calls", "fails")]
            values = cache.get_many(keys)
            calls = sum(values.get(self._k(f"calls:{b}"), 0) for b in buckets)
            failures = sum(values.get(self._k(f"fails:{b}"), 0) for b in buckets)
            return consecutive, hung_calls, calls, failures

        return self._run(write)


def flush_pending() -> None:
    """Share this process's pending successes now. A worker that falls idle after a run would keep
    them, and the breaker's window on the monitoring page would not show the calls it saw."""
    counts = _pending.take()
    if counts:
        CircuitBreaker("pending")._flush(counts)


def open_among(keys: list[str]) -> set[str]:
    """Which of these breakers are open now (cooling down), in one read of the shared store; a
    store that does not answer reports none open (each call's own ``allow()`` still guards it)."""
    breakers = [CircuitBreaker(key) for key in keys]
    try:
        found = caches["default"].get_many([breaker._k("opened") for breaker in breakers])
    except Exception:  # noqa: BLE001 - asking which models to prefer must not fail with the cache
        return set()
    now = time.time()
    return {
        breaker.key
        for breaker in breakers
        if breaker._state_from(found.get(breaker._k("opened")), now) is State.OPEN
    }
