"""The answerability check: the chat model, asked whether its sources answer the question, can refuse before it
answers; on the real model (SmolLM2 here, with thresholds forced: its own preset has none)."""

from __future__ import annotations

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from chat.generation import answer_check_threshold
from chat.llm import get_backend, presets, reset_backends
from chat.models import Message
from chat.prompts import PromptSource, build_check_messages, build_messages
from chat.routing import websocket_urlpatterns

QUESTION = "How do I do a factory reset of the Lumen K3 kettle?"
SOURCES = [PromptSource(n=1, title="Manual", page=3, heading="Factory reset", text="Hold the power button for 10 s.")]


def test_the_check_shares_the_answer_prompt_up_to_its_last_line():
    answer = build_messages(question=QUESTION, sources=SOURCES, language="en", budget_tokens=500)
    check = build_check_messages(question=QUESTION, sources=SOURCES, budget_tokens=500)
    assert answer[0] == check[0]
    head = answer[1]["content"][: answer[1]["content"].rindex("\n\n")]
    assert check[1]["content"].startswith(head + "\n\n") and "yes or no" in check[1]["content"]


def test_the_threshold_follows_the_preset_and_the_setting(settings):
    backend = get_backend()
    settings.DOCENT_ANSWER_CHECK = "auto"
    settings.DOCENT_LLM_MODEL = "smollm2-135m"
    assert answer_check_threshold(backend) is None  # too small to judge
    assert answer_check_threshold(backend, "qwen2.5-1.5b") == presets.PRESETS["qwen2.5-1.5b"].answer_check
    assert 0 < presets.PRESETS["qwen2.5-1.5b"].answer_check < 1  # type: ignore[operator]
    settings.DOCENT_ANSWER_CHECK = "off"
    assert answer_check_threshold(backend, "qwen2.5-1.5b") is None
    settings.DOCENT_ANSWER_CHECK = "0.25"
    assert answer_check_threshold(backend) == 0.25


def test_the_model_scores_a_passage_that_answers_above_one_that_does_not():
    backend = get_backend()
    answered = backend.yes_probability(build_check_messages(question=QUESTION, sources=SOURCES, budget_tokens=500))
    other = [PromptSource(n=1, title="Policy", page=1, heading="Travel", text="Book trains two weeks ahead.")]
    unanswered = backend.yes_probability(build_check_messages(question=QUESTION, sources=other, budget_tokens=500))
    assert answered is not None and unanswered is not None
    assert 0.0 <= unanswered < answered <= 1.0


@pytest.mark.django_db(transaction=True)
async def test_below_the_threshold_the_answer_is_the_refusal_and_above_it_the_model_answers(manual_kb, user, settings):
    reset_backends()
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/chat/")
    communicator.scope["user"] = user
    assert (await communicator.connect())[0]

    async def ask() -> list[dict]:
        await communicator.send_json_to({"type": "ask", "question": QUESTION, "kb": "manuals", "conversation": None})
        events = []
        while not events or events[-1]["type"] not in ("done", "error"):
            events.append(await communicator.receive_json_from(timeout=120))
        return events

    try:
        settings.DOCENT_ANSWER_CHECK = "1.0"  # no score reaches it
        events = await ask()
        done = events[-1]
        assert done["type"] == "done" and done["answered"] is False, done
        assert "found no answer in the sources" in done["timings"]["refusal_reason"]
        assert 0 <= done["timings"]["answerable_p"] < 1 and done["timings"]["check_ms"] > 0
        text = "".join(e["text"] for e in events if e["type"] == "token")
        assert text == manual_kb.refusal_for("en") and events[0] == {"type": "sources", "items": []}
        assert (await Message.objects.aget(pk=done["message_id"])).answered is False

        settings.DOCENT_ANSWER_CHECK = "0"  # every score passes: the model answers, and the slot was released
        done = (await ask())[-1]
        assert done["answered"] is True and done["timings"]["completion_tokens"] > 0, done
        assert "answerable_p" in done["timings"]
    finally:
        await communicator.disconnect()
        reset_backends()
