"""Celery tasks: take an id, re-fetch, call one service."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from kb.ingest.pipeline import run_pipeline
from kb.models import Document

logger = logging.getLogger(__name__)


@shared_task(
    name="kb.ingest_document",
    queue="ingest",
    acks_late=True,
    reject_on_worker_lost=True,  # a worker killed mid-task hands the document to the next worker
    soft_time_limit=1800,
    time_limit=1860,
)
def ingest_document(document_id: int) -> str:
    document = Document.objects.filter(pk=document_id).select_related("knowledge_base").first()
    if document is None:
        return "gone"
    if document.status == Document.Status.READY:
        return "already ready"  # a redelivered message after the work was committed
    try:
        result = run_pipeline(document)
    except SoftTimeLimitExceeded:
        Document.objects.filter(pk=document_id).update(
            status=Document.Status.FAILED, error="Ingestion took longer than 30 minutes and was stopped."
        )
        return "timeout"
    return result.status
