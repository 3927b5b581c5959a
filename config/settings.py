"""Settings, read from the environment with local defaults that need no server.

Embedded defaults: SQLite under var/ (WAL, immediate transactions) and a filesystem Celery
broker under var/. Production: DATABASE_URL and CELERY_BROKER_URL point at PostgreSQL and
Redis, DEBUG is off, and SECRET_KEY and ALLOWED_HOSTS must be given.
"""

from __future__ import annotations

from pathlib import Path

import environ
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


DEBUG = _boolean("DEBUG", default=True)


def _required_in_production(name: str, default: str) -> str:
    """Return the variable, or the local default when DEBUG is on; fail fast naming it otherwise."""
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return default
    raise ImproperlyConfigured(f"{name} must be set when DEBUG is off.")


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
    "annotation",
    "rewards",
]

MIDDLEWARE = [
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

if not DEBUG:
    SESSION_COOKIE_SECURE = _boolean("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = _boolean("CSRF_COOKIE_SECURE", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

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
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
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
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 4 * 3600}
CELERY_TASK_ALWAYS_EAGER = _boolean("CELERY_TASK_ALWAYS_EAGER", default=False)

# Workers
GENERATION_DEFAULT_MODEL = env.str("GENERATION_DEFAULT_MODEL", default="")  # empty: the packaged Gemma 3 270M
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
# Fernet keys (comma-separated; the first encrypts, all decrypt) for secrets stored in the database,
# such as a project's API key; empty: a key derived from SECRET_KEY (annotation/models/fields.py).
FIELD_ENCRYPTION_KEY = env.list("FIELD_ENCRYPTION_KEY", default=[])
# Secret behind the labeler pseudonyms of anonymised exports, combined with the project
# (annotation/exports/filters.py); empty: SECRET_KEY. Set it to keep pseudonyms across a key rotation.
EXPORT_PSEUDONYM_KEY = env.str("EXPORT_PSEUDONYM_KEY", default="")
REWARD_MODEL_ARTIFACT_DIR = Path(env.str("REWARD_MODEL_ARTIFACT_DIR", default=str(VAR_DIR / "reward_models")))
# A training run whose worker has not reported for this long is marked failed (the worker died).
REWARD_MODEL_STALE_SECONDS = _integer("REWARD_MODEL_STALE_SECONDS", 900, minimum=60)
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
