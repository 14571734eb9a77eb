"""Decide that a knowledge base cannot answer a question, before any model is called.

Refused only on evidence that a question is about something the documents never mention: a name or a
term of art that occurs in no passage. Two signals, both computed in SQL within the search's scope:

1. an identifier of the question (`AppArmor`, `SOURCE_DATE_EPOCH`, `dh-golang`) that appears in no passage,
   unless it is an ordinary word of the language (`savoir-vivre`, `e-mail`: Zipf frequency >= 3 in wordfreq);
2. a word of the question that general language does not know (absent from wordfreq's lists for the
   question's language: `autopkgtest`, `debcargo`, `yml`) and that no passage holds.

What is no longer used, and why (measured with `eval_qa` on the maint-guide dev set and on the repository's
own set over small bases, eval/own-set): the share of the question's words absent from the knowledge base
refused 55% of the answerable paraphrases on small bases (a question's everyday words are missing from a
two-page manual), and neither the embedder's scores (best passage, best sentence, gap to the runner-up,
z-score against the base) nor the chat model's own yes/no judgement separated answerable from unanswerable
questions on either set. Questions whose topic is absent but worded in ordinary words therefore reach the
model (README, "Refusal").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from kb.language import search_config, search_text

# Identifiers written with capitals (AppArmor, SOURCE_DATE_EPOCH, GPG) or joined by hyphens (dh-golang,
# salsa-ci) — not French inversions like "faut-il".
_CAPITALISED = re.compile(r"\b[A-Za-z]*[A-Z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*[A-Z0-9][A-Za-z0-9_]*\b")
_HYPHENATED = re.compile(r"\b[a-z][a-z0-9]*(?:-[a-z0-9]+)+\b")
_FRENCH_INVERSION = re.compile(r"-(?:t-)?(?:je|tu|il|elle|on|nous|vous|ils|elles|ce|ci|là)$", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]{5,}")  # candidate unknown words: letters only, five or more
_HAN = re.compile(r"[\u3400-\u9fff]")
# Zipf frequency (log10 of occurrences per billion words, wordfreq) from which an identifier is an ordinary
# word of the language: "e-mail" 4.6, "savoir-vivre" 5.0, against "AppArmor" 1.2, "dh-golang" 1.7, "AZERTY" 2.4.
ORDINARY_WORD_ZIPF = 3.0


class Passages(Protocol):
    """What the check asks of the passages a search may use (kb.retrieval.fulltext.ScopeText answers in SQL)."""

    def lexemes(self, config: str, text: str) -> list[str]:
        """The distinct lexemes of `text` under the text search configuration `config`."""
        ...

    def holding(self, lexemes: list[str]) -> set[str]:
        """Which of `lexemes` occur in at least one passage."""
        ...

    def holds_phrase(self, config: str, phrase: str) -> bool:
        """Whether some passage holds `phrase` as written."""
        ...


class KnownWords(Protocol):
    """The question's lexemes and how many passages hold each, as the search read them (kb.retrieval's
    Vocabulary)."""

    @property
    def lexemes(self) -> list[str]: ...

    @property
    def df(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class RefusalCheck:
    refuse: bool
    missing_terms: list[str]  # identifiers and unknown words that no passage holds
    missing_word_share: float  # share of the question's lexemes absent from the scope (reported, not used)


@lru_cache(maxsize=4096)
def zipf(word: str, language: str) -> float:
    """wordfreq's Zipf frequency of `word` in `language` (0.0: not in its lists)."""
    from wordfreq import zipf_frequency

    return float(zipf_frequency(word, language if language in ("en", "fr", "zh") else "en"))


def identifiers(question: str) -> list[str]:
    found = []
    for term in _CAPITALISED.findall(question) + _HYPHENATED.findall(question):
        if len(term) >= 3 and not _FRENCH_INVERSION.search(term) and term not in found:
            found.append(term)
    return found


def unknown_words(question: str, language: str) -> list[str]:
    """Words of at least five letters that wordfreq does not know in `language` (nor in English, which
    technical French and Chinese questions borrow from)."""
    if language == "zh":
        candidates = [w for w in question.split() if w.isascii()] + [
            w for w in search_text(question, "zh").split() if not _HAN.search(w)
        ]
    else:
        candidates = _WORD.findall(question)
    found: list[str] = []
    for word in candidates:
        if not _WORD.fullmatch(word) or word.lower() in (w.lower() for w in found):
            continue
        # Latin words in a Chinese question are looked up in English only (wordfreq's Chinese list gives any
        # Latin string a small frequency)
        languages = ("en",) if language == "zh" else (language, "en")
        if all(zipf(word.lower(), lang) == 0.0 for lang in languages):
            found.append(word)
    return found


def _identifier_missing(passages: Passages, config: str, term: str) -> bool:
    """A capitalised identifier must occur as written; a hyphenated one needs each of its parts."""
    if any(ch.isupper() for ch in term):
        return not passages.holds_phrase(config, term)
    parts = passages.lexemes(config, term.replace("-", " "))
    return bool(set(parts) - passages.holding(parts))


def _word_missing(passages: Passages, config: str, word: str) -> bool:
    lexemes = passages.lexemes(config, word)
    return bool(lexemes) and not (set(lexemes) & passages.holding(lexemes))


def check(*, passages: Passages, question: str, language: str, known: KnownWords) -> RefusalCheck:
    """Whether the passages a search may use cannot answer `question` (in `language`, ISO 639-1), and why.

    `known`: the question's lexemes and their document frequencies, as the search read them.
    """
    config = search_config(language)
    missing = [
        term
        for term in identifiers(question)
        if zipf(term.lower(), language) < ORDINARY_WORD_ZIPF and _identifier_missing(passages, config, term)
    ]
    missing += [
        word
        for word in unknown_words(question, language)
        if not any(word.lower() in term.lower() for term in missing) and _word_missing(passages, config, word)
    ]
    words = known.lexemes
    absent = [w for w in words if w not in known.df]
    share = len(absent) / len(words) if words else 1.0
    return RefusalCheck(refuse=bool(missing), missing_terms=missing, missing_word_share=round(share, 3))


def reason(verdict: RefusalCheck | None) -> str:
    """Why a search cannot be answered, for the question log and the chat's timings ("" when it can be):
    `verdict` None when no passage matched at all."""
    if verdict is None:
        return "no passage matches"
    if verdict.refuse:
        return f"not in the knowledge base: {', '.join(verdict.missing_terms)}"
    return ""
