"""Test settings: `make test` points DATABASE_URL and REDIS_URL at throwaway services."""

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Short answers keep the suite fast; the protocol is the same at any length.
DOCENT_MAX_ANSWER_TOKENS = 48
# Static files straight from the finders: no collectstatic in tests.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
