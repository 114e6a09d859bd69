"""Tradedesk settings. Everything is read through django-environ; `.env.example` lists each
variable with its default and meaning. With no DATABASE_URL / REDIS_URL the embedded
PostgreSQL and Redis are started (see config/embedded.py)."""

from __future__ import annotations

import os
import sys
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import environ

from config import embedded

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)  # optional, git-ignored

TESTING = "pytest" in sys.modules
if TESTING and os.environ.get("TRADEDESK_METRICS_DIR_PID") != str(os.getpid()):
    # Metrics in prometheus_client's multiprocess mode, as the desk runs them (config/metrics.py):
    # this test process (its in-process Celery worker too) and the web processes its tests start
    # write into one directory of its own. Chosen here, before any metric exists.
    import atexit
    import shutil
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tradedesk-metrics-")
    os.environ["TRADEDESK_METRICS_DIR_PID"] = str(os.getpid())
    atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], True)
DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    # A per-checkout secret kept in the git-ignored .var folder; never a fixed value in the repo.
    _secret_file = embedded.VAR_DIR / "secret_key"
    if not _secret_file.exists():
        import secrets

        _secret_file.parent.mkdir(parents=True, exist_ok=True)
        _secret_file.write_text(secrets.token_urlsafe(50))
        _secret_file.chmod(0o600)
    SECRET_KEY = _secret_file.read_text().strip()

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "trading.admin_panel.apps.TradedeskAdminConfig",  # django.contrib.admin + the control panel
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "trading",
    "providers",
    "delegations",
    "treasury",
    "deposits",
    "webhooks",
    "configuration",
    "solver",
]

MIDDLEWARE = [
    "config.middleware.MetricsMiddleware",  # every request counted and timed by route template (/metrics)
    "config.middleware.RequestIdMiddleware",
    "config.inputs.InputGuardMiddleware",  # control characters in the URL or a form field: 400
    "config.middleware.OutageMiddleware",  # Redis / PostgreSQL down under a view: 503, retryable
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.StaticFilesMiddleware",  # WhiteNoise, usable in the async chain too
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# --- input bounds (config/inputs.py) ---------------------------------------------------------------
# Largest HTTP request body in bytes (REST, admin, the signer service); larger: 413 before parsing.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)
# Deepest nesting of arrays/objects accepted in a JSON body or websocket message; deeper: 400.
INPUT_MAX_JSON_DEPTH = env.int("INPUT_MAX_JSON_DEPTH", default=32)

ROOT_URLCONF = "config.urls"
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
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# --- database -----------------------------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL", default="") or embedded.postgres_url()
_db = environ.Env.db_url_config(DATABASE_URL)
if _db.get("OPTIONS", {}).get("host"):  # postgres://user@/db?host=/socket/dir
    _db["HOST"] = _db["OPTIONS"].pop("host")
_db["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
_db["CONN_HEALTH_CHECKS"] = True
# Parameters travel bound (extended protocol) instead of being quoted into the SQL text by
# psycopg, and a statement a connection runs often is prepared once, after
# DB_PREPARE_THRESHOLD runs (Django turns psycopg's preparing off unless told): no re-parsing
# and re-planning on every run. Needs session-level connections (ours, or a psycopg pool), not
# a transaction-pooling proxy. DB_SERVER_SIDE_BINDING=false turns both off.
_db.setdefault("OPTIONS", {})["server_side_binding"] = env.bool("DB_SERVER_SIDE_BINDING", default=True)
if _db["OPTIONS"]["server_side_binding"]:
    _db["OPTIONS"].setdefault("prepare_threshold", env.int("DB_PREPARE_THRESHOLD", default=5))
# The web process runs each request's sync code on a thread borrowed from a pool that grows
# with the requests in flight (config/handler.py), and shares a psycopg pool of connections
# among those threads (the Procfile sets DB_POOL_MAX_SIZE) so that their number stays bounded;
# the worker and Beat keep one persistent connection per thread (CONN_MAX_AGE). Either way a
# connection is checked (one empty statement) before a request reuses it: a connection that
# sat idle in the pool while PostgreSQL restarted is replaced, not handed to a view (a 503).
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=0)
if DB_POOL_MAX_SIZE:
    _db["CONN_MAX_AGE"] = 0
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_MAX_SIZE,
        # how long a request waits for a connection before its 503: while PostgreSQL is down
        # every request waits this long (the pool has no live connection to give)
        "timeout": env.float("DB_POOL_TIMEOUT", default=3.0),
        # A connection the pool cannot open is retried with a doubling back-off (1, 2, 4, ... s)
        # for this long, then given up; the next request that finds the pool short asks for a new
        # one at once. Kept short so that after an outage the pool is back within a couple of
        # seconds of PostgreSQL (psycopg's default, 5 min, let the back-off grow to 16-30 s and
        # more: every request in that gap answered 503 on a healthy database).
        "reconnect_timeout": env.float("DB_POOL_RECONNECT_TIMEOUT", default=5.0),
    }
DATABASES = {"default": _db}
# Idle request threads a web process keeps for the next requests (config/handler.py); more
# are started while more requests are in flight at once, and shut down when they finish. (The
# number of web processes, WEB_CONCURRENCY, is the Procfile's: uvicorn --workers.)
WEB_IDLE_THREADS = env.int("WEB_IDLE_THREADS", default=32)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- redis: broker, channel layer, cache --------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="") or embedded.redis_url()


def _redis_for(url: str, *, celery: bool = False) -> str:
    """One REDIS_URL serves every consumer; Celery (kombu) spells unix sockets differently."""
    parsed = urlparse(url)
    if parsed.scheme != "unix":
        return url
    db = parse_qs(parsed.query).get("db", ["0"])[0]
    if celery:
        return f"redis+socket://{parsed.path}?virtual_host={db}"
    return url


