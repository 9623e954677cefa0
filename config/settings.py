"""Settings, read from the environment.

Every setting is listed in `.env.example` with a one-line comment. Every one is
read, and checked, here, through the typed helpers of config/env.py: a bad value,
or settings that contradict each other, stop start-up with a message naming the
variable. No app checks settings again.
"""

import re
from pathlib import Path
from urllib.parse import urlsplit

import environ

from config.celery import broker_transport_options
from config.env import (
    env_addresses,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_log_level,
    env_networks,
    env_numbers,
    env_secret,
    env_str,
    env_zone,
    require,
)
from core import __version__

BASE_DIR = Path(__file__).resolve().parent.parent
# What the home page, the admin and the API docs call the service.
SERVICE_NAME = "Stage-based messaging store"
VAR_DIR = BASE_DIR / "var"

# --- Core -------------------------------------------------------------------

DEBUG = env_bool("DEBUG", False)

# Unset while DEBUG is off: "", which Django refuses to use (see MISSING_SECRETS below).
SECRET_KEY = env_secret("SECRET_KEY", debug=DEBUG, development_value="insecure-local-development-key")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
CSRF_FAILURE_VIEW = "core.views.csrf_failure"

# --- Security (HTTPS and headers) ------------------------------------------
# Every HTTPS switch is off by default, so that local development on plain HTTP
# works; production turns them on (docs/deploy.md; `manage.py check --deploy`).

# Set when a proxy terminates TLS and sends X-Forwarded-Proto (then only that proxy may reach the web processes).
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Redirect plain-HTTP requests to HTTPS (Django's paths; the proxy redirects everything else).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Paths answered over plain HTTP even so: health checks and metrics scrapes that reach a web process directly.
SECURE_REDIRECT_EXEMPT = [r"^api/health/$", r"^metrics$"]
# Seconds browsers must use HTTPS only for this host (Strict-Transport-Security); 0: no header.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
# Whether Strict-Transport-Security covers every subdomain too.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
# Whether Strict-Transport-Security asks to be put in browsers' preload lists (hard to undo).
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Send the admin's session and CSRF cookies over HTTPS only.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
# Headers on every response (the lean cache and topics paths send the same: core/asgi.py).
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = env_str("SECURE_REFERRER_POLICY", "same-origin")
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "core",
    "accounts",
    "cache_api",
    "topics",
    "contentstore",
    "jobs",
    "subscriptions",
    "webhooks",
    "dashboard",
    "adopting",
]

