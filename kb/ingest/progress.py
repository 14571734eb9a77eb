"""Push a document's stage and percent to the knowledge-base page through the channel layer.

Workers are synchronous; the channel layer is asyncio. One daemon thread per process runs an event
loop that sends the updates, so the pipeline never waits on Redis and never builds a loop per call.
Updates of one document are throttled (`MIN_INTERVAL_S`) except changes of status or stage.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time

from kb.models import Document

logger = logging.getLogger(__name__)

MIN_INTERVAL_S = 0.3


STATE_FIELDS = ("status", "stage", "progress", "error", "pages", "language")


def state(document: Document) -> dict[str, object]:
    return {name: getattr(document, name) for name in STATE_FIELDS}


def group_name(knowledge_base_id: int) -> str:
    return f"kb-{knowledge_base_id}"


class _Publisher:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.lock = threading.Lock()
        self.last: dict[int, tuple[float, str, str]] = {}
        self.sent: list = []
        self.down_until = 0.0

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self.lock:
            if self.loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="progress-publisher", daemon=True).start()
                self.loop = loop
            return self.loop

    def publish(self, document: Document) -> None:
        now = time.monotonic()
        if now < self.down_until:
            return
        key = (document.status, document.stage)
        previous = self.last.get(document.pk)
        if previous and previous[1:] == key and now - previous[0] < MIN_INTERVAL_S:
            return
        self.last[document.pk] = (now, *key)
        if document.status in (Document.Status.READY, Document.Status.FAILED):
            self.last.pop(document.pk, None)
        # The state travels with the message: the page shows each stage even when its reader is slower
        # than the worker (its own read of the row could already see a later stage).
        message = {"type": "document.update", "id": document.pk, "state": state(document)}
        future = asyncio.run_coroutine_threadsafe(
            self._send(group_name(document.knowledge_base_id), message), self._ensure_loop()
        )
        self.sent = [f for f in self.sent if not f.done()] + [future]

    def flush(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for future in self.sent:
            try:
                future.result(max(0.0, deadline - time.monotonic()))
            except (TimeoutError, concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                break
        self.sent = []

    async def _send(self, group: str, message: dict) -> None:
        from channels.layers import get_channel_layer

        try:
            layer = get_channel_layer()
            if layer is not None:
                await layer.group_send(group, message)
        except Exception as exc:  # noqa: BLE001 -- progress is a courtesy: Redis away must not fail ingestion
            # No Redis (a command run without `make run`): say so once, then stop trying for a while.
            if self.down_until < time.monotonic():
                logger.warning("live progress is not published (channel layer unavailable: %s)", exc)
            self.down_until = time.monotonic() + 30


_publisher = _Publisher()


def publish(document: Document) -> None:
    _publisher.publish(document)


def flush(timeout: float = 2.0) -> None:
    """Wait (bounded) until the updates already published have been sent."""
    _publisher.flush(timeout)
