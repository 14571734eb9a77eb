"""Writes on knowledge bases and documents. Views, admin, tasks and commands call these, nothing else."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.utils.text import slugify

from kb.ingest.safety import safe_filename
from kb.models import Document, KnowledgeBase

logger = logging.getLogger(__name__)


class DocumentRejected(Exception):
    """An upload refused before it is stored; the message is shown to the user."""


@dataclass(frozen=True)
class DocumentCreated:
    document: Document
    created: bool  # False: the same content was already in the knowledge base, or a document was replaced
    queued: bool
    replaced: bool = False  # a document of the same name had other content: its file and chunks are replaced


def knowledge_base_create(*, slug: str, name: str = "", description: str = "") -> KnowledgeBase:
    slug = slugify(slug)
    if not slug:
        raise ValueError("a knowledge base needs a slug of letters, digits, - or _")
    kb, _ = KnowledgeBase.objects.get_or_create(
        slug=slug, defaults={"name": name or slug.replace("-", " ").title(), "description": description}
    )
    return kb


def _sha256(handle: IO[bytes]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    handle.seek(0)
    while block := handle.read(1024 * 1024):
        digest.update(block)
        size += len(block)
        if size > settings.DOCENT_MAX_UPLOAD_BYTES:
            raise DocumentRejected(
                f"The file is larger than the {settings.DOCENT_MAX_UPLOAD_BYTES // (1024 * 1024)} MB limit."
            )
    handle.seek(0)
    return digest.hexdigest(), size


def document_create(
    *,
    knowledge_base: KnowledgeBase,
    content: IO[bytes],
    filename: str,
    title: str = "",
    uploaded_by=None,  # type: ignore[no-untyped-def]
    enqueue: bool = True,
) -> DocumentCreated:
    """Store an uploaded file and, on commit, queue it for ingestion.

    The same bytes uploaded again to the same knowledge base return the existing document untouched
    (a failed one is queued again, since the failure may have been the worker's, not the file's).
    Other bytes under the name of an existing document are a new version of it: the document keeps its
    id, gets the new file, and is queued; its old chunks stay searchable until the new ones replace them
    in one transaction.
    """
    name = safe_filename(filename)
    sha256, size = _sha256(content)
    existing = Document.objects.filter(knowledge_base=knowledge_base, sha256=sha256).defer("text").first()
    if existing is not None:
        if existing.status == Document.Status.FAILED and enqueue:
            document_reingest(document=existing)
            return DocumentCreated(existing, created=False, queued=True)
        return DocumentCreated(existing, created=False, queued=False)
    previous = Document.objects.filter(knowledge_base=knowledge_base, original_name=name).defer("text").first()
    if previous is not None:
        return _document_replace(document=previous, content=content, sha256=sha256, size=size, enqueue=enqueue)
    with transaction.atomic():
        document = Document(
            knowledge_base=knowledge_base,
            title=(title or Path(name).stem)[:300],
            original_name=name,
            sha256=sha256,
            size=size,
            uploaded_by=uploaded_by,
        )
        document.file.save(name, File(content, name=name), save=False)
        document.save()
        if enqueue:
            enqueue_on_commit(document.pk)
    return DocumentCreated(document, created=True, queued=enqueue)


def _document_replace(
    *, document: Document, content: IO[bytes], sha256: str, size: int, enqueue: bool
) -> DocumentCreated:
    storage, old_name = document.file.storage, document.file.name
    with transaction.atomic():
        document.sha256, document.size = sha256, size
        document.file.save(document.original_name, File(content, name=document.original_name), save=False)
        document.status, document.stage, document.progress, document.error = Document.Status.QUEUED, "", 0, ""
        # A worker still processing the old version loses its lease and will not write its chunks.
        document.worker, document.heartbeat_at = "", None
        fields = ["sha256", "size", "file", "status", "stage", "progress", "error", "worker", "heartbeat_at"]
        document.save(update_fields=[*fields, "updated_at"])
        if old_name and old_name != document.file.name:
            transaction.on_commit(lambda: storage.delete(old_name))
        if enqueue:
            enqueue_on_commit(document.pk)
    return DocumentCreated(document, created=False, queued=enqueue, replaced=True)


def document_create_from_path(*, knowledge_base: KnowledgeBase, path: Path, enqueue: bool = True) -> DocumentCreated:
    with path.open("rb") as handle:
        return document_create(knowledge_base=knowledge_base, content=handle, filename=path.name, enqueue=enqueue)


def document_reingest(*, document: Document) -> None:
    with transaction.atomic():
        Document.objects.filter(pk=document.pk).update(status=Document.Status.QUEUED, stage="", progress=0, error="")
        document.status, document.stage, document.progress, document.error = Document.Status.QUEUED, "", 0, ""
        enqueue_on_commit(document.pk)


def document_delete(*, document: Document) -> None:
    storage, name = document.file.storage, document.file.name
    from kb.ingest.store import update_term_stats

    with transaction.atomic():
        update_term_stats(document_id=document.pk, sign=-1)
        document.delete()  # chunks go with it (ON DELETE CASCADE)
        transaction.on_commit(lambda: storage.delete(name) if name else None)


def enqueue_on_commit(document_id: int) -> None:
    from kb.tasks import ingest_document

    transaction.on_commit(lambda: ingest_document.delay(document_id))
