"""The API cache tier: an identical request within an hour is answered without calling out.

The key is a versioned SHA-256 of the canonical JSON of everything that shapes the answer
(provider, model, messages, schema, sampling parameters), so its size is bounded whatever the
prompt. Only validated answers are stored; errors never are. Hits and misses are not counted here: every
lookup ends in a usage record (``cache_hit`` or a real call), which the monitoring page counts.
"""

import hashlib
import json
import logging

from django.core.cache import caches

from optimizer.llm.structured import schema_fingerprint
from optimizer.llm.throttled_log import warn_throttled
from optimizer.llm.types import LLMRequest

logger = logging.getLogger(__name__)

KEY_VERSION = "v1"
TTL_S = 60 * 60


def cache_key(*, provider: str, model: str, request: LLMRequest) -> str:
    canonical = json.dumps(
        {
            "provider": provider,
            "model": model,
            "messages": [[m.role, m.content] for m in request.messages],
            "schema": schema_fingerprint(request.schema),
            "schema_name": request.schema_name,
            "strict": request.strict,
            "temperature": request.temperature,
            "max_output_tokens": request.max_output_tokens,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return f"llmcache:{KEY_VERSION}:{hashlib.sha256(canonical.encode()).hexdigest()}"


def read_many(keys: list[str]) -> dict | None:
    """Read the answer's key together with other small keys (the breaker's) in one round trip.

    None when the cache does not answer: the caller then treats it as a miss.
    """
    try:
        return caches["default"].get_many(keys)
    except Exception as exc:  # noqa: BLE001 - a cache outage degrades to calling the provider
        warn_throttled(logger, "api-cache", "API cache unavailable (%s)", type(exc).__name__)
        return None


def store_answer(key: str, entry: dict) -> None:
    try:
        caches["default"].set(key, entry, timeout=TTL_S)
    except Exception as exc:  # noqa: BLE001
        warn_throttled(logger, "api-cache", "API cache unavailable (%s)", type(exc).__name__)
