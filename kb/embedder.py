"""The process's embedders: each model loaded once, on first use, and kept; used only through the `Encoder`
protocol (kb.encoder_base; kb.encoders holds the runtimes).

A knowledge base records the embedder its chunks were embedded with (`KnowledgeBase.embedder`); its
questions are embedded by the same one, so a base keeps answering while another is re-embedded
(`manage.py reembed`). Documents and questions are separate calls: models with query/passage prefixes
(e5) need them, and questions run on fewer threads beside the chat model.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import numpy as np
from django.conf import settings

from core.lazy import process_singleton
from kb import encoders
from kb.encoder_base import Encoder

logger = logging.getLogger(__name__)


def default_name() -> str:
    """The embedder new knowledge bases get: DOCENT_EMBED_MODEL, else multilingual-e5-small."""
    return settings.DOCENT_EMBED_MODEL or encoders.E5


def get(name: str | None = None) -> Encoder:
    """The loaded encoder called `name` (default: `default_name()`); RuntimeError when it cannot load."""
    return _load(name or default_name())


@process_singleton
def _load(name: str) -> Encoder:
    started = time.perf_counter()
    encoder = encoders.load(name, backend=settings.DOCENT_EMBED_BACKEND, query_encoder=settings.DOCENT_QUERY_ENCODER)
    logger.info("loaded embedder %s in %.1f s", name, time.perf_counter() - started)
    return encoder


def model_name(name: str | None = None) -> str:
    return get(name).name


def dimension(name: str | None = None) -> int:
    return get(name).dimension


def embed_documents(texts: list[str], name: str | None = None) -> np.ndarray:
    """(len(texts), dimension) float32, normalised; on DOCENT_EMBED_THREADS threads (0: every core)."""
    return get(name).embed_documents(texts, threads=settings.DOCENT_EMBED_THREADS)


def embed_query(text: str, name: str | None = None) -> np.ndarray:
    """(dimension,) float32 for one question, on DOCENT_QUERY_ENCODER_THREADS threads (default 1: the
    question is embedded while Postgres ranks full-text on the other core).

    The DOCENT_QUERY_EMBED_CACHE most recent questions' vectors are kept per process, by (embedder, text): a
    question asked again skips the encoder (multilingual-e5-small, 40 questions of ~8 words: p50 38 ms embedded,
    under 0.01 ms from the cache, on one thread of this 2-core machine while tests ran beside it). The vector
    returned is read-only, since the cache hands the same array to every caller.
    """
    name = name or default_name()
    if settings.DOCENT_QUERY_EMBED_CACHE <= 0:
        return _embed_query(name, text)
    return _query_cache()(name, text)


def _embed_query(name: str, text: str) -> np.ndarray:
    vector = get(name).embed_queries([text], threads=settings.DOCENT_QUERY_ENCODER_THREADS)[0]
    vector.setflags(write=False)
    return vector


@process_singleton
def _query_cache() -> functools._lru_cache_wrapper[np.ndarray]:
    """`_embed_query` behind an LRU of DOCENT_QUERY_EMBED_CACHE entries (sized on first use; thread-safe)."""
    return functools.lru_cache(maxsize=settings.DOCENT_QUERY_EMBED_CACHE)(_embed_query)


def query_cache_info() -> Any:
    """functools' cache statistics of the question vectors (hits, misses, maxsize, currsize)."""
    return _query_cache().cache_info()


def embed_sentences(texts: list[str], name: str | None = None) -> np.ndarray:
    """Short texts compared with one another (an answer's sentences against its sources'), in the web process,
    on the question encoder's threads."""
    return get(name).embed_queries(texts, threads=settings.DOCENT_QUERY_ENCODER_THREADS)


def max_tokens(name: str | None = None) -> int:
    """The most tokens the model reads of one text (e5: 510, all-MiniLM-L6-v2: 256); the rest is ignored."""
    return int(get(name).max_tokens)


def count_tokens(text: str, name: str | None = None) -> int:
    """Tokens of `text` by the embedder's own tokenizer, without special tokens."""
    return get(name).count_tokens(text)


def embed_texts(texts: list[str], *, name: str | None = None, as_queries: bool = False) -> np.ndarray:
    """(len(texts), dimension) float32, normalised, for callers in the web process (the API's embeddings): on
    the question encoder's threads, so a batch does not take every core from the chat model. `as_queries`
    embeds them as questions (e5's "query: " prefix), else as passages."""
    encoder = get(name)
    run = encoder.embed_queries if as_queries else encoder.embed_documents
    return run(texts, threads=settings.DOCENT_QUERY_ENCODER_THREADS)
