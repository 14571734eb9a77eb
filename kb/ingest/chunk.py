"""Split parsed blocks into retrieval chunks that keep their page, heading path and place in the document.

Pure: no Django, no I/O, so it is tested on its own. Rules, in order of importance:
1. a chunk is a contiguous span of `document_text(blocks)`: `document_text(blocks)[d.start:d.end] == d.text`;
2. a chunk never spans two pages, so a citation's page is exact;
3. a heading starts a new section and is not part of its chunks' text: it names them, as a path
   ("1 Intro › 1.1 Scope");
4. chunks stay within a token budget (the embedder's tokenizer, or `core.text.approximate_tokens`) and an optional
   character cap. They are cut at sentence ends, then at clause marks, then at spaces; a CJK clause is cut
   between characters, and a single word inside, only when it alone is over the budget.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from core.text import CJK, approximate_tokens, sentence_ends, trimmed_spans


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


DEFAULT_MAX_TOKENS = 200
BLOCK_SEPARATOR = "\n\n"
_MAX_HEADING_CHARS = 300
# PDF text layers put a space where a Chinese line wrapped; Chinese has no spaces between words.
_SPACE_BETWEEN_CJK = re.compile(f"(?<=[{CJK}]) +(?=[{CJK}])")
_WORD = re.compile(r"\S+")
_UNIT = re.compile(f"[{CJK}]|[^\\s{CJK}]+")  # one CJK character, or a run of other non-space characters

# Clause marks: CJK ones need no space after them; Latin ones do (1,000 and 12:30 are not clauses).
_CLAUSE_END = re.compile(r"[，、：；]|[,;:](?=\s)")
# "4.2 Foo" is a depth-2 heading; "A.1 Foo" (appendix) too. A bare number ("12") is not a section number.
_SECTION_NUMBER = re.compile(r"(?:\d{1,3}|[A-Z](?=\.\d))(?:\.\d{1,3}){0,5}\.?(?=\s+\S)")

TokenCounter = Callable[[str], int]


def normalise_text(text: str) -> str:
    return _SPACE_BETWEEN_CJK.sub("", " ".join(text.split()))


def document_text(blocks: Iterable[Block]) -> str:
    """The document's extracted text: every non-empty block, normalised, joined by a blank line."""
    return BLOCK_SEPARATOR.join(text for text in (normalise_text(b.text) for b in blocks) if text)


@dataclass(frozen=True)
class _Budget:
    max_tokens: int | None
    max_chars: int | None
    count_tokens: TokenCounter
    counting: bool  # pieces need a token count (a token budget or an overlap)

    def tokens(self, text: str) -> int:
        return self.count_tokens(text) if self.counting else 0

    def fits(self, tokens: int, chars: int) -> bool:
        return (self.max_chars is None or chars <= self.max_chars) and (
            self.max_tokens is None or tokens <= self.max_tokens
        )

    def fits_text(self, text: str) -> bool:
        # The character cap first: it is free, and spares the tokenizer an oversized text.
        return (self.max_chars is None or len(text) <= self.max_chars) and (
            self.max_tokens is None or self.count_tokens(text) <= self.max_tokens
        )


@dataclass(frozen=True)
class _Piece:
    """A sentence, or part of one, within the budget: the unit chunks are packed from."""

    start: int
    end: int
    tokens: int
    opens_sentence: bool


def _hard_cut(doc: str, start: int, end: int, budget: _Budget) -> Iterator[tuple[int, int]]:
    """The last resort for one word over the budget: the longest prefixes that fit, at least a character each."""
    while start < end:
        fit, over = 1, end - start + 1
        while over - fit > 1:
            mid = (fit + over) // 2
            fit, over = (mid, over) if budget.fits_text(doc[start : start + mid]) else (fit, mid)
        yield start, start + fit
        start += fit


def _pack_spans(
    doc: str,
    spans: Sequence[tuple[int, int]],
    budget: _Budget,
    oversize: Callable[[int, int], Iterator[tuple[int, int]]],
) -> Iterator[tuple[int, int]]:
    """Greedy runs of consecutive spans that fit, found by galloping search (a few counts a piece, not one a span)."""
    i = 0
    while i < len(spans):
        if not budget.fits_text(doc[spans[i][0] : spans[i][1]]):
            yield from oversize(*spans[i])
            i += 1
            continue

        def fits(n: int, i: int = i) -> bool:
            return budget.fits_text(doc[spans[i][0] : spans[i + n - 1][1]])

        fit, over = 1, 2
        while i + over <= len(spans) and fits(over):
            fit, over = over, over * 2
        over = min(over, len(spans) - i + 1)
        while over - fit > 1:
            mid = (fit + over) // 2
            fit, over = (mid, over) if fits(mid) else (fit, mid)
        yield spans[i][0], spans[i + fit - 1][1]
        i += fit


