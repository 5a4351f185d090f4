"""Which environment variables a provider's "API key variable" may name.

A provider sends that variable's value as a bearer token to its base URL, which an admin sets
freely: naming ADMIN_PASSWORD or DATABASE_URL would send that secret to any server. So a name is a
provider key by convention (``*_API_KEY``) or listed in the PROVIDER_KEY_VARIABLES setting, and is
never one of the variables Prompt Optimizer reads for itself, whatever that setting lists.
"""

import re

from django.conf import settings
from django.core import checks

KEY_VARIABLE = re.compile(r"[A-Z][A-Z0-9_]*_API_KEY")

# Every variable the product reads for its own configuration: config/settings.py, the serve,
# ensure_superuser and seed_providers commands, Django's own, and the PostgreSQL driver's password.
# A test keeps this list complete.
PRODUCT_VARIABLES = frozenset({
    "ADMIN_EMAIL", "ADMIN_PASSWORD", "ADMIN_USERNAME", "ALLOWED_HOSTS", "BACKUP_DIR",
    "BACKUP_ENCRYPTION_KEY", "BACKUP_KEEP_DAYS", "BACKUP_KEEP_LAST", "BACKUP_STORAGE",
    "BACKUP_STORAGE_OPTIONS", "BATCH_CONCURRENCY", "BATCH_MAX_BYTES", "BATCH_MAX_ITEMS",
    "CSRF_TRUSTED_ORIGINS", "DATABASE_URL", "DATA_DIR", "DB_CONN_MAX_AGE", "DEBUG",
    "DJANGO_SETTINGS_MODULE", "EMAIL_FROM", "FAST_TASK_WORKERS", "HOST", "HTTPS", "LLM_CALL_DEADLINE_S",
    "LLM_FIRST_BYTE_TIMEOUT_S", "LOGIN_COOLOFF_MINUTES", "LOGIN_FAILURE_LIMIT", "LOG_FORMAT", "LOG_LEVEL",
    "METRICS_TOKEN", "MONITORING_MAX_DISK_PCT", "MONITORING_MAX_ERROR_RATE_PCT", "MONITORING_MAX_P95_MS",
    "MONITORING_MAX_QUEUE_AGE_S", "OPENAI_BASE_URL", "OPENAI_MODELS", "PGPASSWORD", "PORT",
    "PROMETHEUS_MULTIPROC_DIR", "PROMPT_MAX_CHARS", "PROVIDER_KEY_VARIABLES", "REDIS_URL",
    "RUNS_PER_MINUTE", "SECRET_KEY", "SENTRY_DSN", "SMTP_HOST", "SMTP_PASSWORD", "SMTP_PORT", "SMTP_SSL",
    "SMTP_STARTTLS", "SMTP_USER", "STATIC_ROOT", "TASK_WORKERS", "TIME_ZONE", "TRUSTED_PROXY_COUNT",
    "WEB_CONCURRENCY",
})  # fmt: skip


def _is_product_variable(name: str) -> bool:
    # Upper-cased: on Windows, secret_key and SECRET_KEY are the same variable.
    return name.strip().upper() in PRODUCT_VARIABLES


def key_variable_refusal(name: str) -> str:
    """Why ``name`` may not hold a provider's API key, or "" when it may (or is blank: no key)."""
    if not name:
        return ""
    if _is_product_variable(name):
        return (
            f"{name} is one of Prompt Optimizer's own settings, never a provider key: name the "
            "variable that holds the provider's key, e.g. OPENAI_API_KEY."
        )
    if KEY_VARIABLE.fullmatch(name) or name in settings.PROVIDER_KEY_VARIABLES:
        return ""
    return (
        f"{name!r} is not a provider key variable. Name an environment variable ending in _API_KEY, "
        "e.g. OPENAI_API_KEY, or list it in PROVIDER_KEY_VARIABLES."
    )


@checks.register(checks.Tags.security)
def listed_product_variables_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """PROVIDER_KEY_VARIABLES naming one of the product's own settings is a mistake to fix now:
    providers are refused that name anyway, and whoever listed it meant something else."""
    return [
        checks.Error(
            f"PROVIDER_KEY_VARIABLES lists {name}, one of Prompt Optimizer's own settings: no "
            "provider may send it.",
            hint="Remove it from PROVIDER_KEY_VARIABLES, and give each provider the variable that "
            "holds its own key, e.g. OPENAI_API_KEY.",
            id="optimizer.E001",
        )
        for name in settings.PROVIDER_KEY_VARIABLES
        if _is_product_variable(name)
    ]
