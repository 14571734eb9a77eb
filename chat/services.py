"""The chat's writes: a question stored in its conversation, an answer with its citations, the audit of what was
shown and its question-log row, and a user's rating of an answer."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import Http404
from django.utils.translation import gettext as _

from chat.attribution import Attribution
from chat.events import AnswerError
from chat.models import Citation, Conversation, Message, QuestionLog, SourceShown
from kb.models import KnowledgeBase
from kb.selectors import knowledge_base_get_for


def conversation_start(
    *, user: Any, knowledge_base: KnowledgeBase, conversation_id: int | None, question: str, history: list[str] | None
) -> tuple[Conversation, list[str]]:
    """The conversation (created when new) with the question stored, and its earlier questions (`history` when
    the client sent them, as the API's `messages` do).

    A signed-in user must still be a reader of the base (removed members are refused at their next
    question); `user` None is a widget visitor or a command, whose caller chose the base.
    """
    owner = user if user is not None and user.is_authenticated else None
    if owner is not None:
        try:
            knowledge_base_get_for(user=owner, pk=knowledge_base.pk)
        except Http404:
            raise AnswerError("unknown_kb", _("There is no such knowledge base you can use.")) from None
    with transaction.atomic():
        if conversation_id is None:
            conversation = Conversation.objects.create(user=owner, knowledge_base=knowledge_base, title=question[:200])
        else:
            found = Conversation.objects.filter(pk=conversation_id, user=owner, knowledge_base=knowledge_base).first()
            if found is None:
                raise AnswerError("unknown_conversation", _("That conversation does not exist."))
            conversation = found
        previous = list(
            conversation.messages.filter(role=Message.Role.USER)
            .order_by("-created_at", "-id")
            .values_list("text", flat=True)[:3]
        )[::-1]
        if history is not None:
            previous = [*previous, *history][-3:]
        Message.objects.create(conversation=conversation, role=Message.Role.USER, text=question)
    return conversation, previous


def quote_span(text: str, quote: str) -> dict[str, int | None]:
    start = text.find(quote) if quote else -1
    return {"start": start, "end": start + len(quote)} if start >= 0 else {"start": None, "end": None}


def answer_save(
    *,
    conversation: Conversation,
    text: str,
    sources: list[dict[str, Any]],
    citations: list[Attribution],
    timings: dict[str, Any],
    answered: bool,
    stopped: bool,
    source_texts: dict[int, str],
    log: dict[str, Any] | None = None,
) -> Message:
    """Store the answer and its citations; `source_texts` (source number → chunk text, already in hand from
    retrieval) locates each quote in its chunk. `log`: the QuestionLog fields the answer path knows (channel,
    question, standalone, language, user); None writes no log row (evaluations)."""
    by_number = {s["n"]: s for s in sources}
    with transaction.atomic():
        message = Message.objects.create(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            text=text,
            sources=sources,
            timings=timings,
            answered=answered,
            stopped=stopped,
        )
        Citation.objects.bulk_create(
            [
                Citation(
                    message=message,
                    chunk_id=by_number[c.number]["chunk_id"],
                    number=c.number,
                    quote=c.quote,
                    **quote_span(source_texts.get(c.number, ""), c.quote),
                )
                for c in citations
            ]
        )
        # the audit of what was shown to whom (a base's managers list who saw a document's passages)
        SourceShown.objects.bulk_create(
            [
                SourceShown(
                    message=message,
                    knowledge_base_id=conversation.knowledge_base_id,
                    document_id=s["document_id"],
                    chunk_id=s["chunk_id"],
                    user_id=conversation.user_id,
                )
                for s in sources
                if isinstance(s.get("document_id"), int) and isinstance(s.get("chunk_id"), int)
            ]
        )
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=message.created_at)
        if log is not None:
            cited = {by_number[c.number].get("document_id") for c in citations if c.number in by_number}
            QuestionLog.objects.create(
                knowledge_base_id=conversation.knowledge_base_id,
                message=message,
                answered=answered,
                refusal_reason=str(timings.get("refusal_reason") or ""),
                cached=bool(timings.get("cached")),
                ttft_ms=timings.get("ttft_ms"),
                total_ms=timings.get("total_ms"),
                cited_documents=sorted(d for d in cited if isinstance(d, int)),
                **log,
            )
    return message


def log_fields(
    channel: str | None, question: str, search_text: str, language: str, conversation: Conversation
) -> dict[str, Any] | None:
    """The QuestionLog fields the answer path knows; None when `channel` is None (nothing is logged)."""
    if channel is None:
        return None
    return {
        "channel": channel,
        "question": question,
        "standalone": search_text if search_text != question else "",
        "language": language,
        "user_id": conversation.user_id,
    }


def message_feedback(*, user: Any, message_id: int, rating: int, comment: str = "") -> Message | None:
    """Store a user's rating (+1, -1, 0 to clear) of one of their own answers; None if not theirs."""
    if rating not in (-1, 0, 1):
        raise ValueError("rating must be -1, 0 or 1")
    from chat.selectors import message_get_for

    try:
        message = message_get_for(user=user, message_id=message_id)
    except Http404:
        return None
    message.feedback = rating
    message.feedback_comment = comment.strip()[:2000]
    message.save(update_fields=["feedback", "feedback_comment"])
    QuestionLog.objects.filter(message=message).update(feedback=rating)
    return message
