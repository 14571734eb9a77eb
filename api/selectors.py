"""Reads for the API: which knowledge bases a key may ask."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from api.models import ApiKey
from kb.models import KnowledgeBase
from kb.selectors import knowledge_bases_for_user


def api_key_knowledge_bases(*, key: ApiKey) -> QuerySet[KnowledgeBase]:
    """The bases the key may ask: those its user may read, narrowed to the key's own list when it has one.

    One query; the user's access rules (kb.selectors) apply as they are now, not as they were at creation.
    """
    bases = knowledge_bases_for_user(user=key.user)
    if key.knowledge_bases.exists():
        bases = bases.filter(pk__in=key.knowledge_bases.values("pk"))
    return bases.order_by("slug")


def api_key_knowledge_base(*, key: ApiKey, slug: str) -> KnowledgeBase | None:
    """The base `slug` if the key may ask it, else None (unknown and forbidden look the same)."""
    return api_key_knowledge_bases(key=key).filter(slug=slug).first()


def api_keys_of(*, user: Any) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user).prefetch_related("knowledge_bases")
