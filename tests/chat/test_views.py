"""Chat pages: conversations survive reload with their sources and citations; feedback on answers."""

import asyncio

import pytest
from django.urls import reverse

from chat.answer import answer
from chat.models import Message, QuestionLog

pytestmark = pytest.mark.django_db(transaction=True)


def ask(user, kb, question):
    async def run():
        return [event async for event in answer(user=user, knowledge_base=kb, question=question)]

    return asyncio.run(run())


def test_conversation_reloads_with_sources_and_feedback_is_stored(client, user, manual_kb):
    events = ask(user, manual_kb, "What does error code E7 mean?")
    done = events[-1]
    client.force_login(user)
    page = client.get(reverse("chat:conversation", args=[done["conversation"]]))
    assert page.status_code == 200
    history = page.context["history"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[1]["sources"] == events[0]["items"] and history[1]["citations"] == done["citations"]
    assert b'id="history"' in page.content and b"<script>alert" not in page.content

    url = reverse("chat:feedback", args=[done["message_id"]])
    assert client.post(url, {"rating": "-1", "comment": "too vague"}).json() == {"feedback": -1, "comment": "too vague"}
    message = Message.objects.get(pk=done["message_id"])
    assert (message.feedback, message.feedback_comment) == (-1, "too vague")
    assert QuestionLog.objects.get(message=message).feedback == -1  # the question log follows the rating
    assert client.post(url, {"rating": "5"}).status_code == 400


def test_other_users_cannot_read_or_rate_a_conversation(client, user, manual_kb, django_user_model):
    done = ask(user, manual_kb, "What does error code E7 mean?")[-1]
    client.force_login(django_user_model.objects.create_user("intruder", password="intruder-password-1"))
    assert client.get(reverse("chat:conversation", args=[done["conversation"]])).status_code == 404
    assert client.post(reverse("chat:feedback", args=[done["message_id"]]), {"rating": "1"}).status_code == 404


def test_pages_need_a_login(client, manual_kb):
    assert client.get(reverse("chat:home")).status_code == 302
    assert client.get(reverse("kb:detail", args=[manual_kb.slug])).status_code == 302
