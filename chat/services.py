"""question → retrieve → prompt → generate → cite, as one async stream of protocol events.

The websocket consumer, the `ask` command and the benchmarks all iterate `answer(...)`; none of them
knows how an answer is made.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction
from django.http import Http404
from django.urls import reverse
from django.utils.translation import gettext as _

from chat import answer_cache
from chat.citations import Attribution, attribute
from chat.followup import standalone_question
from chat.llm import Generation, LLMBackend, LLMError, get_backend, presets
from chat.models import Citation, Conversation, Message, QuestionLog, SourceShown
from chat.phrases import sources_in_other_languages
from chat.prompts import PromptSource, build_check_messages, build_messages
from chat.selectors import citation_urls
from chat.streaming import CitationStream
from kb import retrieval
from kb.models import KnowledgeBase
from kb.selectors import knowledge_base_get_for

SNIPPET_CHARS = 240

Event = dict[str, Any]


class AnswerError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class QueueFull(AnswerError):
    def __init__(self) -> None:
        super().__init__("busy", _("Too many questions are waiting for the model; try again in a moment."))


class GenerationQueue:
    """Admits `slots` generations at a time; the rest wait in order and learn their position."""

    def __init__(self, slots: int, max_waiting: int) -> None:
        self.slots = slots
        self.max_waiting = max_waiting
        self.active = 0
        self.waiting: list[object] = []
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def turns(self, ticket: object) -> AsyncIterator[int]:
        """Yield 1-based queue positions while waiting; return once the slot is held."""
        if self.active >= self.slots and len(self.waiting) >= self.max_waiting:
            raise QueueFull()
        self.waiting.append(ticket)
        reported = 0
        try:
            while True:
                position = self.waiting.index(ticket)
                if position == 0 and self.active < self.slots:
                    self.waiting.pop(0)
                    self.active += 1
                    self._notify()
                    return
                if position + 1 != reported:
                    reported = position + 1
                    yield reported
                await self._changed.wait()
        except BaseException:
            if ticket in self.waiting:
                self.waiting.remove(ticket)
                self._notify()
            raise

    def release(self) -> None:
        self.active -= 1
        self._notify()


_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GenerationQueue] = weakref.WeakKeyDictionary()
_executors: dict[int, ThreadPoolExecutor] = {}
_executors_lock = threading.Lock()


def generation_executor(slots: int) -> ThreadPoolExecutor:
    """As many threads as the backend has slots, kept for the process.

    The in-process llama.cpp model thus always runs on the same thread. Its OpenMP team belongs to the thread
    that starts it, and a second team in the process (a new thread, or torch's) makes libgomp throttle
    every team's spinning: the model's threads then sleep and wake at each barrier (measured: ~90,000
    context switches over five answers instead of ~0, decoding ~12% slower; README, "Speed").
    """
    with _executors_lock:
        if slots not in _executors:
            _executors[slots] = ThreadPoolExecutor(max_workers=max(1, slots), thread_name_prefix=f"generate{slots}")
        return _executors[slots]


def source_token_budget(max_answer_tokens: int) -> int:
    """DOCENT_SOURCE_TOKENS, and never more than the context leaves after the answer and the prompt's frame."""
    return max(128, min(settings.DOCENT_SOURCE_TOKENS, settings.DOCENT_LLM_CONTEXT - max_answer_tokens - 256))


def generation_queue(slots: int) -> GenerationQueue:
    loop = asyncio.get_running_loop()
    if loop not in _queues:
        _queues[loop] = GenerationQueue(slots, max_waiting=settings.DOCENT_MAX_QUEUE)
    return _queues[loop]


def source_item(n: int, hit: retrieval.Hit) -> dict[str, Any]:
    chunk = hit.chunk
    assert chunk is not None
    text = chunk.text
    return {
        "n": n,
        "document_id": chunk.document_id,
        "title": chunk.document.title,
        "page": chunk.page,
        "heading": chunk.heading or None,
        "chunk_id": chunk.pk,
        "score": round(hit.score, 6),
        "snippet": text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS].rstrip() + "…",
        "url": reverse("kb:passage", args=[chunk.document_id, chunk.pk]),
    }


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


