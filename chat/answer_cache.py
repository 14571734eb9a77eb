"""The answer cache: a question asked again is answered from the stored answer, without retrieval or the model.

An entry is found only by the same question on the same knowledge base, unchanged, asked by someone who may
see the same documents, of the same model with the same settings. Its key (`lookup`) is made of:

- the base's id and its `content_version`, which every change that can change an answer bumps (documents
  stored, replaced, deleted or queued again, restrictions, memberships, the base's settings, a re-embedding:
  kb.services.knowledge_base_content_changed), so a change leaves the base's entries unreachable at once
  (they expire after DOCENT_ANSWER_CACHE_TTL);
- the restricted documents the asker may not see (kb.selectors.search_scope_for): two askers who may see
  different documents never share an entry, and an asker who gains or loses a group changes key;
- the chat model, the retrieval mode, the answer length and the settings that shape the prompt;
- the normalised standalone question (`normalise`): a follow-up is keyed by the standalone form it was
  searched with (chat.followup), and one left as it was (DOCENT_CONDENSE "off") is not cached at all, since
  its meaning lies in the conversation.

Entries live in the project's Redis (settings.REDIS_URL), as JSON, through one connection pool per process.
Refusals are cached as well as answers: a refusal is decided by the same inputs (retrieval and, with the
answerability check, one model call that reads the whole prompt, as long as an answer's first token), and
each cached one is still written to the question log, so the knowledge-gap report counts every asking.
A stopped or empty answer is never stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from django.conf import settings

from chat.followup import is_followup
from chat.limits import redis_sync_client
from kb.models import KnowledgeBase
from kb.selectors import search_scope_for

logger = logging.getLogger(__name__)

PREFIX = "docent:answer"
# Bumped when an entry's shape changes: entries of another format are not read.
FORMAT = 1

_SPACES = re.compile(r"\s+")
# French typography puts a (narrow) space before ? ! : ; — the same question typed without it must match.
_SPACE_BEFORE_MARK = re.compile(r"\s+([?!:;])")
# After NFKC, the full-width ？！：；， are their ASCII forms; the ideographic 。、 and … remain.
_TRAILING = re.compile(r"[\s?!.:;,。、…]+$")


def normalise(question: str) -> str:
    """The form under which a question is cached: Unicode NFKC, case-folded, whitespace collapsed, no space
    before ? ! : ;, and no trailing punctuation ("What is E4 ?" = "what is e4" = "WHAT IS E4？")."""
    text = unicodedata.normalize("NFKC", question).casefold()
    text = _SPACE_BEFORE_MARK.sub(r"\1", _SPACES.sub(" ", text)).strip()
    return _TRAILING.sub("", text)


def cache_text(previous: list[str], question: str, search_text: str) -> str | None:
    """The question's text for the cache's key: its standalone form (`search_text`, what chat.followup made of
    it); None for a follow-up that has none (it was searched as it was: its meaning is in the conversation)."""
    if search_text != question:
        return search_text
    if previous and is_followup(previous[-1], question):
        return None
    return question


@dataclass
class CachedAnswer:
    """What a cached reply needs to stream and to store itself as a normal answer (chat.services.answer_save).

    `sources`: the protocol's SOURCE items as first shown; `citations`: (source number, quote) pairs;
    `source_texts`: the cited sources' chunk texts, by number, to locate each quote in its chunk;
    `message_id`: the answer the entry was made from.
    """

    text: str
    sources: list[dict[str, Any]]
    citations: list[tuple[int, str]]
    answered: bool
    language: str
    message_id: int
    refusal_reason: str = ""
    source_texts: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: bytes | str) -> CachedAnswer | None:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            return None
        data["citations"] = [(int(n), str(quote)) for n, quote in data["citations"]]
        data["source_texts"] = {int(n): text for n, text in data["source_texts"].items()}
        return cls(**data)


def client() -> redis.Redis:
    """The process's blocking Redis client (chat.limits.redis_sync_client: one pool shared by all threads)."""
    return redis_sync_client()


def key_for(
    *,
    knowledge_base_id: int,
    user: Any,
    text: str | None,
    mode: str,
    llm: str | None = None,
    max_tokens: int | None = None,
) -> str | None:
    """The Redis key of the question `text` asked by `user`: "docent:answer:KB:VERSION:SHA256"; None when the
    answer cache is off (DOCENT_ANSWER_CACHE, or the base's `answer_cache`) or `text` is None or empty once
    normalised. Http404 when `user` may not read the base (kb.selectors.search_scope_for)."""
    if not settings.DOCENT_ANSWER_CACHE or text is None or not (normal := normalise(text)):
        return None
    row = (
        KnowledgeBase.objects.filter(pk=knowledge_base_id)
        .values_list("answer_cache", "content_version", "created_at")
        .first()
    )
    if row is None or not row[0]:
        return None
    from chat.llm import presets

    identity = {
        # a base of the same id in a database made afresh beside a Redis that was kept is another base
        "created": row[2].isoformat(),
        "question": normal,
        "hidden": list(search_scope_for(user=user, knowledge_base_id=knowledge_base_id)),
        "model": [llm or settings.DOCENT_LLM_MODEL or presets.DEFAULT, settings.DOCENT_LLM_URL],
        "mode": mode,
        "max_tokens": max_tokens or settings.DOCENT_MAX_ANSWER_TOKENS,
        "prompt": [
            settings.DOCENT_TOP_K,
            settings.DOCENT_PROMPT_SOURCES,
            settings.DOCENT_SOURCE_TOKENS,
            settings.DOCENT_LLM_CONTEXT,
            str(settings.DOCENT_ANSWER_CHECK),
        ],
    }
    digest = hashlib.sha256(json.dumps(identity, ensure_ascii=False, sort_keys=True).encode()).hexdigest()
    return f"{PREFIX}:{knowledge_base_id}:{row[1]}:{digest}"


def lookup(**key_fields: Any) -> tuple[str | None, CachedAnswer | None]:
    """(key, the stored answer or None) for `key_for(**key_fields)`; (None, None) when the cache is off.

    Redis failing is logged and counts as a miss: the question is answered by the model.
    """
    key = key_for(**key_fields)
    if key is None:
        return None, None
    try:
        raw = client().get(key)
    except redis.RedisError as exc:
        logger.warning("answer cache: lookup failed: %s", exc)
        return key, None
    if raw is None:
        return key, None
    try:
        return key, CachedAnswer.from_json(raw)
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("answer cache: unreadable entry %s: %s", key, exc)
        return key, None


def store(key: str, entry: CachedAnswer) -> None:
    """Keep `entry` under `key` for DOCENT_ANSWER_CACHE_TTL seconds (a failure is logged, not raised)."""
    try:
        client().set(key, entry.to_json(), ex=max(1, settings.DOCENT_ANSWER_CACHE_TTL))
    except redis.RedisError as exc:
        logger.warning("answer cache: store failed: %s", exc)
