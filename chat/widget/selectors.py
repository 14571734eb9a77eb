"""Reads for the widget: keys, a visitor's own conversations and the passages shown to them."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from chat.models import Conversation
from chat.selectors import conversation_history
from chat.widget.models import ShownChunk, WidgetConversation, WidgetKey
from chat.widget.origins import netloc_of, origin_of
from kb.models import Chunk
from kb.selectors import document_visible_q


def widget_key_enabled(*, key: str) -> WidgetKey | None:
    """The enabled key with this public id; a disabled, forged or deleted one is simply absent."""
    return WidgetKey.objects.select_related("knowledge_base").filter(key=key, enabled=True).first()


def origin_is_docent(*, origin: str | None, host: str | None) -> bool:
    """Whether a page of this origin is one of Docent's own (the widget's iframe), not a customer's."""
    if not origin:
        return False
    public = origin_of(settings.DOCENT_PUBLIC_URL)
    if origin == public:
        return True
    # Behind a TLS proxy the socket's scheme and the page's differ; host and port are what identify the server.
    return bool(host) and netloc_of(origin) == (host or "").lower()


def visitor_conversation(*, key: WidgetKey, visitor_id: str, conversation_id: Any) -> Conversation | None:
    if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
        return None
    link = (
        WidgetConversation.objects.select_related("conversation")
        .filter(conversation_id=conversation_id, key=key, visitor_id=visitor_id)
        .first()
    )
    return link.conversation if link else None


def visitor_history(*, key: WidgetKey, visitor_id: str, conversation_id: int) -> list[dict[str, Any]] | None:
    """A visitor's conversation as the widget shows it (no timings: those are for staff); None if not theirs."""
    conversation = visitor_conversation(key=key, visitor_id=visitor_id, conversation_id=conversation_id)
    if conversation is None:
        return None
    fields = ("role", "text", "sources", "citations", "answered", "stopped")
    return [{name: message[name] for name in fields} for message in conversation_history(conversation=conversation)]


def shown_chunk(*, key: WidgetKey, visitor_id: str, chunk_id: int) -> Chunk | None:
    """The chunk, only when it was shown to this visitor as a source, is in the key's knowledge base and its
    document is not restricted (visitors see unrestricted documents only, as their searches do)."""
    if not ShownChunk.objects.filter(key=key, visitor_id=visitor_id, chunk_id=chunk_id).exists():
        return None
    return (
        Chunk.objects.select_related("document")
        .filter(
            document_visible_q(user=None, prefix="document__"), pk=chunk_id, knowledge_base_id=key.knowledge_base_id
        )
        .only("id", "text", "page", "heading", "document__title", "document__knowledge_base_id")
        .first()
    )
