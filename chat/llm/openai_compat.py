"""Any OpenAI-compatible chat server (llama.cpp server, vLLM, ...) for scale-out: streamed over SSE."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator

import httpx
from django.conf import settings

from chat.llm.base import Generation, LLMError
from chat.prompts import STOP_SEQUENCES
from core.text import approximate_tokens

logger = logging.getLogger(__name__)


class OpenAICompatibleBackend:
    name = "openai-compatible"

    def __init__(self, base_url: str, *, api_key: str = "", model: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model or settings.DOCENT_LLM_MODEL or "default"
        self.slots = int(getattr(settings, "DOCENT_LLM_SLOTS", 4))
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(120.0, connect=5.0))

    @property
    def model_name(self) -> str:
        return self.model

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        should_stop: Callable[[], bool],
        stats: Generation,
    ) -> Iterator[str]:
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "stop": STOP_SEQUENCES,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        stats.prompt_tokens = None  # until the server reports usage (vLLM does; llama.cpp's Python server does not)
        try:
            with self._client.stream("POST", f"{self.base_url}/chat/completions", json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise LLMError(f"model server answered {response.status_code}: {response.text[:200]}")
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    event = json.loads(payload)
                    if usage := event.get("usage"):
                        stats.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                    for choice in event.get("choices") or []:
                        if choice.get("finish_reason"):
                            stats.finish_reason = choice["finish_reason"]
                        text = (choice.get("delta") or {}).get("content") or ""
                        if text:
                            stats.completion_tokens += 1
                            yield text
                    if should_stop():
                        stats.finish_reason = "stopped"
                        break
        except httpx.HTTPError as exc:
            raise LLMError(f"model server unreachable at {self.base_url}: {exc}") from exc

    def yes_probability(self, messages: list[dict[str, str]]) -> float | None:
        """P(yes) / (P(yes) + P(no)) for the reply's first token, from the server's `top_logprobs`; None when the
        server gives no log-probabilities (the answerability check is then skipped) or is unreachable."""
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": 20,
        }
        try:
            response = self._client.post(f"{self.base_url}/chat/completions", json=body)
            content = response.json()["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
            return None
        odds = {"yes": 0.0, "no": 0.0}
        for item in content:
            word = str(item.get("token", "")).strip().lower()
            if word in odds:
                odds[word] += math.exp(float(item["logprob"]))
        total = odds["yes"] + odds["no"]
        return odds["yes"] / total if total > 0 else None

    def count_tokens(self, text: str) -> int:
        """The remote model's tokenizer is not at hand: an estimate (1 per CJK character, ~1.3 per word)."""
        return approximate_tokens(text)

    def health(self) -> str:
        try:
            response = self._client.get(f"{self.base_url}/models", timeout=2.0)
        except httpx.HTTPError as exc:
            return f"model server unreachable: {exc}"
        return "ok" if response.status_code == 200 else f"model server answered {response.status_code}"
