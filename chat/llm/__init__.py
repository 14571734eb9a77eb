"""Model backends behind one interface; `get_backend()` returns the process's configured one."""

from __future__ import annotations

import threading

from django.conf import settings

from chat.llm.base import Generation, LLMBackend, LLMError

__all__ = ["Generation", "LLMBackend", "LLMError", "get_backend", "reset_backends"]

_backends: dict[str, LLMBackend] = {}
_lock = threading.Lock()


def get_backend(model: str | None = None) -> LLMBackend:
    """The process's backend: DOCENT_LLM_URL's server when set, else the in-process model DOCENT_LLM_MODEL.

    `model` (a chat.llm.presets name or a GGUF path) asks for that in-process model instead, loaded once and
    kept: evaluations compare models in one run with it.
    """
    key = model or ""
    if key not in _backends:
        with _lock:
            if key not in _backends:
                if settings.DOCENT_LLM_URL and not model:
                    from chat.llm.openai_compat import OpenAICompatibleBackend

                    _backends[key] = OpenAICompatibleBackend(
                        settings.DOCENT_LLM_URL, api_key=settings.DOCENT_LLM_API_KEY
                    )
                else:
                    from chat.llm.llama import LlamaCppBackend

                    _backends[key] = LlamaCppBackend(model)
    return _backends[key]


def reset_backends() -> None:
    """Forget the loaded backends (tests that change DOCENT_LLM_URL or DOCENT_LLM_MODEL)."""
    with _lock:
        _backends.clear()
