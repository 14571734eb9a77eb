"""Language of a text (en, fr, zh) and how Postgres full-text search should read it.

A deterministic heuristic is enough for the three languages Docent serves and costs microseconds:
Han characters mark Chinese; otherwise French and English are told apart by their commonest words.
"""

from __future__ import annotations

import re
from functools import lru_cache
from types import ModuleType

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[a-zàâäçéèêëîïôöùûüÿœæ']+", re.IGNORECASE)
_FRENCH = frozenset(
    "le la les un une des du de et est sont dans pour que qui sur avec pas par au aux ce cette ces il elle "
    "nous vous ils se sa son ses leur plus ou mais donc être avoir fait comme tout tous été très où".split()
)
_ENGLISH = frozenset(
    "the a an and is are in for that which on with not by to of this these it he she we you they its their "
    "more or but so be have has do does was were been very where how what".split()
)
_CONFIGS = {"en": "english", "fr": "french", "zh": "simple"}


def detect_language(text: str, default: str = "en") -> str:
    sample = text[:4000]
    han = len(_HAN.findall(sample))
    letters = sum(1 for ch in sample if ch.isalpha())
    if letters and han / letters > 0.2:
        return "zh"
    words = [w.lower() for w in _WORD.findall(sample)]
    french = sum(1 for w in words if w in _FRENCH) + 2 * sum(1 for ch in sample if ch in "éèêàçùœ")
    english = sum(1 for w in words if w in _ENGLISH)
    if french == english == 0:
        return default
    return "fr" if french > english else "en"


def search_config(language: str) -> str:
    return _CONFIGS.get(language, "simple")


@lru_cache(maxsize=1)
def _jieba() -> ModuleType:
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def search_text(text: str, language: str) -> str:
    """The text as the full-text parser should see it: Chinese is cut into words by jieba."""
    if language != "zh":
        return text
    return " ".join(token for token in _jieba().cut_for_search(text) if token.strip())
