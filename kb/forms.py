from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field. Empty files are accepted here: ingestion marks them failed with a reason."""

    widget = MultipleFileInput

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.setdefault("allow_empty_file", True)
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):  # type: ignore[no-untyped-def]
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class UploadForm(forms.Form):
    files = MultipleFileField(label=_("Documents"))

    @property
    def max_upload_mb(self) -> int:
        """The upload hint's size limit (DOCENT_MAX_UPLOAD_MB)."""
        return settings.DOCENT_MAX_UPLOAD_BYTES // (1024 * 1024)
