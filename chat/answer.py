"""A question's path: question → (answer cache) → retrieve → check → generate → cite, as one async stream of
protocol events (chat.events).

The websocket consumers, the OpenAI-compatible API, the `ask` command and the evaluations all iterate `answer(...)`;
none of them knows how an answer is made. Writes are chat.services', generation machinery chat.generation's.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.http import Http404
from django.utils.translation import gettext as _

from chat import answer_cache, events
from chat.attribution import Attribution, attribute
from chat.events import AnswerError, Event, source_item
from chat.followup import standalone_question
from chat.generation import (
    ThreadedGeneration,
    answer_check_threshold,
    generation_executor,
    generation_queue,
    source_token_budget,
)
from chat.llm import LLMBackend, LLMError, get_backend
from chat.marker_stream import CitationStream
from chat.models import Conversation, QuestionLog
from chat.phrases import sources_in_other_languages
from chat.prompts import PromptSource, build_check_messages, build_messages
from chat.selectors import citation_urls
from chat.services import answer_save, conversation_start, log_fields
from kb import retrieval
from kb.models import KnowledgeBase


async def answer(
    *,
    user: Any,
    knowledge_base: KnowledgeBase,
    question: str,
    conversation_id: int | None = None,
    mode: str | None = None,
    stop: threading.Event | None = None,
    max_tokens: int | None = None,
    llm: str | None = None,
    history: list[str] | None = None,
    channel: str | None = QuestionLog.Channel.CHAT,
) -> AsyncGenerator[Event, None]:
    """Yield the protocol's events for one question: queued*, sources, token+, done.

    `channel`: where the question came from, for the question log (QuestionLog.Channel); None logs nothing
    (evaluations and benchmarks are not users).
    `llm`: a chat model other than the configured one (a chat.llm.presets name or GGUF path; evaluations).
    `history`: the asker's earlier questions, oldest first, when the client keeps the conversation (the API);
    a follow-up among them is searched for with them (chat.followup).
    """
    stop = stop or threading.Event()
    started = time.perf_counter()
    question = question.strip()
    conversation, previous = await sync_to_async(conversation_start)(
        user=user, knowledge_base=knowledge_base, conversation_id=conversation_id, question=question, history=history
    )
    conversation_ms = (time.perf_counter() - started) * 1000
    search_text = await sync_to_async(standalone_question, thread_sensitive=False)(previous, question)
    cache_key, cached = None, None
    if channel is not None:  # evaluations measure the model: never answered from the cache
        cache_key, cached = await database_sync_to_async(_cache_lookup, thread_sensitive=False)(
            knowledge_base_id=knowledge_base.pk,
            user=user,
            text=answer_cache.cache_text(previous, question, search_text),
            mode=mode or knowledge_base.retrieval_mode,
            llm=llm,
            max_tokens=max_tokens,
        )
    if cached is not None:
        log = log_fields(channel, question, search_text, cached.language, conversation)
        searched_for = search_text if search_text != question else ""
        async for event in _answer_from_cache(cached, conversation, searched_for, started, log):
            yield event
        return
    # Off the one thread that Channels' database calls share (thread_sensitive): a queue of searches there held
    # up new sockets' sign-in lookups past the handshake timeout under load (bench reliability's soak).
    result = await database_sync_to_async(_search, thread_sensitive=False)(knowledge_base, search_text, mode, user)
    retrieval_ms = (time.perf_counter() - started) * 1000
    sources = [source_item(n, hit) for n, hit in enumerate(result.hits, start=1)]
    timings: dict[str, Any] = {
        "retrieval_ms": round(retrieval_ms, 1),
        "conversation_ms": round(conversation_ms, 1),
        "search_ms": {k: round(v, 1) for k, v in result.timings_ms.items()},
        "mode": result.mode.value,
    }
    if search_text != question:
        timings["searched_for"] = search_text
    log = log_fields(channel, question, search_text, result.language, conversation)

    if not result.answerable:
        # Refused without calling the model: it would only invent an answer.
        timings["refusal_reason"] = result.refusal_reason
        async for event in _refuse(knowledge_base, conversation, result.language, timings, started, log, cache_key):
            yield event
        return

    backend = get_backend(llm)
    queue = generation_queue(backend.slots)
    async for position in queue.turns(object()):
        yield events.queued(position)
    max_tokens = max_tokens or settings.DOCENT_MAX_ANSWER_TOKENS
    shown = prompt_sources(result.hits)
    messages = await sync_to_async(build_messages, thread_sensitive=False)(
        question=question,
        sources=shown,
        language=result.language,
        budget_tokens=source_token_budget(max_tokens),
        count_tokens=backend.count_tokens,
    )
    try:
        # a follow-up is judged in its standalone form: "how often should I do it?" alone names nothing
        refusal_reason = await _check(backend, llm, search_text, shown, max_tokens, timings)
    except BaseException:
        queue.release()
        raise
    if refusal_reason:
        # The model judged that its sources do not answer the question: it would only invent an answer.
        queue.release()
        timings["refusal_reason"] = refusal_reason
        async for event in _refuse(knowledge_base, conversation, result.language, timings, started, log, cache_key):
            yield event
        return
    generation = ThreadedGeneration(messages, max_tokens=max_tokens, stop=stop, backend=backend)
    cited = _generate_and_cite(generation, queue.release, result, sources, stop, timings, started)
    async for event in cited:
        if event["type"] != "done":
            yield event
            continue
        # the answer is stored (and cached) before its `done` event goes out
        yield await _store(event, conversation, result, sources, stop, timings, log, cache_key)


async def _check(
    backend: LLMBackend,
    llm: str | None,
    question: str,
    shown: list[PromptSource],
    max_tokens: int,
    timings: dict[str, Any],
) -> str:
    """The answerability check (chat.prompts.CHECK_REQUEST): "" to go on answering, else the refusal's reason.
    Adds check_ms and answerable_p to `timings`. Raises AnswerError("llm_error") when the model fails."""
    threshold = answer_check_threshold(backend, llm)
    if threshold is None:
        return ""
    check_started = time.perf_counter()
    check = await sync_to_async(build_check_messages, thread_sensitive=False)(
        question=question,
        sources=shown,
        budget_tokens=source_token_budget(max_tokens),
        count_tokens=backend.count_tokens,
    )
    try:
        probability = await asyncio.get_running_loop().run_in_executor(
            generation_executor(backend.slots), backend.yes_probability, check
        )
    except LLMError as exc:
        raise AnswerError("llm_error", _("The language model failed: %(error)s") % {"error": exc}) from exc
    timings["check_ms"] = round((time.perf_counter() - check_started) * 1000, 1)
    timings["answerable_p"] = None if probability is None else round(probability, 4)
    if probability is not None and probability < threshold:
        return f"the model found no answer in the sources (p={probability:.2f} < {threshold})"
    return ""


async def _generate_and_cite(
    generation: ThreadedGeneration,
    release: Callable[[], None],
    result: retrieval.SearchResult,
    sources: list[dict[str, Any]],
    stop: threading.Event,
    timings: dict[str, Any],
    started: float,
) -> AsyncIterator[Event]:
    """sources, token+ as the model writes (markers normalised to [n], unknown numbers dropped), then a
    provisional `done` event holding the text and its citations (markers, else attribution: chat.attribution) for
    answer() to store. `release` frees the model's slot once the generating thread has really finished."""
    stats = generation.stats
    pieces: list[str] = []
    first_token_at: float | None = None
    prompt_ready = time.perf_counter()
    markers = CitationStream({s["n"] for s in sources})
    try:
        yield events.sources(sources)
        async for piece in generation.run(release=release):
            if first_token_at is None:
                first_token_at = time.perf_counter()
            # a partial marker waits for its next piece
            if shown := markers.feed(piece):
                pieces.append(shown)
                yield events.token(shown)
        if rest := markers.flush():
            pieces.append(rest)
            yield events.token(rest)
        # Sources in another language may be used; the answer says so, in the asker's language.
        body = "".join(pieces).strip()
        note = sources_in_other_languages(result.language, [h.chunk.language for h in result.hits if h.chunk])
        if note and body and not stop.is_set():
            pieces.append("\n\n" + note)
            yield events.token("\n\n" + note)
    except LLMError as exc:
        raise AnswerError("llm_error", _("The language model failed: %(error)s") % {"error": exc}) from exc
    finally:
        if not generation.started:
            release()
    finished = time.perf_counter()
    citations = [Attribution(n, "") for n in markers.cited]
    texts = {s["n"]: hit.chunk.text for s, hit in zip(sources, result.hits, strict=True) if hit.chunk}
    if not citations and body:
        citations = await sync_to_async(attribute, thread_sensitive=False)(body, texts)
    first = first_token_at or finished
    decode_s = finished - first
    timings.update(
        ttft_ms=round((first - started) * 1000, 1),
        # from the retrieved sources to the prompt handed to the model (queue wait, prompt building)
        prompt_ms=round((prompt_ready - started) * 1000 - timings["retrieval_ms"], 1),
        # from the prompt handed over to the first token: the model reading the prompt
        prefill_ms=round((first - prompt_ready) * 1000, 1),
        total_ms=round((finished - started) * 1000, 1),
        generation_ms=round((finished - prompt_ready) * 1000, 1),
        prompt_tokens=stats.prompt_tokens,
        completion_tokens=stats.completion_tokens,
        tokens_per_s=round((stats.completion_tokens - 1) / decode_s, 1) if decode_s > 0 else 0.0,
    )
    if stats.first_piece_at is not None and stats.last_piece_at and stats.last_piece_at > stats.first_piece_at:
        # pieces over the generating thread's own first-to-last span: the model's pace inside the server
        model_s = stats.last_piece_at - stats.first_piece_at
        timings["model_tokens_per_s"] = round((stats.completion_tokens - 1) / model_s, 1)
    yield {"type": "done", "text": "".join(pieces).strip(), "citations": citations, "source_texts": texts}


