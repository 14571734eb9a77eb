"""Attribute an answer to its sources when the model wrote no citation markers.

Small models often answer correctly from a source without writing [n]. Each answer sentence is
compared with the sources it was given (the stored chunk embeddings); a source is cited when some
sentence is at least ATTRIBUTION_THRESHOLD similar to it.
"""

from __future__ import annotations

import numpy as np

from chat.prompts import split_answer_sentences
from kb import embedder
from kb.models import Chunk

# Cosine similarity of all-MiniLM-L6-v2 above which a sentence is taken to restate a passage.
ATTRIBUTION_THRESHOLD = 0.6


def attribute_by_similarity(answer: str, chunk_by_number: dict[int, int]) -> list[int]:
    sentences = [s for s in split_answer_sentences(answer) if len(s) >= 12]
    if not sentences or not chunk_by_number:
        return []
    vectors = dict(Chunk.objects.filter(pk__in=chunk_by_number.values()).values_list("pk", "embedding"))
    numbers = [n for n, chunk_id in chunk_by_number.items() if chunk_id in vectors]
    if not numbers:
        return []
    sources = np.array([vectors[chunk_by_number[n]] for n in numbers], dtype="float32")
    similarities = embedder.embed_documents(sentences) @ sources.T  # both sides are unit vectors
    cited: list[int] = []
    for row in similarities:
        best = int(np.argmax(row))
        if row[best] >= ATTRIBUTION_THRESHOLD and numbers[best] not in cited:
            cited.append(numbers[best])
    return cited
