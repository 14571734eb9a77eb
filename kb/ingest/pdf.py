"""PDF text through pdfium's text layer: ~100× faster than unstructured's pdfminer path, and it keeps the
spaces pdfminer drops between words on some PDFs (measured on the maint-guide dev set; see README).

Lines become blocks. A line set in a larger font than the document's body text, or starting with a
multi-level section number ("4.2 ..."), is a heading. Running headers and footers (a line that recurs at
the top or bottom of most pages, digits aside) are dropped; words hyphenated across a line break are
joined.

Reading order. pdfium gives the text in content-stream order, which on a multi-column page may run across
the columns ("…a voté le budget annexe Le chantier de la station de…") when the producer wrote it row by
row. Each line is therefore also cut into pieces at horizontal gaps wider than a character's height, with
their boxes. A page is laid out in columns when an empty vertical strip (a gutter) runs down it with
prose on both sides: at least three pieces a side, with a median of four words or more (a table's
cells are shorter, so tables keep their rows). Then the page is read in bands: a piece that crosses a
gutter (a title over both columns, a footer) closes a band, and inside a band each column is read top
to bottom, left column first. Pages without a gutter keep pdfium's order, line for line. The boxes cost
about a third more time than the text alone (README, "Documents and ingestion").
"""

from __future__ import annotations

import ctypes
import re
import statistics
from collections import Counter
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Piece:
    """A run of text on one line (one of pdfium's text rectangles), with its box (PDF points, y upwards)."""

    text: str
    size: float
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def words(self) -> float:
        """Words it holds, told from its width alone (about 6 characters of half an em a word)."""
        return (self.x1 - self.x0) / max(self.y1 - self.y0, 1.0) / 3


_MIN_GUTTER_EM = 0.8
_MIN_COLUMN_PIECES = 3  # the two columns of a gutter hold at least this many pieces together, twice over
_MIN_COLUMN_WORDS = 3  # median words in a column's pieces (9 em wide or more): prose, not a table's cells
_Box = tuple[float, float, float, float]  # left, bottom, right, top


@dataclass
class _Page:
    """A page's text as pdfium gives it: characters by index, lines as index ranges."""

    chars: list[str]  # "" where pdfium has no usable character
    sizes: list[float]
    lines: list[tuple[int, int]]  # [start, end) of each line's characters, line breaks left out

    def text(self, start: int, end: int) -> str:
        return "".join(self.chars[start:end]).strip()

    def size(self, start: int, end: int) -> float:
        return max(self.sizes[start:end], default=0.0)


def _read_page(textpage) -> _Page:
    import pypdfium2.raw as pdfium_c

    get_unicode, get_size = pdfium_c.FPDFText_GetUnicode, pdfium_c.FPDFText_GetFontSize
    chars: list[str] = []
    sizes: list[float] = []
    lines: list[tuple[int, int]] = []
    start = 0
    for index in range(pdfium_c.FPDFText_CountChars(textpage)):
        code = get_unicode(textpage, index)
        if code in (10, 13):
            if index > start:
                lines.append((start, index))
            start = index + 1
            chars.append("")
            sizes.append(0.0)
        elif code in (0, 0xFFFE, 0xFFFF) or 0xD800 <= code <= 0xDFFF:
            chars.append("")
            sizes.append(0.0)
        else:
            chars.append(chr(code))
            sizes.append(get_size(textpage, index) if code > 32 else 0.0)
    if len(chars) > start:
        lines.append((start, len(chars)))
    return _Page(chars, sizes, lines)


def _page_lines(page: _Page) -> list[tuple[str, float]]:
    """The page's lines with the largest font size used on each, in pdfium's order."""
    lines = [(page.text(start, end), page.size(start, end)) for start, end in page.lines]
    return [(text, size) for text, size in lines if text]


def _line_boxes(textpage, page: _Page) -> list[tuple[int, list[_Box]]]:
    """Each line's text rectangles, left to right, with the line's index; near ones merged."""
    import pypdfium2.raw as pdfium_c

    left, top, right, bottom = ctypes.c_double(), ctypes.c_double(), ctypes.c_double(), ctypes.c_double()
    refs = (ctypes.byref(left), ctypes.byref(top), ctypes.byref(right), ctypes.byref(bottom))
    boxes = []
    for number, (start, end) in enumerate(page.lines):
        rects = []
        for index in range(pdfium_c.FPDFText_CountRects(textpage, start, end - start)):
            if pdfium_c.FPDFText_GetRect(textpage, index, *refs):
                rects.append((left.value, bottom.value, right.value, top.value))
        merged: list[_Box] = []
        for rect in sorted(rects):  # rectangles closer than a gutter are one run (pdfium cuts some words)
            if merged and rect[0] - merged[-1][2] < _MIN_GUTTER_EM * (rect[3] - rect[1]):
                last = merged[-1]
                merged[-1] = (last[0], min(last[1], rect[1]), max(last[2], rect[2]), max(last[3], rect[3]))
            else:
                merged.append(rect)
        if merged:
            boxes.append((number, merged))
    return boxes


