"""The answer cache (chat.answer_cache) on the real stack: Postgres, Redis, the embedder and SmolLM2.

A question asked again is answered from the stored answer without the model; an edit of the base, a change of
access or a different set of visible documents never gets another's stored answer.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group

from chat import answer_cache
from chat.answer import answer
from chat.llm import get_backend
from chat.models import Citation, Message, QuestionLog, SourceShown
from chat.routing import websocket_urlpatterns
from kb import embedder
from kb.ingest.pipeline import run_pipeline
from kb.models import Document, KnowledgeBase
from kb.services import (
    document_create,
    document_delete,
    document_restrict,
    membership_remove,
    membership_set,
)
from tests.conftest import BASE_DIR

QUESTION = "How do I do a factory reset of the Lumen K3 kettle?"
MANUAL = BASE_DIR / "kb" / "demo_source" / "lumen-k3-manual.en.md"


def ask(knowledge_base: KnowledgeBase, question: str, user: Any, conversation: int | None = None) -> list[dict]:
    """The events of one question through chat.answer.answer, as the chat's consumer iterates it."""

    async def run() -> list[dict]:
        return [
            event
            async for event in answer(
                user=user, knowledge_base=knowledge_base, question=question, conversation_id=conversation
            )
        ]

    return async_to_sync(run)()


def done_of(events: list[dict]) -> dict:
    assert events[-1]["type"] == "done", events[-1]
    return events[-1]


def is_cached(events: list[dict]) -> bool:
    return bool(done_of(events)["timings"].get("cached"))


def text_of(events: list[dict]) -> str:
    return "".join(e["text"] for e in events if e["type"] == "token").strip()


# ---- normalisation and keys (no model)


@pytest.mark.parametrize(
    "variant",
    [
        "how do i do a factory reset of the lumen k3 kettle",
        "HOW DO I DO A FACTORY RESET OF THE LUMEN K3 KETTLE ?",
        "How do I do a factory reset of the Lumen K3 kettle？",
        "  How do  I do a factory\treset of the Lumen K3 kettle?!  ",
        "How do I do a factory reset of the Ｌｕｍｅｎ Ｋ３ kettle...",
    ],
)
def test_variants_of_a_question_normalise_alike(variant):
    assert answer_cache.normalise(variant) == answer_cache.normalise(QUESTION)


def test_normalisation_of_french_and_chinese_punctuation_and_what_stays_apart():
    assert answer_cache.normalise("Comment détartrer la bouilloire ?") == "comment détartrer la bouilloire"
    # narrow no-break space (French typography) before the mark
    assert answer_cache.normalise("Comment détartrer la bouilloire\u202f?") == "comment détartrer la bouilloire"
    assert answer_cache.normalise("如何给水壶除垢？") == answer_cache.normalise("如何给水壶除垢。") == "如何给水壶除垢"
    assert answer_cache.normalise("What does E4 mean?") != answer_cache.normalise("What does E5 mean?")
    assert answer_cache.normalise("?!") == ""


def test_a_followup_is_keyed_by_its_standalone_form_and_one_without_it_is_not_cached():
    previous = ["How do I descale the kettle?"]
    followup = "How often should I do it?"
    combined = f"{previous[-1]} {followup}"
    assert answer_cache.cache_text(previous, followup, combined) == combined
    assert answer_cache.cache_text(previous, followup, followup) is None  # DOCENT_CONDENSE "off": no standalone
    assert answer_cache.cache_text([], QUESTION, QUESTION) == QUESTION
    assert answer_cache.cache_text(["What is E4?"], QUESTION, QUESTION) == QUESTION  # a question of its own