def _conversation_start(
    *, user: Any, knowledge_base: KnowledgeBase, conversation_id: int | None, question: str, history: list[str] | None
) -> tuple[Conversation, list[str]]:
    """The conversation (created when new) with the question stored, and its earlier questions (`history` when
    the client sent them, as the API's `messages` do).

    A signed-in user must still be a reader of the base (removed members are refused at their next
    question); `user` None is a widget visitor or a command, whose caller chose the base.
    """
    owner = user if user is not None and user.is_authenticated else None
    if owner is not None:
        try:
            knowledge_base_get_for(user=owner, pk=knowledge_base.pk)
        except Http404:
            raise AnswerError("unknown_kb", _("There is no such knowledge base you can use.")) from None
    with transaction.atomic():
        if conversation_id is None:
            conversation = Conversation.objects.create(user=owner, knowledge_base=knowledge_base, title=question[:200])
        else:
            conversation = Conversation.objects.filter(
                pk=conversation_id, user=owner, knowledge_base=knowledge_base
            ).first()
            if conversation is None:
                raise AnswerError("unknown_conversation", _("That conversation does not exist."))
        previous = list(
            conversation.messages.filter(role=Message.Role.USER)
            .order_by("-created_at", "-id")
            .values_list("text", flat=True)[:3]
        )[::-1]
        if history is not None:
            previous = [*previous, *history][-3:]
        Message.objects.create(conversation=conversation, role=Message.Role.USER, text=question)
    return conversation, previous


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


def quote_span(text: str, quote: str) -> dict[str, int | None]:
    start = text.find(quote) if quote else -1
    return {"start": start, "end": start + len(quote)} if start >= 0 else {"start": None, "end": None}


def _save_answer(
    *,
    conversation: Conversation,
    text: str,
    sources: list[dict[str, Any]],
    citations: list[Attribution],
    timings: dict[str, Any],
    answered: bool,
    stopped: bool,
    source_texts: dict[int, str],
    log: dict[str, Any] | None = None,
) -> Message:
    """Store the answer and its citations; `source_texts` (source number → chunk text, already in hand from
    retrieval) locates each quote in its chunk. `log`: the QuestionLog fields the answer path knows (channel,
    question, standalone, language, user); None writes no log row (evaluations)."""
    by_number = {s["n"]: s for s in sources}
    with transaction.atomic():
        message = Message.objects.create(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            text=text,
            sources=sources,
            timings=timings,
            answered=answered,
            stopped=stopped,
        )
        Citation.objects.bulk_create(
            [
                Citation(
                    message=message,
                    chunk_id=by_number[c.number]["chunk_id"],
                    number=c.number,
                    quote=c.quote,
                    **quote_span(source_texts.get(c.number, ""), c.quote),
                )
                for c in citations
            ]
        )
        # the audit of what was shown to whom (a base's managers list who saw a document's passages)
        SourceShown.objects.bulk_create(
            [
                SourceShown(
                    message=message,
                    knowledge_base_id=conversation.knowledge_base_id,
                    document_id=s["document_id"],
                    chunk_id=s["chunk_id"],
                    user_id=conversation.user_id,
                )
                for s in sources
                if isinstance(s.get("document_id"), int) and isinstance(s.get("chunk_id"), int)
            ]
        )
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=message.created_at)
        if log is not None:
            cited = {by_number[c.number].get("document_id") for c in citations if c.number in by_number}
            QuestionLog.objects.create(
                knowledge_base_id=conversation.knowledge_base_id,
                message=message,
                answered=answered,
                refusal_reason=str(timings.get("refusal_reason") or ""),
                cached=bool(timings.get("cached")),
                ttft_ms=timings.get("ttft_ms"),
                total_ms=timings.get("total_ms"),
                cited_documents=sorted(d for d in cited if isinstance(d, int)),
                **log,
            )
    return message


