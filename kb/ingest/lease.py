"""Which worker holds a document, and what happens when that worker disappears.

A worker claims a document before processing it (row lock, then `worker` and `heartbeat_at` set) and
keeps the heartbeat fresh from a background thread. So:
- a second delivery of the same task (the broker's visibility timeout passed while the first copy
  still runs, or a duplicate message) finds a live holder and backs off instead of running twice;
- a document whose holder died (SIGKILL, OOM killer, machine lost) has a stale heartbeat — or, on
  the same host, a holder pid that no longer exists — and is claimed again by the redelivered task
  or put back in the queue by `requeue_stale()`, so it never stays `processing` without a worker;
- the final write checks the lease (`holds()` under the row lock), so a copy that lost its lease
  cannot replace chunks another copy wrote.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.processes import process_running
from kb import reasons
from kb.ingest.store import document_mark_failed
from kb.models import Document

logger = logging.getLogger(__name__)

# The Celery task that ingests one document (kb.tasks.ingest_document), sent by name: the queue is below the
# transport that consumes it.
INGEST_TASK = "kb.ingest_document"
INGEST_QUEUE = "ingest"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def stale_after() -> timedelta:
    return timedelta(seconds=settings.DOCENT_INGEST_STALE_S)


def _holder_alive(document: Document) -> bool:
    if document.status != Document.Status.PROCESSING or not document.worker or document.heartbeat_at is None:
        return False
    if document.heartbeat_at < timezone.now() - stale_after():
        return False
    host, _, pid = document.worker.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return process_running(int(pid))
    return True


class Claim:
    CLAIMED = "claimed"
    GONE = "gone"
    READY = "ready"
    BUSY = "busy"  # a live worker holds it
    EXHAUSTED = "exhausted"  # lost its worker too many times


def claim(document_id: int) -> tuple[str, Document | None]:
    with transaction.atomic():
        document = (
            Document.objects.select_for_update()
            .select_related("knowledge_base")
            .defer("text")
            .filter(pk=document_id)
            .first()
        )
        if document is None:
            return Claim.GONE, None
        if document.status == Document.Status.READY:
            return Claim.READY, document
        if _holder_alive(document):
            return Claim.BUSY, document
        if document.status == Document.Status.PROCESSING and document.attempts >= settings.DOCENT_INGEST_MAX_ATTEMPTS:
            message = reasons.INGEST_ATTEMPTS % {"attempts": document.attempts}
            document_mark_failed(document=document, error=message, release=True)
            return Claim.EXHAUSTED, document
        fields = {
            "status": Document.Status.PROCESSING,
            "stage": Document.Stage.PARSE,
            "progress": 0,
            "error": "",
            "worker": worker_id(),
            "heartbeat_at": timezone.now(),
            "attempts": document.attempts + 1,
        }
        Document.objects.filter(pk=document_id).update(**fields)
        for name, value in fields.items():
            setattr(document, name, value)
        return Claim.CLAIMED, document


def holds(document_id: int) -> bool:
    """Inside a transaction: lock the row and say whether this process still holds the document."""
    return Document.objects.select_for_update().filter(pk=document_id, worker=worker_id()).exists()


def release(document_id: int) -> None:
    Document.objects.filter(pk=document_id, worker=worker_id()).update(worker="", heartbeat_at=None)


class Heartbeat:
    """Keeps `heartbeat_at` fresh while a document is processed (its own thread and DB connection)."""

    def __init__(self, document_id: int) -> None:
        self.document_id = document_id
        self.me = worker_id()
        self.stopped = threading.Event()
        self.lost = False
        self.thread = threading.Thread(target=self._run, name=f"heartbeat-{document_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()

    def _run(self) -> None:
        interval = max(1.0, settings.DOCENT_INGEST_STALE_S / 6)
        try:
            while not self.stopped.wait(interval):
                updated = Document.objects.filter(pk=self.document_id, worker=self.me).update(
                    heartbeat_at=timezone.now()
                )
                if not updated:
                    self.lost = True
                    return
        except Exception:  # the database being away must not kill the ingestion itself
            logger.exception("heartbeat for document %s failed", self.document_id)
        finally:
            connection.close()


def enqueue_on_commit(document_id: int) -> None:
    """Queue the document's ingestion (INGEST_TASK on INGEST_QUEUE) once the current transaction commits (at once
    outside one)."""
    transaction.on_commit(lambda: current_app.send_task(INGEST_TASK, args=[document_id], queue=INGEST_QUEUE))


def requeue_stale() -> list[int]:
    """Put documents whose worker is gone back in the queue; returns their ids."""
    candidates = Document.objects.filter(status=Document.Status.PROCESSING).defer("text")
    ids = []
    for document in candidates:
        if _holder_alive(document):
            continue
        with transaction.atomic():
            updated = Document.objects.filter(pk=document.pk, status=Document.Status.PROCESSING, worker=document.worker)
            if updated.update(status=Document.Status.QUEUED, stage="", worker="", heartbeat_at=None):
                ids.append(document.pk)
                enqueue_on_commit(document.pk)
    if ids:
        logger.warning("requeued documents whose worker was lost: %s", ids)
    return ids
