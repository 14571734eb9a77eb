"""Search a knowledge base: dense (pgvector HNSW, cosine), full-text (tsvector) and their fusion.

Every search is scoped in SQL to one knowledge base. Dense search runs with pgvector's iterative
index scan so that a small knowledge base inside a large table still gets its full top k.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from django.conf import settings
from django.db import connection, transaction

from kb import embedder
from kb.language import detect_language, search_config, search_text
from kb.models import Chunk, KnowledgeBase

RRF_K = 60


class Mode(StrEnum):
    DENSE = "dense"
    FULLTEXT = "fulltext"
    HYBRID = "hybrid"


@dataclass
class Hit:
    chunk_id: int
    score: float
    chunk: Chunk | None = None
    ranks: dict[str, int] = field(default_factory=dict)


@dataclass
class SearchResult:
    hits: list[Hit]
    mode: Mode
    language: str
    timings_ms: dict[str, float]


def dense_search(*, knowledge_base_id: int, vector: Sequence[float], limit: int) -> list[Hit]:
    """Cosine similarity through the HNSW index; score = 1 - cosine distance."""
    literal = "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.ef_search = %s", [max(settings.DOCENT_HNSW_EF_SEARCH, limit)])
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute(
            """
            WITH nearest AS MATERIALIZED (
                SELECT id, embedding <=> %s::vector AS distance
                FROM kb_chunk WHERE knowledge_base_id = %s
                ORDER BY distance LIMIT %s
            )
            SELECT id, distance FROM nearest ORDER BY distance
            """,
            [literal, knowledge_base_id, limit],
        )
        rows = cursor.fetchall()
    return [Hit(chunk_id=row[0], score=1.0 - float(row[1]), ranks={"dense": i + 1}) for i, row in enumerate(rows)]


def fulltext_search(*, knowledge_base_id: int, question: str, language: str, limit: int) -> list[Hit]:
    """Any-word match (the question's words OR-ed), ranked by cover density."""
    config = search_config(language)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH query AS (
                SELECT NULLIF(replace(plainto_tsquery(%s::regconfig, %s)::text, ' & ', ' | '), '')::tsquery AS q
            )
            SELECT id, ts_rank_cd(search_vector, query.q, 1) AS rank
            FROM kb_chunk, query
            WHERE knowledge_base_id = %s AND query.q IS NOT NULL AND search_vector @@ query.q
            ORDER BY rank DESC, id LIMIT %s
            """,
            [config, search_text(question, language), knowledge_base_id, limit],
        )
        rows = cursor.fetchall()
    return [Hit(chunk_id=row[0], score=float(row[1]), ranks={"fulltext": i + 1}) for i, row in enumerate(rows)]


def reciprocal_rank_fusion(rankings: dict[str, list[Hit]], weights: dict[str, float], limit: int) -> list[Hit]:
    fused: dict[int, Hit] = {}
    for name, hits in rankings.items():
        weight = weights.get(name, 1.0)
        for rank, hit in enumerate(hits, start=1):
            entry = fused.setdefault(hit.chunk_id, Hit(chunk_id=hit.chunk_id, score=0.0))
            entry.score += weight / (RRF_K + rank)
            entry.ranks[name] = rank
    return sorted(fused.values(), key=lambda h: h.score, reverse=True)[:limit]


def search(
    *, knowledge_base: KnowledgeBase, question: str, mode: Mode | str = Mode.HYBRID, limit: int | None = None
) -> SearchResult:
    mode = Mode(mode)
    limit = limit or settings.DOCENT_TOP_K
    language = detect_language(question)
    timings: dict[str, float] = {}
    rankings: dict[str, list[Hit]] = {}
    pool = max(limit * 4, 20)
    if mode in (Mode.DENSE, Mode.HYBRID):
        started = time.perf_counter()
        vector = embedder.embed_query(question)
        timings["embed_ms"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        rankings["dense"] = dense_search(knowledge_base_id=knowledge_base.pk, vector=vector, limit=pool)
        timings["dense_ms"] = (time.perf_counter() - started) * 1000
    if mode in (Mode.FULLTEXT, Mode.HYBRID):
        started = time.perf_counter()
        rankings["fulltext"] = fulltext_search(
            knowledge_base_id=knowledge_base.pk, question=question, language=language, limit=pool
        )
        timings["fulltext_ms"] = (time.perf_counter() - started) * 1000
    if mode == Mode.HYBRID:
        hits = reciprocal_rank_fusion(rankings, {"dense": 1.0, "fulltext": 1.0}, limit)
    else:
        hits = rankings[mode.value][:limit]
    chunks = Chunk.objects.select_related("document").in_bulk([h.chunk_id for h in hits])
    for hit in hits:
        hit.chunk = chunks.get(hit.chunk_id)
    return SearchResult(hits=[h for h in hits if h.chunk is not None], mode=mode, language=language, timings_ms=timings)
