"""file → parse → chunk → embed → store, with the document's stage and percent kept true at every step.

`ingest(document_id)` is the one entry point for workers and the `ingest` command: it claims the
document (kb.ingest.lease), keeps a heartbeat while it works, and never raises for a bad file — the
reason is stored on the document. Parsing runs in the sandboxed parser process (kb.ingest.sandbox),
under a time and memory limit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from kb import embedder, reasons, vector_index
from kb.content_version import knowledge_base_content_changed
from kb.ingest import lease, progress, sandbox
from kb.ingest.chunk import chunk_blocks, document_text
from kb.ingest.embed import embed_chunks
from kb.ingest.parse import Parsed, ParseError
from kb.ingest.store import EmbedderChanged, LeaseLost, document_mark_failed, merge_search_index, store_chunks
from kb.language import detect_language
from kb.models import Document, KnowledgeBase

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[Document], None]

# Where each stage starts, in percent of the whole ingestion (embedding dominates once parsing is fast).
STAGE_START = {
    Document.Stage.PARSE: 0,
    Document.Stage.CHUNK: 25,
    Document.Stage.EMBED: 30,
    Document.Stage.STORE: 95,
}


@dataclass(frozen=True)
class IngestResult:
    document_id: int
    status: str
    chunks: int
    error: str = ""


def _set(document: Document, **fields: object) -> None:
    for name, value in fields.items():
        setattr(document, name, value)
    Document.objects.filter(pk=document.pk).update(**fields)


def chunk_token_budget(model: str | None = None) -> tuple[int, int]:
    """(max_tokens, overlap_tokens): the configured size, never past what the embedder `model` reads."""
    size = min(settings.DOCENT_CHUNK_TOKENS, embedder.max_tokens(model) - settings.DOCENT_CHUNK_CONTEXT_TOKENS)
    return size, min(settings.DOCENT_CHUNK_OVERLAP_TOKENS, size // 2 - 1)


_indexed: set[int] = set()


def ensure_indexed(model: str) -> None:
    """The HNSW index of this embedder's dimension exists (once per process and dimension)."""
    dimension = embedder.dimension(model)
    if dimension not in _indexed:
        vector_index.ensure_index(dimension)
        _indexed.add(dimension)


def ingest(
    document_id: int, *, on_progress: ProgressCallback | None = None, prefetch: Document | None = None
) -> IngestResult:
    """Claim and ingest one document. `prefetch`: the next document, parsed while this one embeds."""
    outcome, document = lease.claim(document_id)
    if outcome != lease.Claim.CLAIMED or document is None:
        status = document.status if document is not None else "gone"
        return IngestResult(document_id, status if outcome != lease.Claim.BUSY else "busy", 0, outcome)
    with lease.Heartbeat(document.pk) as heartbeat:
        result = run_pipeline(document, on_progress=on_progress, prefetch=prefetch)
    if heartbeat.lost and result.status != Document.Status.READY:
        logger.warning("document %s: lease lost while processing", document.pk)
    lease.release(document.pk)
    return result


def run_pipeline(
    document: Document, *, on_progress: ProgressCallback | None = None, prefetch: Document | None = None
) -> IngestResult:
    """Ingest a claimed document. Never raises for a bad file: the reason is stored on the document."""

    def report(stage: Document.Stage, share: float = 0.0) -> None:
        stages = list(STAGE_START)
        start = STAGE_START[stage]
        following = stages.index(stage) + 1
        end = STAGE_START[stages[following]] if following < len(stages) else 100
        _set(document, stage=stage, progress=int(start + (end - start) * share))
        progress.publish(document)
        if on_progress:
            on_progress(document)

    if document.status != Document.Status.PROCESSING:
        _set(document, status=Document.Status.PROCESSING, error="")
    count = 0
    try:
        report(Document.Stage.PARSE)
        path = Path(document.file.path)
        if not path.exists():
            raise FileNotFoundError(path)
        started = time.perf_counter()
        parsed = _parse(path, document.original_name)
        parse_ms = int((time.perf_counter() - started) * 1000)
        if prefetch is not None and Path(prefetch.file.path).exists():
            sandbox.submit(Path(prefetch.file.path), prefetch.original_name)

        report(Document.Stage.CHUNK)
        model = KnowledgeBase.objects.values_list("embedder", flat=True).get(pk=document.knowledge_base_id)
        if settings.DOCENT_CHUNK_TOKENS:
            max_tokens, overlap = chunk_token_budget(model)
            drafts = chunk_blocks(
                parsed.blocks,
                max_tokens=max_tokens,
                overlap_tokens=overlap,
                count_tokens=lambda text: embedder.count_tokens(text, model),
            )
        else:  # by characters (DOCENT_CHUNK_CHARS), even past what the embedder reads: kept for comparisons
            drafts = chunk_blocks(parsed.blocks, max_chars=settings.DOCENT_CHUNK_CHARS)
        if not drafts:
            raise ParseError(reasons.NO_TEXT)
        # One language per document (the majority of its chunks): code listings and names inside a French
        # manual must not be indexed as English and drop out of French searches.
        detected = [detect_language(d.text, default="") for d in drafts]
        language = max((x for x in set(detected) if x), key=detected.count, default="en")

        started = time.perf_counter()
        ensure_indexed(model)
        while True:
            report(Document.Stage.EMBED)
            embeddings = embed_chunks(
                drafts, title=document.title, model=model, on_progress=lambda x: report(Document.Stage.EMBED, x)
            )
            embed_ms = int((time.perf_counter() - started) * 1000)
            report(Document.Stage.STORE)
            try:
                count = store_chunks(
                    document=document,
                    drafts=drafts,
                    embeddings=embeddings,
                    languages=[language] * len(drafts),
                    text=document_text(parsed.blocks),
                    embedder=model,
                )
                break
            except EmbedderChanged as changed:  # `reembed` moved the base to another model meanwhile
                model = changed.current
        merge_search_index()
        _set(
            document,
            status=Document.Status.READY,
            stage="",
            progress=100,
            content_type=parsed.kind.content_type,
            pages=parsed.pages,
            language=language,
            parse_ms=parse_ms,
            embed_ms=embed_ms,
        )
    except ParseError as exc:
        document_mark_failed(document=document, error=str(exc))
    except FileNotFoundError:
        document_mark_failed(document=document, error=reasons.FILE_MISSING)
    except LeaseLost:
        logger.warning("document %s was taken over by another worker; this copy stops", document.pk)
        return IngestResult(document.pk, "superseded", 0, "taken over by another worker")
    finally:
        progress.publish(document)
        if on_progress:
            on_progress(document)
    if document.status in (Document.Status.READY, Document.Status.FAILED):
        # Its chunks, or whether it counts among the base's ready documents (the languages a question is
        # searched in), changed: the base's stored answers are stale (chat.answer_cache).
        knowledge_base_content_changed(knowledge_base_id=document.knowledge_base_id)
    if document.status == Document.Status.FAILED:
        return IngestResult(document.pk, Document.Status.FAILED, 0, document.error)
    logger.info("ingested document %s: %s chunks", document.pk, count)
    return IngestResult(document.pk, Document.Status.READY, count)


def _parse(path: Path, original_name: str) -> Parsed:
    """Collect a parse submitted ahead for this file, or parse it now, in the sandboxed parser."""
    if sandbox.pending_for() == (path, original_name):
        return sandbox.result()
    return sandbox.parse_file(path, original_name)
