"""Settings for Prompt Optimizer, read from the environment (see .env.example and the README).

Nothing set gives the embedded default: SQLite and secret key in DATA_DIR, the database cache,
django-q2's ORM broker. DATABASE_URL selects PostgreSQL; REDIS_URL selects Redis for the cache and
the task broker.
"""

import zoneinfo
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from pythonjsonlogger.core import RESERVED_ATTRS as JSON_LOG_RESERVED_ATTRS

from backups.storage_config import storage_from_env
from config.embedded import (
    data_dir_prepare,
    database_from_url,
    owner_only_file_prepare,
    redis_url_check,
    secret_key_load_or_create,
    sqlite_database,
)
from config.env import env_bool, env_choice, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = data_dir_prepare(Path(env_str("DATA_DIR", str(BASE_DIR / "data"))).expanduser().resolve())

DEBUG = env_bool("DEBUG", False)

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        "default": database_from_url(
            DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0, maximum=3600)
        )
    }
else:
    DATABASES = {"default": sqlite_database(owner_only_file_prepare(DATA_DIR / "db.sqlite3"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
SHARED_DATABASE = DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3"

# --- Secret key -----------------------------------------------------------------------------
SECRET_KEY = env_str("SECRET_KEY")
if SECRET_KEY is None:
    if SHARED_DATABASE:
        # Several machines share this database: each generating its own key would sign sessions
        # and task payloads that the others reject.
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DATABASE_URL points at PostgreSQL, and be the same on "
            'every machine. Generate one with: python3 -c "import secrets; print(secrets.token_urlsafe(50))"'
        )
    SECRET_KEY = secret_key_load_or_create(DATA_DIR)
elif len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters long.")

# --- Hosts and HTTPS ------------------------------------------------------------------------
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"CSRF_TRUSTED_ORIGINS entries need a scheme, e.g. https://{_origin}, not {_origin!r}."
        )

HTTPS = env_bool("HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
if HTTPS:
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
# Proxies in front of the site that each append the address they received from to X-Forwarded-For.
# Only then is that header read (for the login throttle): without a proxy anyone can send it.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=10)
if TRUSTED_PROXY_COUNT and not HTTPS:
    raise ImproperlyConfigured(
        "TRUSTED_PROXY_COUNT needs HTTPS=1: X-Forwarded-For is read only behind the TLS proxy that sets "
        "it. Set HTTPS=1 with it, or unset TRUSTED_PROXY_COUNT to use the connection's own address."
    )

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_COOKIE_HTTPONLY = True  # HTMX sends the token from the page (hx-headers), not the cookie.
SESSION_COOKIE_HTTPONLY = True
SESSION_ENGINE = "config.sessions"  # Django's database sessions, read with a plain statement
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# --- Applications ---------------------------------------------------------------------------
INSTALLED_APPS = [
    "optimizer",
    "costs",
    "backups",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",  # intcomma: counts of thousands of items read as 1,514
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_q",
    "chartjs",
    "axes",
]

MIDDLEWARE = [
    "config.middleware.request_context",  # first: its id and timings cover everything below
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.middleware.no_store_for_users",
    "axes.middleware.AxesMiddleware",  # last: it turns a locked-out login into the lock page
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "optimizer.navigation.navigation",
                "costs.context_processors.budget_alerts",
            ],
        },
    },
]

# --- Authentication -------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "optimizer:optimize"
LOGOUT_REDIRECT_URL = "login"
# A password-reset link works once, for a day at most.
PASSWORD_RESET_TIMEOUT = 60 * 60 * 24
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before any password check
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Login throttling (django-axes) ---------------------------------------------------------
# LOGIN_FAILURE_LIMIT wrong passwords in a row for one username from one address lock that pair
# (on /login/ and /admin/login/) for LOGIN_COOLOFF_MINUTES, the right password included. Another
# address or another username is not locked, so one attacker cannot lock everybody out. Staff unlock
# sooner in the admin (Axes -> Access attempts) or with `manage.py axes_reset_username NAME`.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=1000)
LOGIN_COOLOFF_MINUTES = env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1, maximum=7 * 24 * 60)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Tries while locked are refused unrecorded, so the time the lock page gives stays true.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_USERNAME_CALLABLE = "config.login_throttle.client_username"
AXES_CLIENT_IP_CALLABLE = "config.login_throttle.client_ip"
AXES_LOCKOUT_CALLABLE = "config.login_throttle.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False  # no start-up banner in every command's output

# --- Cache ----------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "config.cache.RedisCache",  # django-redis; clear() deletes only our keys
            "LOCATION": redis_url_check(REDIS_URL),
            "KEY_PREFIX": "prompt-optimizer",
            "OPTIONS": {
                # Fail fast when Redis is away: /healthz reports it instead of hanging.
                "SOCKET_CONNECT_TIMEOUT": 2,
                "SOCKET_TIMEOUT": 5,
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "config.cache.DatabaseCache",  # Django's, with a one-statement set
            "LOCATION": "django_cache",
            "OPTIONS": {"MAX_ENTRIES": 20_000},
        }
    }

