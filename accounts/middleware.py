from __future__ import annotations

from django.http import HttpRequest
from django.middleware.locale import LocaleMiddleware
from django.utils import translation

from accounts.language import user_language


class UserLanguageMiddleware(LocaleMiddleware):
    """Django's choice (language cookie, then Accept-Language), overridden by the language a signed-in user
    saved, so that it follows them to a new browser."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        saved = user_language(getattr(request, "user", None))
        if saved:
            translation.activate(saved)
            request.LANGUAGE_CODE = translation.get_language()
