"""Search a knowledge base: dense (pgvector HNSW, cosine), full-text (BM25 over tsvector) and their fusion.

Every filter (knowledge base, language, documents, tags, and the restricted documents the reader may not
see) is a WHERE clause of the search itself, never a pass over its results. Dense search runs with
pgvector's iterative index scan so that a small knowledge base inside a large table still gets its full top k.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction

from kb import embedder, refusal
from kb.language import detect_language, search_config, search_text
from kb.models import Chunk, Document, KnowledgeBase

RRF_K = 60
BM25_K1 = 1.2
BM25_B = 0.75
# Full-text candidates ranked by the question's rarer terms before the common terms are added.
BM25_POOL = 400
# Rows the candidate-selecting terms may match before more common terms stop being added (they still score).
CANDIDATE_BUDGET = 5000


class Mode(StrEnum):
    DENSE = "dense"
    FULLTEXT = "fulltext"
    HYBRID = "hybrid"


@dataclass(frozen=True)
class Scope:
    """Where to search: always one knowledge base, optionally some documents, tags and one language.

    `hidden_document_ids`: the base's restricted documents the reader may not see
    (kb.selectors.document_ids_hidden_from); they are left out of every ranking and of the term statistics.
    """

    knowledge_base_id: int
    document_ids: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    language: str | None = None
    hidden_document_ids: tuple[int, ...] = ()

    def where(self, alias: str = "c") -> tuple[str, list[Any]]:
        clauses = [f"{alias}.knowledge_base_id = %s"]
        params: list[Any] = [self.knowledge_base_id]
        if self.hidden_document_ids:
            clauses.append(f"{alias}.document_id <> ALL(%s)")
            params.append(list(self.hidden_document_ids))
        if self.language:
            clauses.append(f"{alias}.language = %s")
            params.append(self.language)
        if self.document_ids:
            clauses.append(f"{alias}.document_id = ANY(%s)")
            params.append(list(self.document_ids))
        if self.tags:
            clauses.append(f"{alias}.document_id IN (SELECT id FROM kb_document WHERE tags && %s::varchar[])")
            params.append(list(self.tags))
        return " AND ".join(clauses), params


@dataclass
class Hit:
    chunk_id: int
    score: float
    chunk: Chunk | None = None
    ranks: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class SearchResult:
    hits: list[Hit]
    mode: Mode
    language: str
    timings_ms: dict[str, float]
    scoped_language: str | None = None
    answerable: bool = True
    refusal_reason: str = ""


def dense_search(*, scope: Scope, vector: Sequence[float], limit: int) -> list[Hit]:
    """Cosine similarity through the HNSW index of the vector's dimension (kb.vector_index); score = 1 - cosine
    distance, in [-1, 1]."""
    literal = "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"
    dimension = len(vector)
    where, params = scope.where()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.ef_search = %s", [max(settings.DOCENT_HNSW_EF_SEARCH, limit)])
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute(
            f"""
            WITH nearest AS MATERIALIZED (
                SELECT c.id, c.embedding::vector({dimension}) <=> %s::vector({dimension}) AS distance
                FROM kb_chunk c WHERE vector_dims(c.embedding) = {dimension} AND {where}
                ORDER BY distance LIMIT %s
            )
            SELECT id, distance FROM nearest ORDER BY distance
            """,
            [literal, *params, limit],
        )
        rows = cursor.fetchall()
    return [
        Hit(chunk_id=row[0], score=1.0 - float(row[1]), ranks={"dense": i + 1}, scores={"dense": 1.0 - float(row[1])})
        for i, row in enumerate(rows)
    ]


def term_frequencies(*, scope: Scope, lexemes: list[str]) -> tuple[int, dict[str, int]]:
    """Chunks in the scope's base and language, and how many of them hold each lexeme (from kb_termstat).

    Document and tag filters do not narrow these statistics: IDF over the whole base ranks as well and
    stays one index look-up. Restricted documents the reader may not see are left out: each restricted
    document's counts are a pool of their own (kb.models.TermStat), so its words cannot show through.
    """
    language_clause = "AND language = %s" if scope.language else ""
    params: list[Any] = [scope.knowledge_base_id, ["", *lexemes]]
    if scope.language:
        params.append(scope.language)
    params.append(list(scope.hidden_document_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT lexeme, sum(df) FROM kb_termstat
            WHERE knowledge_base_id = %s AND lexeme = ANY(%s) {language_clause}
              AND restricted_document_id <> ALL(%s::bigint[]) AND df > 0
            GROUP BY lexeme
            HAVING sum(df) > 0
            """,
            params,
        )
        counts = {row[0]: int(row[1]) for row in cursor.fetchall()}
    return counts.pop("", 0), counts


