from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.postgres.forms import SimpleArrayField
from django.db.models import QuerySet
from django.db.models.fields.related import RelatedField
from django.http import HttpRequest
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from chat.admin import managed_bases, of_managed_bases
from chat.widget.models import Ticket, WidgetConversation, WidgetKey
from chat.widget.services import widget_key_rotate, widget_snippet


class LinesField(SimpleArrayField):
    """A list edited one item a line (questions hold commas, so the default comma list will not do)."""

    def __init__(self, base_field: forms.Field, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 4}))
        super().__init__(base_field, delimiter="\n", **kwargs)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            value = "\n".join(line.strip() for line in value.splitlines() if line.strip())
        return super().to_python(value)


class WidgetKeyForm(forms.ModelForm):
    allowed_origins = LinesField(
        forms.CharField(max_length=200),
        required=False,
        label=WidgetKey._meta.get_field("allowed_origins").verbose_name,
        help_text=WidgetKey._meta.get_field("allowed_origins").help_text,
    )
    suggested_questions = LinesField(
        forms.CharField(max_length=300), required=False, label=_("suggested questions"), help_text=_("One a line.")
    )
    suggested_questions_fr = LinesField(
        forms.CharField(max_length=300),
        required=False,
        label=_("suggested questions (French)"),
        help_text=_("One a line; empty: the English ones."),
    )
    suggested_questions_zh = LinesField(
        forms.CharField(max_length=300),
        required=False,
        label=_("suggested questions (Chinese)"),
        help_text=_("One a line; empty: the English ones."),
    )

    class Meta:
        model = WidgetKey
        fields = [
            "knowledge_base",
            "enabled",
            "allowed_origins",
            "title",
            "greeting",
            "suggested_questions",
            "title_fr",
            "greeting_fr",
            "suggested_questions_fr",
            "title_zh",
            "greeting_zh",
            "suggested_questions_zh",
            "colour",
            "position",
            "show_sources",
            "handoff_text",
            "handoff_text_fr",
            "handoff_text_zh",
            "support_email",
            "visitor_messages_per_minute",
            "ip_messages_per_minute",
            "messages_per_day",
        ]


def _conversation_link(conversation_id: int | None) -> str:
    if conversation_id is None:
        return "—"
    url = reverse("admin:chat_conversation_change", args=[conversation_id])
    return format_html('<a href="{}">{}</a>', url, _("Conversation %(id)s") % {"id": conversation_id})


@admin.register(WidgetKey)
class WidgetKeyAdmin(admin.ModelAdmin):
    form = WidgetKeyForm
    list_display = ["title", "knowledge_base", "origins", "enabled", "show_sources", "created_at"]
    list_filter = ["enabled", ("knowledge_base", admin.RelatedOnlyFieldListFilter)]
    readonly_fields = ["key", "snippet", "created_at", "updated_at"]
    actions = ["rotate"]
    fieldsets = [
        (None, {"fields": ["knowledge_base", "enabled", "allowed_origins", "key", "snippet"]}),
        (
            _("Appearance"),
            {"fields": ["title", "greeting", "suggested_questions", "colour", "position", "show_sources"]},
        ),
        (
            _("In French"),
            {
                "fields": ["title_fr", "greeting_fr", "suggested_questions_fr", "handoff_text_fr"],
                "description": _("For visitors reading French; an empty field shows the English text."),
            },
        ),
        (
            _("In Chinese"),
            {
                "fields": ["title_zh", "greeting_zh", "suggested_questions_zh", "handoff_text_zh"],
                "description": _("For visitors reading Chinese; an empty field shows the English text."),
            },
        ),
        (_("Talk to a person"), {"fields": ["handoff_text", "support_email"]}),
        (
            _("Rate limits"),
            {"fields": ["visitor_messages_per_minute", "ip_messages_per_minute", "messages_per_day"]},
        ),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WidgetKey]:
        return of_managed_bases(super().get_queryset(request), request, "knowledge_base")

    def get_field_queryset(
        self, db: str | None, db_field: RelatedField[Any, Any], request: HttpRequest
    ) -> QuerySet[Any] | None:
        if db_field.name == "knowledge_base":  # widget keys are a manager's business
            return managed_bases(request)
        return super().get_field_queryset(db, db_field, request)

    @admin.display(description=_("allowed origins"))
    def origins(self, obj: WidgetKey) -> str:
        return ", ".join(obj.allowed_origins) or str(_("none (no site may embed it)"))

    @admin.display(description=_("snippet to paste"))
    def snippet(self, obj: WidgetKey) -> str:
        if obj.pk is None:
            return str(_("Save the key to get its snippet."))
        return format_html("<code>{}</code>", widget_snippet(key=obj))

    @admin.action(description=_("Rotate the public key (pasted snippets stop working)"))
    def rotate(self, request: HttpRequest, queryset: QuerySet[WidgetKey]) -> None:
        count = 0
        for key in queryset:
            widget_key_rotate(key=key)
            count += 1
        message = ngettext(
            "Rotated %(count)d key; paste the new snippet.", "Rotated %(count)d keys; paste the new snippets.", count
        ) % {"count": count}
        self.message_user(request, message, messages.WARNING)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(WidgetConversation)
class WidgetConversationAdmin(ReadOnlyAdmin):
    """Visitors' conversations; each is also a Conversation (with no user) in the chat admin."""

    list_display = ["__str__", "key", "origin", "visitor", "created_at", "conversation_link"]
    list_filter = [("key", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["conversation__title", "visitor_id", "origin"]
    readonly_fields = ("conversation_link", "key", "visitor_id", "origin", "ip", "created_at", "transcript")
    fields = ("conversation_link", "key", "visitor_id", "origin", "ip", "created_at", "transcript")

    def get_queryset(self, request: HttpRequest) -> QuerySet[WidgetConversation]:
        return of_managed_bases(super().get_queryset(request), request, "key__knowledge_base")

    @admin.display(description=_("visitor"))
    def visitor(self, obj: WidgetConversation) -> str:
        return obj.visitor_id[:8]

    @admin.display(description=_("conversation"))
    def conversation_link(self, obj: WidgetConversation) -> str:
        return _conversation_link(obj.conversation_id)

    @admin.display(description=_("transcript"))
    def transcript(self, obj: WidgetConversation) -> str:
        rows = [
            (
                _("Visitor") if m.role == "user" else _("Answer"),
                date_format(localtime(m.created_at), "SHORT_DATETIME_FORMAT"),
                m.text,
            )
            for m in obj.conversation.messages.all()
        ]
        return format_html(
            '<div style="white-space:pre-wrap">{}</div>',
            format_html_join("", "<p><strong>{}</strong> <small>{}</small><br>{}</p>", rows),
        )


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = ["__str__", "email", "key", "created_at", "conversation_link", "mailed_at", "handled"]
    list_filter = ["handled", ("key", admin.RelatedOnlyFieldListFilter)]
    list_editable = ["handled"]
    search_fields = ["email", "message"]
    readonly_fields = (
        "key",
        "email",
        "message",
        "conversation_link",
        "visitor_id",
        "origin",
        "mailed_to",
        "mailed_at",
        "created_at",
    )
    fields = (*readonly_fields, "handled")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Ticket]:
        return of_managed_bases(super().get_queryset(request), request, "key__knowledge_base")

    @admin.display(description=_("conversation"))
    def conversation_link(self, obj: Ticket) -> str:
        return _conversation_link(obj.conversation_id)