@pytest.mark.django_db(transaction=True)
def test_the_key_follows_what_the_asker_may_see_and_the_base_s_version(manual_kb, user, django_user_model, settings):
    fields = {"knowledge_base_id": manual_kb.pk, "text": QUESTION, "mode": "hybrid"}
    other = django_user_model.objects.create_user(username="other", password="x")
    other.groups.add(Group.objects.get(name="readers"))
    assert answer_cache.key_for(user=user, **fields) == answer_cache.key_for(user=other, **fields)
    hr = Group.objects.create(name="hr")
    manual = Document.objects.get(original_name=MANUAL.name)
    document_restrict(document=manual, groups=[hr], actor=None)
    assert answer_cache.key_for(user=user, **fields) == answer_cache.key_for(user=other, **fields)  # both hidden
    before = answer_cache.key_for(user=user, **fields)
    user.groups.add(hr)
    assert answer_cache.key_for(user=user, **fields) not in (before, answer_cache.key_for(user=other, **fields))
    assert answer_cache.key_for(user=None, **fields) == answer_cache.key_for(user=other, **fields)  # widget
    assert answer_cache.key_for(user=user, **fields, llm="qwen2.5-1.5b") != answer_cache.key_for(user=user, **fields)
    settings.DOCENT_ANSWER_CACHE = False
    assert answer_cache.key_for(user=user, **fields) is None


@pytest.mark.django_db(transaction=True)
def test_a_stale_form_saving_the_base_never_sets_its_version_back(manual_kb):
    stale = KnowledgeBase.objects.get(pk=manual_kb.pk)
    version = stale.content_version
    document_delete(document=Document.objects.get(original_name="travel-policy.en.txt"))
    stale.description = "edited"
    stale.save()  # what the admin's form does with the object it read
    fresh = KnowledgeBase.objects.get(pk=manual_kb.pk)
    assert fresh.description == "edited" and fresh.content_version == version + 1


def test_question_vectors_are_kept_per_process():
    first = embedder.embed_query("How long does keep-warm hold the water, really?")
    before = embedder.query_cache_info()
    again = embedder.embed_query("How long does keep-warm hold the water, really?")
    after = embedder.query_cache_info()
    assert again is first and after.hits == before.hits + 1 and after.misses == before.misses
    assert not again.flags.writeable  # one array handed to every caller
    other = embedder.embed_query("What is the capacity of the kettle?")
    assert not np.allclose(other, first)


# ---- answers


@pytest.mark.django_db(transaction=True)
def test_the_same_question_twice_is_answered_from_the_cache_without_the_model(manual_kb, user, monkeypatch):
    first = ask(manual_kb, QUESTION, user)
    assert not is_cached(first) and done_of(first)["timings"]["completion_tokens"] > 0

    def no_model(*args, **kwargs):  # the second answer must not reach the model
        raise AssertionError("the model was called for a cached answer")

    monkeypatch.setattr(type(get_backend()), "stream", no_model)
    second = ask(manual_kb, QUESTION, user)
    kinds = [e["type"] for e in second]
    assert kinds == ["sources", "token", "done"]
    done, original = done_of(second), done_of(first)
    timings = done["timings"]
    assert timings["cached"] is True and timings["cached_from"] == original["message_id"]
    assert timings["completion_tokens"] == 0 and timings["prompt_tokens"] == 0
    assert timings["ttft_ms"] <= timings["total_ms"] and "retrieval_ms" in timings
    assert text_of(second) == text_of(first)
    assert second[0]["items"] == first[0]["items"]
    assert done["citations"] == original["citations"] and done["answered"] is True
    assert done["conversation"] != original["conversation"] and done["message_id"] != original["message_id"]
    assert set(done.get("citation_urls", {})) == set(original.get("citation_urls", {}))

    # stored as a normal answer: the conversation looks the same on reload
    again, before = Message.objects.get(pk=done["message_id"]), Message.objects.get(pk=original["message_id"])
    assert again.text == before.text and again.sources == before.sources and again.answered
    assert list(Citation.objects.filter(message=again).values_list("number", "quote", "start", "end")) == list(
        Citation.objects.filter(message=before).values_list("number", "quote", "start", "end")
    )
    shown = SourceShown.objects.filter(message=again)
    assert shown.count() == len(second[0]["items"]) and {s.user_id for s in shown} == {user.pk}
    log = QuestionLog.objects.get(message=again)
    assert log.cached and log.answered and log.question == QUESTION and log.ttft_ms == timings["ttft_ms"]
    assert not QuestionLog.objects.get(message=before).cached

    # a variant of the question hits too
    variant = ask(manual_kb, "  how do I do a FACTORY reset of the Lumen K3 kettle ？", user)
    assert is_cached(variant) and text_of(variant) == text_of(first)