CACHES = {
    "default": {
        "BACKEND": "config.cache.RedisCache",  # Django's, with one client per process
        "LOCATION": _redis_for(REDIS_URL),
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="td-test" if TESTING else "td"),
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "trading.realtime.layer.RedisChannelLayer",  # channels-redis, waiting pool
        "CONFIG": {
            "hosts": [_redis_for(REDIS_URL)],
            "prefix": env("CHANNELS_PREFIX", default="td-test-asgi" if TESTING else "td-asgi"),
            # Messages waiting per channel (a web process's consumers share one Redis key) and
            # seconds a message may wait before Redis drops it. Consumers pull messages into
            # their own bounded send queues at once, so these only absorb bursts.
            "capacity": env.int("CHANNELS_CAPACITY", default=1000),
            "expiry": env.int("CHANNELS_EXPIRY", default=30),
            # Redis connections per process and event loop; more commands at once wait for one.
            "max_connections": env.int("CHANNELS_MAX_CONNECTIONS", default=100),
        },
    }
}

# --- celery -------------------------------------------------------------------------------------
CELERY_BROKER_URL = _redis_for(REDIS_URL, celery=True)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# One result backend object per process instead of one per thread: under ASGI every request
# runs in a thread of its own, so each task published from a request built a new one. There is
# no result backend (results are ignored), and the disabled one holds no connection.
CELERY_RESULT_BACKEND_THREAD_SAFE = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", default="tradedesk-test" if TESTING else "tradedesk")
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# django-celery-beat's database scheduler, pausing (not exiting) while PostgreSQL is down: config/beat.py
CELERY_BEAT_SCHEDULER = "config.beat:ResilientDatabaseScheduler"
# Reconnect to the broker after it went away for as long as it takes (Celery's default gives up
# after 100 attempts and stops the worker).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- auth, i18n, static ---------------------------------------------------------------------------
AUTH_USER_MODEL = "trading.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:  # the default hasher's work factor is the point in production, and seconds per test here
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LANGUAGE_CODE = "en-us"
FORMAT_MODULE_PATH = ["config.formats"]  # times as the desk prints them: 2026-12-07 12:07:31 UTC
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Static files (admin CSS/JS, API docs) are served by the web process itself; the finders let
# it serve them straight from the apps without a collectstatic step.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing root before collectstatic
WHITENOISE_AUTOREFRESH = DEBUG

# --- API access: JWT, Sign-In with Ethereum, throttling -----------------------------------------
JWT_SIGNING_KEY = env("JWT_SIGNING_KEY", default="")  # empty: derived from SECRET_KEY
JWT_ACCESS_TTL = env.int("JWT_ACCESS_TTL", default=30 * 60)  # seconds: the seed API's expires_in 1800
JWT_REFRESH_TTL = env.int("JWT_REFRESH_TTL", default=14 * 24 * 3600)  # seconds
JWT_ISSUER = env("JWT_ISSUER", default="tradedesk")
SIWE_DOMAIN = env("SIWE_DOMAIN", default="") or next(
    (h for h in ALLOWED_HOSTS if h and not h.startswith((".", "*", "["))), "localhost"
)
SIWE_URI = env("SIWE_URI", default="") or f"https://{SIWE_DOMAIN}"
SIWE_CHAIN_IDS = [int(c) for c in env.list("SIWE_CHAIN_IDS", default=[]) or ["42161", "421614"]]
SIWE_NONCE_TTL = env.int("SIWE_NONCE_TTL", default=5 * 60)  # seconds
SIWE_CLOCK_SKEW = env.int("SIWE_CLOCK_SKEW", default=60)  # seconds of tolerance on issued-at / not-before
THROTTLE_RATES = {
    "prices": "100/min",
    "trade": "10/min",
    "deposit": "5/min",
    "admin_ops": "50/min",
    "auth": "10/min",  # per IP on every auth endpoint
    "login_failures": "10/hour",  # failed logins per email address
    "api": "600/min",  # default for user-scoped endpoints without a narrower scope
}
THROTTLE_RATES.update(env.dict("THROTTLE_RATES", default={}))

# --- REST framework / OpenAPI -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "trading.auth.JWTAuthentication",  # first: its WWW-Authenticate makes unauthenticated a 401
        "rest_framework.authentication.SessionAuthentication",  # the admin and browsable API
        "trading.auth.ApiKeyAuthentication",
    ],
    # deny by default: safe methods need the `read` scope, writes `trade` (trading/permissions.py)
    "DEFAULT_PERMISSION_CLASSES": ["trading.permissions.ScopeByMethod"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.errors.exception_handler",
    # DRF's parsers within the input bounds: body size, JSON depth, control characters
    "DEFAULT_PARSER_CLASSES": [
        "config.inputs.JSONParser",
        "config.inputs.FormParser",
        "config.inputs.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.LimitOffsetPagination",  # a bad limit/offset: 400
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_RATES": THROTTLE_RATES,
    # Proxies in front of the web process; 0 = use REMOTE_ADDR and ignore client X-Forwarded-For.
    "NUM_PROXIES": env.int("API_NUM_PROXIES", default=0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tradedesk API",
    # the error table of docs/errors.md rides along, so Swagger shows every code with its meaning
    "DESCRIPTION": "Back office for Ostium perpetuals, NEAR Intents swaps and a paper venue.\n\n"
    + (BASE_DIR / "docs" / "errors.md").read_text().replace("# Error codes", "## Error codes", 1),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # one stable name per choice set that several components share (a generated client's types)
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "trading.models.Order.Status",
        "OrderTypeEnum": "trading.models.Order.Type",
        "TradeStatusEnum": "trading.models.Trade.Status",
        "DepositStatusEnum": ["pending", "processing", "completed", "failed"],
        "ReferenceSourceEnum": ["kraken", "coingecko"],
        "VenueEnum": "treasury.models.Venue",
    },
    # every operation documents the error envelope for the errors any request can get (config/schema.py)
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.schema.document_errors",
        "config.openapi.curate",  # tags, summaries, one example per request (Try it out works)
    ],
}

# --- ledger / outbox ----------------------------------------------------------------------------
OUTBOX_BATCH_SIZE = env.int("OUTBOX_BATCH_SIZE", default=200)
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=10)
# A dispatch task publishes again while commits keep kicking it, for at most this many seconds;
# then a follow-up task, queued behind the other tasks (order executions), continues: a long
# burst does not keep a worker process from them.
OUTBOX_DISPATCH_SECONDS = env.float("OUTBOX_DISPATCH_SECONDS", default=1.0)

