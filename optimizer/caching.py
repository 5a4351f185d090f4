"""The pipeline's two cache tiers, beside the gateway's API tier.

- Analysis (deconstruct + diagnose): 24 h, keyed on the owner, the normalized prompt, its type and
  the engine family (a built-in analysis is not served to a language-model run).
- Result: 2 h, keyed on the owner, the normalized prompt, the run's settings and the engine version.
  A hit completes a new run at once, with no task and no cost.

Both are per owner: a hit would otherwise tell one user that another optimized the same text (the
gateway's API cache below them stays shared: a hit there shows nobody anything).

Hit and miss counts are not kept twice: each run records whether it hit either tier
(``cached``, ``analysis_cached``), and ``selectors.cache_tier_stats`` counts them.
"""

import contextlib
import hashlib
import json
import re
import unicodedata

from django.core.cache import cache

ANALYSIS_TTL_S = 24 * 3600
RESULT_TTL_S = 2 * 3600
RESULT_FIELDS = (
    "engine",
    "provider",
    "model",
    "deconstruction",
    "diagnosis",
    "techniques",
    "optimized_text",
    "changes",
    "questions",
    "scores",
    "score_before",
    "score_after",
    "score_gain",
)


def normalize(text: str) -> str:
    """The same prompt whatever its Unicode form, trailing spaces or runs of blank lines."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _key(tier: str, *parts: object) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return f"po:{tier}:v1:{digest}"


def analysis_key(text: str, prompt_type: str, engine_kind: str, *, owner_id: int) -> str:
    return _key("analysis", owner_id, normalize(text), prompt_type, engine_kind)


def result_key(text: str, run_settings: dict, engine_version: str, *, owner_id: int) -> str:
    return _key("result", owner_id, normalize(text), run_settings, engine_version)


def analysis_set(key: str, value: dict) -> None:
    _set(key, value, ANALYSIS_TTL_S)


def result_set(key: str, value: dict) -> None:
    _set(key, {name: value[name] for name in RESULT_FIELDS}, RESULT_TTL_S)


def cached(key: str) -> dict | None:
    """The entry of either tier under ``key``, or None (a miss, or the cache is down)."""
    try:
        value = cache.get(key)
    except Exception:  # noqa: BLE001 - a cache outage must not fail an optimization: it is a miss
        return None
    return value if isinstance(value, dict) else None


def _set(key: str, value: dict, ttl: int) -> None:
    with contextlib.suppress(Exception):  # a cache outage costs a recomputation later, nothing more
        cache.set(key, value, ttl)
