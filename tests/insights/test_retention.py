"""The question log's retention: the periodic task deletes what is older than DOCENT_QUESTION_LOG_DAYS."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from chat.models import Conversation, QuestionLog
from chat.widget.models import WidgetConversation, WidgetKey
from insights.retention import question_log_purge
from insights.tasks import purge_question_log
from kb.services import knowledge_base_create

pytestmark = pytest.mark.django_db(transaction=True)


def logged(kb, age: dt.timedelta, question: str) -> QuestionLog:
    row = QuestionLog.objects.create(knowledge_base=kb, channel="chat", question=question, answered=True)
    QuestionLog.objects.filter(pk=row.pk).update(created_at=timezone.now() - age)
    return row


@pytest.fixture
def aged():
    """Questions 400, 181, 179 and 0 days old; widget conversations with an IP address 200 and 10 days old."""
    kb = knowledge_base_create(slug="lumen", name="Lumen")
    for days in (400, 181, 179, 0):
        logged(kb, dt.timedelta(days=days), f"{days} days old")
    key = WidgetKey.objects.create(knowledge_base=kb, allowed_origins=["http://shop.example"])
    for days in (200, 10):
        conversation = Conversation.objects.create(knowledge_base=kb, title=f"{days}")
        WidgetConversation.objects.create(conversation=conversation, key=key, visitor_id=f"v{days}", ip="192.0.2.7")
        WidgetConversation.objects.filter(pk=conversation.pk).update(
            created_at=timezone.now() - dt.timedelta(days=days)
        )
    return kb


def remaining() -> list[str]:
    return list(QuestionLog.objects.order_by("question").values_list("question", flat=True))


def test_the_task_deletes_rows_older_than_the_setting_and_keeps_younger_ones(aged, settings):
    settings.DOCENT_QUESTION_LOG_DAYS = 180
    assert purge_question_log.apply().get() == {"questions": 2, "ip_addresses": 1}
    assert remaining() == ["0 days old", "179 days old"]
    ips = dict(WidgetConversation.objects.values_list("visitor_id", "ip"))
    assert ips == {"v200": None, "v10": "192.0.2.7"}
    assert purge_question_log.apply().get() == {"questions": 0, "ip_addresses": 0}  # idempotent


def test_zero_days_keeps_everything(aged, settings):
    settings.DOCENT_QUESTION_LOG_DAYS = 0
    assert purge_question_log.apply().get() == {"questions": 0, "ip_addresses": 0}
    assert len(remaining()) == 4
    assert WidgetConversation.objects.filter(ip__isnull=False).count() == 2


def test_a_large_log_goes_in_batches(aged, monkeypatch):
    monkeypatch.setattr("insights.retention.BATCH", 1)
    purged = question_log_purge(days=30)
    assert purged.questions == 3 and remaining() == ["0 days old"]
    with pytest.raises(ValueError):
        question_log_purge(days=-1)


def test_beat_schedules_the_purge_every_hour():
    from config.celery import app

    entry = app.conf.beat_schedule["purge-question-log"]
    assert entry["task"] == purge_question_log.name == "insights.purge_question_log"
    assert entry["schedule"] == 3600.0
    assert "insights.purge_question_log" in app.tasks


@pytest.mark.worker
def test_the_real_worker_runs_the_purge(aged, celery_worker):
    # the worker process reads DOCENT_QUESTION_LOG_DAYS from its own settings: the default, 180 days
    purge_question_log.delay()
    deadline = time.monotonic() + 60
    while len(remaining()) > 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert remaining() == ["0 days old", "179 days old"]