# --- providers: venues, router, prices, paper venue ---------------------------------------------
# Venue a symbol trades on when no ProviderRoute matches it.
DEFAULT_VENUE = env("DEFAULT_VENUE", default="paper")
# Seconds a venue's market list is cached.
MARKETS_CACHE_TTL = env.int("MARKETS_CACHE_TTL", default=60)
# Seconds a price tick stays in the Redis cache.
PRICE_CACHE_TTL = env.int("PRICE_CACHE_TTL", default=30)
# A tick older than this (seconds) is stale: venues re-ask the feed, price_is_stale() says True.
PRICE_MAX_AGE = env.float("PRICE_MAX_AGE", default=10.0)
# Seed and step (seconds) of the paper random walk.
PAPER_FEED_SEED = env("PAPER_FEED_SEED", default="tradedesk")
PAPER_FEED_DT = env.float("PAPER_FEED_DT", default=1.0)
# USD balance a paper account starts with on first use.
PAPER_STARTING_BALANCE = env("PAPER_STARTING_BALANCE", default="100000")
# What the paper venue's prices follow: "walk" (the seeded random walk above) or "reference" (the
# fair rate of the market's reference pair, BTC-USD -> BTC/USD; markets without one keep the walk,
# and a pair whose fair rate is unusable publishes no tick). See docs/reference-prices.md.
PAPER_FEED = env("PAPER_FEED", default="walk")

# --- reference prices (Kraken stream, CoinGecko poll, fair rates; docs/reference-prices.md) ---------
# Pairs with a fair rate. A pair naming an asset that has a ReferenceBasis row (EURE = 1 EUR) is a
# cross derived from the underlying pair (BTC/EURE from BTC/EUR), which must be listed too.
REFERENCE_PAIRS = [
    p.strip().upper() for p in env.list("REFERENCE_PAIRS", default=["BTC/EUR", "BTC/USD", "ETH/USD", "BTC/EURE"])
]
# Where the sources are: "sandbox" (the loopback doubles `manage.py reference_sandbox` runs; their
# addresses are read from REFERENCE_SANDBOX_CONFIG) or "live" (Kraken's and CoinGecko's own).
REFERENCE_ENDPOINTS = env("REFERENCE_ENDPOINTS", default="sandbox")
REFERENCE_SANDBOX_CONFIG = env("REFERENCE_SANDBOX_CONFIG", default=".var/reference-sandbox.json")
# A Kraken price older than this (milliseconds) is stale: CoinGecko is used instead (fallback).
REFERENCE_MAX_AGE_MS = env.int("REFERENCE_MAX_AGE_MS", default=10_000)
# A CoinGecko price (by its own last_updated_at) older than this is stale. CoinGecko caches its
# answers for 60 s (public and demo plans), so this must be longer than that.
REFERENCE_FALLBACK_MAX_AGE_MS = env.int("REFERENCE_FALLBACK_MAX_AGE_MS", default=120_000)
# false: a stale Kraken makes the pair unhealthy instead of falling back to CoinGecko.
REFERENCE_FALLBACK_ENABLED = env.bool("REFERENCE_FALLBACK_ENABLED", default=True)
# Both fresh and further apart than this (basis points of Kraken's price): the pair is conflicted.
REFERENCE_CONFLICT_BPS = env("REFERENCE_CONFLICT_BPS", default="100")
# A basis with a sanity source (ReferenceBasis.sanity_coingecko_id) further than this from its
# observed price makes the crosses through it conflicted.
REFERENCE_BASIS_TOLERANCE_BPS = env("REFERENCE_BASIS_TOLERANCE_BPS", default="50")
# A new price sample is stored when the fair rate moved at least this far from the pair's last
# sample (basis points), when its outcome or source changed, or every REFERENCE_SAMPLE_SECONDS.
REFERENCE_SAMPLE_BPS = env("REFERENCE_SAMPLE_BPS", default="5")
REFERENCE_SAMPLE_SECONDS = env.float("REFERENCE_SAMPLE_SECONDS", default=60.0)
# Days samples are kept (Beat `reference-sample-retention`); samples a decision or a risk check
# used are kept regardless.
REFERENCE_SAMPLE_RETENTION_DAYS = env.int("REFERENCE_SAMPLE_RETENTION_DAYS", default=90)
# Kraken websocket v2 and REST (empty: the live or sandbox address per REFERENCE_ENDPOINTS).
KRAKEN_WS_URL = env("KRAKEN_WS_URL", default="")
KRAKEN_REST_URL = env("KRAKEN_REST_URL", default="")
# Ticker updates on every change of the best bid/offer ("bbo") or on trades only ("trades").
KRAKEN_EVENT_TRIGGER = env("KRAKEN_EVENT_TRIGGER", default="bbo")
# Reconnect back-off (seconds): doubles from the minimum up to the maximum, with jitter; only a
# connection that stayed up KRAKEN_STABLE_SECONDS starts again from the minimum.
KRAKEN_RECONNECT_MIN_SECONDS = env.float("KRAKEN_RECONNECT_MIN_SECONDS", default=0.5)
KRAKEN_RECONNECT_MAX_SECONDS = env.float("KRAKEN_RECONNECT_MAX_SECONDS", default=30.0)
KRAKEN_STABLE_SECONDS = env.float("KRAKEN_STABLE_SECONDS", default=30.0)
# No frame at all (Kraken sends a heartbeat every second) for this long: the connection is dead.
KRAKEN_IDLE_TIMEOUT_SECONDS = env.float("KRAKEN_IDLE_TIMEOUT_SECONDS", default=10.0)
# Timeout (seconds) of the websocket handshake and of a REST Ticker refresh.
KRAKEN_TIMEOUT = env.float("KRAKEN_TIMEOUT", default=5.0)
# CoinGecko /simple/price: root URL (empty: per REFERENCE_ENDPOINTS and COINGECKO_API_PLAN), key
# and plan ("demo": header x-cg-demo-api-key on api.coingecko.com; "pro": x-cg-pro-api-key on
# pro-api.coingecko.com). No key: the keyless public API.
COINGECKO_API_URL = env("COINGECKO_API_URL", default="")
COINGECKO_API_KEY = env("COINGECKO_API_KEY", default="")
COINGECKO_API_PLAN = env("COINGECKO_API_PLAN", default="demo")
# Asset -> CoinGecko coin id, for the bases of the pairs (comma separated ASSET:id).
COINGECKO_IDS = dict(
    item.split(":", 1)
    for item in env.list("COINGECKO_IDS", default=["BTC:bitcoin", "ETH:ethereum", "SOL:solana"])
    if ":" in item
)
# Seconds between polls (Beat `reference-coingecko-poll` looks every 5 s whether one is due), the
# request timeout, and the longest back-off after failures or a 429 (whose Retry-After is honoured).
COINGECKO_POLL_SECONDS = env.float("COINGECKO_POLL_SECONDS", default=30.0)
COINGECKO_TIMEOUT = env.float("COINGECKO_TIMEOUT", default=5.0)
COINGECKO_BACKOFF_MAX_SECONDS = env.float("COINGECKO_BACKOFF_MAX_SECONDS", default=600.0)

