"""Signed visitor tokens. Visitors have no account: what they may do is what these tokens say.

Two tokens, both signed with SECRET_KEY and bound to one widget key:
- the *visitor credential* names a visitor for months; the iframe keeps it in its own localStorage, so a
  returning visitor gets their conversation back. It grants nothing by itself except a new session.
- the *session* is what the websocket, history, ticket and passage URLs accept: short-lived (an hour
  for the socket), and it carries the embedding page's origin as the iframe view saw it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.core import signing

SESSION_SALT = "docent.widget.session"
VISITOR_SALT = "docent.widget.visitor"


@dataclass(frozen=True)
class VisitorSession:
    key: str
    visitor_id: str
    origin: str  # the embedding page's origin; "" when the browser sent no Referer


def new_visitor_id() -> str:
    return secrets.token_urlsafe(16)


def session_issue(*, key: str, visitor_id: str, origin: str) -> str:
    return signing.dumps({"k": key, "v": visitor_id, "o": origin}, salt=SESSION_SALT)


def session_read(token: Any, *, key: str, max_age: int | None) -> VisitorSession | None:
    """The session when the token is genuine, not older than max_age seconds and for this key; else None."""
    payload = _load(token, salt=SESSION_SALT, max_age=max_age)
    if payload is None or payload.get("k") != key or not isinstance(payload.get("v"), str):
        return None
    origin = payload.get("o")
    return VisitorSession(key=key, visitor_id=payload["v"], origin=origin if isinstance(origin, str) else "")


def visitor_credential_issue(*, key: str, visitor_id: str) -> str:
    return signing.dumps({"k": key, "v": visitor_id}, salt=VISITOR_SALT)


def visitor_credential_read(credential: Any, *, key: str, max_age: int) -> str | None:
    payload = _load(credential, salt=VISITOR_SALT, max_age=max_age)
    if payload is None or payload.get("k") != key or not isinstance(payload.get("v"), str):
        return None
    return payload["v"]


def _load(token: Any, *, salt: str, max_age: int | None) -> dict[str, Any] | None:
    if not isinstance(token, str) or not token or len(token) > 1000:
        return None
    try:
        payload = signing.loads(token, salt=salt, max_age=max_age)
    except signing.BadSignature:  # SignatureExpired is a BadSignature too
        return None
    return payload if isinstance(payload, dict) else None
