"""Writes on knowledge bases and documents. Views, admin, tasks and commands call these, nothing else."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.db import connection, transaction
from django.db.models import F
from django.utils.text import slugify
from django.utils.translation import gettext

from kb import embedder, encoders
from kb.content_version import knowledge_base_content_changed
from kb.ingest.chunk import ChunkDraft
from kb.ingest.embed import embedding_text
from kb.ingest.lease import enqueue_on_commit
from kb.ingest.pipeline import ensure_indexed
from kb.ingest.safety import safe_filename
from kb.ingest.store import update_term_stats
from kb.models import AccessChange, Chunk, Document, KnowledgeBase, Membership, Role
from kb.selectors import document_visible_q

logger = logging.getLogger(__name__)


class DocumentRejected(Exception):
    """An upload refused before it is stored; the message is shown to the user."""


@dataclass(frozen=True)
class DocumentCreated:
    document: Document
    created: bool  # False: the same content was already in the knowledge base, or a document was replaced
    queued: bool
    replaced: bool = False  # a document of the same name had other content: its file and chunks are replaced


def knowledge_base_create(
    *, slug: str, name: str = "", description: str = "", embedder: str = "", owner: Any = None
) -> KnowledgeBase:
    """The knowledge base `slug`, created when missing (with `embedder`, a kb.encoders name or path; default
    DOCENT_EMBED_MODEL, else multilingual-e5-small). ValueError for a slug without letters or digits, or an
    embedder that is not installed. Without `owner` (the command line) the base has no members: only
    superusers see it until it is shared."""
    slug = slugify(slug)
    if not slug:
        raise ValueError("a knowledge base needs a slug of letters, digits, - or _")
    if embedder:
        if (status := encoders.check(embedder)) != "ok":
            raise ValueError(f"embedder {embedder!r}: {status}")
    kb, _ = KnowledgeBase.objects.get_or_create(
        slug=slug,
        defaults={
            "name": name or slug.replace("-", " ").title(),
            "description": description,
            "embedder": embedder,
            "owner": owner,
        },
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
            limit = settings.DOCENT_MAX_UPLOAD_BYTES // (1024 * 1024)
            raise DocumentRejected(gettext("The file is larger than the %(mb)s MB limit.") % {"mb": limit})
    handle.seek(0)
    return digest.hexdigest(), size


def documents_create(
    *, knowledge_base: KnowledgeBase, uploads: Iterable[Any], uploaded_by: Any = None
) -> Iterator[tuple[str, DocumentCreated | None, str]]:
    """Each uploaded file (anything with `.name` and `.read`, e.g. Django's UploadedFile) through
    `document_create`, one at a time: (its name, the result or None, why it was rejected or "")."""
    for upload in uploads:
        try:
            result = document_create(
                knowledge_base=knowledge_base, content=upload, filename=upload.name, uploaded_by=uploaded_by
            )
        except DocumentRejected as exc:
            yield upload.name, None, str(exc)
        else:
            yield upload.name, result, ""


def document_create(
    *,
    knowledge_base: KnowledgeBase,
    content: IO[bytes],
    filename: str,
    title: str = "",
    uploaded_by: Any = None,
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
    same_name = Document.objects.filter(knowledge_base=knowledge_base, original_name=name).defer("text")
    if uploaded_by is not None:
        # A restricted document the uploader may not see is never replaced by their file of the same name.
        same_name = same_name.filter(document_visible_q(user=uploaded_by))
    previous = same_name.first()
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
        knowledge_base_content_changed(knowledge_base_id=document.knowledge_base_id)
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
        knowledge_base_content_changed(knowledge_base_id=document.knowledge_base_id)
        enqueue_on_commit(document.pk)


def document_delete(*, document: Document) -> None:
    storage, name = document.file.storage, document.file.name
    with transaction.atomic():
        update_term_stats(document_id=document.pk, sign=-1)
        document.delete()  # chunks go with it (ON DELETE CASCADE)
        knowledge_base_content_changed(knowledge_base_id=document.knowledge_base_id)
        transaction.on_commit(lambda: storage.delete(name) if name else None)


def _audit(*, knowledge_base: KnowledgeBase, actor: Any, action: str, target: str, **detail: Any) -> None:
    signed_in = actor is not None and getattr(actor, "is_authenticated", False)
    AccessChange.objects.create(
        knowledge_base=knowledge_base,
        actor=actor if signed_in else None,
        actor_name=actor.get_username() if signed_in else "",
        action=action,
        target=target[:300],
        detail=detail,
    )


def membership_set(
    *, knowledge_base: KnowledgeBase, role: str, actor: Any, user: Any = None, group: Any = None
) -> Membership:
    """Give a user or a group `role` in the base (added, or its role changed), written to the audit log."""
    role = Role(role)
    if (user is None) == (group is None):
        raise ValueError("a membership names a user or a group")
    lookup = {"user": user} if user is not None else {"group": group}
    target = f"user {user.get_username()}" if user is not None else f"group {group.name}"
    with transaction.atomic():
        membership, created = Membership.objects.select_for_update().get_or_create(
            knowledge_base=knowledge_base, **lookup, defaults={"role": role}
        )
        before_role = None if created else membership.role
        if created:
            _audit(knowledge_base=knowledge_base, actor=actor, action="member_added", target=target, role=role)
        elif membership.role != role:
            before = membership.role
            membership.role = role
            membership.save(update_fields=["role"])
            _audit(
                knowledge_base=knowledge_base,
                actor=actor,
                action="role_changed",
                target=target,
                before=before,
                role=role,
            )
        if created or before_role != role:
            knowledge_base_content_changed(knowledge_base_id=knowledge_base.pk)
    return membership


def membership_remove(*, membership: Membership, actor: Any) -> None:
    """Remove a member; it takes effect on their next request (every read checks membership in its query)."""
    if membership.user is not None:
        target = f"user {membership.user.get_username()}"
    else:
        assert membership.group is not None  # a membership names a user or a group (a check constraint)
        target = f"group {membership.group.name}"
    with transaction.atomic():
        _audit(
            knowledge_base=membership.knowledge_base,
            actor=actor,
            action="member_removed",
            target=target,
            role=membership.role,
        )
        membership.delete()
        knowledge_base_content_changed(knowledge_base_id=membership.knowledge_base_id)


def document_restrict(*, document: Document, groups: Any, actor: Any) -> Document:
    """Restrict a document to `groups` (empty: lift the restriction), moving its words between term pools.

    A restricted document is seen only by members of those groups and superusers. Its term statistics move
    to a pool of its own (kb.models.TermStat) in the same transaction, under the document's row lock, which
    the storing of its chunks also takes.
    """
    groups = list(groups)
    with transaction.atomic():
        Document.objects.select_for_update().filter(pk=document.pk).first()
        update_term_stats(document_id=document.pk, sign=-1)
        restricted = bool(groups)
        Document.objects.filter(pk=document.pk).update(restricted=restricted)
        document.restricted = restricted
        document.restricted_to.set(groups)
        update_term_stats(document_id=document.pk, sign=1)
        _audit(
            knowledge_base=document.knowledge_base,
            actor=actor,
            action="document_restricted" if restricted else "document_opened",
            target=f"document {document.title}",
            document_id=document.pk,
            groups=sorted(g.name for g in groups),
        )
        knowledge_base_content_changed(knowledge_base_id=document.knowledge_base_id)
    return document


@dataclass(frozen=True)
class ReembedProgress:
    done: int  # chunks holding the new embedder's vector
    total: int  # chunks of the base


def knowledge_base_reembed(
    *,
    knowledge_base: KnowledgeBase,
    model: str,
    batch: int = 256,
    on_progress: Callable[[ReembedProgress], None] | None = None,
) -> bool:
    """Move a knowledge base to the embedder `model` (a kb.encoders name or path); False if already there.

    Resumable and online: new vectors gather in `Chunk.next_embedding` in batches of `batch` chunks (an
    interrupted run continues where it stopped; chunks a concurrent ingestion adds are picked up), while
    questions are still answered with the old ones. When every chunk has one, they replace the old vectors
    and the base's embedder in one transaction, under an exclusive lock of the base's row (an ingestion that
    embedded with the old model meanwhile re-embeds its chunks: kb.ingest.store.EmbedderChanged).
    Raises RuntimeError when `model` cannot be loaded.
    """
    if knowledge_base.embedder == model and not knowledge_base.next_embedder:
        return False
    embedder.get(model)  # fails here, before anything is written, when the model is missing
    chunks = Chunk.objects.filter(knowledge_base=knowledge_base)
    if knowledge_base.next_embedder != model:  # vectors staged for another model are of no use
        chunks.exclude(next_embedding=None).update(next_embedding=None)
        KnowledgeBase.objects.filter(pk=knowledge_base.pk).update(next_embedder=model)
        knowledge_base.next_embedder = model
    ensure_indexed(model)
    while True:
        total = chunks.count()
        pending = list(
            chunks.filter(next_embedding=None)
            .order_by("pk")
            .values_list("pk", "text", "heading", "document__title")[:batch]
        )
        if on_progress:
            on_progress(ReembedProgress(total - chunks.filter(next_embedding=None).count(), total))
        if pending:
            texts = [
                embedding_text(ChunkDraft(ordinal=0, text=text, page=None, heading=heading), title)
                for _, text, heading, title in pending
            ]
            vectors = embedder.embed_documents(texts, model)
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE kb_chunk SET next_embedding = src.v::vector FROM unnest(%s::bigint[], %s::text[])"
                    " AS src(id, v) WHERE kb_chunk.id = src.id",
                    [[row[0] for row in pending], [_vector_literal(v) for v in vectors]],
                )
            continue
        with transaction.atomic():
            KnowledgeBase.objects.select_for_update().filter(pk=knowledge_base.pk).first()
            if chunks.filter(next_embedding=None).exists():  # an ingestion stored chunks meanwhile
                continue
            chunks.update(embedding=F("next_embedding"), next_embedding=None)
            KnowledgeBase.objects.filter(pk=knowledge_base.pk).update(embedder=model, next_embedder="")
            knowledge_base_content_changed(knowledge_base_id=knowledge_base.pk)
        knowledge_base.embedder, knowledge_base.next_embedder = model, ""
        return True


def _vector_literal(vector: Any) -> str:
    return "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"
