"""Turn a stored file into text blocks with page numbers and heading levels.

The file's type comes from its bytes, never from its name (the name only tells Markdown from plain
text and lowers the bar for CSV), and every way a file can be unusable (empty, corrupt, encrypted, a
zip bomb, hostile XML, an unsupported format) raises `ParseError` with one sentence a user can act on.

What each format yields (`Block.page`, `Block.level`):
- PDF: pdfium's text layer (kb/ingest/pdf.py), page numbers; pages that are only scanned images are
  OCRed (kb/ingest/ocr.py) when tesseract is installed.
- DOCX: kb/ingest/docx.py, in reading order with text boxes, SmartArt, footnotes and endnotes; Title and
  Heading N styles become title blocks of level N; no page numbers.
- PPTX: `unstructured`; page is the slide number, the slide's title is a level-1 title block.
- XLSX: openpyxl (kb/ingest/sheets.py); page is the sheet number, the sheet name a level-1 title
  block, each row "Header: value; ..." under its header.
- CSV (comma, semicolon or tab, detected from the content): the same row rendering; no pages.
- HTML: lxml (kb/ingest/markup.py) after the nesting is bounded; h1-h6 become title blocks of levels 1-6.
- Markdown: markdown-it-py (kb/ingest/markdown.py); #-###### and setext headings are levels 1-6.
- Plain text: kb/ingest/markup.py; a lone short line without closing punctuation is a title block without
  a level.
Tables in DOCX, PPTX, HTML and Markdown are rendered row by row like sheets. Every reader but PPTX's (and the
optional unstructured PDF path) runs in time linear in the file's size; the parser process's time limit
grows with the size too (kb/ingest/sandbox.py).
"""

from __future__ import annotations

import csv
import logging
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from lxml import etree

from kb import reasons
from kb.ingest import encoding, ocr, safety, sheets
from kb.ingest.chunk import Block
from kb.ingest.markdown import markdown_blocks
from kb.ingest.markup import html_blocks, text_blocks

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
        raise ParseError(reasons.EMPTY_FILE)
    if head.startswith(b"%PDF-") or b"%PDF-" in head[:1024]:
        return FileKind("pdf", "application/pdf")
    if head.startswith(b"PK\x03\x04"):
        return _sniff_zip(path)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise ParseError(reasons.LEGACY_OFFICE)
    if head.startswith((b"\x7fELF", b"MZ", b"\x1f\x8b", b"\x89PNG", b"\xff\xd8\xff", b"GIF8")):
        raise ParseError(reasons.BINARY_FILE)
    text = _decode(head, partial=True)
    lowered = text.lstrip("\ufeff \t\r\n").lower()
    if lowered.startswith(("<!doctype html", "<html")) or "<body" in lowered[:4096] or "<p>" in lowered[:4096]:
        return FileKind("html", "text/html")
    name = original_name.lower()
    if name.endswith((".md", ".markdown")):
        return FileKind("markdown", "text/markdown")
    truncated = len(head) == 8192
    if sheets.csv_delimiter(text.lstrip("\ufeff"), truncated=truncated, named_csv=name.endswith((".csv", ".tsv"))):
        return FileKind("csv", "text/csv")
    return FileKind("text", "text/plain")


def _decode(data: bytes, *, partial: bool = False) -> str:
    try:
        return encoding.decode(data, partial=partial)
    except encoding.UndecodableText as exc:
        raise ParseError(str(exc)) from exc


