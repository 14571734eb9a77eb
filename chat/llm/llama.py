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

import numpy as np
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

    def yes_probability(self, messages: list[dict[str, str]]) -> float | None:
        """P(yes) / (P(yes) + P(no)) for the first token of the model's reply to a yes/no question, from one
        forward pass (no sampling); None when the model has no chat template to format the messages with.

        The prompt's tokens shared with the previous prompt are not read again (llama.cpp keeps them in its KV
        cache), and the answer prompt that follows shares this one's system message and context, so the check
        costs the model only its last line and the answer's (chat.prompts.build_check_messages).
        """
        llama = self.load()
        with self._generate_lock:
            formatter, yes, no = self._yes_no()
            if formatter is None:
                return None
            prompt = formatter(messages=messages).prompt
            tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
            cached = llama.input_ids[: llama.n_tokens]
            common = 0
            for old, new in zip(cached, tokens, strict=False):
                if old != new:
                    break
                common += 1
            llama.n_tokens = min(common, len(tokens) - 1)  # at least one token read, for its logits
            llama.eval(tokens[llama.n_tokens :])
            logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),)).astype(np.float64)
        odds = np.exp(logits - logits.max())
        p_yes, p_no = odds[yes].sum(), odds[no].sum()
        return float(p_yes / (p_yes + p_no)) if p_yes + p_no > 0 else None

    def _yes_no(self) -> tuple[Any, list[int], list[int]]:
        """The model's chat formatter (from its GGUF template) and its one-token spellings of yes and no."""
        if not hasattr(self, "_yes_no_cache"):
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llama = self.load()
            template = llama.metadata.get("tokenizer.chat_template")
            formatter = None
            if template:  # as llama_cpp.Llama makes its own chat handler from the template
                eos, bos = llama.token_eos(), llama.token_bos()
                formatter = Jinja2ChatFormatter(
                    template=template,
                    eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
                    bos_token=llama._model.token_get_text(bos) if bos != -1 else "",
                )

            def single(words: tuple[str, ...]) -> list[int]:
                found = {tuple(llama.tokenize(w.encode(), add_bos=False, special=False)) for w in words}
                return sorted(t[0] for t in found if len(t) == 1)

            self._yes_no_cache = (
                formatter,
                single(("yes", "Yes", "YES", " yes", " Yes")),
                single(("no", "No", "NO", " no", " No")),
            )
        return self._yes_no_cache

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
