"""Optional cross-encoder reranking of the fused candidates (`DOCENT_RERANK_MODEL`, off by default).

A cross-encoder reads the question and each passage together, which ranks better than comparing two
separately made vectors, at the cost of one model pass per candidate: `DOCENT_RERANK_CANDIDATES` (20)
passages on CPU take tens to hundreds of milliseconds depending on the model. Any sentence-transformers
CrossEncoder path works (e.g. a local copy of bge-reranker-v2-m3, which reads Chinese and French); none ships
with Docent, and none is fetched from a hub.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.conf import settings

from core.lazy import process_singleton
from kb.retrieval.types import Hit

logger = logging.getLogger(__name__)


@process_singleton
def get_model() -> Any:
    """The cross-encoder at DOCENT_RERANK_MODEL, loaded once per process (sentence-transformers, on CPU)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import CrossEncoder  # torch: loaded only where a reranker is configured

    model = CrossEncoder(settings.DOCENT_RERANK_MODEL, device="cpu", max_length=512)
    logger.info("loaded reranker %s", settings.DOCENT_RERANK_MODEL)
    return model


def rerank(question: str, hits: list[Hit], limit: int) -> list[Hit]:
    """The `limit` best of `hits` by the cross-encoder's score (kept in `hit.scores["rerank"]`), best first;
    `hits` need their chunks loaded."""
    if not hits:
        return hits
    pairs = [(question, f"{h.chunk.heading}\n{h.chunk.text}" if h.chunk else "") for h in hits]
    scores = get_model().predict(pairs, batch_size=32, show_progress_bar=False)
    for hit, score in zip(hits, scores, strict=True):
        hit.scores["rerank"] = float(score)
        hit.score = float(score)
    return sorted(hits, key=lambda h: h.score, reverse=True)[:limit]