class ThreadedGeneration:
    """A blocking backend stream run in a worker thread, its pieces handed to the event loop.

    `release` runs when the thread has really finished, so a model slot is never freed while the model
    is still busy, even when the listener has gone away.
    """

    def __init__(
        self, messages: list[dict[str, str]], *, max_tokens: int, stop: threading.Event, backend: LLMBackend
    ) -> None:
        self.backend = backend
        self.messages = messages
        self.max_tokens = max_tokens
        self.stop = stop
        self.stats = Generation()
        self.started = False
        self._abandoned = threading.Event()

    def _should_stop(self) -> bool:
        return self.stop.is_set() or self._abandoned.is_set()

    async def run(self, release: Callable[[], None]) -> AsyncIterator[str]:
        backend = self.backend
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        interval = settings.DOCENT_STREAM_FLUSH_MS / 1000

        def produce() -> None:
            # Pieces are handed over at most every `interval` (the first at once): each hand-over wakes
            # the event loop and becomes a websocket frame, work that shares the cores with the model.
            buffered: list[str] = []
            handed_at = float("-inf")
            try:
                for piece in backend.stream(
                    self.messages, max_tokens=self.max_tokens, should_stop=self._should_stop, stats=self.stats
                ):
                    buffered.append(piece)
                    now = time.monotonic()
                    self.stats.last_piece_at = time.perf_counter()
                    if self.stats.first_piece_at is None:
                        self.stats.first_piece_at = self.stats.last_piece_at
                    if now - handed_at >= interval:
                        loop.call_soon_threadsafe(pieces.put_nowait, ("piece", "".join(buffered)))
                        buffered.clear()
                        handed_at = now
                outcome: tuple[str, Any] = ("end", None)
            except Exception as exc:  # noqa: BLE001 - handed to the event loop and raised there
                outcome = ("error", exc)
            if buffered:  # what was generated before an end or an error is still shown
                loop.call_soon_threadsafe(pieces.put_nowait, ("piece", "".join(buffered)))
            loop.call_soon_threadsafe(pieces.put_nowait, outcome)

        self.started = True
        future = loop.run_in_executor(generation_executor(backend.slots), produce)
        future.add_done_callback(lambda _: release())
        try:
            while True:
                kind, value = await pieces.get()
                # Pieces that arrived while the last frame was being sent go out together: when the
                # client or the loop is the bottleneck, fewer frames; when not, one frame per token.
                while kind == "piece" and not pieces.empty():
                    next_kind, next_value = pieces.get_nowait()
                    if next_kind != "piece":
                        yield value
                        kind, value = next_kind, next_value
                        break
                    value += next_value
                if kind == "piece":
                    yield value
                elif kind == "end":
                    return
                else:
                    raise value
        finally:
            self._abandoned.set()  # a no-op after a normal end; stops the thread otherwise


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
) -> AsyncIterator[Event]:
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
    conversation, previous = await sync_to_async(_conversation_start)(
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
        log = _log_fields(channel, question, search_text, cached.language, conversation)
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
    log = _log_fields(channel, question, search_text, result.language, conversation)

    if not result.answerable:
        # Refused without calling the model: it would only invent an answer.
        timings["refusal_reason"] = result.refusal_reason
        async for event in _refuse(knowledge_base, conversation, result.language, timings, started, log, cache_key):
            yield event
        return

    backend = get_backend(llm)
    queue = generation_queue(backend.slots)
    async for position in queue.turns(object()):
        yield {"type": "queued", "position": position}
    max_tokens = max_tokens or settings.DOCENT_MAX_ANSWER_TOKENS
    shown = prompt_sources(result.hits)
    messages = await sync_to_async(build_messages, thread_sensitive=False)(
        question=question,
        sources=shown,
        language=result.language,
        budget_tokens=source_token_budget(max_tokens),
        count_tokens=backend.count_tokens,
    )
    threshold = answer_check_threshold(backend, llm)
    if threshold is not None:
        try:
            check_started = time.perf_counter()
            # a follow-up is judged in its standalone form: "how often should I do it?" alone names nothing
            check = await sync_to_async(build_check_messages, thread_sensitive=False)(
                question=search_text,
                sources=shown,
                budget_tokens=source_token_budget(max_tokens),
                count_tokens=backend.count_tokens,
            )
            probability = await asyncio.get_running_loop().run_in_executor(
                generation_executor(backend.slots), backend.yes_probability, check
            )
        except LLMError as exc:
            queue.release()
            raise AnswerError("llm_error", _("The language model failed: %(error)s") % {"error": exc}) from exc
        except BaseException:
            queue.release()
            raise
        timings["check_ms"] = round((time.perf_counter() - check_started) * 1000, 1)
        timings["answerable_p"] = None if probability is None else round(probability, 4)
        if probability is not None and probability < threshold:
            # The model judged that its sources do not answer the question: it would only invent an answer.
            queue.release()
            timings["refusal_reason"] = f"the model found no answer in the sources (p={probability:.2f} < {threshold})"
            refusal = _refuse(knowledge_base, conversation, result.language, timings, started, log, cache_key)
            async for event in refusal:
                yield event
            return
    prompt_ready = time.perf_counter()
    generation = ThreadedGeneration(messages, max_tokens=max_tokens, stop=stop, backend=backend)
    stats = generation.stats
    pieces: list[str] = []
    first_token_at: float | None = None
    generation_started = time.perf_counter()
    markers = CitationStream({s["n"] for s in sources})
    try:
        yield {"type": "sources", "items": sources}
        async for piece in generation.run(release=queue.release):
            if first_token_at is None:
                first_token_at = time.perf_counter()
            # Markers are normalised to [n] and unknown numbers dropped before the client sees them;
            # a partial marker waits for its next piece.
            if shown := markers.feed(piece):
                pieces.append(shown)
                yield {"type": "token", "text": shown}
        if rest := markers.flush():
            pieces.append(rest)
            yield {"type": "token", "text": rest}
        # Sources in another language may be used; the answer says so, in the asker's language.
        body = "".join(pieces).strip()
        note = sources_in_other_languages(result.language, [h.chunk.language for h in result.hits if h.chunk])
        if note and body and not stop.is_set():
            pieces.append("\n\n" + note)
            yield {"type": "token", "text": "\n\n" + note}
    except LLMError as exc:
        raise AnswerError("llm_error", _("The language model failed: %(error)s") % {"error": exc}) from exc
    finally:
        if not generation.started:
            queue.release()
    finished = time.perf_counter()
    text = "".join(pieces).strip()
    citations = [Attribution(n, "") for n in markers.cited]
    texts = {s["n"]: hit.chunk.text for s, hit in zip(sources, result.hits, strict=True) if hit.chunk}
    if not citations and body:
        citations = await sync_to_async(attribute, thread_sensitive=False)(body, texts)
    decode_s = finished - (first_token_at or finished)
    timings.update(
        ttft_ms=round(((first_token_at or finished) - started) * 1000, 1),
        # from the retrieved sources to the prompt handed to the model (queue wait, prompt building)
        prompt_ms=round((prompt_ready - started) * 1000 - retrieval_ms, 1),
        # from the prompt handed over to the first token: the model reading the prompt
        prefill_ms=round(((first_token_at or finished) - prompt_ready) * 1000, 1),
        total_ms=round((finished - started) * 1000, 1),
        generation_ms=round((finished - generation_started) * 1000, 1),
        prompt_tokens=stats.prompt_tokens,
        completion_tokens=stats.completion_tokens,
        tokens_per_s=round((stats.completion_tokens - 1) / decode_s, 1) if decode_s > 0 else 0.0,
    )
    if stats.first_piece_at is not None and stats.last_piece_at and stats.last_piece_at > stats.first_piece_at:
        # pieces over the generating thread's own first-to-last span: the model's pace inside the server
        model_s = stats.last_piece_at - stats.first_piece_at
        timings["model_tokens_per_s"] = round((stats.completion_tokens - 1) / model_s, 1)
    message = await sync_to_async(_save_answer)(
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
    done = _done(message, conversation, [c.number for c in citations], timings, answered=True)
    done["citation_urls"] = await sync_to_async(citation_urls)(message)
    yield done


def _log_fields(
    channel: str | None, question: str, search_text: str, language: str, conversation: Conversation
) -> dict[str, Any] | None:
    """The QuestionLog fields the answer path knows; None when `channel` is None (nothing is logged)."""
    if channel is None:
        return None
    return {
        "channel": channel,
        "question": question,
        "standalone": search_text if search_text != question else "",
        "language": language,
        "user_id": conversation.user_id,
    }


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
    message = await sync_to_async(_save_answer)(
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
    done = _done(message, conversation, [n for n, _quote in cached.citations], timings, answered=cached.answered)
    if cached.answered:
        done["citation_urls"] = await sync_to_async(citation_urls)(message)
    yield done


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
    message = await sync_to_async(_save_answer)(
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
    yield _done(message, conversation, [], timings, answered=False)


def answer_check_threshold(backend: LLMBackend, llm: str | None = None) -> float | None:
    """The answerability score below which an answer is refused (chat.prompts.CHECK_REQUEST), or None: no check.

    DOCENT_ANSWER_CHECK: "auto" (default) takes the in-process chat model's preset's calibrated threshold (none
    for models too small to judge, for GGUF paths and for a model server), "off", or a number in [0, 1].
    """
    configured = settings.DOCENT_ANSWER_CHECK
    if configured == "off":
        return None
    if configured != "auto":
        return float(configured)
    if backend.name != "llama-cpp":
        return None
    preset = presets.PRESETS.get(llm or settings.DOCENT_LLM_MODEL or presets.DEFAULT)
    return preset.answer_check if preset else None


def _done(
    message: Message, conversation: Conversation, citations: list[int], timings: dict[str, Any], *, answered: bool
) -> Event:
    return {
        "type": "done",
        "message_id": message.pk,
        "conversation": conversation.pk,
        "citations": citations,
        "timings": timings,
        "answered": answered,
        "stopped": message.stopped,
    }


def message_feedback(*, user: Any, message_id: int, rating: int, comment: str = "") -> Message | None:
    """Store a user's rating (+1, -1, 0 to clear) of one of their own answers; None if not theirs."""
    if rating not in (-1, 0, 1):
        raise ValueError("rating must be -1, 0 or 1")
    from chat.selectors import message_get_for

    try:
        message = message_get_for(user=user, message_id=message_id)
    except Http404:
        return None
    message.feedback = rating
    message.feedback_comment = comment.strip()[:2000]
    message.save(update_fields=["feedback", "feedback_comment"])
    QuestionLog.objects.filter(message=message).update(feedback=rating)
    return message
