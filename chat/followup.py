"""Turn a follow-up ("and how often?") into a question retrieval can use on its own.

With a model able to rewrite it (DOCENT_CONDENSE=model, or auto with a model of at least a billion
parameters), the model condenses the conversation into one standalone question. Otherwise the
follow-up is searched together with the previous question, which needs no model and, measured on the
follow-up cases in tests/chat/test_followup.py, finds the passage where the bare follow-up does not.
"""

from __future__ import annotations

from django.conf import settings

from chat.llm import Generation, get_backend

CONDENSE_PROMPT = (
    "Rewrite the last question so that it can be understood without the conversation. Keep its language. "
    "Answer with the rewritten question only."
)
MIN_CONDENSE_PARAMETERS = 1_000_000_000


def can_condense() -> bool:
    mode = settings.DOCENT_CONDENSE
    if mode in ("model", "combine", "off"):
        return mode == "model"
    backend = get_backend()
    parameters = getattr(backend, "parameters", None)
    return parameters is None or parameters() >= MIN_CONDENSE_PARAMETERS


def combine(previous: list[str], question: str) -> str:
    return f"{previous[-1]} {question}" if previous else question


def condense_with_model(previous: list[str], question: str) -> str:
    turns = "\n".join(f"Question: {text}" for text in previous[-3:])
    messages = [
        {"role": "system", "content": CONDENSE_PROMPT},
        {"role": "user", "content": f"{turns}\nLast question: {question}\nRewritten question:"},
    ]
    pieces = get_backend().stream(messages, max_tokens=64, should_stop=lambda: False, stats=Generation())
    rewritten = "".join(pieces).strip().splitlines()
    return rewritten[0].strip() if rewritten and rewritten[0].strip() else combine(previous, question)


def standalone_question(previous: list[str], question: str) -> str:
    """The text to search for; `previous` holds the conversation's earlier user questions, oldest first."""
    if not previous or settings.DOCENT_CONDENSE == "off":
        return question
    if can_condense():
        return condense_with_model(previous, question)
    return combine(previous, question)
