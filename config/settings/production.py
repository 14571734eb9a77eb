"""Production settings: every secret and address comes from the environment.

The image serves plain HTTP on port 8000 (docker/compose.yaml); TLS, when there is any, ends at a proxy in
front of it. `DOCENT_HTTPS=1` says so: then cookies are sent over HTTPS only, HTTP is redirected to HTTPS
(except /healthz, which probes call over the internal network), and browsers are told to use HTTPS alone
(HSTS). The proxy must set `X-Forwarded-Proto: https` (and overwrite any such header from clients): it is how
Django learns that a request came over TLS. Without DOCENT_HTTPS, `manage.py check --deploy` warns about
exactly these settings (security.W004, W008, W012, W016): they cannot hold without TLS.
"""

import os

from .base import *  # noqa: F403
from .base import env, env_bool

SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
DEBUG = False
DOCENT_HTTPS = env_bool("DOCENT_HTTPS", False)
SESSION_COOKIE_SECURE = DOCENT_HTTPS
CSRF_COOKIE_SECURE = DOCENT_HTTPS
SECURE_SSL_REDIRECT = DOCENT_HTTPS and env_bool("DOCENT_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = int(env("DOCENT_HSTS_SECONDS", "31536000")) if DOCENT_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DOCENT_HSTS_INCLUDE_SUBDOMAINS", True)
# `preload` asks browser vendors to hard-code HTTPS for the whole registrable domain: only the domain's owner can
# make that promise, so Docent does not send it unless told to (DOCENT_HSTS_PRELOAD=1).
SECURE_HSTS_PRELOAD = env_bool("DOCENT_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = ["security.W021"]  # SECURE_HSTS_PRELOAD off: the domain owner's choice, see above
# Trusted only when a TLS proxy is declared: served directly, a client could claim HTTPS with this header.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if DOCENT_HTTPS else None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "config.static_storage.StaticFilesStorage"},
}
