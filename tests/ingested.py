"""Fixture bases ingested once per test session and copied for each test.

Ingesting the fixture documents runs the whole pipeline (a sandboxed parser process per file, then the
embedding model over every chunk): seconds per base, paid again by every test that asks for one. Here the
first request for a base ingests its files in-process with `kb.ingest.pipeline.run_pipeline`, exactly as the
fixtures always did, and keeps the rows the pipeline wrote (the base, its documents, chunks, term statistics
and postings) in a schema of their own, `test_ingested`, which the per-test flush of `transactional_db` does
not touch, and the stored files' bytes in memory. Every later request gets a copy in the live tables under
new ids (a few INSERT … SELECT statements) and its files under the new ids' paths. Each test still has a base
of its own: it may change a document, its members or its settings without another test seeing it, and its
ids are new, so nothing keyed by them (the answer cache in Redis) carries over between tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, models

from kb.ingest.pipeline import run_pipeline
from kb.models import Chunk, Document, KnowledgeBase, Posting, TermStat
from kb.services import document_create_from_path, knowledge_base_create

SCHEMA = "test_ingested"
# The tables a base's ingestion writes, in the order a copy fills them.
MODELS: tuple[type[models.Model], ...] = (KnowledgeBase, Document, Chunk, TermStat, Posting)


def _columns(model: type[models.Model]) -> list[str]:
    """The model's columns as the live table has them, less its generated id."""
    return [f.column for f in model._meta.concrete_fields if f.column and f.column != "id"]


def _select(model: type[models.Model], alias: str, overrides: dict[str, str]) -> str:
    return ", ".join(overrides.get(column, f'{alias}."{column}"') for column in _columns(model))


def _insert(model: type[models.Model]) -> str:
    columns = ", ".join(f'"{column}"' for column in _columns(model))
    return f"INSERT INTO {model._meta.db_table} ({columns})"


class IngestedCopies:
    """Bases ingested once (per slug) and copied on request; `drop()` removes the kept rows."""

    def __init__(self) -> None:
        self._files: dict[str, dict[str, bytes]] = {}  # slug → {document sha256: the stored file's bytes}

    def base(self, *, slug: str, name: str, paths: Sequence[Path]) -> KnowledgeBase:
        """The knowledge base `slug` holding `paths`, each ingested READY (the first time by the pipeline, in this
        process; afterwards a copy of those rows). Needs committed writes (`transactional_db`) and a database
        without a base of that slug."""
        if slug not in self._files:
            knowledge_base = knowledge_base_create(slug=slug, name=name)
            for path in paths:
                document = document_create_from_path(knowledge_base=knowledge_base, path=path, enqueue=False).document
                assert run_pipeline(document).status == Document.Status.READY
            self._keep(slug, knowledge_base)
            return KnowledgeBase.objects.get(pk=knowledge_base.pk)
        return self._copy(slug)

    def _table(self, slug: str, model: type[models.Model]) -> str:
        return f'{SCHEMA}."{slug}_{model._meta.db_table}"'

    def _keep(self, slug: str, knowledge_base: KnowledgeBase) -> None:
        documents = list(Document.objects.filter(knowledge_base=knowledge_base))
        assert not any(d.restricted for d in documents), "a kept base has no restricted document (pools of 0 only)"
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            for model in MODELS:
                key = "id" if model is KnowledgeBase else "knowledge_base_id"
                cursor.execute(
                    f"CREATE TABLE {self._table(slug, model)} AS SELECT * FROM {model._meta.db_table} WHERE {key} = %s",
                    [knowledge_base.pk],
                )
        files = {}
        for document in documents:
            with document.file.open("rb") as handle:
                files[document.sha256] = handle.read()
        self._files[slug] = files

    def _copy(self, slug: str) -> KnowledgeBase:
        kb, doc, chunk = (self._table(slug, m) for m in (KnowledgeBase, Document, Chunk))
        # old document id → new one (sha256 is unique within a base); old chunk id → new one, via the ordinal
        document_map = (
            f"SELECT o.id AS old_id, n.id AS new_id FROM {doc} o "
            f"JOIN kb_document n ON n.knowledge_base_id = %(kb)s AND n.sha256 = o.sha256"
        )
        chunk_map = (
            f"SELECT oc.id AS old_id, nc.id AS new_id, nc.document_id AS new_document_id FROM {chunk} oc "
            f"JOIN ({document_map}) dm ON dm.old_id = oc.document_id "
            f"JOIN kb_chunk nc ON nc.document_id = dm.new_id AND nc.ordinal = oc.ordinal"
        )
        now = "statement_timestamp()"
        with connection.cursor() as cursor:
            cursor.execute(
                f"{_insert(KnowledgeBase)} SELECT {_select(KnowledgeBase, 'k', {'created_at': now})} "
                f"FROM {kb} k RETURNING id"
            )
            params = {"kb": cursor.fetchone()[0]}
            path = r"regexp_replace(d.file, '^documents/[0-9]+/', 'documents/' || %(kb)s || '/')"
            overrides = {"knowledge_base_id": "%(kb)s", "file": path, "created_at": now, "updated_at": now}
            cursor.execute(
                f"{_insert(Document)} SELECT {_select(Document, 'd', overrides)} FROM {doc} d ORDER BY d.id",
                params,
            )
            cursor.execute(
                f"{_insert(Chunk)} SELECT "
                f"{_select(Chunk, 'c', {'knowledge_base_id': '%(kb)s', 'document_id': 'dm.new_id'})} "
                f"FROM {chunk} c JOIN ({document_map}) dm ON dm.old_id = c.document_id ORDER BY c.id",
                params,
            )
            cursor.execute(
                f"{_insert(TermStat)} SELECT {_select(TermStat, 't', {'knowledge_base_id': '%(kb)s'})} "
                f"FROM {self._table(slug, TermStat)} t",
                params,
            )
            overrides = {"chunk_id": "cm.new_id", "knowledge_base_id": "%(kb)s", "document_id": "cm.new_document_id"}
            cursor.execute(
                f"{_insert(Posting)} SELECT {_select(Posting, 'p', overrides)} "
                f"FROM {self._table(slug, Posting)} p JOIN ({chunk_map}) cm ON cm.old_id = p.chunk_id",
                params,
            )
        knowledge_base = KnowledgeBase.objects.get(pk=params["kb"])
        self._store_files(slug, Document.objects.filter(knowledge_base=knowledge_base))
        return knowledge_base

    def _store_files(self, slug: str, documents: Iterable[Document]) -> None:
        for document in documents:
            stored = default_storage.save(document.file.name, ContentFile(self._files[slug][document.sha256]))
            if stored != document.file.name:  # a file of that name was left there: point at the new one
                Document.objects.filter(pk=document.pk).update(file=stored)

    def drop(self) -> None:
        """Remove the kept rows (the schema); the live tables are flushed by pytest-django as usual."""
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
