"""Reads on knowledge bases and documents."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from kb.models import Chunk, Document, KnowledgeBase


def knowledge_bases_for_user(*, user: Any) -> QuerySet[KnowledgeBase]:
    # Every signed-in user may use every knowledge base; per-base permissions would narrow this one query.
    if user is None or not user.is_authenticated:
        return KnowledgeBase.objects.none()
    return KnowledgeBase.objects.all()


def knowledge_base_for_user(*, user: Any, slug: str) -> KnowledgeBase | None:
    return knowledge_bases_for_user(user=user).filter(slug=slug).first()


def documents_of(*, knowledge_base: KnowledgeBase) -> QuerySet[Document]:
    return Document.objects.filter(knowledge_base=knowledge_base).defer("text").order_by("-created_at")


def passage_for_user(*, user: Any, document_id: int, chunk_id: int) -> tuple[Document, list[Chunk], Chunk] | None:
    """The document, its chunks in reading order, and the cited one; None if not the user's to see."""
    document = (
        Document.objects.filter(pk=document_id, knowledge_base__in=knowledge_bases_for_user(user=user))
        .select_related("knowledge_base")
        .first()
    )
    if document is None:
        return None
    chunks = list(document.chunks.only("id", "ordinal", "text", "page", "heading"))
    cited = next((c for c in chunks if c.pk == chunk_id), None)
    if cited is None:
        return None
    return document, chunks, cited
