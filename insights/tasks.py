"""Celery tasks of the insights app (run by Celery beat: config.settings CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

import logging

from celery import shared_task

from insights.retention import question_log_purge

logger = logging.getLogger(__name__)


@shared_task(name="insights.purge_question_log", queue="default", acks_late=True, soft_time_limit=600, time_limit=660)
def purge_question_log() -> dict[str, int]:
    """Apply DOCENT_QUESTION_LOG_DAYS (insights.retention); returns the counts removed."""
    purged = question_log_purge()
    if purged.questions or purged.ip_addresses:
        logger.info(
            "question log: %d questions older than %s deleted, %d IP addresses erased",
            purged.questions,
            purged.cutoff,
            purged.ip_addresses,
        )
    return {"questions": purged.questions, "ip_addresses": purged.ip_addresses}
