"""Settings for the SIEM: one module, every knob from the environment or `.env`.

Every variable of SPEC.md "Settings" is read here with its default. Bad values raise
`ImproperlyConfigured` with the variable's name, so an operator sees what to fix instead of a
traceback from deep inside Django.
"""

from __future__ import annotations

import os
from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# `.env` in the project root (or SIEM_ENV_FILE), if present; real environment variables win
# over it. Every manage.py command reads it, so a second shell needs nothing exported.
ENV_FILE = Path(os.environ.get("SIEM_ENV_FILE") or BASE_DIR / ".env")
if ENV_FILE.is_file() and not os.environ.get("SIEM_IGNORE_DOTENV"):
    env.read_env(ENV_FILE, overwrite=False)

# The development key is public (it is in this file); production must set its own.
DEV_SECRET_KEY = "django-insecure-siem-development-key-do-not-use-in-production"  # noqa: S105


def _typed(name: str, cast, default):
    """Read `name` with `cast`, turning a bad value into a clear ImproperlyConfigured."""
    try:
        return cast(name, default=default)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            f"{name}: invalid value {os.environ.get(name)!r} ({exc})"
        ) from exc


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}: expected true/false, got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: expected an integer, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}: must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_str(name: str, default: str) -> str:
    raw = os.environ.get(name)
    return default if raw is None else raw


DATA_DIR = Path(env_str("SIEM_DATA_DIR", str(BASE_DIR / "data")))

# --- Core -------------------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", DEV_SECRET_KEY)
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY: must not be empty")
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured(
        "Refusing to start with DEBUG=False and the development SECRET_KEY. "
        "Set SECRET_KEY in the environment or .env (`make run` writes a random one), "
        "or set DEBUG=True on a development machine."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

# Browser origins allowed to call the API and open WebSockets (besides ALLOWED_HOSTS).
CORS_ORIGINS = env_list("CORS_ORIGINS", [])
for _origin in CORS_ORIGINS:
    _parts = urlsplit(_origin)
    if _parts.scheme not in {"http", "https"} or not _parts.netloc:
        raise ImproperlyConfigured(
            f"CORS_ORIGINS: {_origin!r} is not an origin like http://host:port"
        )
CORS_ALLOWED_ORIGINS = CORS_ORIGINS
CORS_ALLOW_CREDENTIALS = env_bool("CORS_ALLOW_CREDENTIALS", False)
CSRF_TRUSTED_ORIGINS = CORS_ORIGINS

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served by us: /api/v1/docs/ works offline
    "channels",
    "siem",
    "accounts",
    "events",
    "alerts",
    "incidents",
    "agents",
    "realtime",
    "integrations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "siem.api_common.chunked_body_length_middleware",
    "siem.errors.DatabaseUnavailableMiddleware",  # a database outage: JSON 503 + Retry-After
]

ROOT_URLCONF = "siem.urls"
WSGI_APPLICATION = "siem.wsgi.application"
ASGI_APPLICATION = "siem.asgi.application"

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
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DEFAULT_DATABASE_URL = f"sqlite:///{DATA_DIR / 'siem.sqlite3'}"
DATABASE_URL = env_str("DATABASE_URL", DEFAULT_DATABASE_URL) or DEFAULT_DATABASE_URL


