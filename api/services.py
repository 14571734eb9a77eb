"""API keys: created (the secret is returned once), checked on each request, revoked."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from api.models import ApiKey
from kb.models import KnowledgeBase
from kb.selectors import knowledge_bases_for_user

KEY_PREFIX = "dk-"


def key_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def new_secret() -> tuple[str, str, str]:
    """A fresh key: (secret, its displayed prefix, its stored hash). The secret is "dk-" and 43 URL-safe
    characters (256 random bits)."""
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    return raw, raw[:10], key_hash(raw)


@transaction.atomic
def api_key_create(
    *, user: Any, knowledge_bases: Iterable[KnowledgeBase] = (), name: str = "", questions_per_minute: int | None = None
) -> tuple[ApiKey, str]:
    """A new key for `user` and its secret, which is stored only as a hash: show it to the user once.

    `knowledge_bases` narrows the key to those
    bases (each must be one the user may read: ValueError otherwise); none: every base the user may read.
    """
    bases = list(knowledge_bases)
    readable = set(
        knowledge_bases_for_user(user=user).filter(pk__in=[b.pk for b in bases]).values_list("pk", flat=True)
    )
    if denied := [b.slug for b in bases if b.pk not in readable]:
        raise ValueError(f"{user} may not read the knowledge base(s) {', '.join(denied)}")
    raw, prefix, hashed = new_secret()
    key = ApiKey.objects.create(
        user=user, name=name[:100], prefix=prefix, key_hash=hashed, questions_per_minute=questions_per_minute
    )
    key.knowledge_bases.set(bases)
    return key, raw


def api_key_authenticate(*, raw: str) -> ApiKey | None:
    """The active key whose secret is `raw`, its user active, with `last_used_at` set to now; else None."""
    if not raw.startswith(KEY_PREFIX) or len(raw) > 100:
        return None
    key = (
        ApiKey.objects.select_related("user")
        .filter(key_hash=key_hash(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if key is not None:
        now = timezone.now()
        # at most one write a minute per key: the column says when, not how often
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() >= 60:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
    return key


def api_key_revoke(*, user: Any, key_id: int) -> ApiKey | None:
    """Revoke one of `user`'s own keys (staff revoke any in the admin); None if it is not theirs."""
    key = ApiKey.objects.filter(pk=key_id, user=user).first()
    if key is not None and key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key
