"""What can go wrong in a provider call, classified for the retry policy and the breaker."""

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
NEVER_RETRY_STATUSES = frozenset({400, 401, 403, 404, 422})  # the request itself is wrong
MAX_RETRY_AFTER_S = 60.0


class ProviderError(Exception):
    """A provider call failed. ``retryable`` says whether trying again may help; ``retry_after``
    is the provider's requested wait in seconds, when it sent one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class InvalidAnswer(Exception):
    """The provider answered over HTTP, but not with JSON matching the requested schema."""


def retry_after_seconds(headers) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds form), if present and sane."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw) / scale
        except ValueError:
            continue  # an HTTP date: rare from model APIs; fall back to our own backoff
        if seconds >= 0:
            return seconds
    return None


def error_from_response(response) -> ProviderError:
    """Classify an HTTP error answer: the status, the provider's own retry advice, the wait."""
    status = response.status_code
    advice = response.headers.get("x-should-retry", "").lower()
    if status in NEVER_RETRY_STATUSES or advice == "false":
        retryable = False
    else:
        retryable = advice == "true" or status in RETRYABLE_STATUSES or status >= 500
    retry_after = retry_after_seconds(response.headers)
    if retry_after is not None and retry_after > MAX_RETRY_AFTER_S:
        retryable = False  # asked to wait longer than a call may take: fail over instead
    return ProviderError(
        f"HTTP {status} from provider", status=status, retryable=retryable, retry_after=retry_after
    )
