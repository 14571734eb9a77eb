"""`reembed`: a base moves to another embedder (of another dimension) without a fresh database, resumably."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection, transaction

from kb import encoders, retrieval
from kb.ingest.store import EmbedderChanged, store_chunks
from kb.models import Chunk, KnowledgeBase
from kb.services import knowledge_base_reembed

pytestmark = pytest.mark.django_db(transaction=True)


def dimensions(knowledge_base: KnowledgeBase) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT vector_dims(embedding) FROM kb_chunk WHERE knowledge_base_id = %s", [knowledge_base.pk]
        )
        return {row[0] for row in cursor.fetchall()}


def test_a_base_is_moved_to_another_embedder_and_searched_with_it(manual_kb):
    assert manual_kb.embedder == encoders.E5 and dimensions(manual_kb) == {384}
    before = retrieval.search(knowledge_base=manual_kb, question="How do I reset the kettle?", mode="dense")
    assert "10 seconds" in before.hits[0].chunk.text

    class Interrupted(Exception):
        pass

    seen = []

    def stop_after_first_batch(progress):
        seen.append(progress.done)
        if progress.done:
            raise Interrupted

    with pytest.raises(Interrupted):
        knowledge_base_reembed(
            knowledge_base=manual_kb, model=encoders.USE, batch=5, on_progress=stop_after_first_batch
        )
    manual_kb.refresh_from_db()
    # interrupted: still answered by the old vectors, the new ones half there
    assert (manual_kb.embedder, manual_kb.next_embedder) == (encoders.E5, encoders.USE)
    assert Chunk.objects.filter(knowledge_base=manual_kb).exclude(next_embedding=None).count() == 5
    assert retrieval.search(knowledge_base=manual_kb, question="How do I reset the kettle?", mode="dense").hits

    call_command("reembed", kb=[manual_kb.slug], to=encoders.USE, batch=4)  # resumes
    manual_kb.refresh_from_db()
    assert (manual_kb.embedder, manual_kb.next_embedder) == (encoders.USE, "")
    assert dimensions(manual_kb) == {512}
    assert not Chunk.objects.filter(knowledge_base=manual_kb).exclude(next_embedding=None).exists()
    after = retrieval.search(knowledge_base=manual_kb, question="How do I reset the kettle?", mode="dense")
    assert "10 seconds" in after.hits[0].chunk.text
    # 512-dimension vectors have their HNSW index, which dense search's form of query can use (on a base this
    # small the planner prefers the knowledge-base index unless told otherwise)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        vector = "[" + ",".join(["0.04"] * 512) + "]"
        cursor.execute(
            "EXPLAIN SELECT id FROM kb_chunk c WHERE vector_dims(c.embedding) = 512"
            " ORDER BY c.embedding::vector(512) <=> %s::vector(512) LIMIT 10",
            [vector],
        )
        assert "chunk_embedding_hnsw_512" in "\n".join(row[0] for row in cursor.fetchall())
    assert knowledge_base_reembed(knowledge_base=manual_kb, model=encoders.USE) is False


def test_chunks_embedded_by_the_old_model_are_not_stored_after_a_switch(manual_kb):
    document = manual_kb.documents.first()
    KnowledgeBase.objects.filter(pk=manual_kb.pk).update(embedder=encoders.USE)
    with pytest.raises(EmbedderChanged) as raised:
        store_chunks(document=document, drafts=[], embeddings=np.zeros((0, 384)), languages=[], embedder=encoders.E5)
    assert raised.value.current == encoders.USE


def test_an_unknown_embedder_is_refused_before_anything_changes(manual_kb):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no sentence-transformers model"):
        call_command("reembed", kb=[manual_kb.slug], to="/no/such/model")
    manual_kb.refresh_from_db()
    assert (manual_kb.embedder, manual_kb.next_embedder) == (encoders.E5, "")
