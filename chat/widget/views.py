"""HTTP side of the widget. None of these views reads a login or session cookie: the signed visitor
session in the request is the only credential, and it opens nothing outside these views."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from accounts.language import language_for_visitor
from chat.limits import rate_limit_hit_sync
from chat.widget.forms import TicketForm
from chat.widget.models import WidgetKey
from chat.widget.origins import origin_of
from chat.widget.selectors import origin_is_docent, shown_chunk, visitor_history, widget_key_enabled
from chat.widget.services import (
    PASSAGE_SECONDS,
    VisitorAccess,
    WidgetRefused,
    frame_access,
    ticket_create,
    ticket_limits,
    visitor_access,
    visitor_session_renew,
    visitor_session_start,
    widget_sources_show,
)


def _key_or_404(key: str) -> WidgetKey:
    widget_key = widget_key_enabled(key=key)
    if widget_key is None:
        raise Http404("No such widget")
    return widget_key


def _visitor_language(request: HttpRequest) -> str:
    """The snippet's data-lang (passed on as ?lang=), else the browser's Accept-Language; never a cookie."""
    return language_for_visitor(request.GET.get("lang"), request.headers.get("Accept-Language"))


def _no_store(response: HttpResponse) -> HttpResponse:
    # These responses carry visitor tokens: no shared cache may keep them.
    response["Cache-Control"] = "no-store"
    return response


def _frame_csp(request: HttpRequest, key: WidgetKey) -> str:
    ancestors = " ".join(key.allowed_origins) or "'none'"
    socket = ("wss://" if request.is_secure() else "ws://") + request.get_host()
    return (
        f"frame-ancestors {ancestors}; default-src 'self'; connect-src 'self' {socket}; img-src 'self' data:; "
        # Every form is sent by script; a native submission (before the script runs) would put the
        # visitor's text in a URL.
        "object-src 'none'; base-uri 'none'; form-action 'none'"
    )


@xframe_options_exempt  # the one page meant to be framed; frame-ancestors below says by whom
@require_GET
def frame(request: HttpRequest, key: str) -> HttpResponse:
    widget_key = _key_or_404(key)
    destination = request.headers.get("Sec-Fetch-Dest")
    referer_origin = origin_of(request.headers.get("Referer"))
    language = _visitor_language(request)
    try:
        if destination and destination not in ("iframe", "frame"):
            raise WidgetRefused(f"requested as {destination}, not in a frame")
        frame_access(key=widget_key, referer_origin=referer_origin)
    except WidgetRefused:
        with translation.override(language):
            response = render(request, "widget/unavailable.html", status=403)
        return response  # with the site's own policy (config.security): frame-ancestors 'none'
    visitor = visitor_session_start(key=widget_key, origin=referer_origin)
    config = {
        "key": widget_key.key,
        "session": visitor["session"],
        "visitor": visitor["visitor"],
        "wsPath": f"/ws/widget/{widget_key.key}/",
        "sessionUrl": reverse("widget:session", args=[widget_key.key]),
        "historyUrl": reverse("widget:frame", args=[widget_key.key]) + "conversations/",
        "ticketUrl": reverse("widget:ticket", args=[widget_key.key]),
        "colour": widget_key.colour,
        "showSources": widget_key.show_sources,
        "embedOrigin": referer_origin or "",
        "language": language,
    }
    context = {
        "key": widget_key,
        "texts": widget_key.texts_for(language),
        "language": language,
        "widget_config": config,
    }
    with translation.override(language):
        response = render(request, "widget/frame.html", context)
    response["Content-Language"] = language
    response["Content-Security-Policy"] = _frame_csp(request, widget_key)
    return _no_store(response)


@require_GET
def config(request: HttpRequest, key: str) -> HttpResponse:
    """What the loader needs to draw the bubble, readable (CORS) only by pages of an allowed origin:
    elsewhere the browser hides the answer from the loader, which then adds nothing to the page."""
    widget_key = widget_key_enabled(key=key)
    origin = origin_of(request.headers.get("Origin"))
    if widget_key is None or origin is None or origin not in widget_key.allowed_origins:
        return JsonResponse({"error": "not_allowed"}, status=403)
    language = _visitor_language(request)
    response = JsonResponse(
        {
            "title": widget_key.texts_for(language)["title"],
            "colour": widget_key.colour,
            "position": widget_key.position,
            "language": language,
            # the frame in the same language, even where its own request would say otherwise
            "frame": reverse("widget:frame", args=[widget_key.key]) + "?" + urlencode({"lang": language}),
        }
    )
    response["Access-Control-Allow-Origin"] = origin
    response["Vary"] = "Origin, Accept-Language"
    return _no_store(response)


def _json_body(request: HttpRequest) -> dict[str, Any] | None:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _from_widget(request: HttpRequest) -> bool:
    # Tokens travel in the body, so there is no cookie to forge a request with; still, only the iframe
    # (Docent's own origin) has any business posting here.
    origin = request.headers.get("Origin")
    return origin is None or origin_is_docent(origin=origin_of(origin), host=request.get_host())


@csrf_exempt  # no cookie is read; the signed tokens in the body are the credentials
@require_POST
def session(request: HttpRequest, key: str) -> HttpResponse:
    """A fresh session for a returning visitor: `{"visitor": CREDENTIAL, "session": PREVIOUS}`."""
    widget_key = _key_or_404(key)
    body = _json_body(request)
    if body is None:
        return JsonResponse({"error": "bad_request"}, status=400)
    if not _from_widget(request):
        return JsonResponse({"error": "forbidden"}, status=403)
    try:
        renewed = visitor_session_renew(
            key=widget_key, credential=body.get("visitor"), previous_session=body.get("session")
        )
    except WidgetRefused:
        return JsonResponse({"error": "forbidden"}, status=403)
    return _no_store(JsonResponse(renewed))


def _access_or_404(key: str, token: Any, max_age: int | None = None) -> VisitorAccess:
    try:
        if max_age is None:
            return visitor_access(key_value=key, token=token)
        return visitor_access(key_value=key, token=token, max_age=max_age)
    except WidgetRefused as exc:
        raise Http404("No such widget session") from exc


@require_GET
def history(request: HttpRequest, key: str, conversation_id: int) -> HttpResponse:
    """The visitor's own conversation, so it survives page loads."""
    access = _access_or_404(key, request.GET.get("s"))
    messages = visitor_history(key=access.key, visitor_id=access.session.visitor_id, conversation_id=conversation_id)
    if messages is None:
        raise Http404("No such conversation")
    for message in messages:
        message["sources"] = widget_sources_show(access=access, items=message["sources"])
    return _no_store(JsonResponse({"conversation": conversation_id, "messages": messages}))


