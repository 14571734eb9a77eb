"""Dense search: the question's vector against the chunks' (pgvector HNSW, cosine), on a thread of its own.

Dense search runs with pgvector's iterative index scan so that a small knowledge base inside a large table still
gets its full top k.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from django.conf import settings
from django.db import close_old_connections, connection, transaction

from core.lazy import process_singleton
from kb import embedder
from kb.retrieval.fulltext import term_frequencies
from kb.retrieval.scope import Scope
from kb.retrieval.types import Hit

# The dense half's hits and its timings (embed_ms, dense_ms).
DenseOutcome = tuple[list[Hit], dict[str, float]]


@process_singleton
def _pool() -> ThreadPoolExecutor:
    """The dense halves' threads (two: one question's while the previous one's finishes)."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="dense-search")


def dense_search(*, scope: Scope, vector: Sequence[float] | np.ndarray, limit: int) -> list[Hit]:
    """The `limit` chunks of `scope` nearest to `vector` (shape (d,)) by cosine similarity; score = 1 - cosine
    distance, in [-1, 1], best first.

    A scope of at most DOCENT_DENSE_EXACT_MAX_CHUNKS chunks is compared with every chunk (exact); a larger one
    walks the HNSW index of dimension d (kb.vector_index). HNSW's neighbour pruning can leave a passage far from
    all others with no incoming edge: in a 53-chunk test base, a travel policy's one chunk among 52 of a kettle
    manual was returned by no HNSW scan, even unfiltered with ef_search 1000, so a small base, where such outliers
    are common and an exact scan costs ~9 ms (20,000 × 384 dimensions on this machine), is searched exactly.
    """
    literal = "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"
    dimension = len(vector)
    where, params = scope.where()
    exact = scope_size(scope) <= settings.DOCENT_DENSE_EXACT_MAX_CHUNKS
    with transaction.atomic(), connection.cursor() as cursor:
        if exact:
            cursor.execute("SET LOCAL enable_indexscan = off")  # no HNSW: the base's b-tree by bitmap, then sort
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


def scope_size(scope: Scope) -> int:
    """How many chunks `scope` can return at most: its documents' chunks when it names documents, else the
    chunks of its base (and language) that the reader may see, from the term statistics (one index look-up)."""
    if scope.document_ids:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM kb_chunk WHERE document_id = ANY(%s)", [list(scope.document_ids)])
            return int(cursor.fetchone()[0])
    total, _ = term_frequencies(scope=scope, lexemes=[])
    return total


def embed_and_search(question: str, scope: Scope, limit: int, embedder_name: str | None) -> DenseOutcome:
    """Embed `question` with the base's embedder (`embedder_name`, None: the default) and search; run on its own
    thread and database connection, beside the full-text half (`start`)."""
    close_old_connections()  # this thread's connection: replaced when broken or past CONN_MAX_AGE
    started = time.perf_counter()
    vector = embedder.embed_query(question, embedder_name)
    embedded = time.perf_counter()
    hits = dense_search(scope=scope, vector=vector, limit=limit)
    return hits, {"embed_ms": (embedded - started) * 1000, "dense_ms": (time.perf_counter() - embedded) * 1000}


def start(*, question: str, scope: Scope, limit: int, embedder_name: str | None) -> Future[DenseOutcome]:
    """The dense half started on a pool thread: onnxruntime and the database both work outside the GIL, so the
    embedding and the HNSW scan overlap Postgres ranking BM25 on the other connection (README, "Speed")."""
    return _pool().submit(embed_and_search, question, scope, limit, embedder_name)
