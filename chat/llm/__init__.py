"""Model backends behind one interface; `get_backend()` returns the process's configured one."""

from __future__ import annotations

from django.conf import settings

from chat.llm.base import Generation, LLMBackend, LLMError
from core.lazy import process_singleton

__all__ = ["Generation", "LLMBackend", "LLMError", "get_backend", "reset_backends"]


def get_backend(model: str | None = None) -> LLMBackend:
    """The process's backend: DOCENT_LLM_URL's server when set, else the in-process model DOCENT_LLM_MODEL.

    `model` (a chat.llm.presets name or a GGUF path) asks for that in-process model instead, loaded once and
    kept: evaluations compare models in one run with it.
    """
    return _backend(model or "")


@process_singleton
def _backend(model: str) -> LLMBackend:
    """One backend per `model` ("" for the configured one), built on first use."""
    if settings.DOCENT_LLM_URL and not model:
        from chat.llm.openai_compat import OpenAICompatibleBackend

        return OpenAICompatibleBackend(settings.DOCENT_LLM_URL, api_key=settings.DOCENT_LLM_API_KEY)
    from chat.llm.llama import LlamaCppBackend

    return LlamaCppBackend(model or None)


def reset_backends() -> None:
    """Forget the loaded backends (tests that change DOCENT_LLM_URL or DOCENT_LLM_MODEL)."""
    _backend.reset()