@pytest.mark.django_db(transaction=True)
async def test_over_the_websocket_a_cached_answer_is_sources_one_token_and_done(manual_kb, user):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/chat/")
    communicator.scope["user"] = user
    assert (await communicator.connect())[0]
    answers = []
    for _ in range(2):
        await communicator.send_json_to({"type": "ask", "question": QUESTION, "kb": "manuals", "conversation": None})
        events = []
        while not events or events[-1]["type"] not in ("done", "error"):
            events.append(await communicator.receive_json_from(timeout=120))
        answers.append(events)
    await communicator.disconnect()
    assert not answers[0][-1]["timings"].get("cached")
    assert [e["type"] for e in answers[1]] == ["sources", "token", "done"]
    assert answers[1][-1]["timings"]["cached"] is True and text_of(answers[1]) == text_of(answers[0])


@pytest.mark.django_db(transaction=True)
def test_a_user_who_may_not_see_a_restricted_document_never_gets_its_answer(manual_kb, user, django_user_model):
    hr = Group.objects.create(name="hr")
    manual = Document.objects.get(original_name=MANUAL.name)
    document_restrict(document=manual, groups=[hr], actor=None)
    user.groups.add(hr)
    readers = Group.objects.get(name="readers")
    outsider = django_user_model.objects.create_user(username="outsider", password="x")
    outsider.groups.add(readers)
    colleague = django_user_model.objects.create_user(username="colleague", password="x")
    colleague.groups.add(readers, hr)

    first = ask(manual_kb, QUESTION, user)
    assert any(s["document_id"] == manual.pk for s in first[0]["items"])
    hidden = ask(manual_kb, QUESTION, outsider)
    assert not is_cached(hidden)
    assert all(s["document_id"] != manual.pk for s in hidden[0]["items"])
    # the outsider's own answer serves those who see what the outsider sees: a widget visitor, for one
    visitor = ask(manual_kb, QUESTION, None)
    assert is_cached(visitor) and visitor[0]["items"] == hidden[0]["items"]
    shared = ask(manual_kb, QUESTION, colleague)  # sees the same documents as `user`
    assert is_cached(shared) and shared[0]["items"] == first[0]["items"]


@pytest.mark.django_db(transaction=True)
def test_a_new_version_of_a_document_ingested_through_the_pipeline_is_answered_afresh(manual_kb, user):
    first = ask(manual_kb, QUESTION, user)
    assert is_cached(ask(manual_kb, QUESTION, user))
    edited = MANUAL.read_text().replace("10 seconds", "12 seconds")
    assert edited != MANUAL.read_text()
    result = document_create(
        knowledge_base=manual_kb, content=io.BytesIO(edited.encode()), filename=MANUAL.name, enqueue=False
    )
    assert result.replaced
    assert run_pipeline(Document.objects.get(pk=result.document.pk)).status == Document.Status.READY
    after = ask(manual_kb, QUESTION, user)
    assert not is_cached(after) and done_of(after)["timings"]["completion_tokens"] > 0
    # the new chunks are the sources now, and the new answer is the one cached
    old_chunks = {s["chunk_id"] for s in first[0]["items"] if s["document_id"] == result.document.pk}
    new_chunks = {s["chunk_id"] for s in after[0]["items"] if s["document_id"] == result.document.pk}
    assert new_chunks and not (old_chunks & new_chunks)
    again = ask(manual_kb, QUESTION, user)
    assert is_cached(again) and done_of(again)["timings"]["cached_from"] == done_of(after)["message_id"]


