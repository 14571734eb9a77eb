"""Turn a stored file into text blocks with page numbers, through `unstructured`.

The file's type comes from its bytes, never from its name, and every way a file can be unusable
(empty, corrupt, encrypted, a zip bomb, an unsupported format) raises `ParseError` with a sentence a
user can act on.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from kb.ingest.chunk import Block

logger = logging.getLogger(__name__)

# unstructured categories that are page furniture rather than content
_SKIPPED_CATEGORIES = {"Header", "Footer", "PageBreak", "PageNumber", "Image", "Figure"}
_TITLE_CATEGORIES = {"Title"}

MAX_ZIP_UNCOMPRESSED = 200 * 1024 * 1024
MAX_ZIP_RATIO = 100
MAX_ZIP_MEMBERS = 10_000

_ZIP_TYPES = {
    "word/document.xml": ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "ppt/presentation.xml": ("pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
    "xl/workbook.xml": ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}


class ParseError(Exception):
    """A file that cannot be turned into text; the message is shown to the user as is."""


@dataclass(frozen=True)
class FileKind:
    name: str  # pdf, html, text, markdown, docx, ...
    content_type: str


@dataclass(frozen=True)
class Parsed:
    blocks: list[Block]
    kind: FileKind
    pages: int | None


def sniff(path: Path, original_name: str = "") -> FileKind:
    """Decide a file's type from its first bytes; the name only separates Markdown from plain text."""
    with path.open("rb") as handle:
        head = handle.read(8192)
    if not head:
        raise ParseError("The file is empty.")
    if head.startswith(b"%PDF-") or b"%PDF-" in head[:1024]:
        return FileKind("pdf", "application/pdf")
    if head.startswith(b"PK\x03\x04"):
        return _sniff_zip(path)
    if head.startswith((b"\xd0\xcf\x11\xe0", b"\x7fELF", b"MZ", b"\x1f\x8b", b"\x89PNG", b"\xff\xd8\xff", b"GIF8")):
        raise ParseError("This file type is not supported (binary data that is not PDF, HTML, text or Office XML).")
    text = _decode(head, partial=True)
    lowered = text.lstrip("\ufeff \t\r\n").lower()
    if lowered.startswith(("<!doctype html", "<html")) or "<body" in lowered[:4096] or "<p>" in lowered[:4096]:
        return FileKind("html", "text/html")
    if original_name.lower().endswith((".md", ".markdown")):
        return FileKind("markdown", "text/markdown")
    return FileKind("text", "text/plain")


def _decode(data: bytes, *, partial: bool = False) -> str:
    for encoding in ("utf-8-sig", "utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            # A multi-byte character cut at the end of a partial read is not an error.
            if partial and exc.start >= len(data) - 4:
                return data[: exc.start].decode(encoding, errors="strict")
    for encoding in ("gb18030", "cp1252"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" not in text:
            return text
    raise ParseError("The file is neither a supported document format nor readable text.")


def _sniff_zip(path: Path) -> FileKind:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_ZIP_MEMBERS:
                raise ParseError("The archive holds too many files to be a document (possible zip bomb).")
            total = sum(m.file_size for m in members)
            compressed = sum(m.compress_size for m in members) or 1
            if total > MAX_ZIP_UNCOMPRESSED or total / compressed > MAX_ZIP_RATIO:
                raise ParseError(
                    f"The file expands to {total // (1024 * 1024)} MB ({total // compressed}× its size): "
                    "refused as a possible zip bomb."
                )
            names = {m.filename for m in members}
    except zipfile.BadZipFile as exc:
        raise ParseError(f"The file looks like an Office document but its archive is corrupt ({exc}).") from exc
    for marker, (name, content_type) in _ZIP_TYPES.items():
        if marker in names:
            return FileKind(name, content_type)
    raise ParseError("This ZIP archive is not a supported document (expected DOCX, PPTX or XLSX).")


def _check_pdf(path: Path) -> int:
    """Open the PDF with pdfium to reject corrupt and encrypted files early; returns the page count."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        message = str(exc)
        if "password" in message.lower():
            raise ParseError("The PDF is encrypted with a password; upload an unprotected copy.") from exc
        raise ParseError(f"The PDF is corrupt or truncated and cannot be read ({message}).") from exc
    try:
        return len(pdf)
    finally:
        pdf.close()


def parse_file(path: Path, original_name: str = "") -> Parsed:
    kind = sniff(path, original_name)
    pages = _check_pdf(path) if kind.name == "pdf" else None
    if kind.name == "pdf" and settings.DOCENT_PDF_PARSER == "pdfium":
        from kb.ingest.pdf import pdf_blocks

        blocks, pages = pdf_blocks(path)
        if not blocks:
            raise ParseError(
                "No text could be extracted from this PDF: it is probably scanned images without a text layer."
            )
        return Parsed(blocks=blocks, kind=kind, pages=pages)
    elements = _partition(path, kind)
    blocks = []
    for element in elements:
        category = getattr(element, "category", "")
        text = (getattr(element, "text", "") or "").strip()
        if not text or category in _SKIPPED_CATEGORIES:
            continue
        page = getattr(element.metadata, "page_number", None)
        blocks.append(Block(text=text, kind="title" if category in _TITLE_CATEGORIES else "text", page=page))
    if not blocks:
        if kind.name == "pdf":
            raise ParseError(
                "No text could be extracted from this PDF: it is probably scanned images without a text layer."
            )
        raise ParseError("The document contains no text.")
    return Parsed(blocks=blocks, kind=kind, pages=pages)


def _partition(path: Path, kind: FileKind) -> list:  # type: ignore[type-arg]
    from kb.ingest.nlp import ensure_spacy_model

    ensure_spacy_model()
    try:
        if kind.name == "pdf":
            from unstructured.partition.pdf import partition_pdf

            return partition_pdf(filename=str(path), strategy="fast", languages=["eng", "fra", "chi_sim"])
        if kind.name == "html":
            from unstructured.partition.html import partition_html

            return partition_html(filename=str(path))
        if kind.name == "markdown":
            from unstructured.partition.md import partition_md

            return partition_md(text=_decode(path.read_bytes()))
        if kind.name == "text":
            from unstructured.partition.text import partition_text

            return partition_text(text=_decode(path.read_bytes()))
        from unstructured.partition.auto import partition

        return partition(filename=str(path), content_type=kind.content_type)
    except ParseError:
        raise
    except Exception as exc:  # unstructured raises many types for bad input
        logger.warning("partition failed for %s: %r", path, exc)
        raise ParseError(f"The {kind.name.upper()} file could not be parsed: {type(exc).__name__}: {exc}") from exc
