"""Reads for a base's analytics page and its CSV export: chat.QuestionLog aggregated in SQL, one base at a time.

Every function takes the base (already checked: kb.selectors.knowledge_base_get_for with role "manager") and a
`Period` of whole days in the current time zone; nothing is computed in Python beyond shaping rows. Times to
first token are the answered questions' (cached ones included): a refusal does not reach the model, and its
near-zero time would pull the median down. Percentiles are PostgreSQL's `percentile_cont` (linear
interpolation between the two nearest ranks, the same definition as numpy's default `percentile`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.utils import timezone

from chat.models import QuestionLog
from kb.models import KnowledgeBase
from kb.selectors import document_list_for

DEFAULT_DAYS = 30
MAX_DAYS = 731  # two years of daily rows at most on one page or in one export
TOP_DOCUMENTS = 10


@dataclass(frozen=True)
class Period:
    """Whole days `first`..`last` (both included) in the current time zone."""

    first: dt.date
    last: dt.date

    @classmethod
    def last_days(cls, days: int = DEFAULT_DAYS, *, today: dt.date | None = None) -> Period:
        """The `days` days ending today (included)."""
        today = today or timezone.localdate()
        return cls(today - dt.timedelta(days=days - 1), today)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """[start, end): midnight of the first day to midnight after the last, aware, in the current zone."""
        zone = timezone.get_current_timezone()
        start = dt.datetime.combine(self.first, dt.time.min, tzinfo=zone)
        end = dt.datetime.combine(self.last + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
        return start, end


@dataclass(frozen=True)
class Figures:
    """Counts for a day or the whole period; ttft_* in milliseconds, None when no answered question had one."""

    questions: int
    answered: int
    refused: int
    cached: int
    thumbs_up: int
    thumbs_down: int
    handed_off: int
    ttft_median_ms: float | None
    ttft_p95_ms: float | None


@dataclass(frozen=True)
class Day(Figures):
    day: dt.date


# one row of these columns per group; the log rows of the base and period are in the CTE `logs`
_FIGURES_SQL = """
    count(logs.id),
    count(logs.id) FILTER (WHERE logs.answered),
    count(logs.id) FILTER (WHERE NOT logs.answered),
    count(logs.id) FILTER (WHERE logs.cached),
    count(logs.id) FILTER (WHERE logs.feedback > 0),
    count(logs.id) FILTER (WHERE logs.feedback < 0),
    count(logs.id) FILTER (WHERE logs.handed_off),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY logs.ttft_ms) FILTER (WHERE logs.answered),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY logs.ttft_ms) FILTER (WHERE logs.answered)
"""

_LOGS_CTE = """
    logs AS (
        SELECT id, channel, language, answered, cached, feedback, handed_off, ttft_ms,
               (created_at AT TIME ZONE %(zone)s)::date AS day
        FROM chat_questionlog
        WHERE knowledge_base_id = %(kb)s AND created_at >= %(start)s AND created_at < %(end)s
    )
"""


def _params(knowledge_base: KnowledgeBase, period: Period) -> dict[str, Any]:
    start, end = period.bounds()
    return {
        "kb": knowledge_base.pk,
        "start": start,
        "end": end,
        "first": period.first,
        "last": period.last,
        "zone": timezone.get_current_timezone_name(),
    }


# a day's (or the period's) figures, in the order the SQL selects them and the CSV export writes them
FIGURES = (
    "questions",
    "answered",
    "refused",
    "cached",
    "thumbs_up",
    "thumbs_down",
    "handed_off",
    "ttft_median_ms",
    "ttft_p95_ms",
)


def _figures(row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(FIGURES, row, strict=True))


def analytics_daily(*, knowledge_base: KnowledgeBase, period: Period) -> list[Day]:
    """One `Day` per day of the period, oldest first, days without questions included (all zero, ttft None)."""
    sql = f"""
        WITH {_LOGS_CTE},
        days AS (SELECT generate_series(%(first)s::date, %(last)s::date, interval '1 day')::date AS day)
        SELECT days.day, {_FIGURES_SQL}
        FROM days LEFT JOIN logs ON logs.day = days.day
        GROUP BY days.day ORDER BY days.day
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, _params(knowledge_base, period))
        return [Day(day=row[0], **_figures(row[1:])) for row in cursor.fetchall()]


