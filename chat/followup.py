"""Turn a follow-up ("and how often?") into a question retrieval can use on its own, and only a follow-up.

A question is joined to the conversation only when it reads as one: it is in the same language as the
question before it, and it leans on it — it opens with a connective ("and", "what about", "et", "那么"),
ends on the Chinese follow-up particle 呢, is too short to name a topic of its own (up to 4 words, 6 Chinese
characters: "Who do I contact?"), or is short (up to 8 words, 14 characters) and points back with a pronoun or
demonstrative ("how often should I do it?", "est-ce que ça marche ?", "它多久需要一次？"). A longer question
names its own subject. A new topic, or a question in another language, starts a fresh search.

A follow-up is then searched together with the previous question (no model needed; measured on the cases
in tests/chat/test_followup.py, it finds the passage the bare follow-up does not), or rewritten by the chat
model into a standalone question when the model has at least three billion parameters (DOCENT_CONDENSE).
"""

from __future__ import annotations

import re

from django.conf import settings

from chat.llm import Generation, get_backend
from kb.language import detect_language

CONDENSE_PROMPT = (
    "Rewrite the last question so that it can be understood without the conversation. Keep its language. "
    "Answer with the rewritten question only."
)
# The 1.5B default would add about a second of model time before retrieval for each follow-up; combining
# needs none. Larger models (through DOCENT_LLM_URL, or a GGUF of your own) rewrite.
MIN_CONDENSE_PARAMETERS = 3_000_000_000

_OPENERS = {
    "en": re.compile(r"^\s*(and|also|then|so|but|or|what about|how about|and what|what if)\b", re.IGNORECASE),
    "fr": re.compile(r"^\s*(et|aussi|alors|donc|mais|ou|sinon|et si|et pour|quid)\b", re.IGNORECASE),
    "zh": re.compile(r"^\s*(那么|那|还有|另外|而且|并且|然后|此外)"),
}
# Words that point back to something said before. French subject pronouns joined to a verb by a hyphen
# ("reste-t-elle", "faut-il") refer inside the question, so only free-standing ones count.
_BACK_REFERENCES = {
    "en": re.compile(
        r"\b(it|its|it's|they|them|their|this|that|these|those|him|her|instead)\b|\bthen\W*$", re.IGNORECASE
    ),
    "fr": re.compile(
        r"(?<![-'’])\b(ça|ca|cela|ceci|celui|celle|ceux|celles|celui-ci|celle-ci|le faire|même chose|"
        r"lui|leur|eux|en|y)\b(?!-)",
        re.IGNORECASE,
    ),
    "zh": re.compile(r"(它|它们|这个|那个|这些|那些|这样|那样|该|此|其|他们|她们)"),
}
# French "en" and "y" are pronouns only before a verb ("combien en faut-il", "y a-t-il" is idiomatic: excluded)
_FRENCH_IDIOMS = re.compile(r"\b(y a|il y|en cas|en mode|en \w+ant\b|en plus|en général|en français|en ligne)\b", re.I)
_CHINESE_TRAILING = re.compile(r"呢\s*[？?]?\s*$")
# A longer question names its own subject: a pronoun in it refers back inside it ("Which package matters most,
# and what does it bring in?"). Words, or characters for Chinese.
SHORT_QUESTION_WORDS = 8
SHORT_QUESTION_CHARS = 14
# So short that it cannot carry its own topic ("Who do I contact?", "多久一次？"): a follow-up whatever its words.
VERY_SHORT_QUESTION_WORDS = 4
VERY_SHORT_QUESTION_CHARS = 6


def is_followup(previous: str, question: str) -> bool:
    """True when `question` needs the earlier `previous` question to be understood (see the module's doc)."""
    if not previous:
        return False
    language = detect_language(question)
    if detect_language(previous) != language:
        return False
    if (opener := _OPENERS.get(language)) and opener.search(question):
        return True
    if language == "zh" and _CHINESE_TRAILING.search(question):
        return True
    size = len(re.sub(r"[\s？?。！!，,]", "", question)) if language == "zh" else len(question.split())
    if size <= (VERY_SHORT_QUESTION_CHARS if language == "zh" else VERY_SHORT_QUESTION_WORDS):
        return True
    short = size <= (SHORT_QUESTION_CHARS if language == "zh" else SHORT_QUESTION_WORDS)
    text = _FRENCH_IDIOMS.sub(" ", question) if language == "fr" else question
    pattern = _BACK_REFERENCES.get(language)
    return short and bool(pattern and pattern.search(text))


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
    if not previous or settings.DOCENT_CONDENSE == "off" or not is_followup(previous[-1], question):
        return question
    if can_condense():
        return condense_with_model(previous, question)
    return combine(previous, question)
