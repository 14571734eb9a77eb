"""Generation machinery: the queue that admits questions to the model's slots, the threads the model runs on, and
a blocking backend stream handed to the event loop piece by piece (chat.answer uses them; chat.llm holds the models).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

from chat.events import AnswerError
from chat.llm import Generation, LLMBackend, presets
from core.lazy import process_singleton


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


@process_singleton
def generation_executor(slots: int) -> ThreadPoolExecutor:
    """As many threads as the backend has slots, kept for the process.

    The in-process llama.cpp model thus always runs on the same thread. Its OpenMP team belongs to the thread
    that starts it, and a second team in the process (a new thread, or torch's) makes libgomp throttle
    every team's spinning: the model's threads then sleep and wake at each barrier (measured: ~90,000
    context switches over five answers instead of ~0, decoding ~12% slower; README, "Speed").
    """
    return ThreadPoolExecutor(max_workers=max(1, slots), thread_name_prefix=f"generate{slots}")


def source_token_budget(max_answer_tokens: int) -> int:
    """DOCENT_SOURCE_TOKENS, and never more than the context leaves after the answer and the prompt's frame."""
    return max(128, min(settings.DOCENT_SOURCE_TOKENS, settings.DOCENT_LLM_CONTEXT - max_answer_tokens - 256))


def generation_queue(slots: int) -> GenerationQueue:
    loop = asyncio.get_running_loop()
    if loop not in _queues:
        _queues[loop] = GenerationQueue(slots, max_waiting=settings.DOCENT_MAX_QUEUE)
    return _queues[loop]


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
