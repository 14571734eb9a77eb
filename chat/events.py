"""The chat protocol's events (../shared/INTERFACES.md, "websocket"): what the answer path (chat.answer) yields and
what both websocket consumers and the OpenAI-compatible API (api/) turn into frames — their shapes in one place.

    {"type": "queued", "position": int}            waiting for the model, 1-based
    {"type": "sources", "items": [source_item...]} the numbered passages the answer may cite
    {"type": "token", "text": str}                 a piece of the answer (citation markers already [n])
    {"type": "done", "message_id", "conversation", "citations": [n...], "timings": {...}, "answered", "stopped"}
    {"type": "error", "code": str, "message": str} from AnswerError; codes stay English, messages are translated
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from chat.models import Conversation, Message
from kb import retrieval

SNIPPET_CHARS = 240

Event = dict[str, Any]


class AnswerError(Exception):
    """A question that cannot be answered now: an `error` event with `code` (English, stable) and `message` (in
    the asker's language)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def queued(position: int) -> Event:
    return {"type": "queued", "position": position}


def sources(items: list[dict[str, Any]]) -> Event:
    return {"type": "sources", "items": items}


def token(text: str) -> Event:
    return {"type": "token", "text": text}


def source_item(n: int, hit: retrieval.Hit) -> dict[str, Any]:
    chunk = hit.chunk
    assert chunk is not None
    text = chunk.text
    return {
        "n": n,
        "document_id": chunk.document_id,
        "title": chunk.document.title,
        "page": chunk.page,
        "heading": chunk.heading or None,
        "chunk_id": chunk.pk,
        "score": round(hit.score, 6),
        "snippet": text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS].rstrip() + "…",
        "url": reverse("kb:passage", args=[chunk.document_id, chunk.pk]),
    }


def done(
    message: Message, conversation: Conversation, citations: list[int], timings: dict[str, Any], *, answered: bool
) -> Event:
    return {
        "type": "done",
        "message_id": message.pk,
        "conversation": conversation.pk,
        "citations": citations,
        "timings": timings,
        "answered": answered,
        "stopped": message.stopped,
    }
