"""Prompt building and citation markers.

Sources are numbered [1]..[n] in the prompt; the answer cites them with the same numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from kb.ingest.chunk import approximate_tokens

SYSTEM_PROMPT = (
    "You are Docent, an assistant that answers questions using only the numbered sources provided. "
    "Answer briefly in the language of the question. After each fact, cite its source number in square "
    "brackets, like [1]. If the sources do not contain the answer, say that you do not know."
)

# Small models continue the prompt's pattern after answering; these end the answer there.
STOP_SEQUENCES = ["\nQuestion:", "\nSources:", "\nAnswer in "]

_LANGUAGE_NAMES = {"en": "English", "fr": "French", "zh": "Chinese"}


@dataclass(frozen=True)
class PromptSource:
    n: int
    title: str
    page: int | None
    heading: str
    text: str


def format_source(source: PromptSource) -> str:
    where = source.title
    if source.page:
        where += f", page {source.page}"
    if source.heading:
        where += f" — {source.heading}"
    return f"[{source.n}] ({where})\n{source.text}"


def build_messages(
    *,
    question: str,
    sources: list[PromptSource],
    language: str,
    budget_tokens: int,
    count_tokens: Callable[[str], int] | None = None,
) -> list[dict[str, str]]:
    """System and user messages; sources fill `budget_tokens` (by the chat model's tokenizer when given) in
    rank order so the best survive, the last one cut at a sentence or word end when it does not fit whole.

    Counted in tokens, not characters: a Chinese character costs the chat model a token or more, so a
    character budget sized for English would overflow the context window with Chinese sources.
    """
    count = count_tokens or approximate_tokens
    blocks: list[str] = []
    used = 0
    for source in sources:
        block = format_source(source)
        cost = count(block)
        if used + cost > budget_tokens:
            remaining = budget_tokens - used
            if remaining >= MIN_PARTIAL_SOURCE_TOKENS:
                blocks.append(_cut_to(block, remaining, count) + "…")
            break
        blocks.append(block)
        used += cost + 1
    language_name = _LANGUAGE_NAMES.get(language, "the language of the question")
    user = "Sources:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}\nAnswer in {language_name}:"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


MIN_PARTIAL_SOURCE_TOKENS = 48


def _cut_to(text: str, tokens: int, count: Callable[[str], int]) -> str:
    """The longest prefix within `tokens`, ended at a sentence end or a space where one is near."""
    low, high = 0, len(text)
    while low < high:  # binary search on characters: a handful of tokenizer calls
        middle = (low + high + 1) // 2
        if count(text[:middle]) <= tokens:
            low = middle
        else:
            high = middle - 1
    prefix = text[:low]
    cut = max(prefix.rfind(mark) for mark in (". ", "。", "！", "？", "; ", "\n"))
    if cut < len(prefix) * 0.6:
        cut = prefix.rfind(" ")
    return prefix[: cut + 1].rstrip() if cut >= len(prefix) * 0.6 else prefix


# [1], [1, 2], [1][2], 【1】, ［1］ — the forms models write; removed before an answer is split into sentences
_MARKER = re.compile(r"[\[【［]\s*(\d{1,2}(?:\s*[,，、]\s*\d{1,2})*)\s*[\]】］]")


_ANSWER_SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])|\n+")


def split_answer_sentences(text: str) -> list[str]:
    return [s.strip() for s in _ANSWER_SENTENCE.split(_MARKER.sub("", text)) if s.strip()]
