"""OCR of scanned PDF pages: pdfium renders each page, the `tesseract` command reads it.

Only pages with no text layer at all and at least one image are OCRed, so a text PDF costs nothing
extra and a scan inside a text PDF is still read. Tesseract runs as a subprocess (the image on stdin,
plain text on stdout) with a per-page timeout, one thread, and the languages of `DOCENT_OCR_LANGUAGES`
that are installed (Debian: tesseract-ocr, tesseract-ocr-fra, tesseract-ocr-chi-sim, installed by
`make setup`). Each paragraph tesseract finds becomes a text block with its page number.

Settings (read with these defaults when the settings module does not define them, from the
environment of the same name): DOCENT_OCR ("auto": OCR when tesseract is installed; "off": never),
DOCENT_OCR_LANGUAGES ("eng+fra+chi_sim"), DOCENT_OCR_PAGE_TIMEOUT_S (120).
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings

from kb.ingest.chunk import Block

logger = logging.getLogger(__name__)

OCR_DPI = 200  # tesseract's accuracy on body text levels off around here; 300 dpi costs twice the time
MAX_PAGE_PIXELS = 25_000_000  # a poster-sized page is rendered smaller rather than filling memory
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\f]*\n")
_WORD = re.compile(r"\w", re.UNICODE)


def tesseract_binary() -> str | None:
    if settings.DOCENT_OCR.lower() in ("off", "false", "0", "no"):
        return None
    return shutil.which("tesseract")


def languages(binary: str) -> list[str]:
    """The wanted languages that tesseract has data for, in the wanted order."""
    wanted = [lang for lang in settings.DOCENT_OCR_LANGUAGES.split("+") if lang]
    installed = _installed_languages(binary)
    return [lang for lang in wanted if lang in installed]


@functools.lru_cache(maxsize=4)
def _installed_languages(binary: str) -> frozenset[str]:
    try:
        result = subprocess.run([binary, "--list-langs"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("tesseract --list-langs failed: %r", exc)
        return frozenset()
    # The first line is a heading ("List of available languages in ...:").
    lines = result.stdout.decode(errors="replace").splitlines()[1:]
    return frozenset(line.strip() for line in lines if line.strip())


def available() -> bool:
    binary = tesseract_binary()
    return bool(binary and languages(binary))


def scanned_pages(path: Path, candidates: Iterable[int]) -> list[int]:
    """Of the given page numbers (1-based), those with no text layer and at least one image."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    scanned = []
    pdf = pdfium.PdfDocument(str(path))
    try:
        for number in candidates:
            page = pdf[number - 1]
            try:
                textpage = page.get_textpage()
                try:
                    text = textpage.get_text_range()
                finally:
                    textpage.close()
                if text.strip():
                    continue
                images = page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE])
                if next(iter(images), None) is not None:
                    scanned.append(number)
            finally:
                page.close()
    finally:
        pdf.close()
    return scanned


def ocr_pages(path: Path, pages: Iterable[int]) -> list[Block]:
    """Text blocks, one per paragraph, for the given pages; a page tesseract fails on is skipped."""
    import pypdfium2 as pdfium

    binary = tesseract_binary()
    langs = languages(binary) if binary else []
    if not binary or not langs:
        return []
    timeout = settings.DOCENT_OCR_PAGE_TIMEOUT_S
    blocks: list[Block] = []
    pdf = pdfium.PdfDocument(str(path))
    try:
        for number in pages:
            page = pdf[number - 1]
            try:
                width, height = page.get_size()  # in points, 72 a inch
                scale = min(OCR_DPI / 72, math.sqrt(MAX_PAGE_PIXELS / max(width * height, 1.0)))
                image = page.render(scale=scale, grayscale=True).to_pil()
            finally:
                page.close()
            png = io.BytesIO()
            image.save(png, "PNG")
            text = _tesseract(binary, png.getvalue(), langs, timeout, number)
            blocks.extend(Block(text=paragraph, page=number) for paragraph in paragraphs(text))
    finally:
        pdf.close()
    return blocks


def _tesseract(binary: str, image: bytes, langs: list[str], timeout: float, page: int) -> str:
    # One OpenMP thread: ingestion already runs one document a worker process, and tesseract's threads
    # slow it down on a busy machine.
    env = {**os.environ, "OMP_THREAD_LIMIT": os.environ.get("OMP_THREAD_LIMIT", "1")}
    command = [binary, "stdin", "stdout", "-l", "+".join(langs), "--psm", "3"]
    try:
        result = subprocess.run(command, input=image, capture_output=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        logger.warning("OCR of page %d gave up after %.0f s", page, timeout)
        return ""
    except OSError as exc:
        logger.warning("OCR of page %d could not run tesseract: %r", page, exc)
        return ""
    if result.returncode != 0:
        logger.warning("OCR of page %d failed: %s", page, result.stderr.decode(errors="replace")[-500:])
        return ""
    return result.stdout.decode("utf-8", errors="replace")


def paragraphs(text: str) -> list[str]:
    """Tesseract's plain-text output split at blank lines; lines joined, hyphenated words rejoined."""
    found = []
    for raw in _PARAGRAPH_BREAK.split(text.replace("\f", "\n\n")):
        joined = ""
        for line in raw.splitlines():
            line = line.strip()
            if not line:
                continue
            if joined.endswith("-") and joined[-2:-1].isalpha() and line[:1].islower():
                joined = joined[:-1] + line
            else:
                joined = f"{joined} {line}" if joined else line
        # Specks and rules come out as stray punctuation ("|", "—"); a paragraph needs a letter or digit.
        if _WORD.search(joined):
            found.append(joined)
    return found