def question_lexemes(question: str, language: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT lexeme FROM unnest(to_tsvector(%s::regconfig, %s))",
            [search_config(language), search_text(question, language)],
        )
        return [row[0] for row in cursor.fetchall()]


@dataclass(frozen=True)
class Vocabulary:
    """A question's lexemes and how many chunks of the scope hold each: read once per search, shared by
    full-text ranking and the refusal check."""

    lexemes: list[str]
    total: int
    df: dict[str, int]


def vocabulary(*, scope: Scope, question: str, language: str) -> Vocabulary:
    lexemes = question_lexemes(question, language)
    total, df = term_frequencies(scope=scope, lexemes=lexemes) if lexemes else (0, {})
    return Vocabulary(lexemes, total, df)


def query_terms(
    *, scope: Scope, question: str, language: str, known: Vocabulary | None = None
) -> list[tuple[str, float, int]]:
    """The question's lexemes that occur in the scope, with BM25 inverse document frequency and df."""
    words = known or vocabulary(scope=scope, question=question, language=language)
    total, df = words.total, words.df
    # Terms absent from the scope cannot match; they are dropped rather than given an infinite weight.
    return [
        (lexeme, math.log(1 + (total - df[lexeme] + 0.5) / (df[lexeme] + 0.5)), df[lexeme])
        for lexeme in words.lexemes
        if lexeme in df
    ]


def _posting_scope(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The scope as a WHERE clause over kb_posting (which carries base, language and document)."""
    clauses = ["p.knowledge_base_id = %(kb)s"]
    params: dict[str, Any] = {"kb": scope.knowledge_base_id}
    if scope.language:
        clauses.append("p.language = %(language)s")
        params["language"] = scope.language
    else:  # every language of the base: keeps the (base, language, lexeme) index usable
        clauses.append(
            "p.language IN (SELECT language FROM kb_termstat WHERE knowledge_base_id = %(kb)s AND lexeme = '')"
        )
    if scope.document_ids:
        clauses.append("p.document_id = ANY(%(documents)s)")
        params["documents"] = list(scope.document_ids)
    if scope.hidden_document_ids:
        clauses.append("p.document_id <> ALL(%(hidden)s)")
        params["hidden"] = list(scope.hidden_document_ids)
    if scope.tags:
        clauses.append("p.document_id IN (SELECT id FROM kb_document WHERE tags && %(tags)s::varchar[])")
        params["tags"] = list(scope.tags)
    return " AND ".join(clauses), params


def fulltext_search(
    *, scope: Scope, question: str, language: str, limit: int, known: Vocabulary | None = None
) -> list[Hit]:
    """BM25 over the postings (kb.models.Posting: term frequency and length of each chunk, per lexeme).

    Candidates are the chunks holding the question's rarer terms, as many terms as keep them near
    CANDIDATE_BUDGET postings (a question's common words would otherwise make Postgres score half the
    base); the BM25_POOL best of them by those terms then get the common terms' share too, from the
    postings' primary key.
    """
    terms = query_terms(scope=scope, question=question, language=language, known=known)
    if not terms:
        return []
    selecting: list[str] = []
    covered = 0
    for lexeme, _, df in sorted(terms, key=lambda t: t[2]):
        if selecting and covered + df > CANDIDATE_BUDGET:
            break
        selecting.append(lexeme)
        covered += df
    common = [t[0] for t in terms if t[0] not in selecting]
    where, params = _posting_scope(scope)
    # A term's weight is looked up by its place in the question's arrays: no join for the planner to misjudge.
    bm25 = (
        "(%(idfs)s::float8[])[array_position(%(lexemes)s::text[], r.lexeme)] * r.tf * %(k1p1)s::float8"
        " / (r.tf + %(k1)s::float8 * (1 - %(b)s::float8 + %(b)s::float8 * r.dl / stats.avgdl))"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH rows AS MATERIALIZED (
                SELECT p.chunk_id, p.lexeme, p.tf, p.dl FROM kb_posting p
                WHERE {where} AND p.lexeme = ANY(%(selecting)s)
            ),
            stats AS MATERIALIZED (SELECT greatest(avg(dl), 1)::float8 AS avgdl FROM rows),
            part AS MATERIALIZED (
                SELECT r.chunk_id, sum({bm25}) AS s FROM rows r, stats
                GROUP BY r.chunk_id ORDER BY s DESC, r.chunk_id LIMIT %(pool)s
            ),
            rest AS MATERIALIZED (
                SELECT r.chunk_id, {bm25} AS s FROM kb_posting r, stats
                WHERE r.chunk_id = ANY(ARRAY(SELECT chunk_id FROM part)) AND r.lexeme = ANY(%(common)s)
            )
            SELECT chunk_id, sum(s) FROM (SELECT chunk_id, s FROM part UNION ALL SELECT chunk_id, s FROM rest) x
            GROUP BY chunk_id ORDER BY 2 DESC, 1 LIMIT %(limit)s
            """,
            {
                **params,
                "lexemes": [t[0] for t in terms],
                "idfs": [t[1] for t in terms],
                "selecting": selecting,
                "common": common,
                "k1p1": BM25_K1 + 1,
                "k1": BM25_K1,
                "b": BM25_B,
                "pool": BM25_POOL,
                "limit": limit,
            },
        )
        rows = cursor.fetchall()
    return [
        Hit(chunk_id=row[0], score=float(row[1]), ranks={"fulltext": i + 1}, scores={"fulltext": float(row[1])})
        for i, row in enumerate(rows)
    ]


