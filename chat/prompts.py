"""Prompt building.

Sources are numbered 1..n in the prompt; the answer cites them as [n] with the same numbers (the marker grammar:
core.markers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.text import approximate_tokens

# Chosen by measurement (README, "Choosing the models"): a plain "Context:" of numbered passages with their
# section, then the question and the request in the question's own language (the model answers in the language
# it is asked in). Asked for "[n]" markers, Qwen2.5 models wrote only markers ("[1] [2] [3]") for some French
# and Chinese questions, and asked to reply with a fixed word when the sources fall short, the 0.5B model refused
# half the answerable questions: answers are attributed to their sources afterwards (chat.attribution), and
# refusal is decided before the model (kb.refusal).
SYSTEM_PROMPT = (
    "You are Docent, a helpful assistant. Answer the user's question using only the context provided. Be precise."
)

# Small models continue the prompt's pattern after answering; these end the answer there.
STOP_SEQUENCES = ["\nQuestion:", "\nQuestion :", "\n问题：", "\nContext:"]

# After the context, in the question's language.
ANSWER_REQUEST = {
    "en": "Question: {question}\nUsing the context above, answer in English in one to three full sentences.",
    "fr": (
        "Question : {question}\nÀ partir du contexte ci-dessus, réponds en français en une à trois phrases complètes."
    ),
    "zh": "问题：{question}\n请根据上面的内容，用中文以一到三个完整的句子回答。",
}


@dataclass(frozen=True)
class PromptSource:
    n: int
    title: str
    page: int | None
    heading: str
    text: str


def format_source(source: PromptSource) -> str:
    """`[n] heading` and the passage: titles and pages stay out of the prompt (the model copied them into its
    answers), the source list shows them."""
    head = f"[{source.n}] {source.heading}" if source.heading else f"[{source.n}]"
    return f"{head}\n{source.text.strip()}"


def source_blocks(
    sources: list[PromptSource], budget_tokens: int, count_tokens: Callable[[str], int] | None = None
) -> list[str]:
    """The sources' blocks in rank order within `budget_tokens` (so the best survive), the last one cut at a
    sentence or word end when it does not fit whole, or left out when less than MIN_PARTIAL_SOURCE_TOKENS fit.

    Counted in the chat model's tokens when `count_tokens` is its tokenizer: a Chinese character costs a token
    or more, so a character budget sized for English would overflow the context window with Chinese sources.
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
    return blocks


def build_messages(
    *,
    question: str,
    sources: list[PromptSource],
    language: str,
    budget_tokens: int,
    count_tokens: Callable[[str], int] | None = None,
) -> list[dict[str, str]]:
    """The system and user messages of one answer: the context (see `source_blocks`), the question, and the
    request to answer in `language` (en, fr, zh; other languages get the English request)."""
    request = ANSWER_REQUEST.get(language, ANSWER_REQUEST["en"]).format(question=question)
    return _with_context(sources, budget_tokens, count_tokens, request)


# Asked before answering; the model's first token's odds of yes against no are the answerability score
# (chat.generation.answer_check_threshold). Worded in English for every language; of four wordings measured on the
# evaluation sets (README, "Refusal") this one separated answerable from unanswerable questions best. It shares
# the answer prompt's system message and context, so the model reads the context once for both.
CHECK_REQUEST = (
    "Question: {question}\nDoes the context above contain the answer to this question? Reply with yes or no."
)


def build_check_messages(
    *, question: str, sources: list[PromptSource], budget_tokens: int, count_tokens: Callable[[str], int] | None = None
) -> list[dict[str, str]]:
    """The yes/no question whether the context answers `question`: the answer prompt's messages (same system
    message, same context blocks, so a model with a prompt cache reads them once for both) with CHECK_REQUEST
    in place of the answer request."""
    return _with_context(sources, budget_tokens, count_tokens, CHECK_REQUEST.format(question=question))


def _with_context(
    sources: list[PromptSource], budget_tokens: int, count_tokens: Callable[[str], int] | None, request: str
) -> list[dict[str, str]]:
    blocks = source_blocks(sources, budget_tokens, count_tokens)
    user = "Context:\n" + "\n\n".join(blocks) + f"\n\n{request}"
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