async def _store(
    generated: Event,
    conversation: Conversation,
    result: retrieval.SearchResult,
    sources: list[dict[str, Any]],
    stop: threading.Event,
    timings: dict[str, Any],
    log: dict[str, Any] | None,
    cache_key: str | None,
) -> Event:
    """The generated answer stored with its citations and log row (and in the answer cache under `cache_key`);
    its `done` event."""
    text, citations, texts = generated["text"], generated["citations"], generated["source_texts"]
    message = await sync_to_async(answer_save)(
        conversation=conversation,
        text=text,
        sources=sources,
        citations=citations,
        timings=timings,
        answered=True,
        stopped=stop.is_set(),
        source_texts=texts,
        log=log,
    )
    if cache_key is not None and text and not stop.is_set():
        cited = {c.number for c in citations}
        entry = answer_cache.CachedAnswer(
            text=text,
            sources=sources,
            citations=[(c.number, c.quote) for c in citations],
            answered=True,
            language=result.language,
            message_id=message.pk,
            source_texts={n: t for n, t in texts.items() if n in cited},
        )
        await sync_to_async(answer_cache.store, thread_sensitive=False)(cache_key, entry)
    final = events.done(message, conversation, [c.number for c in citations], timings, answered=True)
    final["citation_urls"] = await sync_to_async(citation_urls)(message)
    return final


