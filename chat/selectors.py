from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.utils.translation import gettext as _

from chat.models import Conversation, Message, SourceShown
from kb.models import Document
from kb.selectors import document_list_for, document_visible_q, is_signed_in, knowledge_base_list_readable


def conversations_for_user(*, user: Any) -> QuerySet[Conversation]:
    """The user's own conversations, on bases they may still read; those held through the API (a bot's
    questions) stay out of the person's chat history."""
    if not is_signed_in(user):
        return Conversation.objects.none()
    return Conversation.objects.filter(
        user=user, knowledge_base__in=knowledge_base_list_readable(user=user), api__isnull=True
    ).select_related("knowledge_base")


def conversation_get_for(*, user: Any, conversation_id: int) -> Conversation:
    """One of the user's own conversations on a base they may read; Http404 otherwise."""
    found = conversations_for_user(user=user).filter(pk=conversation_id).first()
    if found is None:
        raise Http404("No such conversation")
    return found


def message_get_for(*, user: Any, message_id: int) -> Message:
    """An answer in one of the user's own conversations on a base they may read; Http404 otherwise."""
    found = (
        Message.objects.filter(pk=message_id, role=Message.Role.ASSISTANT)
        .filter(conversation__in=conversations_for_user(user=user))
        .first()
    )
    if found is None:
        raise Http404("No such answer")
    return found


def _visible_document_ids(*, user: Any, conversation: Conversation, messages: list[Message]) -> set[int]:
    """Of the documents the messages' sources name, those `user` may see now (None: an anonymous visitor,
    who sees the base's unrestricted documents)."""
    named = {s["document_id"] for m in messages for s in m.sources if isinstance(s, dict) and s.get("document_id")}
    if not named:
        return set()
    if user is None or not is_signed_in(user):
        visible = Document.objects.filter(
            document_visible_q(user=None), knowledge_base_id=conversation.knowledge_base_id
        )
    else:
        visible = document_list_for(user=user)
    return set(visible.filter(pk__in=named).values_list("pk", flat=True))


def conversation_history(*, conversation: Conversation, user: Any = None) -> list[dict[str, Any]]:
    """Messages as the chat page renders them, with each answer's sources and cited numbers.

    Sources are shown only from documents `user` may see now (a document restricted after the answer was
    given disappears from it); `user` None: the base's unrestricted documents (widget visitors).
    """
    messages = list(conversation.messages.prefetch_related("citations"))
    visible = _visible_document_ids(user=user, conversation=conversation, messages=messages)
    history = []
    for message in messages:
        sources = [s for s in message.sources if isinstance(s, dict) and s.get("document_id") in visible]
        history.append(
            {
                "id": message.pk,
                "role": message.role,
                "text": message.text,
                "sources": sources,
                # in the order the answer first used them, as its `done` frame gave them
                "citations": [c.number for c in sorted(message.citations.all(), key=lambda c: c.pk)],
                "citation_urls": citation_urls(message, sources),
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


def citation_urls(message: Message, sources: list[dict[str, Any]] | None = None) -> dict[int, str]:
    """Each cited source's link, highlighting the quoted span (`done` frames and reloaded history); only of
    `sources` when given (those the reader may still see)."""
    urls = {s["n"]: s["url"] for s in (message.sources if sources is None else sources)}
    return {c.number: cited_url(urls[c.number], c.start, c.end) for c in message.citations.all() if c.number in urls}


def document_viewers(*, document: Document, limit: int = 200) -> list[dict[str, Any]]:
    """Who was shown passages of `document`, newest first: user (or widget visitor), when, which passage."""
    rows = (
        SourceShown.objects.filter(document_id=document.pk, knowledge_base_id=document.knowledge_base_id)
        .select_related("user", "message__conversation__widget")
        .order_by("-created_at", "-id")[:limit]
    )
    out = []
    for row in rows:
        widget = getattr(row.message.conversation, "widget", None)
        if row.user is not None:
            who = row.user.get_username()
        elif widget is not None:
            who = _("widget visitor %(visitor)s (%(origin)s)") % {
                "visitor": widget.visitor_id[:8],
                "origin": widget.origin or _("no origin"),
            }
        else:
            who = _("command line")
        out.append({"who": who, "at": row.created_at, "chunk_id": row.chunk_id, "message_id": row.message_id})
    return out