def database_from_url(url: str) -> dict:
    """Django DATABASES entry for `url`: sqlite://, postgres://, mssql://.

    SQL Server goes through mssql-django ("mssql" engine) with the mssql-python driver, which
    needs no system ODBC driver; `?driver=...` and other query options pass through to OPTIONS.
    """
    scheme = urlsplit(url).scheme
    if scheme not in {"sqlite", "postgres", "postgresql", "pgsql", "mssql"}:
        raise ImproperlyConfigured(
            f"DATABASE_URL: unsupported scheme {scheme!r}; use sqlite://, postgres:// or mssql://"
        )
    try:
        config = environ.Env.db_url_config(url)
    except Exception as exc:  # environ raises assorted errors on malformed URLs
        raise ImproperlyConfigured(f"DATABASE_URL: cannot parse ({exc})") from exc
    if scheme == "mssql":
        config["ENGINE"] = "mssql"
        options = config.setdefault("OPTIONS", {})
        options.setdefault("driver", "ODBC Driver 18 for SQL Server")
        # mssql-django 2.0: OPTIONS["python_driver"] = "mssql_python" selects the mssql-python
        # driver, which needs no system ODBC installation (?python_driver=pyodbc selects pyodbc).
        options.setdefault("python_driver", "mssql_python")
    elif config["ENGINE"] == "django.db.backends.sqlite3":
        Path(config["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        # Agents, workers and daphne write concurrently: wait for the lock instead of failing.
        config.setdefault("OPTIONS", {}).setdefault("timeout", 30)
        config["OPTIONS"].setdefault(
            "init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
        )
        config["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
    elif config["ENGINE"] == "django.db.backends.postgresql":
        # Under daphne every request runs in its own thread with its own connection, so 50
        # agents shipping at once open 50 connections per process ("too many clients").
        # DB_POOL_MAX_SIZE > 0 bounds that with psycopg's pool: requests wait for a connection.
        pool_size = env_int("DB_POOL_MAX_SIZE", 0, minimum=0)
        if pool_size:
            config.setdefault("OPTIONS", {})["pool"] = {
                "min_size": 1,
                "max_size": pool_size,
                "timeout": env_int("DB_POOL_TIMEOUT_SEC", 30, minimum=1),
            }
            config["CONN_MAX_AGE"] = 0  # the pool keeps the connections; Django must not
    config.setdefault("CONN_MAX_AGE", env_int("DB_CONN_MAX_AGE", 60, minimum=0))
    config.setdefault("CONN_HEALTH_CHECKS", True)
    config.setdefault("TEST", {})
    test_name = os.environ.get("SIEM_TEST_DB_NAME")
    if test_name:
        config["TEST"]["NAME"] = test_name
    return config


DATABASES = {"default": database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, Celery broker, presence ---------------------------------------------
# Unset REDIS_URL: `manage.py runsiem` starts an embedded Redis and records its URL in
# DATA_DIR/embedded-redis.url, which every process it starts (and any manage.py command
# run meanwhile) picks up from here.
EMBEDDED_REDIS_URL_FILE = DATA_DIR / "embedded-redis.url"


def _redis_url() -> tuple[str, bool]:
    explicit = os.environ.get("REDIS_URL", "").strip()
    if explicit:
        if urlsplit(explicit).scheme not in {"redis", "rediss", "unix"}:
            raise ImproperlyConfigured(
                f"REDIS_URL: expected redis://, rediss:// or unix://, got {explicit!r}"
            )
        return explicit, False
    if EMBEDDED_REDIS_URL_FILE.is_file():
        recorded = EMBEDDED_REDIS_URL_FILE.read_text().strip()
        if recorded:
            return recorded, True
    return "redis://127.0.0.1:6379/0", True


REDIS_URL, REDIS_EMBEDDED = _redis_url()
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "siem")

CHANNEL_LAYER_BACKEND = env_str(
    "CHANNEL_LAYER_BACKEND", "channels_redis.pubsub.RedisPubSubChannelLayer"
)
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": CHANNEL_LAYER_BACKEND,
        "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{REDIS_KEY_PREFIX}:layer"},
    }
}

# Real-time presence (docs/realtime.md): a socket's record expires TTL seconds after its process
# stops refreshing it (every REFRESH seconds); sockets re-check their session every RECHECK
# seconds as a safety net for a revocation message lost while Redis was unreachable.
REALTIME_PRESENCE_TTL_SEC = env_int("REALTIME_PRESENCE_TTL_SEC", 30, minimum=2)
REALTIME_PRESENCE_REFRESH_SEC = env_int("REALTIME_PRESENCE_REFRESH_SEC", 10, minimum=1)
if REALTIME_PRESENCE_REFRESH_SEC >= REALTIME_PRESENCE_TTL_SEC:
    raise ImproperlyConfigured(
        "REALTIME_PRESENCE_REFRESH_SEC must be below REALTIME_PRESENCE_TTL_SEC"
    )
