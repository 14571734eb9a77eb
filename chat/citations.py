"""Attribute an answer to its sources when the model wrote no citation markers.

Small models often answer from a source without writing [n]. Each answer sentence is matched against
the sentences of the sources it was given: first by word overlap (small models copy phrases), then by
embedding similarity. A whole-passage embedding is too coarse for this: a passage covers several
topics, and measured on the demo manual an answer sentence scored 0.37 against the passage it copied
and 0.47 against a neighbouring one, while sentence against sentence separates them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from chat.prompts import split_answer_sentences
from kb import embedder
from kb.ingest.chunk import split_sentences

# Share of an answer sentence's words found in one source sentence for it to count as copied from it.
OVERLAP_THRESHOLD = 0.6
# Cosine similarity (all-MiniLM-L6-v2) of sentence pairs that restate each other.
SIMILARITY_THRESHOLD = 0.7
MIN_ANSWER_TOKENS = 4

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_HAN = re.compile(r"[\u3400-\u9fff]")


@dataclass(frozen=True)
class Attribution:
    number: int
    quote: str


def _tokens(text: str) -> set[str]:
    tokens: set[str] = set()
    for word in _WORD.findall(text.lower()):
        if _HAN.search(word):
            # Chinese has no spaces: character bigrams stand in for words.
            tokens.update(word[i : i + 2] for i in range(max(1, len(word) - 1)))
        elif len(word) > 1 or word.isdigit():
            tokens.add(word)
    return tokens


def attribute(answer: str, sources: dict[int, str]) -> list[Attribution]:
    """Source numbers (in first-use order) whose sentences the answer's sentences restate."""
    candidates = [(n, s) for n, text in sources.items() for s in split_sentences(text) if len(s.strip()) > 10]
    sentences = [s for s in split_answer_sentences(answer) if len(_tokens(s)) >= MIN_ANSWER_TOKENS]
    if not candidates or not sentences:
        return []
    candidate_tokens = [_tokens(s) for _, s in candidates]
    found: dict[int, Attribution] = {}
    unmatched: list[str] = []
    for sentence in sentences:
        tokens = _tokens(sentence)
        overlaps = [len(tokens & other) / len(tokens) for other in candidate_tokens]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= OVERLAP_THRESHOLD:
            number, quote = candidates[best]
            found.setdefault(number, Attribution(number, quote.strip()))
        else:
            unmatched.append(sentence)
    if unmatched:
        vectors = embedder.embed_documents(unmatched + [s for _, s in candidates])
        similarity = vectors[: len(unmatched)] @ vectors[len(unmatched) :].T
        for row in similarity:
            best = int(np.argmax(row))
            if row[best] >= SIMILARITY_THRESHOLD:
                number, quote = candidates[best]
                found.setdefault(number, Attribution(number, quote.strip()))
    return list(found.values())
