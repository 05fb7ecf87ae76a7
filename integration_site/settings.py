"""Settings, read from the environment (cookiecutter-django style).

Every value has an embedded default for a laptop (`make run`): SQLite, a
filesystem Celery broker under var/, DEBUG on only when DJANGO_DEBUG says so.
Production sets DATABASE_URL, REDIS_URL, DJANGO_SECRET_KEY and
FIELD_ENCRYPTION_KEYS (see README.md).
"""

import base64
import hashlib
from datetime import timedelta
from pathlib import Path

import environ

from integration_site.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the embedded SQLite file and broker live here

if DEBUG:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="insecure-development-key-only-for-make-run")
else:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY")

ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "axes",
    "auditlog",
    "destinations",
]
if DEBUG:
    # The Talon.One stand-in (`run_talon_sandbox`) for `make run`; tests add it too.
    INSTALLED_APPS.append("talon_sandbox")

MIDDLEWARE = [
    # First: probes answer by address, whatever DJANGO_ALLOWED_HOSTS says.
    "destinations.health.HealthProbeMiddleware",
    "integration_site.logging.RequestContextMiddleware",
    "destinations.metrics.IngestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Records who made each change in the value history (django-auditlog).
    "auditlog.middleware.AuditlogMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lockout into the 429 response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "integration_site.urls"
WSGI_APPLICATION = "integration_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat write to one file: WAL lets readers run beside the
    # writer, IMMEDIATE takes the write lock up front instead of failing late.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out login before the password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Full, sortable timestamps in the admin: an audit log needs the seconds.
FORMAT_MODULE_PATH = ["integration_site.formats"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Security headers; production (DEBUG off) gets the strict values that
# `manage.py check --deploy` asks for.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Admin login throttling (django-axes): after AXES_FAILURE_LIMIT failed logins
# for a user name, that user name is locked for the cool-off (429), from any
# address, so spreading guesses over many addresses gains nothing. Not per IP:
# behind the TLS proxy every client has the proxy's address, and one typo-prone
# user would lock everyone out. `manage.py axes_reset_username NAME` lifts a
# lockout early.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # not a banner line from every process at start
# axes.W006 warns when lockouts can be dodged by rotating the User-Agent or
# cookies, and asks for the IP in the key; a lockout keyed on the user name
# alone cannot be dodged that way (see above, and docs/security.md).
SILENCED_SYSTEM_CHECKS = ["axes.W006"]

# Field encryption (Fernet). The first key encrypts; all keys decrypt, so a
# new key can be put in front and the old one kept until `rotate_secrets` ran.
_dev_fernet_key = base64.urlsafe_b64encode(hashlib.sha256(SECRET_KEY.encode()).digest()).decode()
FIELD_ENCRYPTION_KEYS = env.list(
    "FIELD_ENCRYPTION_KEYS", default=[_dev_fernet_key] if DEBUG else []
)
if not FIELD_ENCRYPTION_KEYS:
    raise environ.ImproperlyConfigured(
        "Set FIELD_ENCRYPTION_KEYS (comma-separated Fernet keys) when DJANGO_DEBUG is off."
    )

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Talon.One destination for Segment",
    "DESCRIPTION": "Receives Segment events and delivers them to Talon.One.",
    "VERSION": "1.0.0",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "destinations.api.schema.require_request_bodies",
    ],
}

# --- Celery -----------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        # Delivery delays live in the database, so a message never waits long
        # in Redis; an unacknowledged one comes back after this many seconds.
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=600),
        # CELERY_BROKER_CONNECTION_TIMEOUT never reaches redis-py: without these, a
        # Redis that accepts connections but does not answer hangs ingest's nudge.
        # The worker is unaffected: kombu's BRPOP blocks for 1 s, well under 5 s.
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
    }
    # Ingest's nudge publishes on a connection of its own, with short timeouts and
    # no retry: a frozen Redis costs an answer about a second, not the 15 s of the
    # options above with a retry (the sweeper queues the flush once Redis is back).
    NUDGE_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "socket_connect_timeout": 0.5,
        "socket_timeout": 0.5,
        "max_retries": 0,  # kombu's own reconnection, before the first publish
    }
else:
    # No server needed: kombu's filesystem transport, for `make run`.
    CELERY_BROKER_URL = "filesystem://localhost/"  # with a host: no kombu warning per connection
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
    NUDGE_BROKER_TRANSPORT_OPTIONS = {}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="celery")
