from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from chat.models import Conversation


def conversations_for_user(*, user: Any) -> QuerySet[Conversation]:
    return Conversation.objects.filter(user=user).select_related("knowledge_base")


def conversation_history(*, conversation: Conversation) -> list[dict[str, Any]]:
    """Messages as the chat page renders them, with each answer's sources and cited numbers."""
    history = []
    for message in conversation.messages.prefetch_related("citations"):
        history.append(
            {
                "id": message.pk,
                "role": message.role,
                "text": message.text,
                "sources": message.sources,
                "citations": [c.number for c in message.citations.all()],
                "answered": message.answered,
                "stopped": message.stopped,
                "timings": message.timings,
                "feedback": message.feedback,
            }
        )
    return history
