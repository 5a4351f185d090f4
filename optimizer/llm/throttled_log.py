"""Warnings about an outage that every call would repeat, logged once a minute per kind."""

import threading
import time

_last: dict[str, float] = {}
_lock = threading.Lock()


def warn_throttled(logger, kind: str, message: str, *args, every_s: float = 60.0) -> None:
    now = time.monotonic()
    with _lock:
        if now - _last.get(kind, float("-inf")) < every_s:
            return
        _last[kind] = now
    logger.warning(message, *args)
