"""Sentences and token estimates for English, French and Chinese text: one splitter for documents and answers.

Pure: no Django, no I/O. The chunker (kb.ingest.chunk) cuts documents with `sentence_ends`; answer attribution
(chat.attribution) splits both the sources and the answer with `split_sentences`; prompt budgets and the remote
model backend count with `approximate_tokens`.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Iterator

from core.markers import strip_markers

# CJK characters, as a regex class body: ideographs, kana, Hangul, and full-width forms and punctuation.
CJK = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK_CHAR = re.compile(f"[{CJK}]")
_LATIN_WORD = re.compile(f"[^\\s{CJK}]+")

# Closing quotes and brackets stay with the sentence they close; French puts a space before its » (and ? ! ; :).
_CLOSERS = r""")\]"'”’»›」』）》〉】"""
_SENTENCE_END = re.compile(f"(?P<mark>[.!?;…]+|[。！？；]+)[{_CLOSERS}]*(?:[ \u00a0\u202f]+[»›][{_CLOSERS}]*)?")
_CJK_SENTENCE_MARKS = "。！？；"
_LATIN_MARKS = ".!?;…,:"
# A full stop after one of these does not end the sentence (English and French manuals).
_ABBREVIATIONS = frozenset(
    "e.g. E.g. i.e. I.e. etc. cf. Cf. vs. approx. env. ex. Ex. fig. Fig. p. pp. vol. Vol. ch. chap. sec. Sec. "
    "art. Art. no. n°. Dr. Mr. Mrs. Ms. St. Prof. M. MM. Mme. Mmes. Mlle. Mlles. Me.".split()
)
_OPENERS = "([{«“‘\"'"


def approximate_tokens(text: str) -> int:
    """A tokenizer-free estimate: 1 token per CJK character, about 1.3 per other word.

    Words longer than 8 characters (part numbers, URLs, compounds) count one token per 6 characters instead,
    as subword tokenizers split them. Meant for tests and for callers without the model's tokenizer.
    """
    words = sum(max(1.3, len(word) / 6) for word in _LATIN_WORD.findall(text))
    return len(_CJK_CHAR.findall(text)) + math.ceil(words)


def is_cjk(char: str) -> bool:
    """Whether `char` (one character, or "") is a CJK character."""
    return bool(char) and _CJK_CHAR.match(char) is not None


def _is_abbreviation(text: str, dot: int, floor: int) -> bool:
    begin = dot
    while begin > floor and not text[begin - 1].isspace() and dot - begin < 12:
        begin -= 1
    return text[begin : dot + 1].lstrip(_OPENERS) in _ABBREVIATIONS


def sentence_ends(text: str, start: int, end: int, *, stop_after_space: bool = False) -> Iterator[int]:
    """Offsets in text[start:end] just after each sentence end (with its closing quotes or brackets).

    A full stop after a space ends no sentence (the dot leaders of a table of contents, ". . . 33") unless
    `stop_after_space`.
    """
    for match in _SENTENCE_END.finditer(text, start, end):
        mark, after = match["mark"], match.end()
        before = text[match.start() - 1] if match.start() > start else ""
        if mark[0] in _CJK_SENTENCE_MARKS or (mark[0] == "…" and is_cjk(before)):
            yield after  # Chinese needs no space after a sentence
            continue
        following = text[after] if after < end else ""
        if following and not following.isspace() and not (is_cjk(following) and is_cjk(before)):
            continue  # 1.7, e.g, www.example.com
        if mark == "." and (
            (before.isspace() and not stop_after_space) or _is_abbreviation(text, match.start(), start)
        ):
            continue  # dot leaders of a table of contents (". . . 33"), e.g., M. Dupont
        nxt = after
        while nxt < end and text[nxt].isspace():
            nxt += 1
        # A sentence starts with neither punctuation nor, after . ! ? …, a lower-case letter:
        # "« Quoi ? » dit-elle" and "approx. the" go on.
        if nxt < end and (text[nxt] in _LATIN_MARKS or (mark != ";" and text[nxt].islower())):
            continue
        yield after


def trimmed_spans(text: str, start: int, end: int, cuts: Iterable[int]) -> list[tuple[int, int]]:
    """text[start:end] cut at `cuts`, each part without the whitespace around it; empty parts dropped."""
    spans = []
    left = start
    for cut in itertools.chain(cuts, [end]):
        s, e = left, cut
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            spans.append((s, e))
        left = cut
    return spans


def split_sentences(text: str, *, answer: bool = False) -> list[str]:
    """Sentences of English, French or Chinese text, without the whitespace between them.

    `answer=True` reads `text` as a model's answer rather than a document's text: its citation markers
    (core.markers) are removed first, a line break always ends a sentence (answers are Markdown: list items,
    lines), and a full stop after a space ends one too, since that is where a removed marker stood
    ("Hold TEMP [1]. Then" → "Hold TEMP .", "Then"); in a document it is a table of contents' dot leader.
    """
    if not answer:
        return [text[s:e] for s, e in trimmed_spans(text, 0, len(text), sentence_ends(text, 0, len(text)))]
    sentences: list[str] = []
    for line in strip_markers(text).split("\n"):
        cuts = sentence_ends(line, 0, len(line), stop_after_space=True)
        sentences.extend(line[s:e] for s, e in trimmed_spans(line, 0, len(line), cuts))
    return sentences