REALTIME_SESSION_RECHECK_SEC = env_int("REALTIME_SESSION_RECHECK_SEC", 30, minimum=1)
# How broadcasts reach sockets (measured in docs/performance.md "Real-time fan-out"): `hub`
# (one Redis subscription per server process) or `layer` (Channels groups on CHANNEL_LAYERS).
# A socket whose unsent backlog stays above this many bytes for REALTIME_SLOW_CLIENT_SEC (or
# passes 16 times it) is closed with 4008 (realtime/backpressure.py); 0 disables the check.
REALTIME_MAX_BUFFER_BYTES = env_int("REALTIME_MAX_BUFFER_BYTES", 512 * 1024, minimum=0)
REALTIME_SLOW_CLIENT_SEC = env_int("REALTIME_SLOW_CLIENT_SEC", 10, minimum=1)
# Per-channel history for `?since=` (realtime/history.py): entries kept (approximately) and age.
REALTIME_HISTORY_MAX = env_int("REALTIME_HISTORY_MAX", 2000, minimum=1)
REALTIME_HISTORY_MAX_AGE_SEC = env_int("REALTIME_HISTORY_MAX_AGE_SEC", 600, minimum=1)
# Broadcasts kept in memory (per process) while Redis is unreachable, published once it is back.
REALTIME_BACKLOG_MAX = env_int("REALTIME_BACKLOG_MAX", 10_000, minimum=0)
# Lifetime of a one-time `?ticket=` from POST /api/v1/auth/ws-ticket (realtime/tickets.py).
REALTIME_TICKET_TTL_SEC = env_int("REALTIME_TICKET_TTL_SEC", 30, minimum=1)
# A socket's identity (session valid, user, role) cached in Redis this long (realtime/auth.py);
# revocations, group and user changes invalidate it at once.
REALTIME_AUTH_CACHE_SEC = env_int("REALTIME_AUTH_CACHE_SEC", 300, minimum=1)
REALTIME_FANOUT = env_str("REALTIME_FANOUT", "hub").strip().lower()
if REALTIME_FANOUT not in {"hub", "layer"}:
    raise ImproperlyConfigured(f"REALTIME_FANOUT: expected hub or layer, got {REALTIME_FANOUT!r}")

# --- Celery ------------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# --- Operations: Redis Sentinel, health and metrics (docs/deployment.md) -------------------------
# With REDIS_SENTINELS ("host:port,host:port") and REDIS_SENTINEL_MASTER, every Redis user — the
# channel layer, the Celery broker, the app's own clients (siem/redis.py) — talks to the master
# the sentinels name; REDIS_URL then only supplies the master's password and database number.
REDIS_SENTINEL_MASTER = env_str("REDIS_SENTINEL_MASTER", "").strip()
REDIS_SENTINEL_PASSWORD = env_str("REDIS_SENTINEL_PASSWORD", "")
try:
    from siem.redis import master_kwargs as _master_kwargs
    from siem.redis import sentinel_hosts as _sentinel_hosts

    REDIS_SENTINELS = _sentinel_hosts(env_str("REDIS_SENTINELS", ""))
except ValueError as exc:
    raise ImproperlyConfigured(f"REDIS_SENTINELS: {exc}") from exc
if REDIS_SENTINELS and not REDIS_SENTINEL_MASTER:
    raise ImproperlyConfigured("REDIS_SENTINELS is set: REDIS_SENTINEL_MASTER must name the master")
if REDIS_SENTINELS:
    _sentinel_auth = {"password": REDIS_SENTINEL_PASSWORD} if REDIS_SENTINEL_PASSWORD else {}
    CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [
        {
            "sentinels": REDIS_SENTINELS,
            "master_name": REDIS_SENTINEL_MASTER,
            "sentinel_kwargs": _sentinel_auth,
            **_master_kwargs(REDIS_URL),
        }
    ]
    _master = _master_kwargs(REDIS_URL)
    _auth = f":{_master['password']}@" if "password" in _master else ""
    CELERY_BROKER_URL = ";".join(
        f"sentinel://{_auth}{host}:{port}/{_master.get('db', 0)}" for host, port in REDIS_SENTINELS
    )
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "master_name": REDIS_SENTINEL_MASTER,
        "sentinel_kwargs": _sentinel_auth,
    }
