"""/kb/SLUG/analytics/ and /kb/SLUG/analytics.csv: a base's question log for its managers (and superusers).

Transport only: the period comes from the query string (`from`, `to`: ISO dates or the interface language's
date format), the figures from insights.analytics. Anyone who is not a manager of the base gets 404, as for
every object they may not see.
"""

from __future__ import annotations

import csv
import datetime as dt
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.http import urlencode
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from chat.models import QuestionLog
from insights.analytics import (
    DEFAULT_DAYS,
    FIGURES,
    MAX_DAYS,
    QUESTION_COLUMNS,
    Period,
    analytics_channels,
    analytics_daily,
    analytics_languages,
    analytics_questions,
    analytics_top_documents,
    analytics_totals,
)
from insights.csv_cells import formula_safe
from kb.models import Role
from kb.selectors import knowledge_base_get_for

DAILY_COLUMNS = ("date", *FIGURES)


def period_from(query: Any, *, today: dt.date | None = None) -> tuple[Period, list[str]]:
    """The period asked for by `from` / `to` in `query` (a QueryDict), and the errors found.

    Both missing: the last DEFAULT_DAYS days. One missing: `to` is today, `from` is DEFAULT_DAYS - 1 days before
    `to`. A date that does not parse, `from` after `to`, or more than MAX_DAYS days: errors (then the default
    period is returned with them).
    """
    today = today or timezone.localdate()
    default = Period.last_days(DEFAULT_DAYS, today=today)
    field = forms.DateField(required=False)
    errors: list[str] = []
    values: dict[str, dt.date | None] = {}
    for name in ("from", "to"):
        try:
            values[name] = field.clean((query.get(name) or "").strip())
        except ValidationError:
            errors.append(_("“%(value)s” is not a date.") % {"value": query.get(name)})
    if errors:
        return default, errors
    last = values["to"] or today
    first = values["from"] or last - dt.timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        return default, [_("The start date is after the end date.")]
    period = Period(first, last)
    if period.days > MAX_DAYS:
        return default, [_("Choose at most %(days)s days.") % {"days": MAX_DAYS}]
    return period, []


def language_name(code: str) -> str:
    """A detected language's name in the interface language ("" → "Unknown")."""
    if not code:
        return pgettext("language", "Unknown")
    try:
        return capfirst(str(translation.get_language_info({"zh": "zh-hans"}.get(code, code))["name_translated"]))
    except KeyError:
        return code


def _chart_data(days: list[Any], channels: list[Any], languages: list[Any], documents: list[Any]) -> dict[str, Any]:
    """What static/insights/analytics.js draws: labels already localised, numbers as numbers."""
    return {
        "locale": translation.get_language(),
        "days": [formats.date_format(d.day, "SHORT_DATE_FORMAT") for d in days],
        "answered": [d.answered for d in days],
        "refused": [d.refused for d in days],
        "ttft_median": [None if d.ttft_median_ms is None else round(d.ttft_median_ms) for d in days],
        "ttft_p95": [None if d.ttft_p95_ms is None else round(d.ttft_p95_ms) for d in days],
        "channels": {"labels": [c["label"] for c in channels], "values": [c["count"] for c in channels]},
        "languages": {"labels": [lang["label"] for lang in languages], "values": [lang["count"] for lang in languages]},
        "documents": {"labels": [d["title"] for d in documents], "values": [d["count"] for d in documents]},
        "texts": {
            "answered": pgettext("questions", "Answered"),
            "refused": pgettext("questions", "Refused"),
            "median": _("Median"),
            "p95": _("95th percentile"),
            "ms": _("ms"),
            "questions": _("Questions"),
        },
    }


@login_required
def analytics(request: HttpRequest, slug: str) -> HttpResponse:
    knowledge_base = knowledge_base_get_for(user=request.user, slug=slug, role=Role.MANAGER)
    period, errors = period_from(request.GET)
    days = analytics_daily(knowledge_base=knowledge_base, period=period)
    totals = analytics_totals(knowledge_base=knowledge_base, period=period)
    channel_labels = dict(QuestionLog.Channel.choices)
    channels = [
        {"value": value, "label": channel_labels[value], "count": count}
        for value, count in analytics_channels(knowledge_base=knowledge_base, period=period)
    ]
    languages = [
        {"code": code, "label": language_name(code), "count": count}
        for code, count in analytics_languages(knowledge_base=knowledge_base, period=period)
    ]
    documents = [
        {"id": pk, "title": title, "count": count}
        for pk, title, count in analytics_top_documents(knowledge_base=knowledge_base, period=period, user=request.user)
    ]
    query = urlencode({"from": period.first.isoformat(), "to": period.last.isoformat()})
    csv_url = reverse("insights:analytics_csv", args=[knowledge_base.slug])
    context = {
        "kb": knowledge_base,
        "period": period,
        "errors": errors,
        "days": days,
        "totals": totals,
        "answered_percent": 100 * totals.answered / totals.questions if totals.questions else None,
        "channels": channels,
        "question_languages": languages,
        "documents": documents,
        "chart_data": _chart_data(days, channels, languages, documents),
        "csv_url": f"{csv_url}?{query}",
        "csv_daily_url": f"{csv_url}?{query}&table=daily",
        "csv_questions_url": f"{csv_url}?{query}&table=questions",
    }
    return render(request, "insights/analytics.html", context)


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: text that a spreadsheet would run as a formula gets a leading apostrophe; dates in
    ISO 8601 (UTC for times); None empty; booleans as true/false; numbers as they are."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 1)
    return formula_safe(value) if isinstance(value, str) else value


def _write_csv(out: Any, knowledge_base: Any, period: Period, table: str) -> None:
    writer = csv.writer(out)
    if table in ("", "daily"):
        writer.writerow(DAILY_COLUMNS)
        for day in analytics_daily(knowledge_base=knowledge_base, period=period):
            writer.writerow(
                [
                    csv_cell(v)
                    for v in (
                        day.day,
                        day.questions,
                        day.answered,
                        day.refused,
                        day.cached,
                        day.thumbs_up,
                        day.thumbs_down,
                        day.handed_off,
                        day.ttft_median_ms,
                        day.ttft_p95_ms,
                    )
                ]
            )
    if table == "":
        writer.writerow([])  # a blank line between the two tables
    if table in ("", "questions"):
        writer.writerow(QUESTION_COLUMNS)
        for row in analytics_questions(knowledge_base=knowledge_base, period=period):
            writer.writerow([csv_cell(v) for v in row])


@login_required
def analytics_csv(request: HttpRequest, slug: str) -> HttpResponse:
    """The period's daily figures, then (after a blank line) its questions; `table=daily` or `table=questions`
    gives one of the two alone. 400 when the period is not valid."""
    knowledge_base = knowledge_base_get_for(user=request.user, slug=slug, role=Role.MANAGER)
    period, errors = period_from(request.GET)
    table = request.GET.get("table", "")
    if table not in ("", "daily", "questions"):
        errors.append(_("Unknown table: choose daily or questions."))
    if errors:
        return HttpResponseBadRequest(" ".join(errors), content_type="text/plain; charset=utf-8")
    name = f"{knowledge_base.slug}-analytics-{period.first.isoformat()}-{period.last.isoformat()}"
    name += f"-{table}.csv" if table else ".csv"
    # built whole: under ASGI Django would buffer a synchronous stream anyway
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response.write("\ufeff")  # the byte-order mark by which spreadsheets know the file is UTF-8 (Chinese questions)
    _write_csv(response, knowledge_base, period, table)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