# --- LI-FI (swap and bridge quotes; runtime-configurable, docs/configuration.md) ------------------
LIFI_ENABLED = env.bool("LIFI_ENABLED", default=True)
LIFI_API_URL = env("LIFI_API_URL", default="https://li.quest/v1")
LIFI_API_KEY = env("LIFI_API_KEY", default="")
LIFI_TIMEOUT = env.float("LIFI_TIMEOUT", default=10.0)
# --- secrets at rest ----------------------------------------------------------------------------
# Comma-separated Fernet keys, newest first (config/crypto.py). Empty: one key derived from SECRET_KEY.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])

# --- outbound webhooks --------------------------------------------------------------------------
# How long a rotated-out signing secret keeps signing next to the new one (seconds).
WEBHOOK_SECRET_ROTATION_GRACE = env.int("WEBHOOK_SECRET_ROTATION_GRACE", default=24 * 3600)
# Delay (seconds) before each retry; its length + 1 is the number of attempts.
WEBHOOK_RETRY_SCHEDULE = [
    int(x)
    for x in env.list(
        "WEBHOOK_RETRY_SCHEDULE", default=["5", "30", "120", "600", "1800", "3600", "10800", "21600", "43200"]
    )
]
# Each delay is multiplied by a random factor in [1 - jitter, 1 + jitter].
WEBHOOK_RETRY_JITTER = env.float("WEBHOOK_RETRY_JITTER", default=0.1)
# Bounds (seconds) within which a receiver's Retry-After on 429 is honoured.
WEBHOOK_RETRY_AFTER_MIN = env.int("WEBHOOK_RETRY_AFTER_MIN", default=1)
WEBHOOK_RETRY_AFTER_MAX = env.int("WEBHOOK_RETRY_AFTER_MAX", default=3600)
# An endpoint whose attempts have failed continuously this long (seconds) is disabled.
WEBHOOK_DISABLE_AFTER = env.int("WEBHOOK_DISABLE_AFTER", default=5 * 24 * 3600)
# Requests in flight at once per endpoint (an endpoint is served by one delivery run at a
# time, which sends at most this many of its deliveries at once; the rest wait, unattempted).
WEBHOOK_ENDPOINT_CONCURRENCY = env.int("WEBHOOK_ENDPOINT_CONCURRENCY", default=2)
# Seconds before a run looks again at due deliveries it could not claim (another run was
# claiming them).
WEBHOOK_CONCURRENCY_RETRY_DELAY = env.float("WEBHOOK_CONCURRENCY_RETRY_DELAY", default=1.0)
# Request timeout (seconds) and how long a claimed delivery may stay "delivering" before the
# sweep decides its worker was lost.
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT", default=10.0)
WEBHOOK_LEASE = env.int("WEBHOOK_LEASE", default=120)
# A CA bundle (PEM path) to verify receivers' certificates with instead of the default roots.
WEBHOOK_CA_BUNDLE = env("WEBHOOK_CA_BUNDLE", default="")
# Lost deliveries (lease expired) the Beat sweep recovers per run.
WEBHOOK_SWEEP_BATCH = env.int("WEBHOOK_SWEEP_BATCH", default=500)
# A delivery run (webhooks.services.deliveries_run) holds at most this many claimed deliveries
# at once, and stops claiming after this many seconds (a follow-up run takes over), so that a
# busy stream of deliveries does not keep one Celery process forever.
WEBHOOK_BATCH_SIZE = env.int("WEBHOOK_BATCH_SIZE", default=100)
WEBHOOK_RUN_SECONDS = env.float("WEBHOOK_RUN_SECONDS", default=30.0)
# --- websockets (/ws, /stream): limits and backpressure, see docs/websockets.md -----------------
REALTIME_SEND_QUEUE_SIZE = env.int("REALTIME_SEND_QUEUE_SIZE", default=256)
# Largest client message in bytes; larger: close 1009 (the Procfile gives uvicorn the same bound).
REALTIME_MAX_MESSAGE_SIZE = env.int("REALTIME_MAX_MESSAGE_SIZE", default=64 * 1024)
REALTIME_MAX_PAIRS = env.int("REALTIME_MAX_PAIRS", default=50)
REALTIME_MAX_TOPICS = env.int("REALTIME_MAX_TOPICS", default=20)
REALTIME_RATE_LIMIT = env.float("REALTIME_RATE_LIMIT", default=20.0)
REALTIME_STATS_INTERVAL = env.float("REALTIME_STATS_INTERVAL", default=10.0)
REALTIME_CLOSE_GRACE = env.float("REALTIME_CLOSE_GRACE", default=10.0)
REALTIME_STREAM_REPLAY_LIMIT = env.int("REALTIME_STREAM_REPLAY_LIMIT", default=10000)
REALTIME_STREAM_BUFFER = env.int("REALTIME_STREAM_BUFFER", default=10000)
REALTIME_STREAM_DEDUPE = env.int("REALTIME_STREAM_DEDUPE", default=10000)
# Live position marks (current price, unrealised PnL) on every price tick, at most one push per
# asset per this many milliseconds across all processes (0: every tick).
REALTIME_MARKS_TICK_LISTENER = env.bool("REALTIME_MARKS_TICK_LISTENER", default=True)
REALTIME_MARKS_INTERVAL_MS = env.int("REALTIME_MARKS_INTERVAL_MS", default=500)
# Seconds between checks that this process's channel-layer group memberships (price hub, /ws and
# /stream subscriptions) are still in Redis; a restarted Redis has none, and they are re-added.
REALTIME_LAYER_CHECK_SECONDS = env.float("REALTIME_LAYER_CHECK_SECONDS", default=2.0)

