"""/kb/SLUG/gaps/: the knowledge-gap report, its CSV, resolving groups and saving evaluation cases (htmx).

The base's managers and superusers only: anyone else gets 404 for every route here, as for a missing base.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from chat.models import QuestionLog
from insights import gaps
from insights.models import GapResolution, SavedCase
from kb.models import KnowledgeBase, Role
from kb.selectors import document_get_for, documents_of, knowledge_base_get_for

DEFAULT_DAYS = 90


def _managed(request: HttpRequest, slug: str) -> KnowledgeBase:
    return knowledge_base_get_for(user=request.user, slug=slug, role=Role.MANAGER)


def _day(value: str | None, default: date) -> date:
    try:
        return date.fromisoformat(value) if value else default
    except ValueError:
        return default


def _range(params: Any) -> tuple[date, date]:
    """The report's days, both included: ?since=YYYY-MM-DD&until=YYYY-MM-DD, default the last 90 days."""
    today = timezone.localdate()
    until = _day(params.get("until"), today)
    since = _day(params.get("since"), until - timedelta(days=DEFAULT_DAYS - 1))
    return (until, since) if since > until else (since, until)


def _bounds(since: date, until: date) -> tuple[datetime, datetime]:
    zone = timezone.get_current_timezone()
    return (
        timezone.make_aware(datetime.combine(since, time.min), zone),
        timezone.make_aware(datetime.combine(until + timedelta(days=1), time.min), zone),
    )


def _report_page(request: HttpRequest, knowledge_base: KnowledgeBase, since: date, until: date) -> HttpResponse:
    start, end = _bounds(since, until)
    report = gaps.gap_report(knowledge_base=knowledge_base, user=request.user, since=start, until=end)
    visible = list(documents_of(knowledge_base=knowledge_base, user=request.user))
    visible_ids = {d.pk for d in visible}
    # a case expecting a restricted document this manager may not see is not listed (it would name it)
    cases = [
        case
        for case in SavedCase.objects.filter(knowledge_base=knowledge_base)
        if case.document_id is None or case.document_id in visible_ids
    ]
    context = {
        "kb": knowledge_base,
        "report": report,
        "shown": report.groups[: gaps.GROUPS_SHOWN],
        "hidden_groups": max(0, len(report.groups) - gaps.GROUPS_SHOWN),
        "limit": gaps.GAP_LIMIT,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "documents": [d for d in visible if d.status == d.Status.READY],
        "cases": cases,
        "reason_labels": {
            gaps.Reason.REFUSED: _("refused"),
            gaps.Reason.THUMBS_DOWN: _("thumbs down"),
            gaps.Reason.HANDED_OFF: _("handed to a person"),
        },
    }
    return render(request, "insights/gaps.html", context)


@login_required
def gap_report(request: HttpRequest, slug: str) -> HttpResponse:
    knowledge_base = _managed(request, slug)
    since, until = _range(request.GET)
    return _report_page(request, knowledge_base, since, until)


@login_required
def gap_report_csv(request: HttpRequest, slug: str) -> HttpResponse:
    knowledge_base = _managed(request, slug)
    since, until = _range(request.GET)
    start, end = _bounds(since, until)
    report = gaps.gap_report(knowledge_base=knowledge_base, user=request.user, since=start, until=end)
    response = HttpResponse(gaps.report_csv(report), content_type="text/csv; charset=utf-8")
    filename = f"gaps-{knowledge_base.slug}-{since.isoformat()}-{until.isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _after_change(request: HttpRequest, knowledge_base: KnowledgeBase) -> HttpResponse:
    """htmx: the page again (the client swaps in its report); a plain form post: back to the page."""
    since, until = _range(request.POST)
    if request.headers.get("HX-Request"):
        return _report_page(request, knowledge_base, since, until)
    url = reverse("insights:gaps", args=[knowledge_base.slug])
    return redirect(f"{url}?since={since.isoformat()}&until={until.isoformat()}")


@login_required
@require_POST
def gap_resolve(request: HttpRequest, slug: str) -> HttpResponse:
    """Mark a group resolved: `ids`, its question-log ids separated by commas, and an optional `note`."""
    knowledge_base = _managed(request, slug)
    ids = [int(part) for part in request.POST.get("ids", "").split(",") if part.strip().isdigit()]
    gaps.gap_resolve(knowledge_base=knowledge_base, log_ids=ids, note=request.POST.get("note", ""), actor=request.user)
    if not request.headers.get("HX-Request"):
        messages.success(request, _("The group is marked resolved."))
    return _after_change(request, knowledge_base)


@login_required
@require_POST
def gap_reopen(request: HttpRequest, slug: str, resolution_id: int) -> HttpResponse:
    knowledge_base = _managed(request, slug)
    get_object_or_404(GapResolution, pk=resolution_id, knowledge_base=knowledge_base).delete()
    return _after_change(request, knowledge_base)


@login_required
def gap_recheck(request: HttpRequest, slug: str, resolution_id: int) -> HttpResponse:
    """How many of a resolved group's questions would be answered now (a fragment the page loads)."""
    knowledge_base = _managed(request, slug)
    resolution = get_object_or_404(GapResolution, pk=resolution_id, knowledge_base=knowledge_base)
    found = gaps.resolution_recheck(resolution=resolution)
    text = _("%(answered)s of %(checked)s questions would now be answered.") % {
        "answered": found.answered,
        "checked": found.checked,
    }
    if found.checked < found.total:
        text += " " + _("(the latest %(checked)s of %(total)s checked)") % {
            "checked": found.checked,
            "total": found.total,
        }
    css = "ok" if found.checked and found.answered == found.checked else "warn"
    return HttpResponse(format_html('<span class="{}" data-answered="{}">{}</span>', css, found.answered, text))


@login_required
@require_POST
def saved_case_create(request: HttpRequest, slug: str) -> HttpResponse:
    """Save an evaluation case: `log` (a question-log id of the base), `document` (one the manager may see),
    optional `page`."""
    knowledge_base = _managed(request, slug)
    try:
        log_id, document_id = int(request.POST.get("log", "")), int(request.POST.get("document", ""))
    except ValueError:
        raise Http404("No such question or document") from None
    log = get_object_or_404(QuestionLog, pk=log_id, knowledge_base=knowledge_base)
    document = document_get_for(
        user=request.user, document_id=document_id, role=Role.MANAGER, knowledge_base=knowledge_base
    )
    page_text = request.POST.get("page", "").strip()
    page = int(page_text) if page_text.isdigit() and int(page_text) > 0 else None
    case = gaps.saved_case_create(
        knowledge_base=knowledge_base, log=log, document=document, page=page, actor=request.user
    )
    if request.headers.get("HX-Request"):
        return HttpResponse(
            format_html(
                '<p class="ok" data-saved-case="{}">{}</p>',
                case.pk,
                _("Saved as an evaluation case: run manage.py eval_qa --kb %(slug)s --saved")
                % {"slug": knowledge_base.slug},
            )
        )
    messages.success(request, _("Saved as an evaluation case."))
    return _after_change(request, knowledge_base)


@login_required
@require_POST
def saved_case_delete(request: HttpRequest, slug: str, case_id: int) -> HttpResponse:
    knowledge_base = _managed(request, slug)
    get_object_or_404(SavedCase, pk=case_id, knowledge_base=knowledge_base).delete()
    return _after_change(request, knowledge_base)
