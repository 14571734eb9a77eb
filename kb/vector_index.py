"""HNSW indexes over `kb_chunk.embedding`, one per vector dimension.

The column has no fixed dimension, so that knowledge bases embedded by different models (and a base being
re-embedded) share one table. pgvector indexes only vectors of one dimension, so each dimension gets a
partial expression index — the layout pgvector's README gives for mixed dimensions:

    CREATE INDEX ... USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE vector_dims(embedding) = 384

and dense search casts the column and repeats the predicate, which makes Postgres pick that index
(kb.retrieval.dense_search). The shipped embedders' dimensions (384, 512) are indexed by a migration;
another is indexed when a base first adopts it.
"""

from __future__ import annotations

from django.db import connection

# pgvector's HNSW limit for `vector`
MAX_DIMENSION = 2000
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64


def index_name(dimension: int) -> str:
    return f"chunk_embedding_hnsw_{int(dimension)}"


def create_sql(dimension: int) -> str:
    d = int(dimension)
    if not 0 < d <= MAX_DIMENSION:
        raise ValueError(f"pgvector's HNSW indexes vectors of 1 to {MAX_DIMENSION} dimensions, not {d}")
    return (
        f"CREATE INDEX IF NOT EXISTS {index_name(d)} ON kb_chunk"
        f" USING hnsw ((embedding::vector({d})) vector_cosine_ops)"
        f" WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) WHERE vector_dims(embedding) = {d}"
    )


def ensure_index(dimension: int) -> None:
    """Create the HNSW index for `dimension` when missing (instant while no vector has that dimension)."""
    with connection.cursor() as cursor:
        cursor.execute(create_sql(dimension))
