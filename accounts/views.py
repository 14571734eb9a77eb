from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST
from django.views.i18n import set_language

from accounts.language import supported
from accounts.services import user_language_save


@require_POST
def language_set(request: HttpRequest) -> HttpResponse:
    """The header's switcher: Django's set_language (cookie, redirect back), saved for a signed-in user too."""
    response = set_language(request)
    language = supported(request.POST.get("language"))
    if language and request.user.is_authenticated:
        user_language_save(user=request.user, language=language)
    return response
