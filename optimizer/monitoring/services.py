"""What the monitoring page changes: a cache tier cleared, a circuit breaker reset."""

import logging

from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.db import connections, router

from optimizer.llm import api_cache
from optimizer.llm.breaker import CircuitBreaker
from optimizer.models import ModelChoice

logger = logging.getLogger(__name__)

# The key prefix of each tier (see optimizer/caching.py and optimizer/llm/api_cache.py).
TIER_PREFIXES = {
    "api": f"llmcache:{api_cache.KEY_VERSION}:",
    "analysis": "po:analysis:",
    "result": "po:result:",
}
TIER_NAMES = {"api": "API", "analysis": "analysis", "result": "result"}


class UnknownTier(ValueError):
    pass


class CacheUnavailable(Exception):
    """The cache did not answer: nothing was cleared."""


def cache_tier_clear(*, tier: str) -> int:
    """Delete every entry of one cache tier, whatever backend holds it; returns how many went.
    Nothing else in the cache is touched (sessions, breakers, the other tiers). Raises
    ``CacheUnavailable`` when the cache does not answer (Redis away)."""
    if tier not in TIER_PREFIXES:
        raise UnknownTier(f"There is no cache tier {tier!r}: choose one of {', '.join(TIER_PREFIXES)}.")
    try:
        return _tier_clear(tier)
    except (UnknownTier, RuntimeError):
        raise
    except Exception as exc:
        raise CacheUnavailable(
            f"The cache did not answer ({type(exc).__name__}), so nothing was cleared. Try again once it "
            "is back (/api/v1/health names what is down)."
        ) from exc


def _tier_clear(tier: str) -> int:
    cache = caches["default"]
    prefix = TIER_PREFIXES[tier]
    if hasattr(cache, "delete_pattern"):  # django-redis: SCAN and delete under the site's key prefix
        deleted = cache.delete_pattern(f"{prefix}*") or 0
    elif isinstance(cache, DatabaseCache):  # keys are stored as make_key made them: the prefix leads
        db = router.db_for_write(cache.cache_model_class)
        connection = connections[db]
        made = cache.make_key(prefix)
        escaped = made.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        quote = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {quote(cache._table)} WHERE {quote('cache_key')} LIKE %s ESCAPE '\\'",  # noqa: S608
                [f"{escaped}%"],
            )
            deleted = cursor.rowcount
    else:
        raise RuntimeError(f"Clearing a tier needs Redis or the database cache, not {type(cache).__name__}.")
    logger.warning("cache tier %s cleared from the monitoring page: %s entries", tier, deleted)
    return deleted


def breaker_reset(*, model_choice_id: int) -> ModelChoice:
    """Close one model's circuit breaker and forget its counters (as the admin's action does)."""
    choice = ModelChoice.objects.select_related("provider").get(pk=model_choice_id)
    CircuitBreaker(choice.breaker_key).reset()
    logger.warning("circuit breaker %s reset from the monitoring page", choice.breaker_key)
    return choice
