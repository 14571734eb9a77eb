"""Which language to speak to someone in: their saved choice, else the language cookie, else the browser's.

Pages get this from `accounts.middleware.UserLanguageMiddleware`; websockets, which no middleware sees, from
`language_from_scope`; the widget, which reads no cookie and knows no user, from `language_for_visitor`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import translation
from django.utils.translation.trans_real import parse_accept_lang_header

if TYPE_CHECKING:  # what the mixin is mixed into, so that its super().dispatch is known
    from channels.consumer import AsyncConsumer as _Consumer
else:
    _Consumer = object


def supported(code: Any) -> str | None:
    """The configured language for `code` ("zh-CN" → "zh-hans", "fr-CA" → "fr"), None if there is none."""
    if not isinstance(code, str) or not code or len(code) > 35:
        return None
    try:
        return translation.get_supported_language_variant(code.strip().lower())
    except LookupError:
        return None


def from_accept_language(header: str | None) -> str | None:
    """The first language of an Accept-Language header that the interface speaks."""
    for code, _quality in parse_accept_lang_header(header or ""):
        if code == "*":
            break
        found = supported(code)
        if found:
            return found
    return None


def user_language(user: Any) -> str | None:
    """The language a signed-in user saved (the header's switcher), or None."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    from accounts.models import Profile

    saved = Profile.objects.filter(user=user).values_list("language", flat=True).first()
    return supported(saved)


def language_from_scope(scope: dict[str, Any]) -> str:
    """A websocket's language, chosen as for a page: saved preference, cookie, Accept-Language, default.
    Synchronous (it may read the profile): call it through database_sync_to_async."""
    saved = user_language(scope.get("user"))
    if saved:
        return saved
    cookie = (scope.get("cookies") or {}).get(settings.LANGUAGE_COOKIE_NAME)
    return supported(cookie) or from_accept_language(header(scope, b"accept-language")) or settings.LANGUAGE_CODE


def language_for_visitor(requested: Any, accept_language: str | None) -> str:
    """A widget visitor's language: the snippet's `data-lang` (passed on as `lang`), else their browser's."""
    return supported(requested) or from_accept_language(accept_language) or settings.LANGUAGE_CODE


def header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class SocketLanguageMixin(_Consumer):
    """For a websocket consumer: every handler, and any task it starts (a task copies the context), runs in
    `self.language`, which the consumer sets at connect (`language_from_scope`, or the widget's own choice)."""

    language: str | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        with translation.override(self.language or settings.LANGUAGE_CODE):
            await super().dispatch(message)