# --- Ostium venue (see docs/ostium.md) ----------------------------------------------------------
# localnet | testnet (Arbitrum Sepolia) | mainnet (Arbitrum One).
OSTIUM_NETWORK = env("OSTIUM_NETWORK", default="localnet")
# The JSON file `python -m providers.ostium.localnet --config-out ...` writes.
OSTIUM_LOCALNET_CONFIG = env("OSTIUM_LOCALNET_CONFIG", default=".var/ostium-localnet.json")
# Addresses `manage.py ostium_localnet` funds when it starts (USDC and ETH for gas), comma
# separated; `make run` sets it to the demo's trader, delegate and relayer (localnet only).
OSTIUM_LOCALNET_FUND = env.list("OSTIUM_LOCALNET_FUND", default=[])
# The control panel warns when an Ostium signer (the desk trader, the delegate, the relayer)
# holds less ETH than this for gas.
OSTIUM_GAS_WARN_ETH = env("OSTIUM_GAS_WARN_ETH", default="0.01")
# Overrides of the network's endpoints (empty: the network's defaults).
OSTIUM_RPC_URL = env("OSTIUM_RPC_URL", default="")
OSTIUM_SUBMIT_RPC_URL = env("OSTIUM_SUBMIT_RPC_URL", default="")  # empty: OSTIUM_RPC_URL
OSTIUM_SUBGRAPH_URL = env("OSTIUM_SUBGRAPH_URL", default="")
OSTIUM_PRICE_URL = env("OSTIUM_PRICE_URL", default="")
# File holding the hex signing key of the desk's own trader (direct mode) and of the
# delegate that acts for delegating accounts (empty: the trader key signs delegated actions).
OSTIUM_TRADER_KEY_FILE = env("OSTIUM_TRADER_KEY_FILE", default="")
OSTIUM_DELEGATE_KEY_FILE = env("OSTIUM_DELEGATE_KEY_FILE", default="")
# Mainnet safeguards: writes only for these trader addresses (comma-separated), and only
# up to this notional (collateral x leverage, USD) per open.
OSTIUM_MAINNET_TRADER_ALLOWLIST = env.list("OSTIUM_MAINNET_TRADER_ALLOWLIST", default=[])
OSTIUM_MAINNET_MAX_NOTIONAL = env("OSTIUM_MAINNET_MAX_NOTIONAL", default="1000")
# Timeouts (seconds): reads; a write's receipt (then the outcome is unknown); waiting for a
# signer's write lock (then nothing was sent).
OSTIUM_READ_TIMEOUT = env.float("OSTIUM_READ_TIMEOUT", default=10.0)
OSTIUM_WRITE_TIMEOUT = env.float("OSTIUM_WRITE_TIMEOUT", default=60.0)
OSTIUM_LOCK_TIMEOUT = env.float("OSTIUM_LOCK_TIMEOUT", default=30.0)
# Bounded retries (with jitter) for reads only.
OSTIUM_READ_RETRIES = env.int("OSTIUM_READ_RETRIES", default=2)
# Circuit breaker per network: open after this many consecutive infrastructure failures, for
# this many seconds.
OSTIUM_BREAKER_THRESHOLD = env.int("OSTIUM_BREAKER_THRESHOLD", default=5)
OSTIUM_BREAKER_COOLDOWN = env.float("OSTIUM_BREAKER_COOLDOWN", default=30.0)
# A resting limit's life is read from the chain's logs: at most this many blocks per
# eth_getLogs call (RPC providers cap the range) and this many calls per limit per poll (the
# rest on the next poll).
OSTIUM_LOG_BLOCK_RANGE = env.int("OSTIUM_LOG_BLOCK_RANGE", default=10_000)
OSTIUM_LOG_SCAN_RANGES = env.int("OSTIUM_LOG_SCAN_RANGES", default=50)
# The poller reads a resting limit at most this often (seconds; 0: every round). Each read costs
# about three RPC calls (block number, one eth_getLogs, hasOpenLimitOrder), which adds up on a
# metered RPC with many limits resting; a fill or a cancel is then noticed up to this much later.
# Market orders are read every round; an operator's or reconciliation's status read always reads.
OSTIUM_LIMIT_POLL_SECONDS = env.float("OSTIUM_LIMIT_POLL_SECONDS", default=0.0)
# A market order still pending after this many seconds is timed out at the venue
# (openTradeMarketTimeout / closeTradeMarketTimeout) by the sync job.
OSTIUM_ORDER_TIMEOUT_SECONDS = env.float("OSTIUM_ORDER_TIMEOUT_SECONDS", default=180.0)
# The internal signer service (/internal/ostium/v1/...). When OSTIUM_SERVICE_BASE_URL is set the
# trading core reaches Ostium through it over HTTP; empty: in-process.
OSTIUM_SERVICE_BASE_URL = env("OSTIUM_SERVICE_BASE_URL", default="")
# HMAC secrets (comma-separated; two during a rotation: the first signs, all verify). Empty:
# every signed endpoint refuses.
OSTIUM_SERVICE_HMAC_SECRETS = env.list("OSTIUM_SERVICE_HMAC_SECRETS", default=[])
# Seconds a signed request's timestamp may differ from the service's clock.
OSTIUM_SERVICE_MAX_SKEW = env.int("OSTIUM_SERVICE_MAX_SKEW", default=30)
# Client timeout for calls to the service (longer than a write's receipt wait).
OSTIUM_SERVICE_TIMEOUT = env.float("OSTIUM_SERVICE_TIMEOUT", default=90.0)

# --- logging ------------------------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
# The `namespace` field of every log line: which deployment this desk is (demo, staging, prod).
LOG_NAMESPACE = env("LOG_NAMESPACE", default="tradedesk")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "config.logging.ContextFilter"},
        "redact": {"()": "config.logging.RedactionFilter"},
    },
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["context", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery": {"level": "INFO"},
        # per-task chatter (Beat fires every second): warnings only unless LOG_LEVEL=DEBUG
        "celery.beat": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
        "pgserver": {"level": "WARNING"},
        # httpx logs every request's URL at INFO; venue and feed URLs may carry keys
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # gql (the Ostium SDK's subgraph client) logs every query and its whole answer at INFO
        "gql": {"level": "WARNING"},
        # uvicorn's own lines (errors, websocket handshakes) print the path with its query string
        # (`/ws?token=...`): through our handler and its redaction, not uvicorn's plain-text
        # one. Django configures logging after uvicorn did (the app is imported after), so this
        # replaces uvicorn's handler; its access log, when on, is adopted in config/asgi.py.
        "uvicorn": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "uvicorn.error": {"level": LOG_LEVEL},
    },
}
READY_CELERY_TIMEOUT = env.float("READY_CELERY_TIMEOUT", default=1.0)

