"""A document's ingestion written: its chunks replaced in one transaction, or its failure recorded."""

from __future__ import annotations

import logging

import numpy as np
from django.db import DatabaseError, connection, transaction

from kb.content_version import knowledge_base_content_changed
from kb.ingest.chunk import ChunkDraft
from kb.language import search_config, search_text
from kb.models import Chunk, Document

logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker took the document over; this copy must not write its chunks."""


class EmbedderChanged(Exception):
    """The knowledge base moved to another embedder while the chunks were embedded: embed them again."""

    def __init__(self, current: str) -> None:
        super().__init__(current)
        self.current = current


def update_term_stats(*, document_id: int, sign: int) -> None:
    """Add (sign=1) or remove (sign=-1) a document's chunks from its knowledge base's term statistics.

    An unrestricted document counts in the base's shared pool (0), a restricted one in its own pool (its id),
    as the document's row says now: changing a restriction removes the counts, then adds them back
    (kb.services.document_restrict), under the document's row lock.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH pool AS (SELECT CASE WHEN restricted THEN id ELSE 0 END AS id FROM kb_document WHERE id = %s)
            INSERT INTO kb_termstat (knowledge_base_id, language, lexeme, restricted_document_id, df)
            SELECT * FROM (
                SELECT c.knowledge_base_id, c.language, u.lexeme, (SELECT id FROM pool), %s * count(*)
                FROM kb_chunk c, unnest(c.search_vector) u WHERE c.document_id = %s GROUP BY 1, 2, 3
                UNION ALL
                SELECT knowledge_base_id, language, '', (SELECT id FROM pool), %s * count(*)
                FROM kb_chunk WHERE document_id = %s GROUP BY 1, 2
            ) AS counts
            -- one order for every writer, so two workers updating the same base cannot deadlock
            ORDER BY 3, 4
            ON CONFLICT (knowledge_base_id, language, lexeme, restricted_document_id)
            DO UPDATE SET df = kb_termstat.df + EXCLUDED.df
            """,
            [document_id, sign, document_id, sign, document_id],
        )
        if sign < 0:  # a restricted document's own pool is empty now: drop it rather than keep zeros
            cursor.execute("DELETE FROM kb_termstat WHERE restricted_document_id = %s AND df <= 0", [document_id])


def write_postings(*, document_id: int) -> None:
    """The document's chunks' lexemes with their term frequencies (kb.models.Posting), from the tsvectors."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO kb_posting (chunk_id, lexeme, knowledge_base_id, document_id, language, tf, dl)
            SELECT c.id, u.lexeme, c.knowledge_base_id, c.document_id, c.language,
                   least(coalesce(array_length(u.positions, 1), 1), 32767), length(c.search_vector)
            FROM kb_chunk c, unnest(c.search_vector) u
            WHERE c.document_id = %s
            """,
            [document_id],
        )


def merge_search_index() -> None:
    """Move the full-text index's pending entries into the index proper.

    New rows go to the GIN index's pending list, which every full-text search reads row by row until
    autovacuum merges it; after a bulk ingest that made searches of a 100k-chunk base slower (249 pages
    pending after the benchmark's build). Called after each stored document, it merges only what that
    document added.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT gin_clean_pending_list('chunk_search_vector_gin'::regclass)")
    except DatabaseError as exc:  # an external database where the app's role does not own the index
        logger.debug("full-text pending list not merged: %s", exc)


@transaction.atomic
def store_chunks(
    *,
    document: Document,
    drafts: list[ChunkDraft],
    embeddings: np.ndarray,
    languages: list[str],
    text: str = "",
    embedder: str | None = None,
) -> int:
    """Replace the document's chunks (and its extracted text) in one transaction.

    The document row is locked first; when the document is held by a worker (`document.worker`), the row
    must still name that worker, or LeaseLost is raised and nothing is written. With `embedder` (the model
    that made `embeddings`), the knowledge base row is share-locked and must still name that model, or
    EmbedderChanged is raised: `reembed` switches a base under an exclusive lock of that row.
    """
    if not (len(drafts) == len(embeddings) == len(languages)):
        raise ValueError("drafts, embeddings and languages must have the same length")
    if embedder is not None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT embedder FROM kb_knowledgebase WHERE id = %s FOR SHARE", [document.knowledge_base_id]
            )
            row = cursor.fetchone()
        if row is not None and row[0] != embedder:
            raise EmbedderChanged(row[0])
    locked = Document.objects.select_for_update().filter(pk=document.pk)
    if document.worker:
        locked = locked.filter(worker=document.worker)
    if not locked.exists():
        raise LeaseLost(document.pk)
    Document.objects.filter(pk=document.pk).update(text=text)
    update_term_stats(document_id=document.pk, sign=-1)
    Chunk.objects.filter(document=document).delete()
    chunks = Chunk.objects.bulk_create(
        [
            Chunk(
                document=document,
                knowledge_base_id=document.knowledge_base_id,
                ordinal=draft.ordinal,
                text=draft.text,
                page=draft.page,
                heading=draft.heading[:500],
                start=draft.start,
                end=draft.end,
                language=language,
                embedding=vector,
            )
            for draft, vector, language in zip(drafts, embeddings, languages, strict=True)
        ],
        batch_size=500,
    )
    # The full-text vector is built by Postgres in one statement, each chunk with its language's
    # configuration; Chinese arrives pre-segmented by jieba for the `simple` configuration.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE kb_chunk SET search_vector = to_tsvector(src.config::regconfig, src.body)
            FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS src(id, config, body)
            WHERE kb_chunk.id = src.id
            """,
            [
                [c.pk for c in chunks],
                [search_config(c.language) for c in chunks],
                [search_text(f"{c.heading}\n{c.text}", c.language) for c in chunks],
            ],
        )
    write_postings(document_id=document.pk)
    update_term_stats(document_id=document.pk, sign=1)
    knowledge_base_content_changed(knowledge_base_id=document.knowledge_base_id)  # stored answers are stale
    return len(chunks)


def document_mark_failed(*, document: Document, error: str, release: bool = False) -> None:
    """Record that `document` failed with `error`: status failed, stage and progress cleared, on the row and on
    the instance.

    `error`: one of kb.reasons' sentences, filled in (stored in English, translated where it is read).
    `release` also drops the worker's hold (worker and heartbeat cleared): for a document no worker goes on with
    (out of attempts, out of time); the pipeline's own failures leave that to kb.ingest.lease.release. Callers
    with a reader publish the change (kb.ingest.progress).
    """
    logger.warning("document %s failed: %s", document.pk, error)
    fields: dict[str, object] = {"status": Document.Status.FAILED, "stage": "", "progress": 0, "error": error}
    if release:
        fields.update(worker="", heartbeat_at=None)
    Document.objects.filter(pk=document.pk).update(**fields)
    for name, value in fields.items():
        setattr(document, name, value)
