"""The /ws/chat/ protocol through Channels, on the real database, embedder and GGUF model."""

import json

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from chat.models import Citation, Message, QuestionLog
from chat.routing import websocket_urlpatterns
from kb.models import Document

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How do I do a factory reset of the Lumen K3 kettle?"


async def connect(user):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/chat/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def collect_answer(communicator):
    events = []
    while True:
        event = await communicator.receive_json_from(timeout=120)
        events.append(event)
        if event["type"] in ("done", "error"):
            return events


async def test_question_streams_sources_tokens_done_and_cites_the_manual(manual_kb, user):
    communicator = await connect(user)
    await communicator.send_json_to({"type": "ask", "question": QUESTION, "kb": manual_kb.slug, "conversation": None})
    events = await collect_answer(communicator)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "sources" and kinds[-1] == "done" and set(kinds[1:-1]) == {"token"}, kinds

    sources = events[0]["items"]
    manual = await Document.objects.aget(original_name="lumen-k3-manual.en.md")
    assert sources[0]["document_id"] == manual.pk
    assert (
        "10 seconds" in sources[0]["snippet"]
        or "10 seconds" in (await manual.chunks.aget(pk=sources[0]["chunk_id"])).text
    )
    assert set(sources[0]) >= {"n", "document_id", "title", "page", "heading", "chunk_id", "score", "snippet", "url"}
    assert sources[0]["url"].endswith(f"/passage/{sources[0]['chunk_id']}/")

    done = events[-1]
    # What a 135M model writes varies; that a faithful answer gets cited is tested in test_attribution.py.
    assert set(done["citations"]) <= {s["n"] for s in sources}
    assert set(done["timings"]) >= {
        "retrieval_ms",
        "ttft_ms",
        "total_ms",
        "prompt_tokens",
        "completion_tokens",
        "tokens_per_s",
    }
    # never more frames than model tokens (a partial citation marker waits for the next piece; pieces that
    # arrive within DOCENT_STREAM_FLUSH_MS of the last frame share one)
    assert 0 < len(kinds) - 2 <= done["timings"]["completion_tokens"] + 1 <= 49

    message = await Message.objects.aget(pk=done["message_id"])
    assert message.text == "".join(e["text"] for e in events if e["type"] == "token").strip()
    assert await Citation.objects.filter(message=message).acount() == len(done["citations"])
    # the question log: what analytics and the knowledge-gap report read
    log = await QuestionLog.objects.aget(message=message)
    assert (log.channel, log.question, log.user_id, log.answered) == ("chat", QUESTION, user.pk, True)
    assert log.language == "en"
    assert log.ttft_ms == done["timings"]["ttft_ms"] and not log.cached and not log.refusal_reason
    cited = {sources[n - 1]["document_id"] for n in done["citations"]}
    assert set(log.cited_documents) == cited

    # a follow-up in the same conversation
    await communicator.send_json_to(
        {
            "type": "ask",
            "question": "What does error E4 mean?",
            "kb": manual_kb.slug,
            "conversation": done["conversation"],
        }
    )
    follow_up = await collect_answer(communicator)
    assert follow_up[-1]["type"] == "done" and follow_up[-1]["conversation"] == done["conversation"]
    await communicator.disconnect()