def prompt_sources(hits: list[retrieval.Hit]) -> list[PromptSource]:
    """The retrieved passages the model is given: the best DOCENT_PROMPT_SOURCES, numbered as the sources list
    numbers them."""
    return [
        PromptSource(
            n=n, title=hit.chunk.document.title, page=hit.chunk.page, heading=hit.chunk.heading, text=hit.chunk.text
        )
        for n, hit in enumerate(hits, start=1)
        if hit.chunk is not None
    ][: settings.DOCENT_PROMPT_SOURCES]


def _search(knowledge_base: KnowledgeBase, question: str, mode: str | None, user: Any) -> retrieval.SearchResult:
    try:
        return retrieval.search(
            knowledge_base=knowledge_base, question=question, mode=mode or knowledge_base.retrieval_mode, user=user
        )
    except Http404:  # access withdrawn since the question was stored
        raise AnswerError("unknown_kb", _("There is no such knowledge base you can use.")) from None


def _cache_lookup(**key_fields: Any) -> tuple[str | None, answer_cache.CachedAnswer | None]:
    try:
        return answer_cache.lookup(**key_fields)
    except Http404:  # access withdrawn since the question was stored
        raise AnswerError("unknown_kb", _("There is no such knowledge base you can use.")) from None


async def _answer_from_cache(
    cached: answer_cache.CachedAnswer,
    conversation: Conversation,
    searched_for: str,
    started: float,
    log: dict[str, Any] | None,
) -> AsyncIterator[Event]:
    """A stored answer's events at once (chat.answer_cache): no retrieval, no generation queue, no model. It is
    stored as a new answer of this conversation (message, citations, sources shown) and logged as cached.
    `searched_for`: the follow-up's standalone form ("" for a question of its own)."""
    looked_up = time.perf_counter()
    yield {"type": "sources", "items": cached.sources}
    timings: dict[str, Any] = {"cached": True, "cached_from": cached.message_id}
    timings["retrieval_ms"] = timings["cache_ms"] = round((looked_up - started) * 1000, 1)
    if cached.refusal_reason:
        timings["refusal_reason"] = cached.refusal_reason
    if searched_for:
        timings["searched_for"] = searched_for
    timings["ttft_ms"] = round((time.perf_counter() - started) * 1000, 1)
    yield {"type": "token", "text": cached.text}
    timings.update(prompt_tokens=0, completion_tokens=0, tokens_per_s=0.0)
    timings["total_ms"] = round((time.perf_counter() - started) * 1000, 1)
    message = await sync_to_async(answer_save)(
        conversation=conversation,
        text=cached.text,
        sources=cached.sources,
        citations=[Attribution(n, quote) for n, quote in cached.citations],
        timings=timings,
        answered=cached.answered,
        stopped=False,
        source_texts=cached.source_texts,
        log=log,
    )
    final = events.done(message, conversation, [n for n, _quote in cached.citations], timings, answered=cached.answered)
    if cached.answered:
        final["citation_urls"] = await sync_to_async(citation_urls)(message)
    yield final