def _sniff_zip(path: Path) -> FileKind:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_ZIP_MEMBERS:
                raise ParseError(reasons.ZIP_TOO_MANY_FILES)
            total = sum(m.file_size for m in members)
            compressed = sum(m.compress_size for m in members) or 1
            if total > MAX_ZIP_UNCOMPRESSED or total / compressed > MAX_ZIP_RATIO:
                raise ParseError(reasons.ZIP_BOMB % {"mb": total // (1024 * 1024), "ratio": total // compressed})
            names = {m.filename for m in members}
            if any(marker in names for marker in _ZIP_TYPES):
                safety.check_office_xml(archive)
    except safety.UnsafeFile as exc:
        raise ParseError(str(exc)) from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
        logger.info("corrupt Office archive %s: %r", path, exc)
        raise ParseError(reasons.ZIP_CORRUPT) from exc
    for marker, (name, content_type) in _ZIP_TYPES.items():
        if marker in names:
            return FileKind(name, content_type)
    raise ParseError(reasons.ZIP_NOT_OFFICE)


def _check_pdf(path: Path) -> int:
    """Open the PDF with pdfium to reject corrupt and encrypted files early; returns the page count."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        message = str(exc)
        if "password" in message.lower():
            raise ParseError(reasons.PDF_ENCRYPTED) from exc
        logger.info("corrupt PDF %s: %s", path, message)
        raise ParseError(reasons.PDF_CORRUPT) from exc
    try:
        return len(pdf)
    finally:
        pdf.close()


def parse_file(path: Path, original_name: str = "") -> Parsed:
    kind = sniff(path, original_name)
    pages: int | None = None
    if kind.name == "pdf":
        return _parse_pdf(path, kind)
    if kind.name == "xlsx":
        blocks, pages = _xlsx(path)
    elif kind.name == "csv":
        blocks = _csv(path, original_name)
    elif kind.name == "docx":
        blocks = _docx(path)
    elif kind.name == "markdown":
        text = _decode(path.read_bytes())
        # nesting past markdown-it's limit drops what is inside it: such a file is read as plain text
        blocks = _trailing_titles_as_text(markdown_blocks(text) or text_blocks(text))
    elif kind.name == "html":
        blocks = _trailing_titles_as_text(html_blocks(safety.flatten_html(_decode(path.read_bytes()))))
    elif kind.name == "text":
        blocks = _trailing_titles_as_text(text_blocks(_decode(path.read_bytes())))
    else:
        blocks = _blocks(_partition(path, kind), kind)
        if kind.name == "pptx":
            pages = _slide_count(path) or None
    if not any(block.kind != "title" for block in blocks):
        raise ParseError(reasons.NO_TEXT)
    return Parsed(blocks=blocks, kind=kind, pages=pages)


def _parse_pdf(path: Path, kind: FileKind) -> Parsed:
    pages = _check_pdf(path)
    if settings.DOCENT_PDF_PARSER == "pdfium":
        from kb.ingest.pdf import pdf_blocks

        blocks, pages = pdf_blocks(path)
    else:
        blocks = _blocks(_partition(path, kind), kind)
    with_text = {block.page for block in blocks}
    missing = [number for number in range(1, pages + 1) if number not in with_text]
    scanned = ocr.scanned_pages(path, missing) if missing else []
    if scanned and ocr.available():
        found = ocr.ocr_pages(path, scanned)
        if not blocks and not found:
            raise ParseError(reasons.OCR_NO_TEXT)
        # sorted() is stable: the text layer's order within a page is kept.
        blocks = sorted(blocks + found, key=lambda block: block.page or 0)
    elif scanned and not blocks:
        raise ParseError(reasons.OCR_UNAVAILABLE)
    elif scanned:
        logger.warning("%s: pages %s are scanned images and OCR is not available; they are skipped", path, scanned)
    if not blocks:
        raise ParseError(reasons.PDF_EMPTY)
    return Parsed(blocks=blocks, kind=kind, pages=pages)


def _blocks(elements: list, kind: FileKind) -> list[Block]:
    """Blocks from unstructured's elements, with heading levels where the format states them."""
    blocks: list[Block] = []
    for element in elements:
        category = getattr(element, "category", "")
        text = (getattr(element, "text", "") or "").strip()
        if not text or category in _SKIPPED_CATEGORIES:
            continue
        page = getattr(element.metadata, "page_number", None)
        if category == "Table" and (html := getattr(element.metadata, "text_as_html", None)):
            lines = sheets.html_table_lines(html)
            if lines:
                blocks.extend(Block(text=line, page=page) for line in lines)
                continue
        if category not in _TITLE_CATEGORIES:
            blocks.append(Block(text=text, page=page))
            continue
        depth = getattr(element.metadata, "category_depth", None)
        if kind.name == "pptx":
            # The slide's title shape gives depth 0; deeper "titles" are short body lines that
            # unstructured's heuristics took for headings.
            if depth:
                blocks.append(Block(text=text, page=page))
            else:
                blocks.append(Block(text=text, kind="title", page=page, level=1))
            continue
        # unstructured's PDF titles are guesses from the layout, without a real depth
        blocks.append(Block(text=text, kind="title", page=page))
    return _trailing_titles_as_text(blocks)


def _trailing_titles_as_text(blocks: list[Block]) -> list[Block]:
    """Headings with no body after them name no chunk and would be lost: a text file of short lines is
    all "titles" to unstructured's heuristics. They are body text."""
    index = len(blocks)
    while index and blocks[index - 1].kind == "title":
        index -= 1
    return blocks[:index] + [Block(text=b.text, page=b.page) for b in blocks[index:]]


def _docx(path: Path) -> list[Block]:
    from kb.ingest.docx import docx_blocks

    try:
        return _trailing_titles_as_text(docx_blocks(path))
    except (etree.LxmlError, KeyError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        logger.info("unreadable DOCX %s: %r", path, exc)
        raise ParseError(reasons.UNREADABLE % {"kind": "DOCX"}) from exc


def _xlsx(path: Path) -> tuple[list[Block], int]:
    try:
        return sheets.xlsx_blocks(path)
    except Exception as exc:  # openpyxl raises many types for damaged workbooks
        logger.warning("xlsx failed for %s: %r", path, exc)
        raise ParseError(reasons.XLSX_UNREADABLE) from exc


def _csv(path: Path, original_name: str) -> list[Block]:
    text = _decode(path.read_bytes()).lstrip("\ufeff")
    head = text[:8192]
    delimiter = sheets.csv_delimiter(
        head, truncated=len(head) < len(text), named_csv=original_name.lower().endswith((".csv", ".tsv"))
    )
    if delimiter is None:  # the whole text no longer looks like the sample did (sniff reads 8 KB of bytes)
        delimiter = sheets.csv_delimiter(head, truncated=True, named_csv=True) or ","
    try:
        return sheets.csv_blocks(text, delimiter)
    except csv.Error as exc:
        logger.info("malformed CSV %s: %r", path, exc)
        raise ParseError(reasons.CSV_MALFORMED) from exc


_SLIDE = re.compile(r"ppt/slides/slide\d+\.xml")


def _slide_count(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return sum(1 for name in archive.namelist() if _SLIDE.fullmatch(name))


def _partition(path: Path, kind: FileKind) -> list:
    from kb.ingest.nlp import ensure_spacy_model

    ensure_spacy_model()
    try:
        if kind.name == "pdf":
            from unstructured.partition.pdf import partition_pdf

            return partition_pdf(filename=str(path), strategy="fast", languages=["eng", "fra", "chi_sim"])
        if kind.name == "pptx":
            from unstructured.partition.pptx import partition_pptx

            return partition_pptx(filename=str(path))
        raise ParseError(reasons.UNSUPPORTED)
    except ParseError:
        raise
    except Exception as exc:  # unstructured raises many types for bad input
        logger.warning("partition failed for %s: %r", path, exc)
        raise ParseError(reasons.UNREADABLE % {"kind": kind.name.upper()}) from exc
