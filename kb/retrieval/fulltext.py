"""Full-text search: BM25 over the postings, with term statistics read from kb_termstat.

BM25 as in Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond" (2009), eq. 3.15, with
the non-negative IDF log(1 + (N - df + 0.5) / (df + 0.5)) used by Lucene; k1 = 1.2 and b = 0.75 are that paper's
usual values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.db import connection

from kb.language import search_config, search_text
from kb.retrieval.scope import Scope, posting_scope
from kb.retrieval.types import Hit

BM25_K1 = 1.2
BM25_B = 0.75
# Full-text candidates ranked by the question's rarer terms before the common terms are added.
BM25_POOL = 400
# Rows the candidate-selecting terms may match before more common terms stop being added (they still score).
CANDIDATE_BUDGET = 5000


def term_frequencies(*, scope: Scope, lexemes: list[str]) -> tuple[int, dict[str, int]]:
    """Chunks in the scope's base and language, and how many of them hold each lexeme (from kb_termstat).

    Document and tag filters do not narrow these statistics: IDF over the whole base ranks as well and
    stays one index look-up. Restricted documents the reader may not see are left out: each restricted
    document's counts are a pool of their own (kb.models.TermStat), so its words cannot show through.
    """
    language_clause = "AND language = %s" if scope.language else ""
    params: list[Any] = [scope.knowledge_base_id, ["", *lexemes]]
    if scope.language:
        params.append(scope.language)
    params.append(list(scope.hidden_document_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT lexeme, sum(df) FROM kb_termstat
            WHERE knowledge_base_id = %s AND lexeme = ANY(%s) {language_clause}
              AND restricted_document_id <> ALL(%s::bigint[]) AND df > 0
            GROUP BY lexeme
            HAVING sum(df) > 0
            """,
            params,
        )
        counts = {row[0]: int(row[1]) for row in cursor.fetchall()}
    return counts.pop("", 0), counts


def lexemes_of(config: str, text: str) -> list[str]:
    """The distinct lexemes of `text` under the text search configuration `config` (Postgres to_tsvector)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT lexeme FROM unnest(to_tsvector(%s::regconfig, %s))", [config, text])
        return [row[0] for row in cursor.fetchall()]


def question_lexemes(question: str, language: str) -> list[str]:
    """The question's distinct lexemes as its language's search configuration reads it (kb.language)."""
    return lexemes_of(search_config(language), search_text(question, language))


@dataclass(frozen=True)
class Vocabulary:
    """A question's lexemes and how many chunks of the scope hold each: read once per search, shared by
    full-text ranking and the refusal check."""

    lexemes: list[str]
    total: int
    df: dict[str, int]


def vocabulary(*, scope: Scope, question: str, language: str) -> Vocabulary:
    """The question's lexemes, the scope's chunk count and each lexeme's document frequency (absent: df 0)."""
    lexemes = question_lexemes(question, language)
    total, df = term_frequencies(scope=scope, lexemes=lexemes) if lexemes else (0, {})
    return Vocabulary(lexemes, total, df)


def query_terms(
    *, scope: Scope, question: str, language: str, known: Vocabulary | None = None
) -> list[tuple[str, float, int]]:
    """The question's lexemes that occur in the scope, as (lexeme, BM25 inverse document frequency, df)."""
    words = known or vocabulary(scope=scope, question=question, language=language)
    total, df = words.total, words.df
    # Terms absent from the scope cannot match; they are dropped rather than given an infinite weight.
    return [
        (lexeme, math.log(1 + (total - df[lexeme] + 0.5) / (df[lexeme] + 0.5)), df[lexeme])
        for lexeme in words.lexemes
        if lexeme in df
    ]