async def _refuse(
    knowledge_base: KnowledgeBase,
    conversation: Conversation,
    language: str,
    timings: dict[str, Any],
    started: float,
    log: dict[str, Any] | None,
    cache_key: str | None = None,
) -> AsyncIterator[Event]:
    """The refusal's events, in the question's language, and the refusal stored as the answer (and in the answer
    cache under `cache_key`, when given)."""
    refusal = knowledge_base.refusal_for(language)
    yield {"type": "sources", "items": []}
    yield {"type": "token", "text": refusal}
    timings.update(ttft_ms=round((time.perf_counter() - started) * 1000, 1), prompt_tokens=0, completion_tokens=0)
    timings.update(total_ms=timings["ttft_ms"], tokens_per_s=0.0)
    message = await sync_to_async(answer_save)(
        conversation=conversation,
        text=refusal,
        sources=[],
        citations=[],
        source_texts={},
        timings=timings,
        answered=False,
        stopped=False,
        log=log,
    )
    if cache_key is not None:
        entry = answer_cache.CachedAnswer(
            text=refusal,
            sources=[],
            citations=[],
            answered=False,
            language=language,
            message_id=message.pk,
            refusal_reason=str(timings.get("refusal_reason") or ""),
        )
        await sync_to_async(answer_cache.store, thread_sensitive=False)(cache_key, entry)
    yield events.done(message, conversation, [], timings, answered=False)
