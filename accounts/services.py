from __future__ import annotations

from typing import Any

from accounts.language import supported
from accounts.models import Profile


def user_language_save(*, user: Any, language: str) -> Profile:
    """Remember the interface language a user chose ("" forgets it: the browser's applies again)."""
    code = supported(language) or ""
    profile, _ = Profile.objects.update_or_create(user=user, defaults={"language": code})
    return profile
