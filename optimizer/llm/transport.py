"""One pooled HTTP client per process for every provider call.

httpx.Client is thread-safe; HTTP/2 is negotiated with TLS servers that offer it. The transport
itself never retries (retries=0): the gateway's retry policy is the only one.
"""

import atexit
import threading

import httpx

LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

_client: httpx.Client | None = None
_lock = threading.Lock()


def http_client() -> httpx.Client:
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = httpx.Client(
                    http2=True,
                    limits=LIMITS,
                    transport=httpx.HTTPTransport(http2=True, limits=LIMITS, retries=0),
                    follow_redirects=False,
                    headers={"User-Agent": "prompt-optimizer"},
                )
    return _client


def http_client_close() -> None:
    global _client
    with _lock:
        if _client is not None:
            _client.close()
            _client = None


atexit.register(http_client_close)
