from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from chat.models import Conversation, Message


def conversations_for_user(*, user: Any) -> QuerySet[Conversation]:
    # conversations held through the API (a bot's questions) stay out of the person's chat history
    return Conversation.objects.filter(user=user, api__isnull=True).select_related("knowledge_base")


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
                # in the order the answer first used them, as its `done` frame gave them
                "citations": [c.number for c in sorted(message.citations.all(), key=lambda c: c.pk)],
                "citation_urls": citation_urls(message),
                "answered": message.answered,
                "stopped": message.stopped,
                "timings": message.timings,
                "feedback": message.feedback,
            }
        )
    return history


def cited_url(source_url: str, start: int | None, end: int | None) -> str:
    """The passage link of a citation: it highlights the quoted span when there is one."""
    return f"{source_url}?hl={start}-{end}" if start is not None and end is not None else source_url


def citation_urls(message: Message) -> dict[int, str]:
    """Each cited source's link, highlighting the quoted span (`done` frames and reloaded history)."""
    urls = {s["n"]: s["url"] for s in message.sources}
    return {c.number: cited_url(urls[c.number], c.start, c.end) for c in message.citations.all() if c.number in urls}
