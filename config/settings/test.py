"""Test settings: `make test` points DATABASE_URL and REDIS_URL at throwaway services."""

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Short answers keep the suite fast; the protocol is the same at any length.
DOCENT_MAX_ANSWER_TOKENS = 48
# Static files straight from the finders: no collectstatic in tests.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
# SmolLM2-135M keeps the suite fast where any model will do; tests/chat/test_default_models.py answers with
# the default model (Qwen2.5-0.5B) and checks its answers.
DOCENT_LLM_MODEL = env("DOCENT_TEST_LLM_MODEL", "smollm2-135m")  # noqa: F405

# Single sign-on is on in tests, against placeholder endpoints that tests/test_sso.py points at a provider it
# starts itself (off by default everywhere else).
DOCENT_OIDC_ENABLED = True
OIDC_RP_CLIENT_ID = "docent-test"
OIDC_RP_CLIENT_SECRET = "docent-test-secret"
OIDC_OP_AUTHORIZATION_ENDPOINT = "http://127.0.0.1:9/authorize"
OIDC_OP_TOKEN_ENDPOINT = "http://127.0.0.1:9/token"
OIDC_OP_USER_ENDPOINT = "http://127.0.0.1:9/userinfo"
OIDC_OP_JWKS_ENDPOINT = "http://127.0.0.1:9/jwks"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend", "config.sso.DocentOIDCBackend"]
