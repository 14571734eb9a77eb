"""PDF text through pdfium's text layer: ~100× faster than unstructured's pdfminer path, and it keeps the
spaces pdfminer drops between words on some PDFs (measured on the maint-guide dev set; see README).

Lines become blocks. A line set in a larger font than the document's body text, or starting with a
multi-level section number ("4.2 ..."), is a heading. Running headers and footers (a line that recurs at
the top or bottom of most pages, digits aside) are dropped; words hyphenated across a line break are
joined.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from kb.ingest.chunk import Block

# "1.2 Programs needed", "7.4 使用 lintian", "A.1 Foo", "Chapter 3 Bar", "第 3 章 …" — but not "3. Pour the
# water", a numbered step.
_HEADING = re.compile(
    r"^(?:\d{1,2}(?:\.\d{1,2}){1,3}\.?\s+\S|[A-Z](?:\.\d{1,2}){1,3}\.?\s+\S"
    r"|(?:Chapter|Chapitre|Annexe|Appendix)\s+\w+|第\s*\S{1,3}\s*章)"
)
_LARGER = 1.15  # a heading's font is at least this much larger than the body's
_DOT_LEADER = re.compile(r"(?:\.\s*){4,}\d*\s*$")
_SENTENCE_END = tuple(".,;:!?。，；：！？)")
_DIGITS = re.compile(r"\d+")
_FURNITURE_LINES = 2  # lines at the top and bottom of a page that may be running headers/footers


def _is_heading(line: str, size: float, body_size: float) -> bool:
    if len(line) > 120 or _DOT_LEADER.search(line) or line.endswith(_SENTENCE_END):
        return False
    return size >= body_size * _LARGER or bool(_HEADING.match(line))


def _page_lines(textpage) -> list[tuple[str, float]]:  # type: ignore[no-untyped-def]
    """The page's lines with the largest font size used on each."""
    import pypdfium2.raw as pdfium_c

    lines: list[tuple[str, float]] = []
    chars: list[str] = []
    size = 0.0
    for index in range(pdfium_c.FPDFText_CountChars(textpage)):
        code = pdfium_c.FPDFText_GetUnicode(textpage, index)
        if code in (10, 13):
            if chars:
                lines.append(("".join(chars).strip(), size))
            chars, size = [], 0.0
            continue
        if code in (0, 0xFFFE, 0xFFFF) or 0xD800 <= code <= 0xDFFF:
            continue
        chars.append(chr(code))
        if code > 32:
            size = max(size, pdfium_c.FPDFText_GetFontSize(textpage, index))
    if chars:
        lines.append(("".join(chars).strip(), size))
    return [(text, size) for text, size in lines if text]


def _furniture(pages: list[list[str]]) -> set[str]:
    """Lines (digits blanked) that recur at the edge of at least half the pages."""
    if len(pages) < 4:
        return set()
    counts: Counter[str] = Counter()
    for lines in pages:
        edge = {_DIGITS.sub("#", line) for line in lines[:_FURNITURE_LINES] + lines[-_FURNITURE_LINES:]}
        counts.update(edge)
    return {line for line, n in counts.items() if n >= len(pages) / 2}


def _join_hyphenated(lines: list[tuple[str, float]]) -> list[tuple[str, float]]:
    joined: list[tuple[str, float]] = []
    for text, size in lines:
        previous = joined[-1][0] if joined else ""
        if previous.endswith("-") and text[:1].islower() and previous[-2:-1].isalpha():
            joined[-1] = (previous[:-1] + text, joined[-1][1])
        else:
            joined.append((text, size))
    return joined


def pdf_blocks(path: Path) -> tuple[list[Block], int]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        pages: list[list[tuple[str, float]]] = []
        for page in pdf:
            textpage = page.get_textpage()
            try:
                pages.append(_page_lines(textpage.raw))
            finally:
                textpage.close()
                page.close()
        page_count = len(pdf)
    finally:
        pdf.close()
    sizes: Counter[float] = Counter()
    for lines in pages:
        for text, size in lines:
            sizes[round(size, 1)] += len(text)
    body_size = sizes.most_common(1)[0][0] if sizes else 0.0
    furniture = _furniture([[text for text, _ in lines] for lines in pages])
    blocks = []
    for number, lines in enumerate(pages, start=1):
        kept = [(text, size) for text, size in lines if _DIGITS.sub("#", text) not in furniture]
        for text, size in _join_hyphenated(kept):
            kind = "title" if body_size and _is_heading(text, size, body_size) else "text"
            blocks.append(Block(text=text, kind=kind, page=number))
    return blocks, page_count
