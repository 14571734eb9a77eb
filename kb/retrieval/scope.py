"""Where a search looks, as SQL: one knowledge base, optionally some documents, tags and one language, and
never the restricted documents the reader may not see.

Every filter is a WHERE clause of the search itself, never a pass over its results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection


@dataclass(frozen=True)
class Scope:
    """Where to search: always one knowledge base, optionally some documents, tags and one language.

    `hidden_document_ids`: the base's restricted documents the reader may not see
    (kb.selectors.document_ids_hidden_from); they are left out of every ranking and of the term statistics.
    """

    knowledge_base_id: int
    document_ids: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    language: str | None = None
    hidden_document_ids: tuple[int, ...] = ()

    def where(self, alias: str = "c") -> tuple[str, list[Any]]:
        """The scope as a WHERE clause over kb_chunk aliased `alias`, with its positional parameters."""
        clauses = [f"{alias}.knowledge_base_id = %s"]
        params: list[Any] = [self.knowledge_base_id]
        if self.hidden_document_ids:
            clauses.append(f"{alias}.document_id <> ALL(%s)")
            params.append(list(self.hidden_document_ids))
        if self.language:
            clauses.append(f"{alias}.language = %s")
            params.append(self.language)
        if self.document_ids:
            clauses.append(f"{alias}.document_id = ANY(%s)")
            params.append(list(self.document_ids))
        if self.tags:
            clauses.append(f"{alias}.document_id IN (SELECT id FROM kb_document WHERE tags && %s::varchar[])")
            params.append(list(self.tags))
        return " AND ".join(clauses), params


def posting_scope(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The scope as a WHERE clause over kb_posting aliased `p` (which carries base, language and document), with
    its named parameters."""
    clauses = ["p.knowledge_base_id = %(kb)s"]
    params: dict[str, Any] = {"kb": scope.knowledge_base_id}
    if scope.language:
        clauses.append("p.language = %(language)s")
        params["language"] = scope.language
    else:  # every language of the base: keeps the (base, language, lexeme) index usable
        clauses.append(
            "p.language IN (SELECT language FROM kb_termstat WHERE knowledge_base_id = %(kb)s AND lexeme = '')"
        )
    if scope.document_ids:
        clauses.append("p.document_id = ANY(%(documents)s)")
        params["documents"] = list(scope.document_ids)
    if scope.hidden_document_ids:
        clauses.append("p.document_id <> ALL(%(hidden)s)")
        params["hidden"] = list(scope.hidden_document_ids)
    if scope.tags:
        clauses.append("p.document_id IN (SELECT id FROM kb_document WHERE tags && %(tags)s::varchar[])")
        params["tags"] = list(scope.tags)
    return " AND ".join(clauses), params


def languages_of(knowledge_base_id: int, hidden_document_ids: Sequence[int] = ()) -> set[str]:
    """The languages (ISO 639-1 codes) of the base's ready documents, leaving out `hidden_document_ids`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT language FROM kb_document WHERE knowledge_base_id = %s AND status = 'ready'"
            " AND id <> ALL(%s::bigint[])",
            [knowledge_base_id, list(hidden_document_ids)],
        )
        return {row[0] for row in cursor.fetchall() if row[0]}
