"""The fixture bases' copies (tests/ingested.py) hold what the pipeline writes for the same files."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from kb.ingest.pipeline import run_pipeline
from kb.models import Chunk, Document, KnowledgeBase, Posting, TermStat
from kb.services import document_create_from_path, knowledge_base_create
from tests.conftest import MANUAL_PATHS

pytestmark = pytest.mark.django_db(transaction=True)

# What differs between two ingestions of the same files: ids, times, the worker's name, the file's path.
VOLATILE = {"id", "knowledge_base", "file", "created_at", "updated_at", "heartbeat_at", "parse_ms", "embed_ms"}
VOLATILE |= {"worker"}


def _contents(knowledge_base: KnowledgeBase) -> dict[str, Any]:
    documents = list(Document.objects.filter(knowledge_base=knowledge_base).order_by("sha256"))
    ordinal = {c.pk: (c.document.sha256, c.ordinal) for c in Chunk.objects.filter(knowledge_base=knowledge_base)}
    sha256 = {d.pk: d.sha256 for d in documents}
    return {
        "base": {
            f.name: getattr(knowledge_base, f.name)
            for f in KnowledgeBase._meta.concrete_fields
            if f.name not in VOLATILE | {"slug", "name", "content_version"}
        },
        "documents": [
            {f.name: getattr(d, f.name) for f in Document._meta.concrete_fields if f.name not in VOLATILE}
            for d in documents
        ],
        "files": [d.file.open("rb").read() for d in documents],
        "chunks": sorted(
            (
                sha256[c.document_id],
                c.ordinal,
                c.text,
                c.page,
                c.heading,
                c.start,
                c.end,
                c.language,
                c.search_vector,
                c.next_embedding,
            )
            for c in Chunk.objects.filter(knowledge_base=knowledge_base)
        ),
        "embeddings": {
            (sha256[c.document_id], c.ordinal): np.asarray(c.embedding)
            for c in Chunk.objects.filter(knowledge_base=knowledge_base)
        },
        "term_stats": sorted(
            TermStat.objects.filter(knowledge_base=knowledge_base).values_list(
                "language", "lexeme", "restricted_document_id", "df"
            )
        ),
        "postings": sorted(
            (ordinal[p.chunk_id], sha256[p.document_id], p.lexeme, p.language, p.tf, p.dl)
            for p in Posting.objects.filter(knowledge_base_id=knowledge_base.pk)
        ),
    }


def test_a_copied_fixture_base_holds_what_the_pipeline_writes_under_new_ids(ingested_copies):
    first = ingested_copies.base(slug="manuals", name="Manuals", paths=MANUAL_PATHS)
    KnowledgeBase.objects.filter(pk=first.pk).update(slug="manuals-first")
    copy = ingested_copies.base(slug="manuals", name="Manuals", paths=MANUAL_PATHS)  # kept by now: a copy
    fresh = knowledge_base_create(slug="fresh", name="Fresh")
    for path in MANUAL_PATHS:
        document = document_create_from_path(knowledge_base=fresh, path=path, enqueue=False).document
        assert run_pipeline(document).status == Document.Status.READY

    assert copy.pk not in (first.pk, fresh.pk)
    first_ids = set(Document.objects.filter(knowledge_base=first).values_list("pk", flat=True))
    copy_ids = set(Document.objects.filter(knowledge_base=copy).values_list("pk", flat=True))
    assert len(copy_ids) == len(MANUAL_PATHS) and not copy_ids & first_ids
    for document in Document.objects.filter(knowledge_base=copy):
        assert document.file.name.startswith(f"documents/{copy.pk}/")
    contents = _contents(fresh)
    assert contents["chunks"] and contents["postings"] and contents["term_stats"]
    embeddings = contents.pop("embeddings")
    for other in (copy, first):
        other_contents = _contents(other)
        other_embeddings = other_contents.pop("embeddings")
        assert other_contents == contents
        assert other_embeddings.keys() == embeddings.keys()
        for key, vector in embeddings.items():  # the same model on the same text: equal to float rounding
            assert np.allclose(other_embeddings[key], vector, atol=1e-5), key