# Sessions stay in the database only (Django's default). Read through the cache ("cached_db"), a page
# answered 500 while Redis was away: Django's cached sessions write to the cache unguarded on a miss,
# and a logout whose cache delete failed would leave the session readable from the cache.

# Rendered pieces of result pages, keyed on a digest of what they show: they never go stale, so each
# process keeps its own copy in memory (no I/O to read one back) and nothing needs sharing.
CACHES["fragments"] = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "fragments",
    "TIMEOUT": 3600,
    "OPTIONS": {"MAX_ENTRIES": 500},
}

# --- Task queue (django-q2) -----------------------------------------------------------------
# Two queues, each with its own cluster: model runs, and the fast queue (built-in runs and the
# recovery sweep), so a run that needs no model never waits behind model calls. The fast cluster is
# the same command with Q_CLUSTER_NAME=prompt-optimizer-fast (`manage.py serve` starts both).
TASK_WORKERS = env_int("TASK_WORKERS", 2, minimum=1, maximum=64)
FAST_TASK_WORKERS = env_int("FAST_TASK_WORKERS", 2, minimum=1, maximum=64)
FAST_QUEUE = "prompt-optimizer-fast"
Q_CLUSTER = {
    "name": "prompt-optimizer",
    "label": "Task queue",
    "workers": TASK_WORKERS,
    "timeout": 300,  # seconds a task may run before the worker is recycled
    "retry": 360,  # must exceed timeout, or a slow task is handed out twice
    "max_attempts": 3,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 1000,
    # Fetch no more tasks than the workers can start: a task fetched from Redis is lost with its
    # cluster (the sweep re-queues its run), and a run is picked fairly when a worker starts it.
    "queue_limit": TASK_WORKERS,
    "ALT_CLUSTERS": {FAST_QUEUE: {"workers": FAST_TASK_WORKERS, "queue_limit": FAST_TASK_WORKERS}},
}
# A running run's worker writes a heartbeat every RUN_HEARTBEAT_S; one silent for RUN_DEAD_AFTER_S
# is dead, and the sweep (every minute, and when a worker starts) queues its run again.
RUN_HEARTBEAT_S = 5
RUN_DEAD_AFTER_S = 30
RUN_MAX_ATTEMPTS = 3
if REDIS_URL:
    Q_CLUSTER["django_redis"] = "default"
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 0.5

# --- Optimization ---------------------------------------------------------------------------
PROMPT_MAX_CHARS = env_int("PROMPT_MAX_CHARS", 50_000, minimum=100, maximum=1_000_000)
# Optimizations one user may submit per minute (web pages and the optimize command alike).
RUNS_PER_MINUTE = env_int("RUNS_PER_MINUTE", 20, minimum=1, maximum=100_000)
# Batches: how many prompts one may hold, how large its file may be, and how many items of one
# user's batches are queued or running at once (each is a run on the task queue; a few at a time
# keep to providers' rate limits and leave room for single runs). TASK_WORKERS bounds it too.
BATCH_MAX_ITEMS = env_int("BATCH_MAX_ITEMS", 5000, minimum=1, maximum=1_000_000)
BATCH_MAX_BYTES = env_int("BATCH_MAX_BYTES", 10 * 1024 * 1024, minimum=1024, maximum=1024**3)
BATCH_CONCURRENCY = env_int("BATCH_CONCURRENCY", 4, minimum=1, maximum=256)
# Monitoring: past these a tile turns red and the page shows a banner (a model's error rate and p95
# over the last hour, runs' p95, the oldest queued run, the disk holding DATA_DIR).
MONITORING_MAX_ERROR_RATE_PCT = env_int("MONITORING_MAX_ERROR_RATE_PCT", 10, minimum=1, maximum=100)
MONITORING_MAX_P95_MS = env_int("MONITORING_MAX_P95_MS", 30_000, minimum=100, maximum=3_600_000)
MONITORING_MAX_QUEUE_AGE_S = env_int("MONITORING_MAX_QUEUE_AGE_S", 120, minimum=1, maximum=86_400)
MONITORING_MAX_DISK_PCT = env_int("MONITORING_MAX_DISK_PCT", 90, minimum=1, maximum=100)
# A form's fields (not its files) may hold Django's default 2.5 MB: more prompts than that are
# uploaded as a file (BATCH_MAX_BYTES), and the 400 page says so (config.views.bad_request). Raising
# it would let any POST, an anonymous login's too, make the server hold that much.

