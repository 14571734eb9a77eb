"""Prompt building and citation markers.

Sources are numbered [1]..[n] in the prompt; the answer cites them with the same numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
    *, question: str, sources: list[PromptSource], language: str, budget_chars: int
) -> list[dict[str, str]]:
    """System and user messages; sources are cut to `budget_chars` in rank order so the best survive."""
    blocks: list[str] = []
    used = 0
    for source in sources:
        block = format_source(source)
        if used + len(block) > budget_chars:
            remaining = budget_chars - used
            if remaining > 200:
                blocks.append(block[:remaining] + "…")
            break
        blocks.append(block)
        used += len(block) + 2
    language_name = _LANGUAGE_NAMES.get(language, "the language of the question")
    user = "Sources:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}\nAnswer in {language_name}:"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


# [1], [1, 2], [1][2], 【1】, ［1］ — the forms models write; removed before an answer is split into sentences
_MARKER = re.compile(r"[\[【［]\s*(\d{1,2}(?:\s*[,，、]\s*\d{1,2})*)\s*[\]】］]")


_ANSWER_SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])|\n+")


def split_answer_sentences(text: str) -> list[str]:
    return [s.strip() for s in _ANSWER_SENTENCE.split(_MARKER.sub("", text)) if s.strip()]
