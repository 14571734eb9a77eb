"""Celery tasks: take an id, re-fetch, call one service."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready
from django.conf import settings

from kb import reasons
from kb.ingest import lease, progress
from kb.ingest.pipeline import ingest
from kb.ingest.store import document_mark_failed
from kb.models import Document

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name=lease.INGEST_TASK,
    queue=lease.INGEST_QUEUE,
    acks_late=True,
    reject_on_worker_lost=True,  # a worker killed mid-task hands the document to the next worker
    soft_time_limit=settings.DOCENT_INGEST_TIME_LIMIT_S,
    time_limit=settings.DOCENT_INGEST_TIME_LIMIT_S + 60,
    max_retries=None,
)
def ingest_document(self: Task, document_id: int) -> str:
    lease.requeue_stale()
    try:
        result = ingest(document_id)
    except SoftTimeLimitExceeded:
        minutes = settings.DOCENT_INGEST_TIME_LIMIT_S // 60
        document = Document.objects.defer("text").filter(pk=document_id).first()
        if document is not None:
            document_mark_failed(document=document, error=reasons.INGEST_TIMEOUT % {"minutes": minutes}, release=True)
        return "timeout"
    finally:
        progress.flush()
    if result.status == "busy":
        # Another live worker holds it (a second delivery of the same task): look again once its
        # heartbeat would have gone stale, instead of running the same document twice at once.
        raise self.retry(countdown=settings.DOCENT_INGEST_STALE_S)
    return result.status


@shared_task(name="kb.requeue_stale_documents", queue="ingest")
def requeue_stale_documents() -> list[int]:
    return lease.requeue_stale()


@worker_ready.connect
def _requeue_on_start(sender: Any, **kwargs: Any) -> None:
    """A worker coming up puts back documents whose worker died (run in a pool process, not here)."""
    requeue_stale_documents.delay()
