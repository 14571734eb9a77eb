"""HTML and plain text to blocks in one pass each: time linear in the input.

`unstructured` classifies every element with per-word heuristics whose cost grows faster than the text: one
80 kB paragraph took 23 s in `partition_html` and 24 s in `partition_text` on this machine, 1 MB would hold
a worker for minutes. These readers do the little Docent needs from them in time proportional to the input.

HTML (lxml, after kb.ingest.safety.flatten_html has bounded the nesting): h1-h6 are title blocks of levels
1-6; paragraphs, list items, table captions, preformatted text and any other block element's text are text
blocks; tables are rendered row by row like sheets ("Header: value; ..."); scripts, styles, templates and
the head are left out.

Plain text: paragraphs are separated by blank lines; a paragraph's wrapped lines are joined (with no space
between two Chinese characters); list items (-, *, •, 1., a)) stay one block each; a lone short line without
closing punctuation, followed by more text, is a title block without a level (three or more such lines in a
row are a list: text).
"""

from __future__ import annotations

import re

from kb.ingest.chunk import Block
from kb.ingest.sheets import render_rows

_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_SKIPPED = frozenset({"script", "style", "noscript", "template", "head", "title", "meta", "link", "svg", "math"})
_BLOCKS = frozenset(
    """address article aside blockquote body caption center dd details dialog div dl dt fieldset figcaption
    figure footer form header hgroup hr html li main nav ol p pre section summary ul""".split()
)
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u3000]+")
_CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]")


def _clean(text: str) -> str:
    return "\n".join(line for line in (_SPACES.sub(" ", raw).strip() for raw in text.split("\n")) if line)


def _flat(text: str) -> str:
    return _SPACES.sub(" ", text.replace("\n", " ")).strip()


class _HtmlReader:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.buffer: list[str] = []

    def flush(self) -> None:
        text = _clean("".join(self.buffer))
        self.buffer = []
        if text:
            self.blocks.append(Block(text=text))

    def element(self, element) -> None:
        tag = element.tag.lower() if isinstance(element.tag, str) else ""
        if tag in _SKIPPED or not tag:  # comments and processing instructions have no string tag
            return
        if tag in _HEADINGS:
            self.flush()
            if text := _flat(element.text_content()):
                self.blocks.append(Block(text=text, kind="title", level=_HEADINGS[tag]))
            return
        if tag == "table":
            self.flush()
            self.table(element)
            return
        if tag == "br":
            self.buffer.append("\n")
            return
        if tag == "pre":
            self.flush()
            if text := element.text_content().strip():
                self.blocks.append(Block(text=text))
            return
        block = tag in _BLOCKS
        if block:
            self.flush()
        self.buffer.append(_source_text(element.text))
        for child in element:
            self.element(child)
            self.buffer.append(_source_text(child.tail))
        if block:
            self.flush()

    def table(self, table) -> None:
        rows = []
        for row in table.iter("tr"):
            if _nearest(row, "table") is table:
                rows.append([_flat(cell.text_content()) for cell in row if cell.tag in ("td", "th")])
        for caption in table.iter("caption"):
            if text := _flat(caption.text_content()):
                self.blocks.append(Block(text=text))
        self.blocks.extend(Block(text=line) for line in render_rows(rows))


def _source_text(text: str | None) -> str:
    """A line break in HTML source is a space; only <br> breaks a line."""
    return text.replace("\r", " ").replace("\n", " ") if text else ""


def _nearest(element, tag: str):
    parent = element.getparent()
    while parent is not None and parent.tag != tag:
        parent = parent.getparent()
    return parent


def html_blocks(text: str) -> list[Block]:
    from lxml import etree, html

    if not text.strip():
        return []
    try:
        root = html.document_fromstring(text, parser=html.HTMLParser(no_network=True, remove_comments=True))
    except (etree.ParserError, ValueError):  # ValueError: a str with an XML encoding declaration
        root = html.document_fromstring(text.encode("utf-8"), parser=html.HTMLParser(encoding="utf-8"))
    reader = _HtmlReader()
    reader.element(root)
    reader.flush()
    return reader.blocks


_LIST_ITEM = re.compile(
    r"^\s*(?:(?:[-*•·‣▪◦–—+]|\d{1,3}[.)]|[a-zA-Z][.)])\s+\S"  # - item, 1. item, a) item
    r"|[（(]?[一二三四五六七八九十\d]{1,3}[)）、]\s*\S)"  # 一、 （二） 3、
)
_CLOSING = tuple(".!?;:,。！？；：，…)]»”\"'")
_TITLE_CHARS = 80
_TITLE_WORDS = 12
_MAX_TITLES_IN_A_ROW = 2  # a chapter and its section; more short lines in a row are a list


def _join(lines: list[str]) -> str:
    text = lines[0]
    for line in lines[1:]:
        glue = "" if _CJK.match(text[-1:]) and _CJK.match(line[:1]) else " "
        text += glue + line
    return text


def _looks_like_title(paragraph: list[str]) -> bool:
    if len(paragraph) != 1:
        return False
    line = paragraph[0]
    return (
        len(line) <= _TITLE_CHARS
        and len(line.split()) <= _TITLE_WORDS
        and not line.endswith(_CLOSING)
        and any(char.isalpha() for char in line)
        and not _LIST_ITEM.match(line)
    )


def text_blocks(text: str) -> list[Block]:
    paragraphs: list[list[str]] = []
    current: list[str] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = _SPACES.sub(" ", raw).strip()
        if line:
            current.append(line)
        elif current:
            paragraphs.append(current)
            current = []
    if current:
        paragraphs.append(current)
    titles = [_looks_like_title(paragraph) for paragraph in paragraphs]
    for start in range(len(titles)):  # three or more short lines in a row are a list, not headings
        end = start
        while end < len(titles) and titles[end]:
            end += 1
        if end - start >= _MAX_TITLES_IN_A_ROW + 1:
            titles[start:end] = [False] * (end - start)
    blocks: list[Block] = []
    for index, paragraph in enumerate(paragraphs):
        if titles[index] and index + 1 < len(paragraphs):
            blocks.append(Block(text=paragraph[0], kind="title"))
            continue
        item: list[str] = []
        for line in paragraph:
            if _LIST_ITEM.match(line) and item:
                blocks.append(Block(text=_join(item)))
                item = []
            item.append(line)
        blocks.append(Block(text=_join(item)))
    return blocks