@csrf_exempt  # no cookie is read; the signed session in the body is the credential
@require_POST
def ticket(request: HttpRequest, key: str) -> HttpResponse:
    body = _json_body(request)
    if body is None:
        return JsonResponse({"error": "bad_request"}, status=400)
    if not _from_widget(request):
        return JsonResponse({"error": "forbidden"}, status=403)
    try:
        access = visitor_access(key_value=key, token=body.get("session"))
    except WidgetRefused:
        with translation.override(_visitor_language(request)):
            message = gettext("This chat session has expired; reload the page.")
        return JsonResponse({"error": "forbidden", "message": message}, status=403)
    form = TicketForm(body)
    if not form.is_valid():
        return JsonResponse({"error": "invalid", "fields": form.errors.get_json_data()}, status=400)
    ip = request.META.get("REMOTE_ADDR")
    exceeded = rate_limit_hit_sync(ticket_limits(key=access.key, visitor_id=access.session.visitor_id, ip=ip))
    if exceeded is not None:
        return JsonResponse({"error": "rate_limited", "retry_after": exceeded.retry_after_s}, status=429)
    created = ticket_create(
        access=access,
        email=form.cleaned_data["email"],
        message=form.cleaned_data["message"],
        conversation_id=form.cleaned_data["conversation"],
    )
    return JsonResponse({"ticket": created.pk, "conversation": created.conversation_id}, status=201)


@require_GET
def passage(request: HttpRequest, key: str, chunk_id: int) -> HttpResponse:
    """A passage shown to this visitor as a source, and nothing else: no neighbours, no file."""
    access = _access_or_404(key, request.GET.get("s"), max_age=PASSAGE_SECONDS)
    chunk = shown_chunk(key=access.key, visitor_id=access.session.visitor_id, chunk_id=chunk_id)
    if chunk is None:
        raise Http404("No such passage")
    language = _visitor_language(request)
    context = {"key": access.key, "chunk": chunk, "texts": access.key.texts_for(language), "language": language}
    with translation.override(language):
        response = render(request, "widget/passage.html", context)
    response["Referrer-Policy"] = "no-referrer"  # the URL carries the visitor's session
    response["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    return _no_store(response)
