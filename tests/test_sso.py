"""Single sign-on against a small OpenID Connect provider that this test starts on a free local port.

The provider (authorization code flow with PKCE, RS256 id tokens, a JWKS, userinfo with a `groups` claim) is
the test's own: no outside service is reached. Docent's side is mozilla-django-oidc with config/sso.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client

from kb.selectors import knowledge_base_list_readable
from kb.services import knowledge_base_create, membership_set

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT_ID, CLIENT_SECRET = "docent-test", "docent-test-secret"


class Provider:
    """An OpenID Connect provider with one signing key; `claims` are the next sign-in's user."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # published in the JWKS
        self.signing_key = self.key  # what id tokens are signed with
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.claims: dict[str, Any] = {}
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, body: dict[str, Any], status: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/authorize":
                    assert query["client_id"] == CLIENT_ID and query["response_type"] == "code"
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = {**query, "claims": dict(provider.claims)}
                    self.send_response(302)
                    self.send_header(
                        "Location", f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
                    )
                    self.end_headers()
                elif url.path == "/jwks":
                    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(provider.key.public_key()))
                    self._json({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]})
                elif url.path == "/userinfo":
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    if token not in provider.tokens:
                        self._json({"error": "invalid_token"}, 401)
                        return
                    self._json(provider.tokens[token])
                else:
                    self._json({"error": "not_found"}, 404)

            def do_POST(self) -> None:
                body = {
                    k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()
                }
                grant = provider.codes.pop(body.get("code", ""), None)
                if self.path != "/token" or grant is None or body.get("client_secret") != CLIENT_SECRET:
                    self._json({"error": "invalid_grant"}, 400)
                    return
                if "code_challenge" in grant:  # PKCE: the verifier must hash to the challenge
                    digest = hashlib.sha256(body.get("code_verifier", "").encode()).digest()
                    if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["code_challenge"]:
                        self._json({"error": "invalid_grant"}, 400)
                        return
                claims = grant["claims"]
                now = int(time.time())
                id_token = jwt.encode(
                    {
                        "iss": provider.url,
                        "sub": claims["sub"],
                        "aud": CLIENT_ID,
                        "iat": now,
                        "exp": now + 300,
                        "nonce": grant.get("nonce"),
                    },
                    provider.signing_key,
                    algorithm="RS256",
                    headers={"kid": "k1"},
                )
                access = secrets.token_urlsafe(16)
                provider.tokens[access] = claims
                self._json({"access_token": access, "id_token": id_token, "token_type": "Bearer", "expires_in": 300})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def provider(settings) -> Iterator[Provider]:
    running = Provider()
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{running.url}/authorize"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{running.url}/token"
    settings.OIDC_OP_USER_ENDPOINT = f"{running.url}/userinfo"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{running.url}/jwks"
    yield running
    running.server.shutdown()


def sign_in(provider: Provider, claims: dict[str, Any]) -> Client:
    """The browser's part of the code flow: Docent → provider → Docent's callback."""
    import urllib.request

    provider.claims = claims
    client = Client()
    start = client.get("/oidc/authenticate/")
    assert start.status_code == 302 and start["Location"].startswith(provider.url + "/authorize?")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(start["Location"])
        raise AssertionError("the provider did not redirect back")
    except urllib.error.HTTPError as redirect:
        callback = redirect.headers["Location"]
    parts = urlsplit(callback)
    assert parts.path == "/oidc/callback/"
    client.get(f"{parts.path}?{parts.query}")
    return client


def test_sso_creates_the_user_with_the_claims_groups_and_the_bases_shared_with_them(provider, django_user_model):
    hr_base = knowledge_base_create(slug="hr", name="HR")
    other = knowledge_base_create(slug="other", name="Other")
    from django.contrib.auth.models import Group

    membership_set(knowledge_base=hr_base, role="reader", actor=None, group=Group.objects.create(name="hr"))
    client = sign_in(
        provider, {"sub": "u-1", "preferred_username": "alice", "email": "a@example.org", "groups": ["hr", "staff"]}
    )
    alice = django_user_model.objects.get(username="alice")
    assert client.session.get("_auth_user_id") == str(alice.pk)
    assert not alice.has_usable_password()
    assert set(alice.groups.values_list("name", flat=True)) == {"hr", "staff"}
    assert list(knowledge_base_list_readable(user=alice)) == [hr_base]
    assert client.get("/kb/hr/").status_code == 200 and client.get(f"/kb/{other.slug}/").status_code == 404

    # The next sign-in brings the provider's groups as they are then: access follows.
    client = sign_in(
        provider, {"sub": "u-1", "preferred_username": "alice", "email": "a@example.org", "groups": ["staff"]}
    )
    assert client.session.get("_auth_user_id") == str(alice.pk)
    assert set(alice.groups.values_list("name", flat=True)) == {"staff"}
    assert client.get("/kb/hr/").status_code == 404


def test_sso_never_takes_over_a_local_password_account(provider, django_user_model):
    admin = django_user_model.objects.create_superuser("admin", password="admin-password-1")
    client = sign_in(provider, {"sub": "u-2", "preferred_username": "admin", "email": "x@example.org", "groups": []})
    assert client.session.get("_auth_user_id") is None
    admin.refresh_from_db()
    assert admin.has_usable_password()


def test_a_forged_id_token_or_a_made_up_code_is_refused(provider, django_user_model):
    # Tokens signed by another key than the JWKS publishes: the signature does not verify.
    provider.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client = sign_in(provider, {"sub": "u-3", "preferred_username": "mallory", "groups": ["hr"]})
    assert client.session.get("_auth_user_id") is None
    assert not django_user_model.objects.filter(username="mallory").exists()
    # A code the provider never issued: its token endpoint refuses it, the sign-in fails without an error page.
    client = Client()
    start = client.get("/oidc/authenticate/")
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    response = client.get(f"/oidc/callback/?{urlencode({'code': 'made-up', 'state': state})}")
    assert response.status_code == 302 and client.session.get("_auth_user_id") is None
