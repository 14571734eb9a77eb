from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from api.models import ApiConversation, ApiKey
from api.services import new_secret


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "name", "user__username")
    fields = ("user", "name", "knowledge_bases", "questions_per_minute", "prefix", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "last_used_at", "revoked_at")
    filter_horizontal = ("knowledge_bases",)
    actions = ["revoke"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: ModelForm, change: bool) -> None:
        if not change:
            raw, obj.prefix, obj.key_hash = new_secret()
            messages.warning(
                request, _("The new API key — copy it now, it will not be shown again: %(key)s") % {"key": raw}
            )
        super().save_model(request, obj, form, change)

    @admin.action(description=gettext_lazy("Revoke the selected keys"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        message = ngettext("%(count)d key revoked.", "%(count)d keys revoked.", count) % {"count": count}
        messages.success(request, message)


@admin.register(ApiConversation)
class ApiConversationAdmin(admin.ModelAdmin):
    list_display = ("conversation", "key")
    readonly_fields = ("conversation", "key")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