# Ingest must answer fast even when the broker is down: the sweeper re-queues.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "sweep-due-deliveries": {
        "task": "destinations.tasks.sweep",
        "schedule": env.float("DELIVERY_SWEEP_SECONDS", default=5.0),
    },
    "purge-old-audit-rows": {
        "task": "destinations.tasks.purge_audit_log",
        "schedule": timedelta(hours=1),
    },
    "purge-old-seen-messages": {
        "task": "destinations.tasks.purge_seen_messages",
        "schedule": timedelta(hours=6),
    },
    "refresh-attribute-catalogs": {
        "task": "destinations.tasks.refresh_attribute_catalogs",
        "schedule": timedelta(days=1),
    },
}

# --- Delivery to Talon.One ---------------------------------------------------
TALON_CONNECT_TIMEOUT = env.float("TALON_CONNECT_TIMEOUT", default=5.0)
TALON_READ_TIMEOUT = env.float("TALON_READ_TIMEOUT", default=30.0)
# Hosts that may be reached over plain http (the local sandbox); https elsewhere.
TALON_HTTP_ALLOWED_HOSTS = env.list(
    "TALON_HTTP_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"] if DEBUG else []
)
DELIVERY_MAX_AGE = timedelta(seconds=env.int("DELIVERY_MAX_AGE_SECONDS", default=24 * 3600))
DELIVERY_BACKOFF_BASE_SECONDS = env.float("DELIVERY_BACKOFF_BASE_SECONDS", default=2.0)
DELIVERY_BACKOFF_MAX_SECONDS = env.float("DELIVERY_BACKOFF_MAX_SECONDS", default=600.0)
DELIVERY_BATCH_SIZE = env.int("DELIVERY_BATCH_SIZE", default=1000)
# Added to the request timeouts to make a flusher's lease: how long a destination
# waits before another worker takes over from a flusher that died.
DELIVERY_LEASE_MARGIN_SECONDS = env.float("DELIVERY_LEASE_MARGIN_SECONDS", default=30.0)
# A flush hands the worker back after this long, so destinations take turns.
DELIVERY_FLUSH_SECONDS = env.float("DELIVERY_FLUSH_SECONDS", default=60.0)
# Flushers per destination (PostgreSQL only), each for a share of its profiles
# and of its rate limit: size the worker's concurrency to it.
DELIVERY_SHARDS = env.int("DELIVERY_SHARDS", default=1)
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=30)
# The messageIds received are remembered longer than the audit rows: a request
# replayed after its events were purged is still a duplicate.
DEDUPE_RETENTION_DAYS = env.int("DEDUPE_RETENTION_DAYS", default=90)
# An attribute Talon.One refused is left out of updates for this long, then tried
# again (sooner when the destination's attribute rows change or on redelivery).
REFUSED_ATTRIBUTE_RETRY = timedelta(
    seconds=env.int("REFUSED_ATTRIBUTE_RETRY_SECONDS", default=3600)
)

# --- Ingest limits (Segment's own) -------------------------------------------
# Webhooks (Actions) batches hold up to 4,000 events and 4 MB by default (more
# with its JSON around them); Segment never retries a 413, so leave room.
INGEST_MAX_REQUEST_BYTES = env.int("INGEST_MAX_REQUEST_BYTES", default=5 * 1024 * 1024)
INGEST_MAX_EVENT_BYTES = env.int("INGEST_MAX_EVENT_BYTES", default=32 * 1024)
# Segment's HTTP Tracking API (what SDKs send to /v1/...) takes 500 KB a batch.
TRACKING_API_MAX_REQUEST_BYTES = env.int("TRACKING_API_MAX_REQUEST_BYTES", default=500 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(INGEST_MAX_REQUEST_BYTES, TRACKING_API_MAX_REQUEST_BYTES) + 1024
# How long a web process keeps a destination, its secrets and mappings for ingest:
# other processes see a change (a disabled destination, a new secret) within it.
INGEST_CONFIG_CACHE_SECONDS = env.float("INGEST_CONFIG_CACHE_SECONDS", default=5)

# --- Metrics (/metrics, Prometheus) -------------------------------------------
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")  # empty: /metrics answers 404
METRICS_WINDOW_SECONDS = env.int("METRICS_WINDOW_SECONDS", default=300)

# Readable text by default; LOG_FORMAT=json for one JSON object a line. Both carry
# the request id and destination of the request or flush (integration_site/logging.py).
LOGGING = logging_config(
    env.str("LOG_FORMAT", default="text"), env.str("LOG_LEVEL", default="INFO")
)
# Celery workers and beat keep this configuration rather than install their own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
