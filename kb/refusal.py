"""Decide that a knowledge base cannot answer a question, before any model is called.

Similarity scores do not separate answerable from unanswerable questions (measured on the maint-guide
dev set: the best passage of an unanswerable question scored 0.43-0.66 cosine, of an answerable one
0.31-0.84). What does separate them is vocabulary: a question about something the documents never
mention names it, and that name occurs nowhere in the knowledge base. Two signals, both computed in
SQL within the search's scope:

1. an identifier of the question (`AppArmor`, `SOURCE_DATE_EPOCH`, `dh-golang`) that appears in no
   passage;
2. a large share of the question's content words appearing in no passage at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import connection

if TYPE_CHECKING:
    from kb.retrieval import Scope, Vocabulary

from kb.language import search_config

# Identifiers written with capitals (AppArmor, SOURCE_DATE_EPOCH, GPG) or joined by hyphens (dh-golang,
# salsa-ci) — not French inversions like "faut-il".
_CAPITALISED = re.compile(r"\b[A-Za-z]*[A-Z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*[A-Z0-9][A-Za-z0-9_]*\b")
_HYPHENATED = re.compile(r"\b[a-z][a-z0-9]*(?:-[a-z0-9]+)+\b")
_FRENCH_INVERSION = re.compile(r"-(?:t-)?(?:je|tu|il|elle|on|nous|vous|ils|elles|ce|ci|là)$", re.IGNORECASE)
# Share of the question's content words absent from the scope at which it is refused (calibrated on the
# maint-guide dev set: answerable questions reached 0.18, unanswerable ones without a missing identifier
# 0.22 and 0.5).
MISSING_WORDS_SHARE = 0.2
# ... and at least this many of them: one unmatched word in a five-word question is a paraphrase
# ("réinitialiser" for "réinitialisation"), not a topic the documents lack.
MISSING_WORDS_MIN = 2


@dataclass(frozen=True)
class RefusalCheck:
    refuse: bool
    missing_terms: list[str]
    missing_word_share: float


def identifiers(question: str) -> list[str]:
    found = []
    for term in _CAPITALISED.findall(question) + _HYPHENATED.findall(question):
        if len(term) >= 3 and not _FRENCH_INVERSION.search(term) and term not in found:
            found.append(term)
    return found


def _present(scope: Scope, config: str, lexemes: list[str]) -> set[str]:
    """Which of these lexemes occur in at least one passage of the scope's base and language."""
    from kb.retrieval import term_frequencies

    return set(term_frequencies(scope=scope, lexemes=lexemes)[1]) if lexemes else set()


def _lexemes(config: str, text: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT lexeme FROM unnest(to_tsvector(%s::regconfig, %s))", [config, text])
        return [row[0] for row in cursor.fetchall()]


def _identifier_missing(scope: Scope, config: str, term: str) -> bool:
    """A capitalised identifier must occur as written; a hyphenated one needs each of its parts."""
    if any(ch.isupper() for ch in term):
        where, params = scope.where()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT EXISTS (SELECT 1 FROM kb_chunk c WHERE {where} "
                "AND c.search_vector @@ phraseto_tsquery(%s::regconfig, %s))",
                [*params, config, term],
            )
            return not cursor.fetchone()[0]
    parts = _lexemes(config, term.replace("-", " "))
    return bool(set(parts) - _present(scope, config, parts))


def check(*, scope: Scope, question: str, language: str, known: Vocabulary) -> RefusalCheck:
    """`known`: the question's lexemes and their document frequencies, as the search read them."""
    config = search_config(language)
    missing = [term for term in identifiers(question) if _identifier_missing(scope, config, term)]
    words = known.lexemes
    absent = [w for w in words if w not in known.df]
    # A hyphenated word ("one-line") is indexed whole and in parts; it is present when its parts are.
    for word in re.findall(r"\w+(?:-\w+)+", question):
        lexemes = _lexemes(config, word)
        parts = [x for x in lexemes if "-" not in x]
        if parts and not set(parts) - _present(scope, config, parts):
            absent = [x for x in absent if not ("-" in x and x in lexemes)]
    share = len(absent) / len(words) if words else 1.0
    unknown_topic = share >= MISSING_WORDS_SHARE and len(absent) >= MISSING_WORDS_MIN
    return RefusalCheck(
        refuse=bool(missing) or unknown_topic, missing_terms=missing, missing_word_share=round(share, 3)
    )
