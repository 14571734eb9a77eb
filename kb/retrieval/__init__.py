"""Search a knowledge base: dense (pgvector HNSW, cosine), full-text (BM25 over tsvector) and their fusion.

`search` is the one entry point; each step lives in a module named for it:

- `scope`: where a search looks, as SQL (base, documents, tags, language, the documents the reader may not see);
- `dense`: the question's vector against the chunks', on a thread beside the full-text half;
- `fulltext`: term statistics, the question's vocabulary and BM25;
- `fusion`: reciprocal rank fusion and score fusion of the two rankings;
- `loading`: the found chunks with their documents;
- `rerank`: the optional cross-encoder over the fused candidates;
- `types`: Mode, Hit and SearchResult.

Whether the base can answer at all is kb.refusal's decision, asked with the scope's text (`fulltext.ScopeText`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from django.conf import settings

from kb import refusal
from kb.language import detect_language
from kb.models import KnowledgeBase
from kb.retrieval import dense, rerank
from kb.retrieval.dense import DenseOutcome, dense_search
from kb.retrieval.fulltext import (
    BM25_B,
    BM25_K1,
    BM25_POOL,
    CANDIDATE_BUDGET,
    ScopeText,
    Vocabulary,
    fulltext_search,
    query_terms,
    question_lexemes,
    term_frequencies,
    vocabulary,
)
from kb.retrieval.fusion import RRF_K, reciprocal_rank_fusion, score_fusion
from kb.retrieval.loading import load_chunks
from kb.retrieval.scope import Scope, languages_of
from kb.retrieval.types import Hit, Mode, SearchResult
from kb.selectors import search_scope_for

__all__ = [
    "BM25_B",
    "BM25_K1",
    "BM25_POOL",
    "CANDIDATE_BUDGET",
    "RRF_K",
    "Hit",
    "Mode",
    "Scope",
    "SearchResult",
    "Vocabulary",
    "dense_search",
    "fulltext_search",
    "languages_of",
    "load_chunks",
    "query_terms",
    "question_lexemes",
    "reciprocal_rank_fusion",
    "score_fusion",
    "search",
    "term_frequencies",
    "vocabulary",
]


def search(
    *,
    knowledge_base: KnowledgeBase,
    question: str,
    mode: Mode | str = Mode.HYBRID,
    limit: int | None = None,
    document_ids: Sequence[int] = (),
    tags: Sequence[str] = (),
    user: Any = None,
) -> SearchResult:
    """Search `knowledge_base` as `user` would: restricted documents they may not see are left out in SQL.

    Returns at most `limit` hits (default DOCENT_TOP_K), best first, with their chunks loaded, and each step's
    milliseconds in `timings_ms`. `user` None (widget visitors, commands run without --user) reads the base's
    unrestricted documents only. Http404 when `user` may not read the base (kb.selectors.search_scope_for).
    """
    mode = Mode(mode)
    limit = limit or settings.DOCENT_TOP_K
    timings: dict[str, float] = {}
    with _timed(timings, "access_ms"):
        hidden = search_scope_for(user=user, knowledge_base_id=knowledge_base.pk)
    with _timed(timings, "language_ms"):
        language = detect_language(question)
        # A question is answered from passages in its own language when the base has any: a mixed-language
        # base otherwise returns the same passage's translation ahead of other relevant passages.
        scoped_language = language if language in languages_of(knowledge_base.pk, hidden) else None
    scope = Scope(knowledge_base.pk, tuple(document_ids), tuple(tags), scoped_language, hidden)
    pool = max(limit * 4, 50)
    # With a reranker, fusion keeps more candidates and the cross-encoder picks the `limit` best of them.
    candidates = max(limit, settings.DOCENT_RERANK_CANDIDATES) if settings.DOCENT_RERANK_MODEL else limit

    # The dense half runs on its own thread while this one reads the vocabulary and ranks full-text.
    dense_half: Future[DenseOutcome] | None = None
    if mode in (Mode.DENSE, Mode.HYBRID):
        dense_half = dense.start(
            question=question, scope=scope, limit=pool, embedder_name=knowledge_base.embedder or None
        )
    with _timed(timings, "vocabulary_ms"):
        words = vocabulary(scope=scope, question=question, language=language)
    rankings: dict[str, list[Hit]] = {}
    if mode in (Mode.FULLTEXT, Mode.HYBRID):
        with _timed(timings, "fulltext_ms"):
            rankings["fulltext"] = fulltext_search(
                scope=scope, question=question, language=language, limit=pool, known=words
            )
    if dense_half is not None:
        with _timed(timings, "dense_wait_ms"):
            rankings["dense"], dense_timings = dense_half.result()
            timings.update(dense_timings)

    if mode == Mode.HYBRID:
        fuse = reciprocal_rank_fusion if settings.DOCENT_FUSION == "rrf" else score_fusion
        hits = fuse(rankings, settings.DOCENT_FUSION_WEIGHTS, candidates)
    else:
        hits = rankings[mode.value][:candidates]
    # Without the vectors and the document's extracted text (megabytes at times): sources need text, title and
    # name. Loading the vectors too cost ~7 ms a search at 100k chunks.
    with _timed(timings, "load_ms"):
        chunks = load_chunks([h.chunk_id for h in hits])
        for hit in hits:
            hit.chunk = chunks.get(hit.chunk_id)
        hits = [h for h in hits if h.chunk is not None]
    if settings.DOCENT_RERANK_MODEL:
        with _timed(timings, "rerank_ms"):
            hits = rerank.rerank(question, hits, limit)

    with _timed(timings, "refusal_ms"):
        verdict = (
            refusal.check(passages=ScopeText(scope), question=question, language=language, known=words)
            if hits
            else None
        )
    reason = refusal.reason(verdict)
    return SearchResult(
        hits=hits,
        mode=mode,
        language=language,
        timings_ms=timings,
        scoped_language=scoped_language,
        answerable=not reason,
        refusal_reason=reason,
    )


@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    """Adds the block's wall time to `timings[step]`, in milliseconds."""
    started = time.perf_counter()
    yield
    timings[step] = (time.perf_counter() - started) * 1000
