from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.db.models.fields.related import RelatedField
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from api.models import ApiConversation, ApiKey
from api.services import new_secret
from chat.admin import of_managed_bases
from kb.selectors import knowledge_base_list_readable


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "name", "user__username")
    fields = ("user", "name", "knowledge_bases", "questions_per_minute", "prefix", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "last_used_at", "revoked_at")
    filter_horizontal = ("knowledge_bases",)
    actions = ["revoke"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiKey]:
        # a key reads what its user may read: staff see and revoke their own keys, superusers every key
        queryset = super().get_queryset(request).select_related("user")
        return queryset if request.user.is_superuser else queryset.filter(user=request.user)

    def get_field_queryset(
        self, db: str | None, db_field: RelatedField[Any, Any], request: HttpRequest
    ) -> QuerySet[Any] | None:
        if not request.user.is_superuser:
            if db_field.name == "user":  # staff make keys for themselves only
                users = get_user_model().objects
                return users.filter(pk=request.user.pk) if request.user.is_authenticated else users.none()
            if db_field.name == "knowledge_bases":
                return knowledge_base_list_readable(user=request.user)
        return super().get_field_queryset(db, db_field, request)

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

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiConversation]:
        return of_managed_bases(super().get_queryset(request), request, "conversation__knowledge_base")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
