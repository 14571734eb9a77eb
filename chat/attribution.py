"""Attribute an answer to its sources when the model wrote no citation markers.

Small models often answer from a source without writing [n]. Each answer sentence is matched against
the sentences of the sources it was given: first by word overlap (small models copy phrases), then by
embedding similarity. A whole-passage embedding is too coarse for this: a passage covers several
topics, and measured on the demo manual an answer sentence scored 0.37 against the passage it copied
and 0.47 against a neighbouring one, while sentence against sentence separates them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from core.text import split_sentences
from kb import embedder, encoders

# Share of an answer sentence's words found in one source sentence for it to count as copied from it, and
# cosine similarity (by ATTRIBUTION_ENCODER) of sentence pairs that restate each other. Calibrated with
# `manage.py eval_qa --attribution` on the reference answers of maint-guide and of eval/own-set (README,
# "Citations"): at 0.5 / 0.9, precision 0.71 and recall 0.78 on maint-guide, 0.95 and 0.96 on own-set.
# multilingual-e5-small's similarities are compressed (an unrelated pair scores ~0.75, a paraphrase ~0.92):
# 0.92 lost recall on both; the multilingual Universal Sentence Encoder at its best (0.6) had recall 0.75
# and 0.82.
OVERLAP_THRESHOLD = 0.5
# Sentence against sentence, across languages, whatever embedder the knowledge base's passages use: the
# thresholds belong to this model.
ATTRIBUTION_ENCODER = encoders.E5
SIMILARITY_THRESHOLD = 0.9
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


@dataclass(frozen=True)
class SentenceMatch:
    """An answer sentence's best source sentence by word overlap and by embedding similarity."""

    sentence: str
    overlap: float
    overlap_source: tuple[int, str]
    similarity: float | None = None  # None: not embedded (its overlap already decided it)
    similarity_source: tuple[int, str] | None = None

    def attribution(self, overlap_threshold: float, similarity_threshold: float) -> Attribution | None:
        if self.overlap >= overlap_threshold:
            number, quote = self.overlap_source
        elif self.similarity is not None and self.similarity_source and self.similarity >= similarity_threshold:
            number, quote = self.similarity_source
        else:
            return None
        return Attribution(number, quote.strip())


def match_sentences(answer: str, sources: dict[int, str], *, embed_all: bool = False) -> list[SentenceMatch]:
    """Each answer sentence's best match among the sources' sentences.

    Sentences whose overlap reaches OVERLAP_THRESHOLD are not embedded unless `embed_all` (calibration).
    """
    candidates = [(n, s) for n, text in sources.items() for s in split_sentences(text) if len(s.strip()) > 10]
    sentences = [s for s in split_sentences(answer, answer=True) if len(_tokens(s)) >= MIN_ANSWER_TOKENS]
    if not candidates or not sentences:
        return []
    candidate_tokens = [_tokens(s) for _, s in candidates]
    matches = []
    for sentence in sentences:
        tokens = _tokens(sentence)
        overlaps = [len(tokens & other) / len(tokens) for other in candidate_tokens]
        best = int(np.argmax(overlaps))
        matches.append(SentenceMatch(sentence, overlaps[best], candidates[best]))
    unmatched = [i for i, m in enumerate(matches) if embed_all or m.overlap < OVERLAP_THRESHOLD]
    if unmatched:
        vectors = embedder.embed_sentences(
            [matches[i].sentence for i in unmatched] + [s for _, s in candidates], ATTRIBUTION_ENCODER
        )
        similarity = vectors[: len(unmatched)] @ vectors[len(unmatched) :].T
        for i, row in zip(unmatched, similarity, strict=True):
            best = int(np.argmax(row))
            matches[i] = replace(matches[i], similarity=float(row[best]), similarity_source=candidates[best])
    return matches


def attribute(answer: str, sources: dict[int, str]) -> list[Attribution]:
    """Source numbers (in first-use order) whose sentences the answer's sentences restate."""
    found: dict[int, Attribution] = {}
    for match in match_sentences(answer, sources):
        if attribution := match.attribution(OVERLAP_THRESHOLD, SIMILARITY_THRESHOLD):
            found.setdefault(attribution.number, attribution)
    return list(found.values())