def analytics_totals(*, knowledge_base: KnowledgeBase, period: Period) -> Figures:
    """The whole period's `Figures`; its percentiles are over all the period's answers (not an average of days)."""
    sql = f"WITH {_LOGS_CTE} SELECT {_FIGURES_SQL} FROM logs"
    with connection.cursor() as cursor:
        cursor.execute(sql, _params(knowledge_base, period))
        return Figures(**_figures(cursor.fetchone()))


def analytics_channels(*, knowledge_base: KnowledgeBase, period: Period) -> list[tuple[str, int]]:
    """(channel value, questions) for every QuestionLog.Channel in declaration order, zeros included."""
    sql = f"""
        WITH {_LOGS_CTE}
        SELECT channel, count(*) FROM logs GROUP BY channel
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, _params(knowledge_base, period))
        counts = dict(cursor.fetchall())
    return [(channel.value, counts.get(channel.value, 0)) for channel in QuestionLog.Channel]


def analytics_languages(*, knowledge_base: KnowledgeBase, period: Period) -> list[tuple[str, int]]:
    """(language code as detected, "" when unknown; questions), most asked first, then by code."""
    sql = f"""
        WITH {_LOGS_CTE}
        SELECT language, count(*) AS n FROM logs GROUP BY language ORDER BY n DESC, language
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, _params(knowledge_base, period))
        return [(language, count) for language, count in cursor.fetchall()]


def analytics_top_documents(
    *, knowledge_base: KnowledgeBase, period: Period, user: Any, limit: int = TOP_DOCUMENTS
) -> list[tuple[int, str, int]]:
    """(document id, title, questions whose answer cited it) for the most cited documents `user` may see,
    most cited first (ties: by title). Deleted documents and those restricted away from `user` are left out
    in the same query (kb.selectors.document_list_for)."""
    visible_sql, visible_params = (
        document_list_for(user=user, knowledge_base=knowledge_base).values("id").query.sql_with_params()
    )
    params = _params(knowledge_base, period)
    sql = f"""
        SELECT d.id, d.title, count(*) AS n
        FROM chat_questionlog q
        CROSS JOIN LATERAL unnest(q.cited_documents) AS cited(document_id)
        JOIN kb_document d ON d.id = cited.document_id
        WHERE q.knowledge_base_id = %s AND q.created_at >= %s AND q.created_at < %s
          AND d.id IN ({visible_sql})
        GROUP BY d.id, d.title ORDER BY n DESC, d.title, d.id LIMIT %s
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [params["kb"], params["start"], params["end"], *visible_params, limit])
        return [(pk, title, count) for pk, title, count in cursor.fetchall()]


# ---- the per-question rows of the CSV export

QUESTION_COLUMNS = (
    "created_at",
    "question",
    "language",
    "channel",
    "answered",
    "refusal_reason",
    "cached",
    "ttft_ms",
    "feedback",
    "handed_off",
)


def analytics_questions(*, knowledge_base: KnowledgeBase, period: Period) -> Iterator[tuple[Any, ...]]:
    """The period's questions, oldest first, as tuples in QUESTION_COLUMNS order (created_at aware; feedback
    -1/0/1; ttft_ms None when the answer had none), read in chunks so a long period does not sit in memory.
    No user and no IP address: the export is about questions, not people."""
    start, end = period.bounds()
    rows = (
        QuestionLog.objects.filter(knowledge_base=knowledge_base, created_at__gte=start, created_at__lt=end)
        .order_by("created_at", "id")
        .values_list(*QUESTION_COLUMNS)
    )
    return rows.iterator(chunk_size=2000)