def reciprocal_rank_fusion(rankings: dict[str, list[Hit]], weights: dict[str, float], limit: int) -> list[Hit]:
    fused: dict[int, Hit] = {}
    for name, hits in rankings.items():
        weight = weights.get(name, 1.0)
        for rank, hit in enumerate(hits, start=1):
            entry = fused.setdefault(hit.chunk_id, Hit(chunk_id=hit.chunk_id, score=0.0))
            entry.score += weight / (RRF_K + rank)
            entry.ranks[name] = rank
            entry.scores.update(hit.scores)
    return sorted(fused.values(), key=lambda h: h.score, reverse=True)[:limit]


def score_fusion(rankings: dict[str, list[Hit]], weights: dict[str, float], limit: int) -> list[Hit]:
    """Weighted sum of scores scaled to [0, 1] within each ranking (BM25 by its best, cosine min-max).

    Unlike rank fusion it keeps how far apart the candidates are: a passage far ahead on BM25 is not
    pulled down by a weak embedder that ranks it 20th (measured on maint-guide, see README).
    """
    fused: dict[int, Hit] = {}
    for name, hits in rankings.items():
        if not hits:
            continue
        best, worst = hits[0].score, hits[-1].score
        low = 0.0 if name == "fulltext" else worst
        spread = max(best - low, 1e-9)
        for rank, hit in enumerate(hits, start=1):
            entry = fused.setdefault(hit.chunk_id, Hit(chunk_id=hit.chunk_id, score=0.0))
            entry.score += weights.get(name, 1.0) * (hit.score - low) / spread
            entry.ranks[name] = rank
            entry.scores.update(hit.scores)
    return sorted(fused.values(), key=lambda h: h.score, reverse=True)[:limit]


def languages_of(knowledge_base_id: int, hidden_document_ids: Sequence[int] = ()) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT language FROM kb_document WHERE knowledge_base_id = %s AND status = 'ready'"
            " AND id <> ALL(%s::bigint[])",
            [knowledge_base_id, list(hidden_document_ids)],
        )
        return {row[0] for row in cursor.fetchall() if row[0]}


# What a source needs of a chunk and its document: not the vectors, nor the document's extracted text
# (megabytes at times). Other fields stay deferred and load on access like any deferred field.
_SKIPPED_CHUNK_FIELDS = {"embedding", "search_vector"}
_DOCUMENT_FIELDS = {"id", "knowledge_base", "title", "original_name", "language", "file"}


@functools.cache
def _loaded_fields() -> tuple[list[Any], list[Any]]:
    # chunk and document fields, each in its model's own field order, which Model.from_db expects
    return (
        [f for f in Chunk._meta.concrete_fields if f.name not in _SKIPPED_CHUNK_FIELDS],
        [f for f in Document._meta.concrete_fields if f.name in _DOCUMENT_FIELDS],
    )


def load_chunks(chunk_ids: Sequence[int]) -> dict[int, Chunk]:
    """Chunks by id with their documents, in one plain query.

    The same instances as `select_related("document").defer(...).in_bulk(ids)`, whose SQL compilation alone
    took ~3 of its ~4 ms at every search (measured for 10 chunks; the query itself runs in 0.5 ms).
    """
    if not chunk_ids:
        return {}
    chunk_fields, document_fields = _loaded_fields()
    columns = [f'c."{f.column}"' for f in chunk_fields] + [f'd."{f.column}"' for f in document_fields]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM kb_chunk c JOIN kb_document d ON d.id = c.document_id"
            " WHERE c.id = ANY(%s)",
            [list(chunk_ids)],
        )
        rows = cursor.fetchall()
    split = len(chunk_fields)
    chunk_names = [f.attname for f in chunk_fields]
    document_names = [f.attname for f in document_fields]
    chunks = {}
    for row in rows:
        chunk = Chunk.from_db(connection.alias, chunk_names, row[:split])
        chunk.document = Document.from_db(connection.alias, document_names, row[split:])
        chunks[chunk.pk] = chunk
    return chunks


