"""Single sign-on with OpenID Connect (mozilla-django-oidc), off unless DOCENT_OIDC_CLIENT_ID is set.

Accounts are matched by a claim the identity provider vouches for (`DOCENT_OIDC_USERNAME_CLAIM`, default
`preferred_username`, else `sub`), and only accounts that SSO created (they have no usable password): a local
account with a password is never taken over by an identity provider that names it. At every sign-in the
account's Django groups become the groups of the token's group claim (`DOCENT_OIDC_GROUPS_CLAIM`), mapped
through `DOCENT_OIDC_GROUP_MAP` when it is set; the knowledge bases and documents shared with those groups
follow (kb.selectors).
"""

from __future__ import annotations

import logging
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.db.models import QuerySet
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

logger = logging.getLogger(__name__)


def group_names_from_claims(claims: dict[str, Any]) -> set[str] | None:
    """The Django group names the claims grant; None when the claim is absent (groups are then left alone)."""
    raw = claims.get(settings.DOCENT_OIDC_GROUPS_CLAIM)
    if raw is None:
        return None
    values = [raw] if isinstance(raw, str) else [str(v) for v in raw if isinstance(v, (str, int))]
    mapping: dict[str, str] = settings.DOCENT_OIDC_GROUP_MAP
    if mapping:
        return {mapping[v] for v in values if v in mapping}
    return {v[:150] for v in values if v}


def groups_sync(*, user: Any, claims: dict[str, Any]) -> None:
    """Set the user's groups to those of the claims. With a map, only the mapped groups are managed (groups
    given in Docent's admin stay); without one, the identity provider's list is the whole truth."""
    names = group_names_from_claims(claims)
    if names is None:
        return
    with transaction.atomic():
        granted = [Group.objects.get_or_create(name=name)[0] for name in sorted(names)]
        mapping: dict[str, str] = settings.DOCENT_OIDC_GROUP_MAP
        if mapping:
            managed = set(mapping.values())
            kept = [g for g in user.groups.all() if g.name not in managed]
            user.groups.set([*kept, *granted])
        else:
            user.groups.set(granted)


class DocentOIDCBackend(OIDCAuthenticationBackend):
    def authenticate(self, request: Any, **kwargs: Any) -> User | None:
        # A refused code, a token that does not verify, an unreachable provider: the sign-in fails (the view
        # redirects to the failure URL) instead of answering 500.
        try:
            return super().authenticate(request, **kwargs)
        except (requests.RequestException, jwt.PyJWTError, SuspiciousOperation, ValueError, KeyError) as exc:
            logger.warning("SSO sign-in failed: %s", exc)
            return None

    def username_of(self, claims: dict[str, Any]) -> str:
        name = claims.get(settings.DOCENT_OIDC_USERNAME_CLAIM) or claims.get("sub")
        if not isinstance(name, str) or not name.strip():
            raise SuspiciousOperation("the identity provider named no user")
        return name.strip()[:150]

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(claims.get("sub"))

    def filter_users_by_claims(self, claims: dict[str, Any]) -> QuerySet[User]:
        # Only accounts SSO created (an unusable password starts with "!"): never a local password account.
        return self.UserModel.objects.filter(
            **{self.UserModel.USERNAME_FIELD: self.username_of(claims)}, password__startswith="!"
        )

    def create_user(self, claims: dict[str, Any]) -> User:
        username = self.username_of(claims)
        if self.UserModel.objects.filter(**{self.UserModel.USERNAME_FIELD: username}).exists():
            logger.warning("SSO sign-in refused: a local account is named %r", username)
            raise SuspiciousOperation("a local account has this name")
        user = self.UserModel.objects.create_user(username, email=claims.get("email") or "")
        user.set_unusable_password()
        user.save(update_fields=["password"])
        groups_sync(user=user, claims=claims)
        return user

    def update_user(self, user: User, claims: dict[str, Any]) -> User:
        if claims.get("email") and claims["email"] != user.email:
            user.email = claims["email"]
            user.save(update_fields=["email"])
        groups_sync(user=user, claims=claims)
        return user
