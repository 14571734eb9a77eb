"""Split parsed blocks into retrieval chunks that keep their page and heading.

Pure: no Django, no I/O, so it is tested on its own. Rules, in order of importance:
1. a chunk never spans two pages, so a citation's page is exact;
2. a heading starts a new chunk and names every chunk under it;
3. chunks stay under `max_chars`, splitting long blocks at sentence ends (Latin and CJK punctuation),
   and only at a hard character limit when a sentence alone is too long.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    """One parsed element of a document."""

    text: str
    kind: str = "text"  # "title" for headings; anything else is body text
    page: int | None = None  # page, slide or sheet number (1-based)
    level: int | None = None  # a heading's depth (1 = top) when the format tells it


@dataclass(frozen=True)
class ChunkDraft:
    ordinal: int
    text: str
    page: int | None
    heading: str
    start: int = 0  # character offsets of `text` in the document's extracted text
    end: int = 0


# A sentence ends at . ! ? followed by space, or right after CJK full stops, which need no space.
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])")
_MAX_HEADING_CHARS = 300
_CJK = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef"
# PDF text layers put a space where a Chinese line wrapped; Chinese has no spaces between words.
_SPACE_BETWEEN_CJK = re.compile(f"(?<=[{_CJK}]) +(?=[{_CJK}])")


def normalise_text(text: str) -> str:
    return _SPACE_BETWEEN_CJK.sub("", " ".join(text.split()))


def split_sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def _hard_split(text: str, max_chars: int) -> Iterator[str]:
    for start in range(0, len(text), max_chars):
        yield text[start : start + max_chars]


def _pieces(text: str, max_chars: int) -> Iterator[str]:
    """Yield parts of one block, each at most max_chars, cut at sentence ends where possible."""
    if len(text) <= max_chars:
        yield text
        return
    for sentence in split_sentences(text):
        if len(sentence) <= max_chars:
            yield sentence
        else:
            yield from _hard_split(sentence, max_chars)


def _joiner(left: str, right: str) -> str:
    # CJK text has no spaces between sentences; Latin text does.
    if left and right and ord(left[-1]) > 0x2E80 and ord(right[0]) > 0x2E80:
        return ""
    return " "


def chunk_blocks(blocks: Iterable[Block], *, max_chars: int = 900, min_chars: int = 1) -> list[ChunkDraft]:
    """Group blocks into chunks. `min_chars` drops chunks shorter than that (stray page numbers)."""
    if max_chars < 50:
        raise ValueError("max_chars must be at least 50")
    drafts: list[ChunkDraft] = []
    heading = ""
    pending_heading = False  # the last block was a heading with no body yet
    buffer = ""
    buffer_page: int | None = None

    def flush() -> None:
        nonlocal buffer, buffer_page
        text = buffer.strip()
        if len(text) >= min_chars:
            drafts.append(ChunkDraft(ordinal=len(drafts), text=text, page=buffer_page, heading=heading))
        buffer, buffer_page = "", None

    for block in blocks:
        text = normalise_text(block.text)
        if not text:
            continue
        if block.kind == "title" and len(text) <= _MAX_HEADING_CHARS:
            flush()
            # Consecutive headings (chapter then section) name the chunk together.
            heading = f"{heading} › {text}" if pending_heading and heading else text
            heading = heading[-_MAX_HEADING_CHARS:]
            pending_heading = True
            continue
        pending_heading = False
        if buffer and block.page != buffer_page:
            flush()
        for piece in _pieces(text, max_chars):
            if buffer and len(buffer) + 1 + len(piece) > max_chars:
                flush()
            if not buffer:
                buffer, buffer_page = piece, block.page
            else:
                buffer += _joiner(buffer, piece) + piece
    flush()
    return drafts