# --- Model calls ----------------------------------------------------------------------------
# A provider that sends nothing back for LLM_FIRST_BYTE_TIMEOUT_S seconds is hung: the call fails
# over at once. LLM_CALL_DEADLINE_S bounds one call, retries and failover included.
LLM_FIRST_BYTE_TIMEOUT_S = env_int("LLM_FIRST_BYTE_TIMEOUT_S", 30, minimum=1, maximum=600)
LLM_CALL_DEADLINE_S = env_int("LLM_CALL_DEADLINE_S", 60, minimum=1, maximum=1800)
# Environment variables a provider's "API key variable" may name besides *_API_KEY ones.
PROVIDER_KEY_VARIABLES = env_list("PROVIDER_KEY_VARIABLES", [])

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
if TIME_ZONE not in zoneinfo.available_timezones():
    raise ImproperlyConfigured(
        f"TIME_ZONE must be an IANA time zone such as Europe/Paris, not {TIME_ZONE!r}."
    )
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles"))).expanduser().resolve()
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = DATA_DIR / "media"
BACKUP_KEEP_DAYS = env_int("BACKUP_KEEP_DAYS", 30, minimum=0, maximum=3650)  # rotation of the daily backup
BACKUP_KEEP_LAST = env_int("BACKUP_KEEP_LAST", 7, minimum=1, maximum=1000)  # ... and at least this many
# Where manage.py backup writes (created owner-only); DATA_DIR/backups when unset.
BACKUP_DIR = (
    Path(env_str("BACKUP_DIR")).expanduser().resolve() if env_str("BACKUP_DIR") else DATA_DIR / "backups"
)
# New backups are encrypted (AES-256-GCM) with this key when it is set; restoring one needs it.
BACKUP_ENCRYPTION_KEY = env_str("BACKUP_ENCRYPTION_KEY")
if BACKUP_ENCRYPTION_KEY is not None:
    from backups.crypto import key_refusal

    if _refusal := key_refusal(BACKUP_ENCRYPTION_KEY):
        raise ImproperlyConfigured(_refusal)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Backups kept in a Django storage (e.g. django-storages' S3) instead of BACKUP_DIR, off the web host.
if _backup_storage := storage_from_env():
    STORAGES["backups"] = _backup_storage

# --- Email ----------------------------------------------------------------------------------
# Budget alerts and password-reset links are emailed through SMTP when SMTP_HOST is set. Without it
# alerts are printed to the console and there is no password reset by email (a link in the log would
# let anyone who reads the log set the password).
DEFAULT_FROM_EMAIL = env_str("EMAIL_FROM", "Prompt Optimizer <noreply@localhost>")
SMTP_HOST = env_str("SMTP_HOST")
if SMTP_HOST:
    SMTP_OPTIONS = {
        "host": SMTP_HOST,
        "port": env_int("SMTP_PORT", 587, minimum=1, maximum=65535),
        "username": env_str("SMTP_USER", ""),
        "password": env_str("SMTP_PASSWORD", ""),
        "use_tls": env_bool("SMTP_STARTTLS", True),
        "use_ssl": env_bool("SMTP_SSL", False),
        "timeout": 10,
    }
    if SMTP_OPTIONS["use_tls"] and SMTP_OPTIONS["use_ssl"]:
        raise ImproperlyConfigured("Set SMTP_SSL=1 (port 465) or SMTP_STARTTLS=1 (port 587), not both.")
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": SMTP_OPTIONS}}
else:
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}

# --- Logging --------------------------------------------------------------------------------
# Every line carries the id of its request or task (X-Request-ID); the "access" logger writes one line
# per request. LOG_FORMAT=json: one JSON object a line (python-json-logger), for a log collector.
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
LOG_FORMAT = env_choice("LOG_FORMAT", "plain", ("plain", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",  # ISO 8601, UTC
            # Django's request logger passes the request along: its repr holds the query string.
            "reserved_attrs": [*JSON_LOG_RESERVED_ATTRS, "request"],
        },
    },
    "filters": {
        "disallowed_host_as_warning": {"()": "config.log_filters.DisallowedHostAsWarning"},
        "request_id": {"()": "config.log_filters.RequestIdFilter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "django.security.DisallowedHost": {"filters": ["disallowed_host_as_warning"]},
        # HTTP/2 header compression and the transport log whole header blocks (an API key among them)
        # at DEBUG: never, whatever LOG_LEVEL says.
        "hpack": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # httpx logs a line per HTTP request at INFO: each model call's usage record already holds
        # more (status, latency, tokens, cost), and the line was a model call's only log output.
        "httpx": {"level": "WARNING"},
        # The throttle's failures and lockouts are warnings; its INFO lines repeat each login twice.
        "axes": {"level": "WARNING"},
    },
}

# --- Metrics and error reporting ------------------------------------------------------------
# /metrics (Prometheus) answers a request with "Authorization: Bearer <METRICS_TOKEN>", or a staff
# session; without a token set, staff only.
METRICS_TOKEN = env_str("METRICS_TOKEN")
if METRICS_TOKEN is not None and len(METRICS_TOKEN) < 32:
    raise ImproperlyConfigured(
        "METRICS_TOKEN must be at least 32 characters long. Generate one with: "
        'python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
    )
# Where `manage.py serve` has gunicorn's workers write their metrics (prometheus-client's
# multiprocess mode), emptied at each start.
PROMETHEUS_MULTIPROC_DIR = DATA_DIR / "prometheus"
SENTRY_DSN = env_str("SENTRY_DSN")
if SENTRY_DSN:
    from config.error_reporting import sentry_init

    try:
        sentry_init(SENTRY_DSN)
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"SENTRY_DSN is not a Sentry DSN ({exc}); copy it from the project's Client Keys page, "
            "e.g. https://public@o0.ingest.sentry.io/0, or unset it."
        ) from None
