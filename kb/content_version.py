"""A knowledge base's content version: bumped by every change that can change an answer (chat.answer_cache)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F

from kb.models import KnowledgeBase


def knowledge_base_content_changed(*, knowledge_base_id: int) -> None:
    """Bump the base's `content_version` once the current transaction commits (at once outside one).

    Every change that can change an answer calls it (a document stored, replaced, deleted or queued again, a
    restriction, a membership, the base's settings, a re-embedding): the version is part of the answer cache's
    key (chat.answer_cache), so the base's stored answers are no longer found. After the commit, because a reader
    that sees the new version must also see the new content; and outside the writer's transaction, whose locks
    (the base's row is share-locked while chunks are stored) an update of the row would otherwise contend with.
    """

    def bump() -> None:
        KnowledgeBase.objects.filter(pk=knowledge_base_id).update(content_version=F("content_version") + 1)

    transaction.on_commit(bump)