def _units(doc: str, start: int, end: int, budget: _Budget) -> Iterator[tuple[int, int]]:
    """A word over the budget, cut between CJK characters or at the edges of Latin runs within it."""
    units = [m.span() for m in _UNIT.finditer(doc, start, end)]
    return _pack_spans(doc, units, budget, lambda s, e: _hard_cut(doc, s, e, budget))


def _words(doc: str, start: int, end: int, budget: _Budget) -> Iterator[tuple[int, int]]:
    """A clause over the budget, cut at spaces."""
    words = [m.span() for m in _WORD.finditer(doc, start, end)]
    return _pack_spans(doc, words, budget, lambda s, e: _units(doc, s, e, budget))


Cutter = Callable[[int, int], Iterable[int]]


def _parts(
    doc: str, start: int, end: int, budget: _Budget, cutters: Sequence[Cutter], over: bool = False
) -> Iterator[_Piece]:
    """doc[start:end] as one piece when it fits, else cut by the first cutter (recursively), runs of words last."""
    if not over:
        tokens = budget.tokens(doc[start:end])
        if budget.fits(tokens, end - start):
            yield _Piece(start, end, tokens, False)
            return
    if not cutters:
        for s, e in _words(doc, start, end, budget):
            yield _Piece(s, e, budget.tokens(doc[s:e]), False)
        return
    spans = trimmed_spans(doc, start, end, cutters[0](start, end))
    for s, e in spans:
        yield from _parts(doc, s, e, budget, cutters[1:], over=spans == [(start, end)])


def _section_pieces(doc: str, blocks: Sequence[tuple[int, int]], budget: _Budget) -> list[_Piece]:
    """The pieces of consecutive body blocks. A sentence may go on into the next block (a PDF line or a
    column break); one over the budget is cut at block ends first, then at clause marks."""
    if not blocks:
        return []
    block_starts = [s for s, _ in blocks]

    def at_blocks(start: int, end: int) -> Iterable[int]:
        return block_starts[bisect.bisect_right(block_starts, start) : bisect.bisect_left(block_starts, end)]

    def at_clauses(start: int, end: int) -> Iterable[int]:
        return (m.end() for m in _CLAUSE_END.finditer(doc, start, end))

    opening = set(block_starts)
    pieces = []
    start, end = blocks[0][0], blocks[-1][1]
    for s, e in trimmed_spans(doc, start, end, sentence_ends(doc, start, end)):
        for piece in _parts(doc, s, e, budget, (at_blocks, at_clauses)):
            pieces.append(_Piece(piece.start, piece.end, piece.tokens, piece.start == s or piece.start in opening))
    return pieces


def _overlap_start(doc: str, pieces: Sequence[_Piece], start: int, end: int, budget: _Budget, overlap: int) -> int:
    """Where the chunk after pieces[start:end] begins: its trailing whole sentences within `overlap` tokens, or end."""
    candidates = []
    tokens = 0
    for k in range(end - 1, start, -1):
        tokens += pieces[k].tokens
        if tokens > overlap:
            break
        if pieces[k].opens_sentence:
            candidates.append(k)
    for k in reversed(candidates):  # the longest overlap that leaves room for the next piece
        if budget.fits_text(doc[pieces[k].start : pieces[end].end]):
            return k
    return end


def _pack(doc: str, pieces: Sequence[_Piece], budget: _Budget, overlap: int) -> Iterator[tuple[int, int]]:
    """(start, end) offsets of chunks packed greedily from the pieces of one section on one page."""
    start = first = 0  # pieces[start:first] repeat the end of the previous chunk
    while first < len(pieces):
        end = first + 1
        tokens = sum(p.tokens for p in pieces[start:end])
        while end < len(pieces) and budget.fits(tokens + pieces[end].tokens, pieces[end].end - pieces[start].start):
            tokens += pieces[end].tokens
            end += 1
        # Token counts of parts need not add up exactly (a tokenizer may merge across a space): check the whole.
        while end > first + 1 and not budget.fits_text(doc[pieces[start].start : pieces[end - 1].end]):
            end -= 1
        yield pieces[start].start, pieces[end - 1].end
        first = end
        start = _overlap_start(doc, pieces, start, end, budget, overlap) if overlap and end < len(pieces) else end