# --- metrics (config/metrics.py, docs/observability.md) ---------------------------------------
# The bearer token a Prometheus scrape of /metrics presents; unset: /metrics answers 404.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# Ledger replay check (manage.py ledger_verify; the daily Beat job checks this many hours back).
LEDGER_VERIFY_WINDOW_HOURS = env.int("LEDGER_VERIFY_WINDOW_HOURS", default=24)

# --- trading: venue kill switches, risk defaults, execution, idempotency ------------------------
# A disabled venue is never armed, whatever its control-state row says.
VENUE_ENABLED = {
    "paper": env.bool("PAPER_ENABLED", default=True),
    "ostium": env.bool("OSTIUM_ENABLED", default=True),
    "near_intents": env.bool("NEAR_INTENTS_ENABLED", default=True),
}
RISK_DEFAULTS = {
    "max_notional": env("RISK_MAX_NOTIONAL", default="10000"),
    "max_leverage": env("RISK_MAX_LEVERAGE", default=""),  # empty: the market's own maximum
    "max_open_positions": env.int("RISK_MAX_OPEN_POSITIONS", default=20),
    "max_slippage": env("RISK_MAX_SLIPPAGE", default="0.05"),
    "price_band": env("RISK_PRICE_BAND", default="0.10"),
    "daily_loss_cap": env("RISK_DAILY_LOSS_CAP", default="5000"),
    "max_orders_per_minute": env.int("RISK_MAX_ORDERS_PER_MINUTE", default=60),
}
# New exposure is refused when the venue's price is further than this (basis points) from the
# reference fair rate of the asset's pair (BTC-USD: BTC/USD), or when that fair rate is unusable
# (conflicted, unhealthy). 0: no reference check. Assets without a reference pair are not checked.
RISK_REFERENCE_BAND_BPS = env("RISK_REFERENCE_BAND_BPS", default="0")
RISK_LIMITS_CACHE_SECONDS = env.float("RISK_LIMITS_CACHE_SECONDS", default=2.0)
TRADING_MARKET_CACHE_SECONDS = env.float("TRADING_MARKET_CACHE_SECONDS", default=5.0)
RECONCILE_GRACE_SECONDS = env.float("RECONCILE_GRACE_SECONDS", default=30.0)
IDEMPOTENCY_TTL_HOURS = env.int("IDEMPOTENCY_TTL_HOURS", default=24)
# Seconds a trade open / close waits for the venue's outcome before answering 202 (docs/api.md).
TRADE_SYNC_WAIT_SECONDS = env.float("TRADE_SYNC_WAIT_SECONDS", default=10.0)

# --- Ostium delegations (Safe) and key custody --------------------------------------------------
# (network: OSTIUM_NETWORK above; delegation checks and delegate keys use its name)
# One delegate key per network ("network") or per user and network ("user").
OSTIUM_DELEGATE_KEY_SCOPE = env("OSTIUM_DELEGATE_KEY_SCOPE", default="network")
# Fernet keys encrypting custody keys at rest, comma separated, newest first (rotation: prepend a
# new key, run `manage.py ostium_delegate_key rotate-encryption`, then drop the old ones).
DELEGATE_KEY_ENCRYPTION_KEYS = env.list("DELEGATE_KEY_ENCRYPTION_KEYS", default=[])
# Used when DELEGATE_KEY_ENCRYPTION_KEYS is empty: a file with one Fernet key per line, newest first
# (generated on first use when missing — development only; give a real secret file in production).
DELEGATE_KEY_ENCRYPTION_KEY_FILE = env("DELEGATE_KEY_ENCRYPTION_KEY_FILE", default="") or str(
    embedded.VAR_DIR / "delegate_key_encryption_keys"
)
# An execution claimed longer ago than this (seconds) and not seen on chain is recovered by the
# Beat job `delegation-recovery` (or the next read): longer than any executor can take to send
# execTransaction and wait for its receipt.
DELEGATION_RECOVERY_AFTER_SECONDS = env.float("DELEGATION_RECOVERY_AFTER_SECONDS", default=300.0)
# Active delegations re-read from the chain per network and run of the Beat job `delegation-chain-check`.
DELEGATION_CHAIN_CHECK_BATCH = env.int("DELEGATION_CHAIN_CHECK_BATCH", default=200)
# --- protective-order engine (trading.protective) -----------------------------------------------
# No trigger fires on a price older than this (seconds); the asset is reported stale instead.
PROTECTIVE_MAX_PRICE_AGE_SECONDS = env.float("PROTECTIVE_MAX_PRICE_AGE_SECONDS", default=5.0)
# Run the engine for the ticked asset on every published price tick.
PROTECTIVE_TICK_LISTENER = env.bool("PROTECTIVE_TICK_LISTENER", default=True)
# The tick door writes its heartbeat (`tick` row) at most once per this many seconds per process,
# with what it evaluated since.
PROTECTIVE_TICK_HEARTBEAT_SECONDS = env.float("PROTECTIVE_TICK_HEARTBEAT_SECONDS", default=1.0)
# Trailing stops on venues with native SL/TP are pushed (update_sl) only when the stop moved
# at least this fraction from the level last pushed (0.001 = 0.1 %).
TRAILING_MIN_STEP_PCT = env("TRAILING_MIN_STEP_PCT", default="0.001")
# Flag an open position whose price is within this fraction of its liquidation price.
LIQUIDATION_WARN_PCT = env("LIQUIDATION_WARN_PCT", default="0.05")
# Flag an open position that has had no working stop for longer than this (seconds).
STOP_COVERAGE_GRACE_SECONDS = env.float("STOP_COVERAGE_GRACE_SECONDS", default=60.0)
# Venues treated as holding SL/TP natively in addition to those that declare it
# (`native_sl_tp` in `providers.registry`). Lets the native path run against paper in tests/demos.
PROTECTIVE_NATIVE_SL_TP_VENUES = env.list("PROTECTIVE_NATIVE_SL_TP_VENUES", default=[])
# Extra venues whose LIMIT entries the engine holds and fires (normally: venues declaring
# `native_limit_orders=False` in `providers.registry`; the paper venue rests its own limits).
PROTECTIVE_HELD_LIMIT_VENUES = env.list("PROTECTIVE_HELD_LIMIT_VENUES", default=[])

