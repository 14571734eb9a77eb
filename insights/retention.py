"""The question log's retention (DOCENT_QUESTION_LOG_DAYS): what users asked is kept only so long.

Run every hour by Celery beat (insights.tasks.purge_question_log; config.settings CELERY_BEAT_SCHEDULE).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat.models import QuestionLog
from chat.widget.models import WidgetConversation

BATCH = 5000  # rows deleted per transaction: a first purge of a large log does not hold one long lock


@dataclass(frozen=True)
class Purged:
    """What one purge removed: question-log rows deleted, widget conversations whose IP address was erased."""

    questions: int
    ip_addresses: int
    cutoff: dt.datetime | None  # rows created before this went; None when retention is off (days = 0)


def question_log_purge(*, days: int | None = None, now: dt.datetime | None = None) -> Purged:
    """Delete question-log rows older than `days` days (default DOCENT_QUESTION_LOG_DAYS; 0 keeps everything)
    and erase the IP address of widget conversations of the same age (kept at all only with
    DOCENT_LOG_IP_ADDRESSES). A row exactly `days` days old stays until the next run.

    The conversations and answers themselves are left: they belong to their users, who delete them; neither is
    the access audit (chat.SourceShown, kb.AccessChange), which says who saw which passage and answers to the
    base's managers, not to this setting. Idempotent; safe to run at any time, in several processes at once.
    """
    days = settings.DOCENT_QUESTION_LOG_DAYS if days is None else days
    if days < 0:
        raise ValueError(f"DOCENT_QUESTION_LOG_DAYS must be 0 (keep) or a number of days, not {days}")
    if days == 0:
        return Purged(questions=0, ip_addresses=0, cutoff=None)
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(QuestionLog.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:BATCH])
            if not ids:
                break
            deleted += QuestionLog.objects.filter(pk__in=ids).delete()[1].get(QuestionLog._meta.label, 0)
    erased = WidgetConversation.objects.filter(created_at__lt=cutoff, ip__isnull=False).update(ip=None)
    return Purged(questions=deleted, ip_addresses=erased, cutoff=cutoff)