# GET /metrics: with METRICS_TOKEN set, only `Authorization: Bearer <METRICS_TOKEN>` is served;
# without it, only loopback peers are (a SIEM's internals are not for the internet).
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# --- Authentication ----------------------------------------------------------------------------
JWT_ACCESS_TOKEN_LIFETIME_SEC = env_int("JWT_ACCESS_TOKEN_LIFETIME_SEC", 28800, minimum=60)
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_FAILURE_WINDOW_SEC = env_int("LOGIN_FAILURE_WINDOW_SEC", 300, minimum=1)

# --- Trust: throttles, proxies, roles (issue 13; docs/security.md) ----------------------------
# Failed logins lock (user, address) at LOGIN_FAILURE_LIMIT, the user from every address only at
# LOGIN_FAILURE_USER_LIMIT (so nobody can lock an account out from one address), and one
# address spraying many names at LOGIN_FAILURE_IP_LIMIT; all per LOGIN_FAILURE_WINDOW_SEC.
LOGIN_FAILURE_USER_LIMIT = env_int("LOGIN_FAILURE_USER_LIMIT", 10 * LOGIN_FAILURE_LIMIT, minimum=1)
LOGIN_FAILURE_IP_LIMIT = env_int("LOGIN_FAILURE_IP_LIMIT", 4 * LOGIN_FAILURE_LIMIT, minimum=1)
# Reverse proxies (addresses or CIDR networks) whose X-Forwarded-For is believed
# (siem/client_address.py); empty: the TCP peer is the client, the header is ignored.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
for _proxy in TRUSTED_PROXIES:
    try:
        ip_network(_proxy, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(
            f"TRUSTED_PROXIES: {_proxy!r} is not an IP address or network ({_exc})"
        ) from _exc
# What a client is told to wait when the database is unreachable (JSON 503, siem/errors.py).
DB_UNAVAILABLE_RETRY_AFTER_SEC = env_int("DB_UNAVAILABLE_RETRY_AFTER_SEC", 5, minimum=1)

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=JWT_ACCESS_TOKEN_LIFETIME_SEC),
    "ALGORITHM": "HS256",
    "SIGNING_KEY": SECRET_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "JTI_CLAIM": "jti",
    "UPDATE_LAST_LOGIN": True,
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Background work ---------------------------------------------------------------------------
AI_PROCESS_INTERVAL_SEC = env_int("AI_PROCESS_INTERVAL_SEC", 60, minimum=1)
AI_BATCH_SIZE = env_int("AI_BATCH_SIZE", 10, minimum=1)
AI_RETRY_ATTEMPTS = env_int("AI_RETRY_ATTEMPTS", 3, minimum=1)
AI_PROVIDER = env_str("AI_PROVIDER", "builtin").strip().lower()
if AI_PROVIDER not in {"builtin", "deepseek", "yandexgpt", "openai"}:
    raise ImproperlyConfigured(
        f"AI_PROVIDER: expected builtin, deepseek, yandexgpt or openai, got {AI_PROVIDER!r}"
    )
AI_BASE_URL = env_str("AI_BASE_URL", "")
AI_API_KEY = env_str("AI_API_KEY", "")
AI_MODEL = env_str("AI_MODEL", "")
AI_FOLDER_ID = env_str("AI_FOLDER_ID", "")
AI_TIMEOUT_SEC = env_int("AI_TIMEOUT_SEC", 30, minimum=1)
AI_MASK_SENSITIVE = env_bool("AI_MASK_SENSITIVE", False)
# A failed attempt is retried after AI_RETRY_BACKOFF_SEC, doubling each time (0: next run).
AI_RETRY_BACKOFF_SEC = env_int("AI_RETRY_BACKOFF_SEC", 60, minimum=0)
# A claim older than this belongs to a worker that died: the events go back to the queue.
AI_CLAIM_TIMEOUT_SEC = env_int("AI_CLAIM_TIMEOUT_SEC", 600, minimum=10)
AI_NOTIFY_THRESHOLD = env_int("AI_NOTIFY_THRESHOLD", 70, minimum=0)
AI_ALERT_THRESHOLD = env_int("AI_ALERT_THRESHOLD", 85, minimum=0)
if AI_ALERT_THRESHOLD < AI_NOTIFY_THRESHOLD:
    raise ImproperlyConfigured("AI_ALERT_THRESHOLD must not be below AI_NOTIFY_THRESHOLD")