_dense_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dense-search")


def _embed_and_search(question: str, scope: Scope, limit: int, model: str) -> tuple[list[Hit], dict[str, float]]:
    """The dense half on its own thread and database connection, beside the full-text half.

    onnxruntime and the database both work outside the GIL, so the embedding and the HNSW scan overlap
    Postgres ranking BM25 on the other connection (README, "Speed").
    """
    close_old_connections()  # this thread's connection: replaced when broken or past CONN_MAX_AGE
    started = time.perf_counter()
    vector = embedder.embed_query(question, model)
    embedded = time.perf_counter()
    hits = dense_search(scope=scope, vector=vector, limit=limit)
    return hits, {"embed_ms": (embedded - started) * 1000, "dense_ms": (time.perf_counter() - embedded) * 1000}


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

    `user` None (widget visitors, commands run without --user) reads the base's unrestricted documents only.
    Http404 when `user` may not read the base (kb.selectors.search_scope_for).
    """
    from kb.selectors import search_scope_for

    mode = Mode(mode)
    limit = limit or settings.DOCENT_TOP_K
    timings: dict[str, float] = {}
    started = time.perf_counter()
    hidden = search_scope_for(user=user, knowledge_base_id=knowledge_base.pk)
    timings["access_ms"] = (time.perf_counter() - started) * 1000
    language = detect_language(question)
    # A question is answered from passages in its own language when the base has any: a mixed-language
    # base otherwise returns the same passage's translation ahead of other relevant passages.
    scoped_language = language if language in languages_of(knowledge_base.pk, hidden) else None
    scope = Scope(knowledge_base.pk, tuple(document_ids), tuple(tags), scoped_language, hidden)
    timings["language_ms"] = (time.perf_counter() - started) * 1000 - timings["access_ms"]
    rankings: dict[str, list[Hit]] = {}
    pool = max(limit * 4, 50)
    # With a reranker, fusion keeps more candidates and the cross-encoder picks the `limit` best of them.
    candidates = max(limit, settings.DOCENT_RERANK_CANDIDATES) if settings.DOCENT_RERANK_MODEL else limit
    dense: Future[tuple[list[Hit], dict[str, float]]] | None = None
    if mode in (Mode.DENSE, Mode.HYBRID):
        dense = _dense_pool.submit(_embed_and_search, question, scope, pool, knowledge_base.embedder or None)
    started = time.perf_counter()
    words = vocabulary(scope=scope, question=question, language=language)
    timings["vocabulary_ms"] = (time.perf_counter() - started) * 1000
    if mode in (Mode.FULLTEXT, Mode.HYBRID):
        started = time.perf_counter()
        rankings["fulltext"] = fulltext_search(
            scope=scope, question=question, language=language, limit=pool, known=words
        )
        timings["fulltext_ms"] = (time.perf_counter() - started) * 1000
    if dense is not None:
        started = time.perf_counter()
        rankings["dense"], dense_timings = dense.result()
        timings.update(dense_timings)
        timings["dense_wait_ms"] = (time.perf_counter() - started) * 1000
    if mode == Mode.HYBRID:
        fuse = reciprocal_rank_fusion if settings.DOCENT_FUSION == "rrf" else score_fusion
        hits = fuse(rankings, settings.DOCENT_FUSION_WEIGHTS, candidates)
    else:
        hits = rankings[mode.value][:candidates]
    # Without the vectors and the document's extracted text (megabytes at times): sources need text, title and
    # name. Loading the vectors too cost ~7 ms a search at 100k chunks.
    started = time.perf_counter()
    chunks = load_chunks([h.chunk_id for h in hits])
    for hit in hits:
        hit.chunk = chunks.get(hit.chunk_id)
    hits = [h for h in hits if h.chunk is not None]
    timings["load_ms"] = (time.perf_counter() - started) * 1000
    if settings.DOCENT_RERANK_MODEL:
        from kb import rerank

        started = time.perf_counter()
        hits = rerank.rerank(question, hits, limit)
        timings["rerank_ms"] = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    verdict = refusal.check(scope=scope, question=question, language=language, known=words) if hits else None
    timings["refusal_ms"] = (time.perf_counter() - started) * 1000
    reason = "no passage matches" if verdict is None else ""
    if verdict is not None and verdict.refuse:
        reason = f"not in the knowledge base: {', '.join(verdict.missing_terms)}"
    return SearchResult(
        hits=hits,
        mode=mode,
        language=language,
        timings_ms=timings,
        scoped_language=scoped_language,
        answerable=not reason,
        refusal_reason=reason,
    )