# --- NEAR Intents (providers/near_intents; docs/treasury.md) ------------------------------------
# sandbox (the loopback doubles `manage.py near_intents_sandbox` runs, described by the JSON file it
# writes) | mainnet (the public endpoints below unless overridden).
NEAR_INTENTS_NETWORK = env("NEAR_INTENTS_NETWORK", default="sandbox")
NEAR_INTENTS_SANDBOX_CONFIG = env("NEAR_INTENTS_SANDBOX_CONFIG", default=".var/near-intents-sandbox.json")
# Overrides of the network's endpoints: NEAR JSON-RPC, the deposit/withdrawal bridge service's
# JSON-RPC and the solver relay's JSON-RPC (empty: the network's own).
NEAR_INTENTS_RPC_URL = env("NEAR_INTENTS_RPC_URL", default="")
NEAR_INTENTS_BRIDGE_URL = env("NEAR_INTENTS_BRIDGE_URL", default="")
NEAR_INTENTS_RELAY_URL = env("NEAR_INTENTS_RELAY_URL", default="")
# The relay's API key (sent as `Authorization: Bearer <key>`); empty: no header.
NEAR_INTENTS_RELAY_API_KEY = env("NEAR_INTENTS_RELAY_API_KEY", default="")
# The verifier contract and the desk's own solver account on it (empty on the sandbox: the
# account its config file names).
NEAR_INTENTS_VERIFIER = env("NEAR_INTENTS_VERIFIER", default="intents.near")
NEAR_INTENTS_SOLVER_ACCOUNT = env("NEAR_INTENTS_SOLVER_ACCOUNT", default="")
# Token ids whose balances the inventory sync reads (comma separated; empty: every token the
# bridge service supports plus the well-known ones in providers/near_intents/tokens.py).
NEAR_INTENTS_TOKENS = env.list("NEAR_INTENTS_TOKENS", default=[])
# Seconds per call before it is given up (reads are retried NEAR_INTENTS_READ_RETRIES times; a
# publish is never retried: a timeout is an unknown outcome, resolved by get_status).
NEAR_INTENTS_TIMEOUT = env.float("NEAR_INTENTS_TIMEOUT", default=10.0)
NEAR_INTENTS_READ_RETRIES = env.int("NEAR_INTENTS_READ_RETRIES", default=2)
# Circuit breaker per endpoint: open after this many consecutive failures, for this many seconds.
NEAR_INTENTS_BREAKER_THRESHOLD = env.int("NEAR_INTENTS_BREAKER_THRESHOLD", default=5)
NEAR_INTENTS_BREAKER_COOLDOWN = env.float("NEAR_INTENTS_BREAKER_COOLDOWN", default=30.0)
# The relay's websocket for solvers (empty: the network's own).
NEAR_INTENTS_RELAY_WS_URL = env("NEAR_INTENTS_RELAY_WS_URL", default="")

# --- the NEAR Intents solver loop (solver/; docs/near-intents.md) -------------------------------
# Defaults of the runtime settings (stored, editable in the admin and the staff API, audited):
# the pairs quoted (the pair filter), the gross edge a quote must reach (%), the spread the desk
# prices with under the fair rate (%), and the notional caps in the pair's quote asset.
NEAR_SOLVER_PAIRS = env.list("NEAR_SOLVER_PAIRS", default=["BTC/EURE"])
NEAR_SOLVER_THRESHOLD_PCT = Decimal(env("NEAR_SOLVER_THRESHOLD_PCT", default="2"))
NEAR_SOLVER_SPREAD_PCT = Decimal(env("NEAR_SOLVER_SPREAD_PCT", default="2.5"))
NEAR_SOLVER_MAX_NOTIONAL_QUOTE = Decimal(env("NEAR_SOLVER_MAX_NOTIONAL_QUOTE", default="10000"))
NEAR_SOLVER_MAX_NOTIONAL_HOUR = Decimal(env("NEAR_SOLVER_MAX_NOTIONAL_HOUR", default="100000"))
# A fair rate whose source price is older than this (ms) is not quoted on.
NEAR_SOLVER_PRICE_MAX_AGE_MS = env.int("NEAR_SOLVER_PRICE_MAX_AGE_MS", default=5000)
# The relay waits about 3 s for solvers: a quote decided later than this after it arrived is skipped.
NEAR_SOLVER_ANSWER_WINDOW_MS = env.int("NEAR_SOLVER_ANSWER_WINDOW_MS", default=2500)
# The solver evaluates a pair's fair rate at most this often (0: per quote); a cached rate's age
# keeps counting, so the freshness limit holds exactly.
NEAR_SOLVER_FAIR_RATE_MS = env.int("NEAR_SOLVER_FAIR_RATE_MS", default=200)
# Requests asking a longer min_deadline_ms are refused; the signed intent's deadline is
# min_deadline_ms plus this margin (the reservation is held until then).
NEAR_SOLVER_MAX_DEADLINE_MS = env.int("NEAR_SOLVER_MAX_DEADLINE_MS", default=60_000)
NEAR_SOLVER_DEADLINE_EXTRA_MS = env.int("NEAR_SOLVER_DEADLINE_EXTRA_MS", default=10_000)
# Seconds the relay has to answer a quote_response before the outcome is unknown.
NEAR_SOLVER_RESPONSE_TIMEOUT = env.float("NEAR_SOLVER_RESPONSE_TIMEOUT", default=5.0)
# Reconnects: a back-off doubling from MIN to MAX seconds (half of it jitter); at most STORM_MAX
# connections per minute (a relay closing every connection is retried ever more slowly).
NEAR_SOLVER_RECONNECT_MIN_SECONDS = env.float("NEAR_SOLVER_RECONNECT_MIN_SECONDS", default=0.5)
NEAR_SOLVER_RECONNECT_MAX_SECONDS = env.float("NEAR_SOLVER_RECONNECT_MAX_SECONDS", default=30.0)
NEAR_SOLVER_STABLE_SECONDS = env.float("NEAR_SOLVER_STABLE_SECONDS", default=30.0)
NEAR_SOLVER_STORM_MAX = env.int("NEAR_SOLVER_STORM_MAX", default=12)
# A filtered pair without a quote for this many seconds while the connection is up is `silent`.
NEAR_SOLVER_PAIR_SILENT_SECONDS = env.float("NEAR_SOLVER_PAIR_SILENT_SECONDS", default=300.0)
# Seconds between the loop's housekeeping rounds (deadlines, unknown outcomes, silent pairs).
NEAR_SOLVER_HOUSEKEEPING_SECONDS = env.float("NEAR_SOLVER_HOUSEKEEPING_SECONDS", default=1.0)
# Threads for quote_status events and the housekeeping rounds (each its own database connection);
# quotes are decided in batches on two threads of their own, and two more record the relay's answers.
NEAR_SOLVER_WORKERS = env.int("NEAR_SOLVER_WORKERS", default=8)
# Raw quotes (and the decisions of quotes never answered) are kept this many days.
NEAR_SOLVER_QUOTE_RETENTION_DAYS = env.float("NEAR_SOLVER_QUOTE_RETENTION_DAYS", default=7)