DASHBOARD_UPDATE_INTERVAL_SEC = env_int("DASHBOARD_UPDATE_INTERVAL_SEC", 30, minimum=1)

# --- Retention (siem/retention.py, docs/operations.md "Retention and statistics") ---
# Days an event is kept after it was received, and a closed alert after it was closed (0: keep
# forever); events of open alerts and incidents stay. Purged daily by beat: on PostgreSQL whole
# day partitions of events; otherwise (and for alerts) in batches of RETENTION_BATCH_SIZE rows,
# each its own short transaction, RETENTION_BATCH_PAUSE_MS apart.
EVENTS_RETENTION_DAYS = env_int("EVENTS_RETENTION_DAYS", 90, minimum=0)
ALERTS_RETENTION_DAYS = env_int("ALERTS_RETENTION_DAYS", 365, minimum=0)
RETENTION_BATCH_SIZE = env_int("RETENTION_BATCH_SIZE", 1000, minimum=1)
RETENTION_BATCH_PAUSE_MS = env_int("RETENTION_BATCH_PAUSE_MS", 20, minimum=0)
# PostgreSQL: the events table is partitioned by day of `received_at` (events/partitions.py);
# beat creates the partitions this many days ahead, and the purge drops expired days whole,
# waiting at most PARTITION_LOCK_TIMEOUT_MS for each short table lock (then retries later).
EVENTS_PARTITION_DAYS_AHEAD = env_int("EVENTS_PARTITION_DAYS_AHEAD", 7, minimum=1)
PARTITION_LOCK_TIMEOUT_MS = env_int("PARTITION_LOCK_TIMEOUT_MS", 2000, minimum=10)
AGENT_OFFLINE_AFTER_SEC = env_int("AGENT_OFFLINE_AFTER_SEC", 300, minimum=10)
AGENT_WATCHDOG_INTERVAL_SEC = env_int("AGENT_WATCHDOG_INTERVAL_SEC", 30, minimum=1)
# Empty enrollment key: enrollment is disabled (safe default).
AGENT_ENROLLMENT_KEY = env_str("AGENT_ENROLLMENT_KEY", "")
# Wrong enrollment keys per client address before 429, and the counting window.
ENROLLMENT_FAILURE_LIMIT = env_int("ENROLLMENT_FAILURE_LIMIT", 10, minimum=1)
ENROLLMENT_FAILURE_WINDOW_SEC = env_int("ENROLLMENT_FAILURE_WINDOW_SEC", 300, minimum=1)

# --- Ingestion limits (documented in README) ---------------------------------------------------
EVENTS_BULK_MAX = env_int("EVENTS_BULK_MAX", 1000, minimum=1)
AGENT_BATCH_MAX = env_int("AGENT_BATCH_MAX", 1000, minimum=1)
# Requests per server process storing events at once (bulk API, agent batches); 0 = no limit.
# Others wait up to INGEST_QUEUE_TIMEOUT_SEC, then get 503 + Retry-After (siem/concurrency.py).
INGEST_MAX_CONCURRENCY = env_int("INGEST_MAX_CONCURRENCY", 2, minimum=0)
INGEST_QUEUE_TIMEOUT_SEC = env_int("INGEST_QUEUE_TIMEOUT_SEC", 30, minimum=0)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 10 * 1024 * 1024, minimum=1024)