def _pieces(textpage, page: _Page, boxes: list[tuple[int, list[_Box]]]) -> list[_Piece]:
    """The rectangles with their text: a line of several is cut where each next rectangle starts."""
    import pypdfium2.raw as pdfium_c

    pieces = []
    for number, rects in boxes:
        start, end = page.lines[number]
        cuts = [start]
        for x0, y0, _, y1 in rects[1:]:
            index = pdfium_c.FPDFText_GetCharIndexAtPos(textpage, x0 + 0.5, (y0 + y1) / 2, 1.0, (y1 - y0) / 2)
            cuts.append(index if cuts[-1] < index < end else cuts[-1])
        cuts.append(end)
        for (x0, y0, x1, y1), first, last in zip(rects, cuts, cuts[1:], strict=False):
            if text := page.text(first, last):
                pieces.append(_Piece(text, page.size(first, last), x0, y0, x1, y1))
    return pieces


def _strips(pieces: list[_Piece]) -> list[tuple[float, float]]:
    """Vertical strips that (almost) no piece covers, left to right: candidate gutters, from boxes alone.

    A few pieces may cross a gutter (a title over the columns, a footer): up to a tenth of the page's.
    """
    if len(pieces) < 2 * _MIN_COLUMN_PIECES:
        return []
    body = statistics.median(piece.y1 - piece.y0 for piece in pieces) or 10.0
    tolerance = max(2, len(pieces) // 10)
    events = sorted([(p.x0, 1) for p in pieces] + [(p.x1, -1) for p in pieces])
    strips: list[tuple[float, float]] = []
    covering = 0
    opened: float | None = None
    for x, change in events:
        before = covering
        covering += change
        if before > tolerance >= covering:
            opened = x
        elif before <= tolerance < covering and opened is not None:
            if x - opened >= _MIN_GUTTER_EM * body:
                strips.append((opened, x))
            opened = None
    return strips


def _side(piece: _Piece, gutter: tuple[float, float]) -> int:
    """-1: left of the gutter, 1: right of it, 0: across its middle."""
    middle = (gutter[0] + gutter[1]) / 2
    if piece.x0 < middle < piece.x1:
        return 0
    return -1 if piece.x1 <= middle else 1


def _quantile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _gutters(pieces: list[_Piece], strips: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The strips with prose on both sides, narrowed to the gap between the columns' edges.

    A strip can be wider than the gap (the ragged right edge of a column; a footer that crosses it), so
    each gutter becomes the gap between the left column's right edge and the right column's left edge,
    each taken as a quantile, so that a stray long line does not move it.
    """
    kept: list[tuple[float, float]] = []
    for index, strip in enumerate(strips):
        previous = kept[-1] if kept else None
        following = strips[index + 1] if index + 1 < len(strips) else None
        left_column = [p for p in pieces if _side(p, strip) == -1 and (previous is None or _side(p, previous) == 1)]
        right_column = [p for p in pieces if _side(p, strip) == 1 and (following is None or _side(p, following) == -1)]
        enough = len(left_column) + len(right_column) >= 2 * _MIN_COLUMN_PIECES
        if not (enough and _prose(left_column) and _prose(right_column)):
            continue
        left_edge = _quantile([p.x1 for p in left_column], 0.9)
        right_edge = _quantile([p.x0 for p in right_column], 0.1)
        kept.append((left_edge, right_edge) if left_edge < right_edge else strip)
    return kept


def _prose(pieces: list[_Piece]) -> bool:
    return bool(pieces) and statistics.median(piece.words for piece in pieces) >= _MIN_COLUMN_WORDS


def _column_order(pieces: list[_Piece], gutters: list[tuple[float, float]]) -> list[_Piece]:
    """Pieces in reading order: bands separated by pieces that cross a gutter, each band column by column."""

    def column(piece: _Piece) -> int | None:
        for index, gutter in enumerate(gutters):
            side = _side(piece, gutter)
            if side == 0:
                return None
            if side == -1:
                return index
        return len(gutters)

    ordered: list[_Piece] = []
    band: list[tuple[int, _Piece]] = []

    def close_band() -> None:
        band.sort(key=lambda item: (item[0], -item[1].y1, item[1].x0))
        ordered.extend(piece for _, piece in band)
        band.clear()

    for piece in sorted(pieces, key=lambda p: (-p.y1, p.x0)):
        index = column(piece)
        if index is None:
            close_band()
            ordered.append(piece)
        else:
            band.append((index, piece))
    close_band()
    return ordered


def _reading_order(textpage) -> list[tuple[str, float]]:
    """The page's lines in reading order: pdfium's, or column by column when the page has columns.

    Gutters are looked for on the rectangles' boxes alone (cheap); only a page that has them pays for
    cutting its lines into pieces.
    """
    page = _read_page(textpage)
    boxes = _line_boxes(textpage, page)
    shapes = [_Piece("", 0.0, *rect) for _, rects in boxes for rect in rects]
    gutters = _gutters(shapes, _strips(shapes))
    if not gutters:
        return _page_lines(page)
    return [(piece.text, piece.size) for piece in _column_order(_pieces(textpage, page, boxes), gutters)]


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
                pages.append(_reading_order(textpage.raw))
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
