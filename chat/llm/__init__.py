"""Model backends behind one interface; `get_backend()` returns the process's configured one."""

from __future__ import annotations

import threading

from django.conf import settings

from chat.llm.base import Generation, LLMBackend, LLMError

__all__ = ["Generation", "LLMBackend", "LLMError", "get_backend"]

_backend: LLMBackend | None = None
_lock = threading.Lock()


def get_backend() -> LLMBackend:
    global _backend
    if _backend is None:
        with _lock:
            if _backend is None:
                if settings.DOCENT_LLM_URL:
                    from chat.llm.openai_compat import OpenAICompatibleBackend

                    _backend = OpenAICompatibleBackend(settings.DOCENT_LLM_URL, api_key=settings.DOCENT_LLM_API_KEY)
                else:
                    from chat.llm.llama import LlamaCppBackend

                    _backend = LlamaCppBackend()
    return _backend