# --- Detection ---------------------------------------------------------------------------------
SIGMA_RULES_DIR = env_str("SIGMA_RULES_DIR", "")
# Defaults of the built-in rules (docs/detection.md); the admin (DetectionRule) overrides them.
DETECTION_ENABLED = env_bool("DETECTION_ENABLED", True)
DETECTION_BRUTE_FORCE_THRESHOLD = env_int("DETECTION_BRUTE_FORCE_THRESHOLD", 8, minimum=2)
DETECTION_BRUTE_FORCE_WINDOW_SEC = env_int("DETECTION_BRUTE_FORCE_WINDOW_SEC", 240, minimum=1)
DETECTION_SPRAY_THRESHOLD = env_int("DETECTION_SPRAY_THRESHOLD", 6, minimum=2)
DETECTION_SPRAY_WINDOW_SEC = env_int("DETECTION_SPRAY_WINDOW_SEC", 600, minimum=1)
# Successful logon after repeated failures: N failures, then a success, all within the window.
DETECTION_FAILED_THEN_SUCCESS_THRESHOLD = env_int(
    "DETECTION_FAILED_THEN_SUCCESS_THRESHOLD", 5, minimum=1
)
DETECTION_FAILED_THEN_SUCCESS_WINDOW_SEC = env_int(
    "DETECTION_FAILED_THEN_SUCCESS_WINDOW_SEC", 600, minimum=1
)
# A repeat more than this after the open alert's last_seen (event time) opens a new alert.
DETECTION_DEDUP_WINDOW_SEC = env_int("DETECTION_DEDUP_WINDOW_SEC", 86400, minimum=1)
DETECTION_STATE_TTL_SEC = env_int("DETECTION_STATE_TTL_SEC", 86400, minimum=60)
DETECTION_STATE_MAX_EVENTS = env_int("DETECTION_STATE_MAX_EVENTS", 10000, minimum=10)
DETECTION_CONFIG_TTL_SEC = env_int("DETECTION_CONFIG_TTL_SEC", 5, minimum=0)

# --- Events pipeline (post-commit outbox and relay; events/pipeline.py, docs/realtime.md) -------
# A batch's post-commit work (broadcast, detection) is leased to the writing process this long;
# after that the relay takes it over (the process is presumed dead).
PIPELINE_LEASE_SEC = env_int("PIPELINE_LEASE_SEC", 10, minimum=1)
# How often Celery beat runs the relay (events.tasks.drain_pipeline).
PIPELINE_RELAY_INTERVAL_SEC = env_int("PIPELINE_RELAY_INTERVAL_SEC", 2, minimum=1)
# Outbox rows completed per relay pass at most; failed steps are retried after 1, 2, 4 … s,
# at most this long apart.
PIPELINE_RELAY_BATCH = env_int("PIPELINE_RELAY_BATCH", 200, minimum=1)
PIPELINE_RETRY_MAX_SEC = env_int("PIPELINE_RETRY_MAX_SEC", 10, minimum=1)

# --- Hunting (docs/investigation.md) ----------------------------------------------------------
# Events one export (GET /api/v1/events/export/) streams at most, newest first.
EXPORT_MAX_EVENTS = env_int("EXPORT_MAX_EVENTS", 100_000, minimum=1)

# --- Notifications out: integrations (docs/integrations.md) -----------------------------------
# Links in messages point here (`<SITE_URL>/alerts/<id>/`).
SITE_URL = env_str("SITE_URL", "http://localhost:8000").strip().rstrip("/")
if urlsplit(SITE_URL).scheme not in {"http", "https"} or not urlsplit(SITE_URL).netloc:
    raise ImproperlyConfigured(f"SITE_URL: expected http(s)://host[:port], got {SITE_URL!r}")