@pytest.mark.django_db(transaction=True)
def test_deleting_a_document_and_changing_members_invalidate(manual_kb, user, django_user_model):
    ask(manual_kb, QUESTION, user)
    assert is_cached(ask(manual_kb, QUESTION, user))
    document_delete(document=Document.objects.get(original_name="travel-policy.en.txt"))
    assert not is_cached(ask(manual_kb, QUESTION, user))
    assert is_cached(ask(manual_kb, QUESTION, user))
    newcomer = django_user_model.objects.create_user(username="newcomer", password="x")
    membership = membership_set(knowledge_base=manual_kb, role="reader", actor=None, user=newcomer)
    assert not is_cached(ask(manual_kb, QUESTION, user))
    assert is_cached(ask(manual_kb, QUESTION, user))
    membership_remove(membership=membership, actor=None)
    assert not is_cached(ask(manual_kb, QUESTION, user))


@pytest.mark.django_db(transaction=True)
def test_the_base_s_switch_and_the_global_switch_turn_the_cache_off(manual_kb, user, settings):
    manual_kb.answer_cache = False
    manual_kb.save()
    ask(manual_kb, QUESTION, user)
    assert not is_cached(ask(manual_kb, QUESTION, user))
    manual_kb.answer_cache = True
    manual_kb.save()
    settings.DOCENT_ANSWER_CACHE = False
    ask(manual_kb, QUESTION, user)
    assert not is_cached(ask(manual_kb, QUESTION, user))
    settings.DOCENT_ANSWER_CACHE = True
    assert not is_cached(ask(manual_kb, QUESTION, user))  # nothing was stored while it was off
    assert is_cached(ask(manual_kb, QUESTION, user))


@pytest.mark.django_db(transaction=True)
def test_a_followup_is_answered_from_the_cache_by_its_standalone_form(manual_kb, user, settings):
    settings.DOCENT_CONDENSE = "combine"
    opening, followup = "How do I descale the kettle?", "How often should I do it?"
    start = ask(manual_kb, opening, user)
    conversation = done_of(start)["conversation"]
    first = ask(manual_kb, followup, user, conversation)
    assert not is_cached(first) and done_of(first)["timings"]["searched_for"] == f"{opening} {followup}"

    # another conversation reaching the same follow-up after the same question
    other = done_of(ask(manual_kb, opening, user))["conversation"]
    second = ask(manual_kb, followup, user, other)
    assert is_cached(second) and text_of(second) == text_of(first)
    assert done_of(second)["timings"]["searched_for"] == f"{opening} {followup}"
    log = QuestionLog.objects.get(message_id=done_of(second)["message_id"])
    assert log.cached and log.standalone == f"{opening} {followup}" and log.question == followup

    # the same words after another question are another question
    third_conversation = done_of(ask(manual_kb, "What does error code E4 mean?", user))["conversation"]
    assert not is_cached(ask(manual_kb, followup, user, third_conversation))

    # without a standalone form a follow-up is never cached
    settings.DOCENT_CONDENSE = "off"
    ask(manual_kb, followup, user, other)
    assert not is_cached(ask(manual_kb, followup, user, other))


@pytest.mark.django_db(transaction=True)
def test_a_refusal_is_cached_and_logged_as_refused_each_time(manual_kb, user):
    question = "What is AppArmor?"  # not in the manuals (tests/chat/test_consumer.py)
    first = ask(manual_kb, question, user)
    assert done_of(first)["answered"] is False
    second = ask(manual_kb, question, user)
    assert is_cached(second) and done_of(second)["answered"] is False and text_of(second) == text_of(first)
    logs = QuestionLog.objects.filter(question=question).order_by("pk")
    assert [(log.answered, log.cached) for log in logs] == [(False, False), (False, True)]
    assert logs[1].refusal_reason == logs[0].refusal_reason != ""
