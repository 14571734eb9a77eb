"""The JavaScript catalogue of the chat page and the widget, one URL per language.

The language is in the path rather than taken from the request, so the widget's iframe (which reads no
cookie) gets the catalogue of the language its page was rendered in, and each language's catalogue can be
cached on its own. The catalogue changes only with a deploy, hence Last-Modified at the process's start.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponseBase
from django.utils import translation
from django.views.decorators.http import last_modified
from django.views.i18n import JavaScriptCatalog

STARTED = datetime.now(UTC)
_catalog = JavaScriptCatalog.as_view(domain="djangojs")


@last_modified(lambda request, language: STARTED)
def javascript_catalog(request: HttpRequest, language: str) -> HttpResponseBase:
    if language not in dict(settings.LANGUAGES):
        raise Http404("No such language")
    with translation.override(language):
        response = _catalog(request)
    response["Cache-Control"] = "public, max-age=3600"
    return response
