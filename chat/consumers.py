"""Websocket transport for chat: authenticate, validate each JSON frame, stream `answer` events."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils.translation import gettext as _

from accounts.language import SocketLanguageMixin, language_from_scope
from chat import limits
from chat.answer import answer
from chat.events import AnswerError
from chat.models import QuestionLog
from kb.selectors import knowledge_base_for_user

logger = logging.getLogger(__name__)


class ChatConsumer(SocketLanguageMixin, AsyncWebsocketConsumer):
    """`/ws/chat/`: one answer at a time per socket; errors are frames and the socket stays open.

    Error messages are in the socket's language (chosen at connect as for a page); codes stay English."""

    channel = QuestionLog.Channel.CHAT
    current: asyncio.Task[None] | None = None  # the answer being streamed
    holds_socket = False  # counted against the open-socket limit (released at disconnect)

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.stop_event = threading.Event()
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=4401)
            return
        if not await limits.open_socket(self.scope):
            await self.close(code=4029)  # too many open sockets for this user or address
            return
        self.holds_socket = True
        self.language = await database_sync_to_async(language_from_scope)(self.scope)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.current is not None and not self.current.done():
            self.stop_event.set()
            self.current.cancel()
        if self.holds_socket:
            self.holds_socket = False
            await limits.close_socket(self.scope)

    async def send_event(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(event, ensure_ascii=False))

    async def error(self, code: str, message: str) -> None:
        await self.send_event({"type": "error", "code": code, "message": message})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if bytes_data is not None:
            await self.error("bad_frame", _("Send JSON text frames, not binary ones."))
            return
        raw = text_data or ""
        if len(raw.encode("utf-8")) > settings.DOCENT_MAX_FRAME_BYTES:
            await self.error(
                "too_large", _("Frames are limited to %(bytes)s bytes.") % {"bytes": settings.DOCENT_MAX_FRAME_BYTES}
            )
            return
        try:
            frame = json.loads(raw)
        except json.JSONDecodeError:
            await self.error("bad_json", _("The frame is not valid JSON."))
            return
        if not isinstance(frame, dict):
            await self.error("bad_request", _("A frame is a JSON object with a `type`."))
            return
        kind = frame.get("type")
        if kind == "stop":
            self.stop_event.set()
            return
        if kind != "ask":
            await self.error(
                "bad_request", _("Unknown frame type %(type)r; expected `ask` or `stop`.") % {"type": kind}
            )
            return
        await self.ask(frame)

    async def checked_question(self, frame: dict[str, Any]) -> tuple[str, int | None] | None:
        """The frame's question and conversation id, or None after an error frame saying what is wrong."""
        if self.current is not None and not self.current.done():
            await self.error("busy", _("An answer is still being written; send `stop` first."))
            return None
        question = frame.get("question")
        if not isinstance(question, str) or not question.strip():
            await self.error("empty_question", _("The question is empty."))
            return None
        if len(question) > settings.DOCENT_MAX_QUESTION_CHARS:
            await self.error(
                "question_too_long",
                _("Questions are limited to %(count)s characters.") % {"count": settings.DOCENT_MAX_QUESTION_CHARS},
            )
            return None
        conversation = frame.get("conversation")
        if conversation is not None and (not isinstance(conversation, int) or isinstance(conversation, bool)):
            await self.error("bad_request", _("`conversation` is a number or null."))
            return None
        return question, conversation

    async def ask(self, frame: dict[str, Any]) -> None:
        checked = await self.checked_question(frame)
        if checked is None:
            return
        question, conversation = checked
        slug = frame.get("kb")
        knowledge_base = (
            await database_sync_to_async(knowledge_base_for_user)(user=self.user, slug=slug)
            if isinstance(slug, str)
            else None
        )
        if knowledge_base is None:
            await self.error("unknown_kb", _("There is no knowledge base %(slug)r you can use.") % {"slug": slug})
            return
        # Counted only for a valid question: a client's mistakes are answered, not charged.
        if not await limits.allow_question(self.scope):
            await self.error("rate_limited", _("Too many questions in the last minute; wait a moment and ask again."))
            return
        self.stop_event = threading.Event()
        self.current = asyncio.create_task(
            self.stream(knowledge_base=knowledge_base, question=question, conversation_id=conversation)
        )

    async def stream(self, **kwargs: Any) -> None:
        try:
            async for event in answer(user=self.user, stop=self.stop_event, channel=self.channel, **kwargs):
                await self.send_event(event)
        except AnswerError as exc:
            await self.error(exc.code, exc.message)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("answer failed")
            await self.error("internal", _("Something went wrong while answering; the error has been logged."))
