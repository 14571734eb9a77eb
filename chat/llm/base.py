from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol


class LLMError(Exception):
    """The model could not generate; the message is safe to show."""


@dataclass
class Generation:
    """Filled in by a backend while it streams."""

    prompt_tokens: int | None = 0  # None: the server did not report it
    completion_tokens: int = 0
    finish_reason: str = ""
    # perf_counter when the first and the last piece left the backend, on the generating thread: the
    # model's own pace, before any hand-over to the event loop
    first_piece_at: float | None = None
    last_piece_at: float | None = None


class LLMBackend(Protocol):
    name: str
    # how many generations may run at once (the in-process model: one)
    slots: int

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        should_stop: Callable[[], bool],
        stats: Generation,
    ) -> Iterator[str]:
        """Yield text pieces as the model writes them; blocking, so callers run it in a thread."""
        ...

    def yes_probability(self, messages: list[dict[str, str]]) -> float | None:
        """For a yes/no question: P(yes) / (P(yes) + P(no)) of the reply's first token; None if unknown."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` for this model (the prompt's source budget is counted with it)."""
        ...

    def health(self) -> str:
        """'ok', or what is wrong."""
        ...