async def test_errors_are_frames_and_the_socket_keeps_answering(manual_kb, user):
    communicator = await connect(user)
    await communicator.send_to(text_data="{not json")
    assert (await communicator.receive_json_from())["code"] == "bad_json"
    await communicator.send_json_to({"type": "ask", "question": "Anything?", "kb": "no-such-kb", "conversation": None})
    assert (await communicator.receive_json_from())["code"] == "unknown_kb"
    await communicator.send_json_to({"type": "ask", "question": "   ", "kb": manual_kb.slug, "conversation": None})
    assert (await communicator.receive_json_from())["code"] == "empty_question"
    await communicator.send_json_to({"type": "ask", "question": "x" * 5000, "kb": manual_kb.slug, "conversation": None})
    assert (await communicator.receive_json_from())["code"] == "question_too_long"
    await communicator.send_to(text_data=json.dumps({"type": "ask", "question": "y" * 40000}))
    assert (await communicator.receive_json_from())["code"] == "too_large"
    await communicator.send_json_to({"type": "dance"})
    assert (await communicator.receive_json_from())["code"] == "bad_request"
    await communicator.send_json_to(["not", "an", "object"])
    assert (await communicator.receive_json_from())["code"] == "bad_request"
    await communicator.send_json_to({"type": "ask", "question": "Hi", "kb": manual_kb.slug, "conversation": 999999})
    assert (await communicator.receive_json_from(timeout=30))["code"] == "unknown_conversation"

    await communicator.send_json_to(
        {"type": "ask", "question": "What does error E4 mean?", "kb": manual_kb.slug, "conversation": None}
    )
    events = await collect_answer(communicator)
    assert events[-1]["type"] == "done", events[-1]
    await communicator.disconnect()


async def test_stop_keeps_the_partial_answer(manual_kb, user):
    communicator = await connect(user)
    await communicator.send_json_to({"type": "ask", "question": QUESTION, "kb": manual_kb.slug, "conversation": None})
    assert (await communicator.receive_json_from(timeout=60))["type"] == "sources"
    assert (await communicator.receive_json_from(timeout=60))["type"] == "token"
    await communicator.send_json_to({"type": "stop"})
    events = await collect_answer(communicator)
    done = events[-1]
    assert done["type"] == "done" and done["stopped"] is True
    message = await Message.objects.aget(pk=done["message_id"])
    assert message.stopped
    assert done["timings"]["completion_tokens"] < 48
    await communicator.disconnect()


async def test_anonymous_socket_is_refused(manual_kb):
    from django.contrib.auth.models import AnonymousUser

    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/chat/")
    communicator.scope["user"] = AnonymousUser()
    connected, code = await communicator.connect()
    assert not connected and code == 4401


async def test_refusal_answers_with_the_kb_text_without_the_model(manual_kb, user):
    manual_kb.refusal_text = "Sorry, the manuals do not cover that."
    await manual_kb.asave()
    communicator = await connect(user)
    await communicator.send_json_to(
        {"type": "ask", "question": "How do I configure AppArmor profiles?", "kb": manual_kb.slug, "conversation": None}
    )
    events = await collect_answer(communicator)
    assert [e["type"] for e in events] == ["sources", "token", "done"]
    assert events[0]["items"] == [] and events[1]["text"] == "Sorry, the manuals do not cover that."
    done = events[-1]
    assert done["answered"] is False and done["timings"]["completion_tokens"] == 0
    assert "AppArmor" in done["timings"]["refusal_reason"]
    message = await Message.objects.aget(pk=done["message_id"])
    assert message.answered is False
    log = await QuestionLog.objects.aget(message=message)
    assert not log.answered and "AppArmor" in log.refusal_reason and log.cited_documents == []
    await communicator.disconnect()


async def test_questions_per_minute_are_limited(manual_kb, user, settings):
    settings.DOCENT_QUESTIONS_PER_MINUTE_USER = 2
    communicator = await connect(user)
    for _ in range(2):
        await communicator.send_json_to({"type": "ask", "question": "", "kb": manual_kb.slug, "conversation": None})
        assert (await communicator.receive_json_from())["code"] == "empty_question"
    # the empty questions above were refused before counting; these count
    question = {"type": "ask", "question": "What is AppArmor?", "kb": manual_kb.slug, "conversation": None}
    for _ in range(2):
        await communicator.send_json_to(question)
        last = (await collect_answer(communicator))[-1]
        assert last["type"] == "done", last
    await communicator.send_json_to(question)
    assert (await communicator.receive_json_from())["code"] == "rate_limited"
    await communicator.disconnect()


async def test_open_sockets_are_limited_and_released(manual_kb, user, settings):
    settings.DOCENT_SOCKETS_PER_USER = 1
    first = await connect(user)
    second = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/chat/")
    second.scope["user"] = user
    connected, code = await second.connect()
    assert not connected and code == 4029
    await first.disconnect()
    third = await connect(user)  # the slot came back when the first socket closed
    await third.disconnect()