# Per request (HTTP and SMTP); a hanging endpoint holds one worker slot this long, no more.
INTEGRATION_TIMEOUT_SEC = env_int("INTEGRATION_TIMEOUT_SEC", 5, minimum=1)
# Attempts per message; failed ones (timeout, connection error, 5xx, 429) wait
# INTEGRATION_RETRY_BACKOFF_SEC, doubled after each attempt.
INTEGRATION_MAX_ATTEMPTS = env_int("INTEGRATION_MAX_ATTEMPTS", 5, minimum=1)
INTEGRATION_RETRY_BACKOFF_SEC = env_int("INTEGRATION_RETRY_BACKOFF_SEC", 10, minimum=0)
# Attempts of one integration in progress at once (counted in Redis); its other messages wait in
# the integration's line, so a dead endpoint never takes more worker slots than this
# (runsiem's worker has 2).
INTEGRATION_MAX_IN_FLIGHT = env_int("INTEGRATION_MAX_IN_FLIGHT", 1, minimum=1)
# Alert messages per integration per window; the rest of the window goes out as one digest.
INTEGRATION_RATE_PER_MIN = env_int("INTEGRATION_RATE_PER_MIN", 20, minimum=1)
INTEGRATION_RATE_WINDOW_SEC = env_int("INTEGRATION_RATE_WINDOW_SEC", 60, minimum=1)
TELEGRAM_BOT_TOKEN = env_str("TELEGRAM_BOT_TOKEN", "")
TELEGRAM_API_BASE = env_str("TELEGRAM_API_BASE", "https://api.telegram.org").strip().rstrip("/")
# Django's SMTP back end (e-mail integrations).
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are mutually exclusive")
EMAIL_TIMEOUT = INTEGRATION_TIMEOUT_SEC
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "siem@localhost")

# --- Detection: Sigma rule selection (issue 15) ------------------------------------------------
# Rules below this level, or with one of these statuses, are not loaded (listed as skipped).
SIGMA_MIN_LEVEL = env_str("SIGMA_MIN_LEVEL", "informational").lower()
SIGMA_SKIP_STATUSES = [
    s.lower() for s in env_list("SIGMA_SKIP_STATUSES", ["deprecated", "unsupported"])
]
# `manage.py sigma_rules --update`: the rule package (zip or tar.gz) to download, its size limit,
# and how many rules it must load to be installed (alerts/detection/updates.py).
# Default: SigmaHQ's published core package (all products; non-Windows rules are listed refused).
SIGMA_RULES_URL = env_str(
    "SIGMA_RULES_URL", "https://github.com/SigmaHQ/sigma/releases/latest/download/sigma_core.zip"
)
SIGMA_RULES_MAX_BYTES = env_int("SIGMA_RULES_MAX_BYTES", 200 * 1024 * 1024, minimum=1024)
SIGMA_RULES_MIN_LOADED = env_int("SIGMA_RULES_MIN_LOADED", 100, minimum=1)
if SIGMA_MIN_LEVEL not in ("informational", "low", "medium", "high", "critical"):
    raise ImproperlyConfigured(
        f"SIGMA_MIN_LEVEL: informational, low, medium, high or critical, not {SIGMA_MIN_LEVEL!r}"
    )

# --- REST framework ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.SessionJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["siem.api_common.LimitedJSONParser"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "siem.api_common.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "siem.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SIEM API",
    "DESCRIPTION": "Security events, alerts, incidents and agents, with live WebSocket updates.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Swagger UI from our own static files (drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "AlertStatusEnum": "alerts.models.AlertStatus",
        "IncidentStatusEnum": "incidents.models.IncidentStatus",
        "AgentStatusEnum": "agents.models.AgentStatus",
        "TaskStatusEnum": "incidents.models.TaskStatus",  # incident tasks (the workspace)
    },
    # Described even before an agent view uses it; siem/openapi.py attaches it to those views.
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "AgentToken": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`Authorization: Agent <agent_token>`, the token returned once by "
                "POST /api/v1/agents/register/. Agent tokens only register, heartbeat and ship "
                "events; user endpoints refuse them.",
            }
        }
    },
}

# --- I18N, static ------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Security defaults -------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- Logging -----------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_tokens": {"()": "siem.logging.RedactTokensFilter"}},
    "formatters": {
        # The guide's monitoring lines read "INFO - User admin connecting to alerts channel".
        "plain": {"format": "%(levelname)s - %(message)s"},
        "timed": {"format": "%(asctime)s %(levelname)s - %(name)s - %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_tokens"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.channels.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "daphne": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "celery": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