MIDDLEWARE = [
    "core.middleware.RequestMetricsMiddleware",
    # Outside the others: it sees each response once it is rendered (core/request_memory.py).
    "core.request_memory.ReleaseRequestMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
# Messages stay on the server: the admin shows a new token's secret through one.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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

# --- Database ---------------------------------------------------------------

DATABASES = {"default": environ.Env.db_url_config(env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and scheduler share the file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    # Seconds a database connection is kept open between requests.
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The hot statements of job delivery are prepared on each PostgreSQL connection that runs them (core.db.
# prepared_cursor). Behind PgBouncer in transaction mode, that needs PgBouncer 1.21 or later with
# max_prepared_statements set; turn it off for an older one.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
if DATABASE_PREPARED_STATEMENTS and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # psycopg prepares nothing while this is None (Django's default); a count no statement reaches prepares
    # only those asked to be (core.db.prepared_cursor), none by how often they run.
    DATABASES["default"]["OPTIONS"] = {**DATABASES["default"].get("OPTIONS", {}), "prepare_threshold": 2**63 - 1}

# --- Redis and Celery -------------------------------------------------------

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
# Seconds to wait for Redis to connect or answer before the request fails with 503.
REDIS_SOCKET_TIMEOUT = env_int("REDIS_SOCKET_TIMEOUT", 5, minimum=1)
# Most Redis connections one web process opens for the cache and topics paths.
REDIS_MAX_CONNECTIONS = env_int("REDIS_MAX_CONNECTIONS", 200, minimum=1)
# Redis Cluster nodes (host:port, comma-separated) for cache items and topic streams; empty: REDIS_URL.
DATA_REDIS_CLUSTER_NODES = env_list("DATA_REDIS_CLUSTER_NODES", [])
require(
    all(host and port.isdigit() for host, _, port in (node.rpartition(":") for node in DATA_REDIS_CLUSTER_NODES)),
    f"DATA_REDIS_CLUSTER_NODES must be host:port items, comma-separated, not {DATA_REDIS_CLUSTER_NODES!r}.",
)
# The cluster nodes' password (requirepass / masterauth); empty: none.
DATA_REDIS_CLUSTER_PASSWORD = env_str("DATA_REDIS_CLUSTER_PASSWORD", "")

# Sentinels (host:port, comma-separated) that name the Redis primary; unset: REDIS_URL's host is the Redis.
REDIS_SENTINELS = env_addresses("REDIS_SENTINELS", [])
# The name the Sentinels monitor the primary under (their `sentinel monitor <name> ...`).
REDIS_SENTINEL_MASTER = env_str("REDIS_SENTINEL_MASTER", "")
# The Sentinels' own password (their requirepass), if they ask for one; REDIS_URL's is the data nodes'.
REDIS_SENTINEL_PASSWORD = env_str("REDIS_SENTINEL_PASSWORD", "")
require(
    bool(REDIS_SENTINELS) == bool(REDIS_SENTINEL_MASTER),
    "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together: set both, or neither.",
)


def _sentinel_broker_url(redis_url: str, sentinels: tuple[tuple[str, int], ...]) -> str:
    """kombu's URL for a broker behind Sentinel: every Sentinel, each with REDIS_URL's credentials and database."""
    parts = urlsplit(redis_url)
    credentials = parts.netloc.rpartition("@")[0]
    login = f"{credentials}@" if credentials else ""
    return ";".join(f"sentinel://{login}{f'[{h}]' if ':' in h else h}:{p}{parts.path}" for h, p in sentinels)


# The broker: REDIS_URL's Redis when unset, through the Sentinels when REDIS_SENTINELS is set;
# or RabbitMQ (amqp://user:password@host:5672/vhost): docs/deploy.md.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(CELERY_BROKER_URL)
if REDIS_SENTINELS and not env_str("CELERY_BROKER_URL"):
    CELERY_BROKER_URL = _sentinel_broker_url(REDIS_URL, REDIS_SENTINELS)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "master_name": REDIS_SENTINEL_MASTER,
        "sentinel_kwargs": {
            "password": REDIS_SENTINEL_PASSWORD or None,
            "socket_timeout": REDIS_SOCKET_TIMEOUT,
            "socket_connect_timeout": REDIS_SOCKET_TIMEOUT,
        },
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
# Seconds a task may run before the worker kills it (hard) or raises in it (soft).
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 270, minimum=1)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "core.beat:DatabaseScheduler"  # django-celery-beat's, surviving a database restart
DJANGO_CELERY_BEAT_TZ_AWARE = True
CELERY_BEAT_SYNC_EVERY = 1  # each run time is saved as it is sent, for a scheduler that takes over
# Seconds the beat lease lasts after its holder's last renewal (renewed every fifth of it): a
# standby scheduler takes over at most this long (and a fifth) after the leader stopped.
SCHEDULER_LEASE_SECONDS = env_int("SCHEDULER_LEASE_SECONDS", 10, minimum=3)
# The task each content store schedule's periodic task runs: the send pipeline's (not an environment setting).
SCHEDULE_FIRE_TASK = "subscriptions.send_schedule"
# Loops every scheduler process runs beside beat: each a function that starts a thread and answers
# (thread, stop event) (not an environment setting).
SCHEDULER_LOOPS = ("jobs.dispatcher.start_dispatcher_thread", "webhooks.relay.start_relay_thread")

# --- Internationalisation ---------------------------------------------------

LANGUAGE_CODE = "en-us"
# Zone for the admin's display and for times given without an offset.
TIME_ZONE = env_zone("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static and media files -------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
# Where binary content files live: "filesystem" (MEDIA_ROOT) or "s3" (an S3-compatible bucket shared by every machine).
MEDIA_STORAGE = env_choice("MEDIA_STORAGE", "filesystem", ["filesystem", "s3"])
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
if MEDIA_STORAGE == "s3":
    # django-storages' names; the access key and secret come from the environment (AWS_ACCESS_KEY_ID,
    # AWS_SECRET_ACCESS_KEY) or the machine's role, read by boto3 itself.
    AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
    require(AWS_STORAGE_BUCKET_NAME is not None, "AWS_STORAGE_BUCKET_NAME must be set when MEDIA_STORAGE is s3.")
    # Seconds a request to the bucket may take to connect, and to answer, before the upload fails with 503.
    MEDIA_STORAGE_TIMEOUT = env_int("MEDIA_STORAGE_TIMEOUT", 10, minimum=1)
    STORAGES["default"] = {
        "BACKEND": "contentstore.storage.ObjectStorage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            # Another service than AWS (MinIO, Ceph, R2, ...): its URL; unset: AWS S3 itself.
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL"),
            "region_name": env_str("AWS_S3_REGION_NAME"),
            # A prefix of every key, to share a bucket ("media" stores media/20240115093012123456.mp3).
            "location": env_str("AWS_LOCATION", ""),
            # Signed URLs (a private bucket) valid for AWS_QUERYSTRING_EXPIRE seconds, or plain ones (public reads).
            "querystring_auth": env_bool("AWS_QUERYSTRING_AUTH", True),
            "querystring_expire": env_int("AWS_QUERYSTRING_EXPIRE", 3600, minimum=1),
            # A host that serves the bucket (a CDN): plain URLs on it, never signed.
            "custom_domain": env_str("AWS_S3_CUSTOM_DOMAIN"),
            # "path" or "virtual" (bucket as a subdomain); unset: the library's choice for the endpoint.
            "addressing_style": env_str("AWS_S3_ADDRESSING_STYLE"),
            "timeout": MEDIA_STORAGE_TIMEOUT,
        },
    }
    require(
        STORAGES["default"]["OPTIONS"]["addressing_style"] in (None, "path", "virtual"),
        "AWS_S3_ADDRESSING_STYLE must be path or virtual.",
    )
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- Limits -----------------------------------------------------------------

# Largest request body (bytes) Django reads into memory, uploads excepted.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 2_621_440, minimum=1024)
# Most form fields one request may carry.
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("MAX_REQUEST_FIELDS", 1000, minimum=10)

# Longest lifetime (seconds) of a token minted by the token endpoint: 25 h.
TOKEN_MINT_MAX_LIFETIME = env_int("TOKEN_MINT_MAX_LIFETIME", 90_000, minimum=60)
# Lifetime (seconds) of a minted token when the request does not say.
TOKEN_MINT_DEFAULT_LIFETIME = env_int("TOKEN_MINT_DEFAULT_LIFETIME", 3600, minimum=60)
# Tokens one user may make per second (POST /api/v1/tokens/ and user/token together; 0: no limit).
TOKEN_MINT_RATE_LIMIT = env_int("TOKEN_MINT_RATE_LIMIT", 10)
# Seconds the cache and topics hot paths trust a token check: a revoked token
# stops working there within this time (everywhere else at once).
TOKEN_CACHE_SECONDS = env_int("TOKEN_CACHE_SECONDS", 10)
# Seconds between two writes of a token's last-used time.
TOKEN_LAST_USED_INTERVAL = env_int("TOKEN_LAST_USED_INTERVAL", 60)

# --- Content store ----------------------------------------------------------

# Items per page of an API list when the request does not ask for a page_size.
API_PAGE_SIZE = env_int("API_PAGE_SIZE", 1000, minimum=1)
# Largest page_size a request may ask for; a larger one is a 400.
API_MAX_PAGE_SIZE = env_int("API_MAX_PAGE_SIZE", 5000, minimum=1)
require(
    API_PAGE_SIZE <= API_MAX_PAGE_SIZE,
    f"API_PAGE_SIZE ({API_PAGE_SIZE}) must not be above API_MAX_PAGE_SIZE ({API_MAX_PAGE_SIZE}).",
)
# Zone (IANA name) schedules' cron fields are read in: "0 8 * * 1" fires Mondays at 08:00 there.
SCHEDULE_TIME_ZONE = env_zone("SCHEDULE_TIME_ZONE", "UTC")
# Largest binary content upload, in bytes (10 MiB).
BINARY_CONTENT_MAX_BYTES = env_int("BINARY_CONTENT_MAX_BYTES", 10_485_760, minimum=1)
# Media types a binary content upload may have (judged from its extension); "audio/*" allows a family.
BINARY_CONTENT_TYPES = env_list("BINARY_CONTENT_TYPES", ["audio/*", "image/*"])

# --- Cache (the Momento-compatible data API) ------------------------------

# Largest item, key + value, in bytes (a cache may set a lower or higher limit): 5 MB.
CACHE_MAX_ITEM_BYTES = env_int("CACHE_MAX_ITEM_BYTES", 5 * 1024 * 1024, minimum=1)
# Longest TTL in seconds (a cache may set its own): 24 h.
CACHE_MAX_TTL_SECONDS = env_int("CACHE_MAX_TTL_SECONDS", 86_400, minimum=1)
# Seconds a web process trusts what it looked up about a cache: a deleted cache
# stops answering within this time (an unknown name for at most 1 s, and only until a cache is created).
CACHE_LOOKUP_SECONDS = env_int("CACHE_LOOKUP_SECONDS", 5)
# Requests per second one token may make to the cache and topics paths (0: no limit).
CACHE_RATE_LIMIT_REQUESTS = env_int("CACHE_RATE_LIMIT_REQUESTS", 10_000)
# Bytes per second (values read and written) one token may move (0: no limit).
CACHE_RATE_LIMIT_BYTES = env_int("CACHE_RATE_LIMIT_BYTES", 100 * 1024 * 1024)
require(
    not 0 < CACHE_RATE_LIMIT_BYTES < CACHE_MAX_ITEM_BYTES,
    "CACHE_RATE_LIMIT_BYTES must be 0 or at least CACHE_MAX_ITEM_BYTES.",
)
# Origins whose browser code may call the cache and topics paths ("*": any; empty: none).
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", ["*"])
# Seconds a browser may cache a CORS preflight answer.
CORS_MAX_AGE = env_int("CORS_MAX_AGE", 600)

# --- Topics (Momento-compatible publish and subscribe) --------------------

# Largest message, in bytes, a publish may carry.
TOPICS_MAX_MESSAGE_BYTES = env_int("TOPICS_MAX_MESSAGE_BYTES", 65_536, minimum=1)
# Messages a topic keeps for subscribers to catch up on (approximately: trimmed in blocks).
TOPICS_REPLAY_LENGTH = env_int("TOPICS_REPLAY_LENGTH", 1000, minimum=1)
# Seconds a message stays in the replay window; a topic with no publish for this long is dropped.
TOPICS_REPLAY_SECONDS = env_int("TOPICS_REPLAY_SECONDS", 3600, minimum=1)
# Seconds a long poll waits for a message before answering {"items": []}.
TOPICS_LONG_POLL_SECONDS = env_int("TOPICS_LONG_POLL_SECONDS", 30, minimum=1)
# Most items (messages and discontinuities) in one long-poll answer or SSE write.
TOPICS_BATCH_SIZE = env_int("TOPICS_BATCH_SIZE", 100, minimum=1)
# Seconds between heartbeat comments on an idle SSE stream.
TOPICS_SSE_HEARTBEAT_SECONDS = env_int("TOPICS_SSE_HEARTBEAT_SECONDS", 15, minimum=1)
# Messages of each topic a web process keeps in memory to serve its subscribers.
TOPICS_FEED_BUFFER = env_int("TOPICS_FEED_BUFFER", 1000, minimum=1)
# How far (in messages) a subscriber that had caught up may fall behind the newest before it is
# skipped ahead to it with a discontinuity (at most TOPICS_FEED_BUFFER): a reader too slow to
# keep up costs the process neither memory nor time, and keeps getting the newest messages.
TOPICS_SUBSCRIBER_MAX_LAG = env_int("TOPICS_SUBSCRIBER_MAX_LAG", 200, minimum=1)
# `<cache>/<topic>` the messaging store publishes its events to (docs/events.md); unset: none.
MESSAGING_EVENTS_TOPIC = env_str("MESSAGING_EVENTS_TOPIC")
require(
    MESSAGING_EVENTS_TOPIC is None or re.fullmatch(r"[^/]+/[^/]+", MESSAGING_EVENTS_TOPIC) is not None,
    "MESSAGING_EVENTS_TOPIC must be <cache>/<topic>.",
)

# --- Request bounds at the web process (core/asgi.py: RequestBounds, before any app reads a request) ---

# Most header fields one request may carry; more is a 431.
MAX_REQUEST_HEADERS = env_int("MAX_REQUEST_HEADERS", 100, minimum=10)
# Most bytes of header fields (names and values together) one request may carry; more is a 431. The server
# reads at most 64 KiB of a request's head (core.server.BoundedHttpToolsProtocol, in the Procfile).
MAX_REQUEST_HEADER_BYTES = env_int("MAX_REQUEST_HEADER_BYTES", 16_384, minimum=1024)
require(MAX_REQUEST_HEADER_BYTES <= 49_152, "MAX_REQUEST_HEADER_BYTES must be at most 49152 (the server reads 64 KiB).")
# Largest body of an upload (multipart) or a cache item, in bytes; more is a 413 (other bodies: their own limit).
upload_floor = max(BINARY_CONTENT_MAX_BYTES + 65_536, CACHE_MAX_ITEM_BYTES)  # a file and its framing; an item
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", upload_floor, minimum=upload_floor)

# --- REST framework and API docs --------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "core.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": SERVICE_NAME,
    "DESCRIPTION": (
        "Schedules, message sets, messages and subscriptions, with a Momento-compatible "
        "cache and topics and Moment-style delayed HTTP jobs. Authenticate with "
        "`Authorization: Token <token>`."
    ),
    "VERSION": __version__,
    # The docs and schema are public; every operation they describe needs a token.
    "SERVE_AUTHENTICATION": [],
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Two choice sets share the field name `kind`: a listed job's, and a job's of any kind (callbacks too).
    "ENUM_NAME_OVERRIDES": {
        "ListedJobKindEnum": "jobs.models.LISTED_KINDS",
        "JobCallbackKindEnum": "jobs.models.JobKind",
    },
    # The docs group operations by face, in this order (core.schema.tag_operations_by_face).
    "TAGS": [
        {"name": "content", "description": "Schedules, message sets, messages and their binary content."},
        {
            "name": "subscriptions",
            "description": "Subscriptions and their sends: the Hub's webhook, send and resend, failed sends and "
            "their requeue, subscriptions behind, send estimates and the send metrics.",
        },
        {
            "name": "tokens",
            "description": "API tokens: minting short-lived ones, listing and revoking them, and the reference's "
            "`user/token`.",
        },
        {"name": "caches", "description": "Creating, listing and deleting caches (Momento-compatible)."},
        {
            "name": "cache items",
            "description": "Getting, setting and deleting the items of a cache (Momento's HTTP cache API).",
        },
        {
            "name": "topics",
            "description": "Publishing to a topic of a cache, and subscribing by long poll or Server-Sent Events "
            "(Momento's HTTP topics API).",
        },
        {
            "name": "webhooks",
            "description": "Topic webhooks: every message of a topic POSTed to a URL by the jobs engine.",
        },
        {
            "name": "jobs",
            "description": "Delayed HTTP jobs (Moment-compatible): call a URL at a time, retry until it works, "
            "call back; recurring jobs, batches, dead letters and the owner's signing secret.",
        },
    ],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "cache_api.schema.add_cache_data_api",
        "topics.schema.add_topics_api",
        "core.schema.tag_operations_by_face",
        "core.schema.add_common_error_responses",
        "core.schema.add_token_query_scheme",
        "core.schema.allow_empty_list_filters",
    ],
}

# --- Delayed HTTP jobs ------------------------------------------------------

# Zone (IANA name) of a job's `at` given without an offset, and of `at` in responses.
JOBS_TIME_ZONE = env_zone("JOBS_TIME_ZONE", "UTC")
# Retries after a failed request, in seconds after the original request (10 s, 2 min, 15 min, 2 h, 24 h; empty: none).
JOBS_RETRY_SCHEDULE = env_numbers(
    "JOBS_RETRY_SCHEDULE", [10, 120, 900, 7200, 86400], minimum=1, whole=True, increasing=True, what="whole seconds"
)
# Most retries a job's own retry_schedule may list.
JOBS_MAX_RETRIES = env_int("JOBS_MAX_RETRIES", 10, minimum=1)
# Latest retry (seconds after the original request) a job's own retry_schedule may ask for: 7 days.
JOBS_MAX_RETRY_DELAY = env_int("JOBS_MAX_RETRY_DELAY", 604_800, minimum=1)
# Longest Retry-After (seconds) from a target that is honoured; a longer one is cut to this.
JOBS_RETRY_AFTER_MAX = env_int("JOBS_RETRY_AFTER_MAX", 86_400)
# Seconds a job's request may take when the job does not say.
JOBS_DEFAULT_TIMEOUT = env_int("JOBS_DEFAULT_TIMEOUT", 30, minimum=1)
# Longest timeout (seconds) a job may ask for.
JOBS_MAX_TIMEOUT = env_int("JOBS_MAX_TIMEOUT", 120, minimum=1)
# Largest body (bytes) a job may send.
JOBS_MAX_BODY_BYTES = env_int("JOBS_MAX_BODY_BYTES", 1_048_576, minimum=0)
# Seconds a create's deduplication id (job[deduplication_id] or Idempotency-Key) answers with the job it made: 1 day.
JOBS_DEDUPLICATION_SECONDS = env_int("JOBS_DEDUPLICATION_SECONDS", 86_400, minimum=1)
# Most jobs one POST /jobs/batch.json may create.
JOBS_MAX_BATCH = env_int("JOBS_MAX_BATCH", 1000, minimum=1)
# Largest body (bytes) of a POST /jobs/batch.json (every other request: MAX_REQUEST_BODY_BYTES): 10 MiB.
JOBS_MAX_BATCH_BYTES = env_int("JOBS_MAX_BATCH_BYTES", 10_485_760, minimum=1024)
# Most recurring jobs (job[cron]) one owner may have, paused and cancelled ones included: each fires without end.
JOBS_MAX_RECURRING_JOBS = env_int("JOBS_MAX_RECURRING_JOBS", 1000, minimum=0)
# Most headers a job may send.
JOBS_MAX_HEADERS = env_int("JOBS_MAX_HEADERS", 50, minimum=0)
# Longest uri or callback_uri, in characters.
JOBS_MAX_URI_LENGTH = env_int("JOBS_MAX_URI_LENGTH", 2048, minimum=64)
# Bytes of a target's response body that are read (and sent on to the callback); the rest is not read.
JOBS_RESPONSE_MAX_BYTES = env_int("JOBS_RESPONSE_MAX_BYTES", 65_536, minimum=0)
# Bytes of each response body kept with the attempt.
JOBS_ATTEMPT_EXCERPT_BYTES = env_int("JOBS_ATTEMPT_EXCERPT_BYTES", 2048, minimum=0)
# Longest the dispatcher sleeps between claims (it wakes when the next known job is due).
JOBS_DISPATCH_INTERVAL_MS = env_int("JOBS_DISPATCH_INTERVAL_MS", 100, minimum=1)
# Longest the webhook relay sleeps between looks at the topics (it goes on at once after a full batch).
WEBHOOKS_RELAY_INTERVAL_MS = env_int("WEBHOOKS_RELAY_INTERVAL_MS", 200, minimum=1)
# Most webhooks the relay claims in one transaction.
WEBHOOKS_RELAY_BATCH = env_int("WEBHOOKS_RELAY_BATCH", 500, minimum=1)
# Most webhooks per cache.
WEBHOOKS_MAX_PER_CACHE = env_int("WEBHOOKS_MAX_PER_CACHE", 100, minimum=1)
# Most due jobs one dispatcher claims in one transaction.
JOBS_DISPATCH_BATCH = env_int("JOBS_DISPATCH_BATCH", 1000, minimum=1)
# Most jobs claimed and not yet recorded (queued or being sent); more wait, due, in the database.
# Keep it below what the workers send within JOBS_LEASE_SECONDS.
JOBS_MAX_IN_FLIGHT = env_int("JOBS_MAX_IN_FLIGHT", 20_000, minimum=1)
# Most job queues (/api/v1/job-queues/) one owner may have.
JOBS_MAX_QUEUES = env_int("JOBS_MAX_QUEUES", 1000, minimum=1)
# Jobs one worker task hands to its process's outbound loop at once.
JOBS_DELIVERY_CHUNK = env_int("JOBS_DELIVERY_CHUNK", 100, minimum=1)
# Seconds a claimed job is left to its worker; after that it is claimed again (the worker is taken as lost).
# A worker renews the leases of the jobs it holds every third of it, so a delivery may take longer.
JOBS_LEASE_SECONDS = env_int("JOBS_LEASE_SECONDS", 60, minimum=3)
# Seconds a job waits for a slot of its target's origin (OUTBOUND_CONCURRENCY_PER_ORIGIN requests of the
# worker process in flight to it) before it is given back unsent, due again JOBS_ORIGIN_BUSY_DELAY seconds later.
JOBS_ORIGIN_QUEUE_SECONDS = env_int("JOBS_ORIGIN_QUEUE_SECONDS", 5, minimum=1)
JOBS_ORIGIN_BUSY_DELAY = env_int("JOBS_ORIGIN_BUSY_DELAY", 5, minimum=1)
# Jobs a worker process holds at once (being sent, or waiting to be recorded); a task that hands over more
# waits for room. Bounds a worker's memory and what its loss leaves to lease expiry.
JOBS_WORKER_MAX_JOBS = env_int("JOBS_WORKER_MAX_JOBS", 1000, minimum=1)
# A delivery task's time limit: connecting and reading may each take a job's whole timeout. A worker
# renews a chunk's lease for no longer than this after taking it.
JOBS_DELIVERY_TIME_LIMIT = 2 * JOBS_MAX_TIMEOUT + 15
require(
    JOBS_DEFAULT_TIMEOUT <= JOBS_MAX_TIMEOUT,
    f"JOBS_DEFAULT_TIMEOUT ({JOBS_DEFAULT_TIMEOUT}) must not be above JOBS_MAX_TIMEOUT ({JOBS_MAX_TIMEOUT}).",
)
# Days succeeded and cancelled jobs (with their attempts) are kept after they finished.
JOBS_RETENTION_DAYS = env_int("JOBS_RETENTION_DAYS", 7, minimum=1)
# Days failed jobs (the dead-letter list, with their attempts) are kept after they finished.
JOBS_DEAD_RETENTION_DAYS = env_int("JOBS_DEAD_RETENTION_DAYS", 30, minimum=1)
# Most jobs (or send runs, or send batches) retention deletes in one transaction: bounds how long it holds locks.
JOBS_RETENTION_BATCH = env_int("JOBS_RETENTION_BATCH", 1000, minimum=1)
# Key that encrypts the job owners' signing secrets in the database; required when DEBUG is off.
JOBS_SIGNING_KEY = env_secret(
    "JOBS_SIGNING_KEY", debug=DEBUG, development_value="insecure-local-development-signing-key"
)
# The key that will replace JOBS_SIGNING_KEY: while set, new secrets are encrypted with it, old ones read with either.
JOBS_SIGNING_NEXT_KEY = env_str("JOBS_SIGNING_NEXT_KEY")
# Seconds an owner's previous signing secret still signs after a rotation (the most a rotation may ask for).
JOBS_SIGNING_SECRET_OVERLAP = env_int("JOBS_SIGNING_SECRET_OVERLAP", 86_400, minimum=0)

# Secrets that are unset while DEBUG is off: settings still load (management commands
# work), but the web, worker, scheduler and dispatcher processes refuse to start
# (core/startup.py).
MISSING_SECRETS = [
    name for name, value in (("SECRET_KEY", SECRET_KEY), ("JOBS_SIGNING_KEY", JOBS_SIGNING_KEY)) if not value
]

# --- Outbound HTTP ----------------------------------------------------------

# Networks (comma-separated CIDRs) that requests to user-given URLs may reach although they are
# loopback, private or otherwise refused, e.g. 127.0.0.0/8 for development. Empty: none.
OUTBOUND_ALLOWED_NETWORKS = env_networks("OUTBOUND_ALLOWED_NETWORKS", [])
# Requests of one process in flight to one origin (scheme, host, port) at most; the rest wait for a slot.
# One slow or hanging peer holds no more than this of a process's capacity.
OUTBOUND_CONCURRENCY_PER_ORIGIN = env_int("OUTBOUND_CONCURRENCY_PER_ORIGIN", 64, minimum=1)
# Requests of one process in flight at most, to every origin together (trusted peers and user-given
# URLs each have this many).
OUTBOUND_MAX_IN_FLIGHT = env_int("OUTBOUND_MAX_IN_FLIGHT", 1024, minimum=1)
# Requests of one process in flight for one owner (a job's user) at most, whatever their origins.
OUTBOUND_CONCURRENCY_PER_OWNER = env_int("OUTBOUND_CONCURRENCY_PER_OWNER", 256, minimum=1)

# --- Subscriptions and the send pipeline -----------------------------------

# The message sender's base URL (sends POST {MESSAGE_SENDER_URL}/outbound/); unset: every send fails, recorded.
MESSAGE_SENDER_URL = env_str("MESSAGE_SENDER_URL")
# Token sent to the message sender as `Authorization: Token <token>`.
MESSAGE_SENDER_TOKEN = env_str("MESSAGE_SENDER_TOKEN", "")
# The identity store that gives each identity's address; unset: messages go by `to_identity` only.
IDENTITY_STORE_URL = env_str("IDENTITY_STORE_URL")
# Token sent to the identity store as `Authorization: Token <token>`.
IDENTITY_STORE_TOKEN = env_str("IDENTITY_STORE_TOKEN", "")
# Ids of message sets whose sends skip the POST to the message sender (subscriptions still advance).
DRY_RUN_MESSAGESETS = env_numbers("DRY_RUN_MESSAGESETS", [], minimum=1, whole=True, what="message set ids")
# Scheme and host put before media paths in image_url and voice_speech_url (e.g. https://sbm.example.org).
SEND_MEDIA_BASE_URL = env_str("SEND_MEDIA_BASE_URL", "http://localhost:8000")
# Subscriptions one send task handles (and holds in memory) at a time.
SEND_BATCH_SIZE = env_int("SEND_BATCH_SIZE", 500, minimum=1)
# Requests one send task has in flight at once (on its process's outbound loop).
SEND_CONCURRENCY = env_int("SEND_CONCURRENCY", 32, minimum=1)
# Seconds one request to the message sender or the identity store may take.
SEND_TIMEOUT = env_int("SEND_TIMEOUT", 10, minimum=1)
# Seconds to wait before each retry of a request that failed for a reason worth retrying (one retry each).
SEND_RETRY_DELAYS = env_numbers("SEND_RETRY_DELAYS", [1.0, 4.0, 15.0], what="seconds")
# Longest Retry-After (seconds) a send task waits for; a longer one records the failure for a later requeue.
SEND_RETRY_AFTER_MAX = env_int("SEND_RETRY_AFTER_MAX", 30)
# Seconds a send task may spend sending; what is still unsent then is recorded as failed.
SEND_BATCH_SECONDS = env_int("SEND_BATCH_SECONDS", 120, minimum=1)
# A send task's hard time limit: its sending time plus one request and the database work.
SEND_TASK_TIME_LIMIT = SEND_BATCH_SECONDS + 2 * SEND_TIMEOUT + 60
# Days a finished schedule send (SendRun, with its batches) is kept; each schedule's latest is kept regardless.
SEND_RUN_RETENTION_DAYS = env_int("SEND_RUN_RETENTION_DAYS", 30, minimum=1)
# Networks (comma-separated CIDRs) that may read /metrics without a token; otherwise a messaging admin token.
METRICS_ALLOWED_NETWORKS = env_networks("METRICS_ALLOWED_NETWORKS", [])
# Seconds each process counts its figures (requests, cache, topics, jobs) in memory before adding them to Redis.
METRICS_FLUSH_SECONDS = env_int("METRICS_FLUSH_SECONDS", 1, minimum=1)
# Where traces go (OTLP over HTTP, e.g. http://collector:4318); unset, nothing is traced. See docs/metrics.md.
OTEL_EXPORTER_OTLP_ENDPOINT = env_str("OTEL_EXPORTER_OTLP_ENDPOINT")

# --- Logging ----------------------------------------------------------------

# Level of the root logger: DEBUG, INFO, WARNING, ERROR or CRITICAL.
LOG_LEVEL = env_log_level("LOG_LEVEL", "INFO")
# A line for each request a web process answers (uvicorn's access log; runserver's). The service configures the
# loggers after uvicorn does, so this, not uvicorn's --no-access-log, turns it off.
ACCESS_LOG = env_bool("ACCESS_LOG", True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Tokens redacted, control characters escaped: no input can put a secret or a line of its own in the log.
    "filters": {"safe_records": {"()": "core.logging.SafeLogRecords"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["safe_records"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # The server's logs (the access log prints query strings, where a token may be): through that handler too.
    "loggers": {
        "uvicorn": {"handlers": ["console"], "propagate": False},
        **{
            name: {"handlers": ["console"], "propagate": False, **({} if ACCESS_LOG else {"level": "WARNING"})}
            for name in ("uvicorn.access", "django.server")
        },
    },
}
