"""`/ws/widget/KEY/?s=SESSION`: the chat protocol for anonymous visitors of one widget key.

A refused handshake (unknown or disabled key, foreign Origin, forged or expired session) is closed before
it is accepted with code 4403 (4029: too many open sockets from the address, as for /ws/chat/); browsers
see the handshake fail (HTTP 403). Everything after that is the
/ws/chat/ protocol, plus the error codes `rate_limited` (with `limit` and `retry_after` seconds) and
`unavailable` (the key was disabled or changed meanwhile; the socket is then closed with 4403); the frame's
`kb` is ignored, the key decides the knowledge base.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.utils.translation import gettext as _

from accounts.language import language_for_visitor
from chat import limits
from chat.consumers import ChatConsumer
from chat.models import QuestionLog
from chat.widget.selectors import widget_key_enabled
from chat.widget.services import (
    VisitorAccess,
    WidgetRefused,
    message_limits,
    socket_access,
    widget_conversation_open,
    widget_sources_show,
)

logger = logging.getLogger(__name__)

REFUSED = 4403


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class WidgetConsumer(ChatConsumer):
    """ChatConsumer's frame handling and streaming, with a visitor session in place of a signed-in user."""

    channel = QuestionLog.Channel.WIDGET

    async def connect(self) -> None:
        self.user = None  # `answer` stores the conversation with no owner; WidgetConversation names the visitor
        self.current: asyncio.Task[None] | None = None
        self.stop_event = threading.Event()
        self.holds_socket = False
        self.ip: str | None = limits.client_ip(self.scope)
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        token = query.get("s", [""])[0]
        # The frame's language (the snippet's data-lang, else the visitor's browser), never a cookie.
        self.language = language_for_visitor(query.get("lang", [""])[0], _header(self.scope, b"accept-language"))
        try:
            self.access: VisitorAccess = await database_sync_to_async(socket_access)(
                key_value=self.scope["url_route"]["kwargs"]["key"],
                token=token,
                origin=_header(self.scope, b"origin"),
                host=_header(self.scope, b"host"),
            )
        except WidgetRefused as exc:
            logger.info("widget socket refused: %s", exc)
            await self.close(code=REFUSED)
            return
        # Anonymous: the address's socket allowance, shared with /ws/chat/, released by ChatConsumer.disconnect.
        if not await limits.open_socket(self.scope):
            await self.close(code=4029)
            return
        self.holds_socket = True
        await self.accept()

    async def send_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "sources":
            # Passage links of the widget's own viewer, which serves exactly the passages shown here.
            items = await database_sync_to_async(widget_sources_show)(access=self.access, items=event["items"])
            event = {**event, "items": items}
        elif event.get("type") == "done":
            # Staff viewer links (/kb/...) mean nothing to a visitor: the widget's own passage links stand.
            event = {k: v for k, v in event.items() if k != "citation_urls"}
        await super().send_event(event)

    async def ask(self, frame: dict[str, Any]) -> None:
        checked = await self.checked_question(frame)
        if checked is None:
            return
        question, conversation = checked
        # The key as it is now: disabling it, rotating it or removing the page's origin ends open chats too,
        # and changed limits apply at once.
        key = await database_sync_to_async(widget_key_enabled)(key=self.access.key.key)
        origin = self.access.session.origin
        if key is None or not key.allowed_origins or (origin and origin not in key.allowed_origins):
            await self.error("unavailable", _("This chat is not available any more."))
            await self.close(code=REFUSED)
            return
        self.access = replace(self.access, key=key)
        exceeded = await limits.rate_limit_hit(
            message_limits(key=key, visitor_id=self.access.session.visitor_id, ip=self.ip)
        )
        if exceeded is not None:
            await self.send_event(
                {
                    "type": "error",
                    "code": "rate_limited",
                    "message": _("Too many questions; please try again in %(seconds)s s.")
                    % {"seconds": exceeded.retry_after_s},
                    "limit": exceeded.limit.name,
                    "retry_after": exceeded.retry_after_s,
                }
            )
            return
        conversation_id = await database_sync_to_async(widget_conversation_open)(
            access=self.access, conversation_id=conversation, question=question, ip=self.ip
        )
        if conversation_id is None:
            await self.error("unknown_conversation", _("That conversation does not exist."))
            return
        self.stop_event = threading.Event()
        self.current = asyncio.create_task(
            self.stream(knowledge_base=key.knowledge_base, question=question, conversation_id=conversation_id)
        )
