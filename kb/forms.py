from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field. Empty files are accepted here: ingestion marks them failed with a reason."""

    widget = MultipleFileInput

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_empty_file", True)
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class UploadForm(forms.Form):
    # Named like BaseForm.files (the request's uploads), which django-stubs types on the class; Django's form
    # metaclass moves a declared field into base_fields, so at run time the two never meet.
    files = MultipleFileField(label=_("Documents"))  # type: ignore[assignment]

    @property
    def max_upload_mb(self) -> int:
        """The upload hint's size limit (DOCENT_MAX_UPLOAD_MB)."""
        return settings.DOCENT_MAX_UPLOAD_BYTES // (1024 * 1024)
