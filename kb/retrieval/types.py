"""What a search returns: its mode, its hits and the result as a whole (no database, no model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from kb.models import Chunk


class Mode(StrEnum):
    DENSE = "dense"
    FULLTEXT = "fulltext"
    HYBRID = "hybrid"


@dataclass
class Hit:
    """One chunk found: `score` orders the hits (cosine, BM25, a fusion's or the reranker's score); `ranks`
    and `scores` keep each ranking's own place (1-based) and score by ranking name ("dense", "fulltext",
    "rerank"). `chunk` is loaded once the ranking is final (kb.retrieval.loading)."""

    chunk_id: int
    score: float
    chunk: Chunk | None = None
    ranks: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class SearchResult:
    """`language`: the question's detected language; `scoped_language`: the language the search was narrowed to
    (None: every language of the base). `timings_ms`: each step's milliseconds by step name. `answerable` False
    with a `refusal_reason` when the base cannot answer (kb.refusal)."""

    hits: list[Hit]
    mode: Mode
    language: str
    timings_ms: dict[str, float]
    scoped_language: str | None = None
    answerable: bool = True
    refusal_reason: str = ""
