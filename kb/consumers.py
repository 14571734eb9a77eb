"""Live document status on the knowledge-base page: `/ws/kb/SLUG/`, HTML rows for htmx's ws extension.

Workers publish `document.update` to the base's group (kb.ingest.progress); each update is answered
with the document's table row rendered by the same template as the page, swapped in out of band by id.
On connect the rows of unfinished documents are sent at once, so a reconnect misses nothing.

Access is read again at every update, in the query that renders the row: a member removed from the base
has the socket closed (4403) at the next update, and a restricted document's row only ever reaches those
who may see it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone, translation

from accounts.language import SocketLanguageMixin, language_from_scope
from kb.ingest.progress import STATE_FIELDS, group_name
from kb.models import Document
from kb.selectors import documents_of, knowledge_base_for_user


class DocumentProgressConsumer(SocketLanguageMixin, AsyncWebsocketConsumer):
    """Rows rendered in the reader's language, chosen at connect as for the page."""

    async def connect(self) -> None:
        slug = self.scope["url_route"]["kwargs"]["slug"]
        self.knowledge_base = await database_sync_to_async(knowledge_base_for_user)(
            user=self.scope.get("user"), slug=slug
        )
        if self.knowledge_base is None:
            await self.close(code=4403)
            return
        self.language = await database_sync_to_async(language_from_scope)(self.scope)
        self.group = group_name(self.knowledge_base.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        with translation.override(self.language):  # this handler began before the language was known
            rows = await self._rows(unfinished=True)
        for row in rows or []:
            await self.send(text_data=row)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The page sends nothing; anything received is ignored."""

    async def document_update(self, event: dict[str, Any]) -> None:
        rows = await self._rows(ids=[int(event["id"])], state=event.get("state"))
        if rows is None:  # no longer a reader of the base
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = ""
            await self.close(code=4403)
            return
        await self.send(text_data=rows[0] if rows else f'<tr id="doc-{int(event["id"])}" hx-swap-oob="delete"></tr>')

    @database_sync_to_async
    def _rows(
        self, *, ids: list[int] | None = None, unfinished: bool = False, state: dict[str, Any] | None = None
    ) -> list[str] | None:
        """The rows of the documents the user may see now; None when they may no longer read the base."""
        knowledge_base = knowledge_base_for_user(user=self.scope.get("user"), slug=self.knowledge_base.slug)
        if knowledge_base is None or knowledge_base.pk != self.knowledge_base.pk:
            return None
        documents = documents_of(knowledge_base=knowledge_base, user=self.scope.get("user"))
        if ids is not None:
            documents = documents.filter(pk__in=ids)
        if unfinished:
            recent = timezone.now() - timedelta(minutes=5)
            pending = [Document.Status.QUEUED, Document.Status.PROCESSING]
            documents = documents.filter(Q(status__in=pending) | Q(updated_at__gte=recent))
        rows: list[str] = []
        for document in documents:
            for name in STATE_FIELDS:
                if state and name in state:
                    setattr(document, name, state[name])
            rows.append(render_to_string("kb/_document_row.html", {"d": document, "oob": True}))
        return rows