# --- treasury: inventory, liquidity actions, withdrawals (docs/treasury.md) ---------------------
# A balance whose last sync is older than this (seconds) is stale: spending it is refused.
INVENTORY_MAX_AGE_SECONDS = env.float("INVENTORY_MAX_AGE_SECONDS", default=60.0)
# Seconds between inventory syncs of each venue (Beat).
INVENTORY_SYNC_SECONDS = env.float("INVENTORY_SYNC_SECONDS", default=15.0)
# Ostium accounts whose USDC the sync reads besides the desk's trader (OSTIUM_TRADER_KEY_FILE)
# and the Safes of active delegations (comma-separated addresses).
TREASURY_OSTIUM_ACCOUNTS = env.list("TREASURY_OSTIUM_ACCOUNTS", default=[])
# A funding (or other inbound/outbound action) not credited this many minutes after it was
# requested is `delayed` and shown on top of the treasury page.
FUNDING_DELAY_ALERT_MINUTES = env.float("FUNDING_DELAY_ALERT_MINUTES", default=30.0)
# A withdrawal above this amount (in the asset's own units) needs a second operator's approval;
# WITHDRAWAL_APPROVAL_THRESHOLDS overrides it per asset symbol (e.g. "BTC=0.05,ETH=1").
WITHDRAWAL_APPROVAL_THRESHOLD = env("WITHDRAWAL_APPROVAL_THRESHOLD", default="1000")
WITHDRAWAL_APPROVAL_THRESHOLDS = env.dict("WITHDRAWAL_APPROVAL_THRESHOLDS", default={})
# Seconds a signed withdrawal intent stays valid (its deadline and its nonce's).
WITHDRAWAL_DEADLINE_SECONDS = env.int("WITHDRAWAL_DEADLINE_SECONDS", default=120)

# --- deposits through LI.FI (docs/deposits.md) --------------------------------------------------
# Where LI.FI is: `live` = LIFI_API_URL (with LIFI_API_KEY, LIFI_TIMEOUT, LIFI_ENABLED: runtime
# keys of the `lifi` provider, above), `sandbox` = the loopback double `manage.py lifi_sandbox`
# runs (its address in LIFI_SANDBOX_CONFIG), the demo's default.
LIFI_ENDPOINTS = env("LIFI_ENDPOINTS", default="sandbox")
LIFI_SANDBOX_CONFIG = env("LIFI_SANDBOX_CONFIG", default=".var/lifi-sandbox.json")
LIFI_INTEGRATOR = env("LIFI_INTEGRATOR", default="tradedesk")
# The chains a deposit may come from: name → EVM chain id (comma separated name=id).
DEPOSIT_CHAINS = {
    k: int(v)
    for k, v in env.dict(
        "DEPOSIT_CHAINS",
        default={"ethereum": "1", "arbitrum": "42161", "optimism": "10", "base": "8453", "polygon": "137", "bsc": "56"},
    ).items()
}
# Where deposits end: USDC on this chain (a DEPOSIT_CHAINS name). Its chain id, RPC and USDC
# contract come from the Ostium network (OSTIUM_NETWORK: Arbitrum One on mainnet, the localnet in
# tests and the demo), where the credited USDC is traded.
DEPOSIT_TARGET_CHAIN = env("DEPOSIT_TARGET_CHAIN", default="arbitrum")
DEPOSIT_TARGET_TOKEN = "USDC"  # noqa: S105 (a token symbol)
# Slippage asked of LI.FI, and the widest a quote may come back with (else 422 SLIPPAGE_TOO_HIGH).
DEPOSIT_SLIPPAGE = env("DEPOSIT_SLIPPAGE", default="0.005")
DEPOSIT_MAX_SLIPPAGE = env("DEPOSIT_MAX_SLIPPAGE", default="0.01")
# Seconds a quote may be signed in; after it, `submitted` answers 409 QUOTE_EXPIRED (re-quote).
DEPOSIT_QUOTE_TTL_SECONDS = env.float("DEPOSIT_QUOTE_TTL_SECONDS", default=120.0)
# Status polling (Beat `deposits-poll` every few seconds): the first retry after a LI.FI failure
# and the longest back-off; a deposit submitted longer ago than the alert delay is flagged.
DEPOSIT_POLL_BACKOFF_SECONDS = env.float("DEPOSIT_POLL_BACKOFF_SECONDS", default=5.0)
DEPOSIT_POLL_BACKOFF_MAX_SECONDS = env.float("DEPOSIT_POLL_BACKOFF_MAX_SECONDS", default=300.0)
DEPOSIT_DELAY_ALERT_MINUTES = env.float("DEPOSIT_DELAY_ALERT_MINUTES", default=30.0)
# A reported transaction hash is polled at once (a worker task), not only at the next Beat round.
DEPOSIT_POLL_KICK = env.bool("DEPOSIT_POLL_KICK", default=True)