def fulltext_search(
    *, scope: Scope, question: str, language: str, limit: int, known: Vocabulary | None = None
) -> list[Hit]:
    """The `limit` best chunks by BM25 over the postings (kb.models.Posting: term frequency and length of each
    chunk, per lexeme), best first; score = the BM25 sum over the question's terms (>= 0, unbounded).

    Candidates are the chunks holding the question's rarer terms, as many terms as keep them near
    CANDIDATE_BUDGET postings (a question's common words would otherwise make Postgres score half the
    base); the BM25_POOL best of them by those terms then get the common terms' share too, from the
    postings' primary key.
    """
    terms = query_terms(scope=scope, question=question, language=language, known=known)
    if not terms:
        return []
    selecting: list[str] = []
    covered = 0
    for lexeme, _, df in sorted(terms, key=lambda t: t[2]):
        if selecting and covered + df > CANDIDATE_BUDGET:
            break
        selecting.append(lexeme)
        covered += df
    common = [t[0] for t in terms if t[0] not in selecting]
    where, params = posting_scope(scope)
    # A term's weight is looked up by its place in the question's arrays: no join for the planner to misjudge.
    bm25 = (
        "(%(idfs)s::float8[])[array_position(%(lexemes)s::text[], r.lexeme)] * r.tf * %(k1p1)s::float8"
        " / (r.tf + %(k1)s::float8 * (1 - %(b)s::float8 + %(b)s::float8 * r.dl / stats.avgdl))"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH rows AS MATERIALIZED (
                SELECT p.chunk_id, p.lexeme, p.tf, p.dl FROM kb_posting p
                WHERE {where} AND p.lexeme = ANY(%(selecting)s)
            ),
            stats AS MATERIALIZED (SELECT greatest(avg(dl), 1)::float8 AS avgdl FROM rows),
            part AS MATERIALIZED (
                SELECT r.chunk_id, sum({bm25}) AS s FROM rows r, stats
                GROUP BY r.chunk_id ORDER BY s DESC, r.chunk_id LIMIT %(pool)s
            ),
            rest AS MATERIALIZED (
                SELECT r.chunk_id, {bm25} AS s FROM kb_posting r, stats
                WHERE r.chunk_id = ANY(ARRAY(SELECT chunk_id FROM part)) AND r.lexeme = ANY(%(common)s)
            )
            SELECT chunk_id, sum(s) FROM (SELECT chunk_id, s FROM part UNION ALL SELECT chunk_id, s FROM rest) x
            GROUP BY chunk_id ORDER BY 2 DESC, 1 LIMIT %(limit)s
            """,
            {
                **params,
                "lexemes": [t[0] for t in terms],
                "idfs": [t[1] for t in terms],
                "selecting": selecting,
                "common": common,
                "k1p1": BM25_K1 + 1,
                "k1": BM25_K1,
                "b": BM25_B,
                "pool": BM25_POOL,
                "limit": limit,
            },
        )
        rows = cursor.fetchall()
    return [
        Hit(chunk_id=row[0], score=float(row[1]), ranks={"fulltext": i + 1}, scores={"fulltext": float(row[1])})
        for i, row in enumerate(rows)
    ]


@dataclass(frozen=True)
class ScopeText:
    """The text of a scope's passages, as the refusal check asks about it (kb.refusal.Passages)."""

    scope: Scope

    def lexemes(self, config: str, text: str) -> list[str]:
        return lexemes_of(config, text)

    def holding(self, lexemes: list[str]) -> set[str]:
        """Which of `lexemes` occur in at least one passage of the scope's base and language."""
        return set(term_frequencies(scope=self.scope, lexemes=lexemes)[1]) if lexemes else set()

    def holds_phrase(self, config: str, phrase: str) -> bool:
        """Whether a passage of the scope holds `phrase` as written (phraseto_tsquery under `config`)."""
        where, params = self.scope.where()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT EXISTS (SELECT 1 FROM kb_chunk c WHERE {where} "
                "AND c.search_vector @@ phraseto_tsquery(%s::regconfig, %s))",
                [*params, config, phrase],
            )
            row = cursor.fetchone()
        return bool(row and row[0])
