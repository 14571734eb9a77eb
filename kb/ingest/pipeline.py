"""file → parse → chunk → embed → store, with the document's status kept true at every step."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from kb.ingest.chunk import chunk_blocks
from kb.ingest.embed import embed_chunks
from kb.ingest.parse import ParseError, parse_file
from kb.ingest.store import store_chunks
from kb.language import detect_language
from kb.models import Document

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[Document], None]


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


def run_pipeline(document: Document, *, on_progress: ProgressCallback | None = None) -> IngestResult:
    """Ingest one document. Never raises for a bad file: the reason is stored on the document."""

    def progress(percent: int) -> None:
        _set(document, progress=percent)
        if on_progress:
            on_progress(document)

    _set(document, status=Document.Status.PROCESSING, progress=0, error="")
    if on_progress:
        on_progress(document)
    try:
        started = time.perf_counter()
        parsed = parse_file(Path(document.file.path), document.original_name)
        parse_ms = int((time.perf_counter() - started) * 1000)
        progress(40)
        drafts = chunk_blocks(parsed.blocks, max_chars=settings.DOCENT_CHUNK_CHARS)
        if not drafts:
            raise ParseError("The document contains no text.")
        # One language per document (the majority of its chunks): code listings and names inside a French
        # manual must not be indexed as English and drop out of French searches.
        detected = [detect_language(d.text, default="") for d in drafts]
        language = max((x for x in set(detected) if x), key=detected.count, default="en")
        languages = [language] * len(drafts)
        started = time.perf_counter()
        embeddings = embed_chunks(
            drafts, title=document.title, on_progress=lambda share: progress(40 + int(55 * share))
        )
        embed_ms = int((time.perf_counter() - started) * 1000)
        count = store_chunks(document=document, drafts=drafts, embeddings=embeddings, languages=languages)
        _set(
            document,
            status=Document.Status.READY,
            progress=100,
            content_type=parsed.kind.content_type,
            pages=parsed.pages,
            language=language,
            parse_ms=parse_ms,
            embed_ms=embed_ms,
        )
    except ParseError as exc:
        _fail(document, str(exc))
        return IngestResult(document.pk, Document.Status.FAILED, 0, str(exc))
    except FileNotFoundError:
        message = "The uploaded file is missing from storage; upload it again."
        _fail(document, message)
        return IngestResult(document.pk, Document.Status.FAILED, 0, message)
    finally:
        if on_progress:
            on_progress(document)
    logger.info("ingested document %s: %s chunks", document.pk, count)
    return IngestResult(document.pk, Document.Status.READY, count)


def _fail(document: Document, message: str) -> None:
    logger.warning("document %s failed: %s", document.pk, message)
    _set(document, status=Document.Status.FAILED, error=message, progress=0)