async def test_a_client_leaving_mid_answer_stops_generation_and_frees_the_model(manual_kb, user):
    import asyncio

    from chat.generation import generation_queue

    communicator = await connect(user)
    await communicator.send_json_to({"type": "ask", "question": QUESTION, "kb": manual_kb.slug, "conversation": None})
    assert (await communicator.receive_json_from(timeout=60))["type"] == "sources"
    assert (await communicator.receive_json_from(timeout=60))["type"] == "token"
    queue = generation_queue(1)
    assert queue.active == 1
    await communicator.disconnect()
    for _ in range(100):  # the worker thread notices within a token and gives the slot back
        if queue.active == 0:
            break
        await asyncio.sleep(0.05)
    assert queue.active == 0 and not queue.waiting
    again = await connect(user)  # and the next client is served
    await again.send_json_to(
        {"type": "ask", "question": "What does E7 mean?", "kb": manual_kb.slug, "conversation": None}
    )
    assert (await collect_answer(again))[-1]["type"] == "done"
    await again.disconnect()


@pytest.mark.parametrize("flush_ms", [0, 60_000])
async def test_stream_flush_interval_groups_tokens_into_frames_without_losing_text(manual_kb, user, settings, flush_ms):
    """With no interval every token is a frame; with one longer than the answer the first token goes out
    at once and the rest in one frame at the end. The saved answer is what the frames carried."""
    settings.DOCENT_STREAM_FLUSH_MS = flush_ms
    communicator = await connect(user)
    await communicator.send_json_to({"type": "ask", "question": QUESTION, "kb": manual_kb.slug, "conversation": None})
    events = await collect_answer(communicator)
    await communicator.disconnect()
    tokens = [e["text"] for e in events if e["type"] == "token"]
    done = events[-1]
    assert done["type"] == "done" and done["timings"]["completion_tokens"] > 2
    message = await Message.objects.aget(pk=done["message_id"])
    assert message.text == "".join(tokens).strip()
    if flush_ms:
        assert len(tokens) <= 2, tokens
    else:
        # a frame per token, but for citation markers held back until they resolve
        assert len(tokens) >= done["timings"]["completion_tokens"] - 8, (len(tokens), done["timings"])


async def test_refusal_and_notes_come_in_the_questions_language(manual_kb, user):
    communicator = await connect(user)
    # French and Chinese questions about a name the English manual never mentions: the base's own refusals
    for question, refusal in (
        ("Comment configurer AppArmor pour la bouilloire ?", manual_kb.refusal_text_fr),
        ("如何为水壶配置 AppArmor？", manual_kb.refusal_text_zh),
    ):
        await communicator.send_json_to(
            {"type": "ask", "question": question, "kb": manual_kb.slug, "conversation": None}
        )
        events = await collect_answer(communicator)
        assert events[1]["text"] == refusal and events[-1]["answered"] is False
    assert "Je n'ai pas trouvé" in manual_kb.refusal_text_fr
    # answered from English sources: the answer says so, in French
    await communicator.send_json_to(
        {"type": "ask", "question": "Comment réinitialiser la bouilloire ?", "kb": manual_kb.slug, "conversation": None}
    )
    events = await collect_answer(communicator)
    text = "".join(e["text"] for e in events if e["type"] == "token")
    assert events[-1]["answered"] is True
    assert text.endswith("(D'après des sources en anglais.)")
    await communicator.disconnect()


def test_notes_on_the_sources_language():
    from chat.phrases import sources_in_other_languages

    assert sources_in_other_languages("fr", ["en", "en"]) == "(D'après des sources en anglais.)"
    assert sources_in_other_languages("zh", ["en", "fr"]) == "（以上内容依据英文和法文资料。）"
    assert sources_in_other_languages("en", ["en", "zh"]) == ""
    assert sources_in_other_languages("en", []) == ""
