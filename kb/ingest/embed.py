"""Embed chunk drafts in batches with their knowledge base's embedder."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kb import embedder
from kb.ingest.chunk import ChunkDraft


def embedding_text(draft: ChunkDraft, title: str) -> str:
    # The heading and title give a chunk the context its own words often lack ("Step 3: hold for 10 s").
    context = " › ".join(part for part in (title, draft.heading) if part)
    return f"{context}\n{draft.text}" if context else draft.text


def embed_chunks(
    drafts: list[ChunkDraft],
    *,
    title: str,
    model: str | None = None,
    on_progress: Callable[[float], None] | None = None,
    batch: int = 256,
) -> np.ndarray:
    """(len(drafts), dimension) vectors of the chunks with their title › heading, by the embedder `model`."""
    texts = [embedding_text(d, title) for d in drafts]
    parts = []
    for start in range(0, len(texts), batch):
        parts.append(embedder.embed_documents(texts[start : start + batch], model))
        if on_progress:
            on_progress(min(1.0, (start + batch) / len(texts)))
    if not parts:
        return embedder.embed_documents([], model)
    return np.vstack(parts)