def _section_level(text: str) -> int | None:
    """The depth a section number tells ("4.2 Foo" → 2), for headings whose format gave none."""
    match = _SECTION_NUMBER.match(text)
    return min(match.group().rstrip(".").count(".") + 1, 6) if match else None


class _HeadingPath:
    """The headings above the current text, each with its depth and whether the document told it.

    A heading with a level (given, or read from its section number) replaces those at its depth and below.
    One without joins the heading just before it when no text came between them (chapter, then section);
    otherwise it replaces the headings without a level, from the first of them on. A heading without a level
    sits one below the heading before it.
    """

    def __init__(self) -> None:
        self.path: list[tuple[int, bool, str]] = []  # (depth, depth was told, text)
        self.after_heading = False

    def push(self, text: str, level: int | None) -> None:
        level = max(level, 1) if level is not None else _section_level(text)
        if level is not None:
            keep = next((i for i, (depth, _, _) in enumerate(self.path) if depth >= level), len(self.path))
        elif self.after_heading:
            keep = len(self.path)
        else:
            keep = next((i for i, (_, told, _) in enumerate(self.path) if not told), len(self.path))
        del self.path[keep:]
        if level is None:
            self.path.append((self.path[-1][0] + 1 if self.path else 1, False, text))
        else:
            self.path.append((level, True, text))
        self.after_heading = True

    def __str__(self) -> str:
        return " › ".join(text for _, _, text in self.path)[-_MAX_HEADING_CHARS:]


def chunk_blocks(
    blocks: Iterable[Block],
    *,
    max_tokens: int | None = None,
    overlap_tokens: int = 0,
    count_tokens: TokenCounter | None = None,
    max_chars: int | None = None,
    min_chars: int = 1,
) -> list[ChunkDraft]:
    """Group blocks into chunks of at most `max_tokens` by `count_tokens` (default `approximate_tokens`).

    `max_tokens` defaults to 200, or to no token limit when only `max_chars` (a hard cap in characters) is given.
    With `overlap_tokens`, a chunk that goes on in the same section and page starts with the whole trailing
    sentences of the one before that fit in it. `min_chars` drops chunks shorter than that (stray page numbers).
    """
    if max_chars is not None and max_chars < 50:
        raise ValueError("max_chars must be at least 50")
    if max_tokens is None and max_chars is None:
        max_tokens = DEFAULT_MAX_TOKENS
    if max_tokens is not None and max_tokens < 16:
        raise ValueError("max_tokens must be at least 16")
    if overlap_tokens < 0 or (max_tokens is not None and 2 * overlap_tokens >= max_tokens):
        raise ValueError("overlap_tokens must be at least 0 and less than half of max_tokens")
    budget = _Budget(
        max_tokens, max_chars, count_tokens or approximate_tokens, max_tokens is not None or overlap_tokens > 0
    )

    texts = [(normalise_text(b.text), b) for b in blocks]
    texts = [(text, b) for text, b in texts if text]
    doc = BLOCK_SEPARATOR.join(text for text, _ in texts)
    drafts: list[ChunkDraft] = []
    heading = _HeadingPath()
    section: list[tuple[int, int]] = []  # the body blocks since the last heading or page change
    section_page: int | None = None

    def flush() -> None:
        name = str(heading)
        for start, end in _pack(doc, _section_pieces(doc, section, budget), budget, overlap_tokens):
            if end - start >= min_chars:
                drafts.append(ChunkDraft(len(drafts), doc[start:end], section_page, name, start, end))
        section.clear()

    offset = 0
    for text, block in texts:
        start, offset = offset, offset + len(text) + len(BLOCK_SEPARATOR)
        if block.kind == "title" and len(text) <= _MAX_HEADING_CHARS:
            flush()
            heading.push(text, block.level)
            continue
        heading.after_heading = False
        if section and block.page != section_page:
            flush()
        section_page = block.page
        section.append((start, start + len(text)))
    flush()
    return drafts
