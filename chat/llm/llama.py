"""The in-process GGUF model through llama-cpp-python: loaded once per process, one generation at a time."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings

from chat.llm import presets
from chat.llm.base import Generation, LLMError
from chat.prompts import STOP_SEQUENCES

logger = logging.getLogger(__name__)


def model_path(model: str | None = None) -> Path:
    """`model`, else DOCENT_LLM_MODEL: a preset name (chat.llm.presets; default qwen2.5-0.5b), verified, or a
    GGUF path. Raises LLMError when a preset is not installed or its file does not match its hash."""
    configured = model or settings.DOCENT_LLM_MODEL or presets.DEFAULT
    if configured in presets.PRESETS:
        try:
            return presets.verified_path(configured)
        except presets.PresetError as exc:
            raise LLMError(str(exc)) from exc
    return Path(configured)


class LlamaCppBackend:
    name = "llama-cpp"
    slots = 1

    # llama-cpp-python samples each token in Python, so the generation thread and the event loop take
    # turns on the GIL; at CPython's default 5 ms switch interval every token can wait 5 ms for it.
    SWITCH_INTERVAL_S = 0.0005

    def __init__(self, model: str | None = None) -> None:
        self.model = model  # None: DOCENT_LLM_MODEL
        self._llama: Any = None
        self._load_lock = threading.Lock()
        # llama.cpp contexts are not thread-safe: the queue in chat.services admits one generation,
        # and this lock makes that a guarantee for any other caller (the `ask` command, benchmarks).
        self._generate_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return model_path(self.model).name

    def load(self) -> Any:
        if self._llama is None:
            with self._load_lock:
                if self._llama is None:
                    from llama_cpp import Llama

                    sys.setswitchinterval(min(sys.getswitchinterval(), self.SWITCH_INTERVAL_S))

                    path = model_path(self.model)
                    if not path.is_file():
                        raise LLMError(f"model file not found: {path}")
                    started = time.perf_counter()
                    self._llama = Llama(
                        model_path=str(path),
                        n_ctx=settings.DOCENT_LLM_CONTEXT,
                        n_threads=settings.DOCENT_LLM_THREADS or os.cpu_count() or 1,
                        n_batch=512,
                        verbose=False,
                    )
                    # Free the model before interpreter teardown unloads the library it needs to do so.
                    atexit.register(self._llama.close)
                    logger.info("loaded %s in %.1f s", path.name, time.perf_counter() - started)
        return self._llama

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        should_stop: Callable[[], bool],
        stats: Generation,
    ) -> Iterator[str]:
        llama = self.load()
        with self._generate_lock:
            chunks = llama.create_chat_completion(
                messages=messages,
                max_tokens=max_tokens,
                temperature=0.0,  # greedy: answers from sources should not vary between runs
                repeat_penalty=1.1,
                stop=STOP_SEQUENCES,
                stream=True,
            )
            try:
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    text = choice.get("delta", {}).get("content") or ""
                    if choice.get("finish_reason"):
                        stats.finish_reason = choice["finish_reason"]
                    if text:
                        stats.completion_tokens += 1
                        yield text
                    if should_stop():
                        stats.finish_reason = "stopped"
                        break
            finally:
                chunks.close()
                stats.prompt_tokens = max(0, int(llama.n_tokens) - stats.completion_tokens)

    def warm_up(self) -> None:
        """Load the model and run one token, on the calling thread (the generation thread, at server start)."""
        llama = self.load()
        with self._generate_lock:
            llama.create_completion("Hello", max_tokens=1, temperature=0.0)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` by the model's own tokenizer (the vocabulary only: safe beside a generation)."""
        return len(self.load().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def parameters(self) -> int:
        return int(self.load()._model.n_params())

    def health(self) -> str:
        try:
            path = model_path(self.model)
        except LLMError as exc:
            return str(exc)
        return "ok" if path.is_file() else f"model file not found: {path}"
