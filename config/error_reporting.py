"""Optional error reporting to Sentry (``SENTRY_DSN``), with nothing private in what is sent.

Prompts, model answers and keys must never leave the machine in an error report: request bodies,
cookies, query strings and the local variables of stack frames are dropped, values under names that
hold text or secrets are replaced, and any configured secret, or anything shaped like an API key or
a bearer token, is cut out of every remaining string (exception messages, log messages, URLs).
"""

import os
import re
from collections.abc import Iterable

FILTERED = "[Filtered]"
# Keys whose values are a prompt, a model's text or a secret, wherever they appear in an event.
PRIVATE_KEYS = frozenset(
    {
        "text", "prompt", "prompts", "messages", "content", "answer", "answers", "rewrite", "original",
        "body", "data", "cookies", "query_string", "vars", "password", "authorization", "cookie",
        "x-api-key", "api_key", "apikey", "secret", "secret_key", "token", "dsn",
    }
)  # fmt: skip
PRIVATE_KEY_PARTS = ("password", "secret", "token", "api_key", "apikey", "passwd", "authorization", "cookie")
# Environment variables that hold secrets, besides every *_API_KEY and *_KEY one.
SECRET_VARIABLES = ("SECRET_KEY", "METRICS_TOKEN", "SMTP_PASSWORD", "BACKUP_ENCRYPTION_KEY", "DATABASE_URL")
KEY_SHAPES = re.compile(
    r"(?:sk-[A-Za-z0-9_\-]{12,}|sk-ant-[A-Za-z0-9_\-]{12,}|AIza[0-9A-Za-z_\-]{20,}|xai-[A-Za-z0-9]{12,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,})"
)


def configured_secrets(environ: dict[str, str] | None = None) -> list[str]:
    """The secret values set in the environment (API keys, the secret key, passwords), longest first
    so that one containing another is cut whole."""
    environ = os.environ if environ is None else environ
    names = [name for name in environ if name.endswith("_KEY") or name in SECRET_VARIABLES]
    values = {environ[name] for name in names if len(environ[name]) >= 8}
    return sorted(values, key=len, reverse=True)


def _private(key: object) -> bool:
    name = str(key).lower()
    return name in PRIVATE_KEYS or any(part in name for part in PRIVATE_KEY_PARTS)


def _scrub_text(value: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        value = value.replace(secret, FILTERED)
    return KEY_SHAPES.sub(FILTERED, value)


def _filtered(value):
    """What stands for a private value: of the same shape, so the event still parses."""
    return {} if isinstance(value, dict) else [] if isinstance(value, list | tuple) else FILTERED


def scrub(value, secrets: list[str]):
    """``value`` with private keys' values replaced and secrets cut out of its strings."""
    if isinstance(value, dict):
        return {k: _filtered(item) if _private(k) else scrub(item, secrets) for k, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item, secrets) for item in value]
    if isinstance(value, str):
        return _scrub_text(value, secrets)
    return value


def scrub_event(event: dict, hint: dict | None = None) -> dict:
    """sentry-sdk's ``before_send``: the event as it may leave the machine."""
    request = event.get("request")
    if isinstance(request, dict):
        url = request.get("url")
        event["request"] = {
            key: item for key, item in request.items() if key in ("method", "headers", "env", "url")
        }
        if isinstance(url, str):
            event["request"]["url"] = url.split("?", 1)[0]
    return scrub(event, configured_secrets())


def sentry_init(dsn: str) -> None:
    """Start reporting errors to ``dsn``; raises ValueError (with sentry-sdk's reason) if it is not a
    DSN."""
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.utils import BadDsn

    try:
        sentry_sdk.init(
            dsn=dsn,
            integrations=[DjangoIntegration()],
            send_default_pii=False,  # no user names, addresses, cookies or headers with credentials
            include_local_variables=False,  # a frame's locals hold prompts and answers
            max_request_body_size="never",
            before_send=scrub_event,
            traces_sample_rate=0.0,  # errors only; performance is what /metrics is for
        )
    except BadDsn as exc:
        raise ValueError(str(exc)) from None
