from typing import TypeVar

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from chat.models import Citation, Conversation, Message
from kb.models import KnowledgeBase, Role
from kb.selectors import knowledge_base_list_for

M = TypeVar("M", bound=Model)


def managed_bases(request: HttpRequest) -> QuerySet[KnowledgeBase]:
    return knowledge_base_list_for(user=request.user, role=Role.MANAGER)


def of_managed_bases(queryset: QuerySet[M], request: HttpRequest, lookup: str) -> QuerySet[M]:
    """Conversations hold users' questions: staff see those of the bases they manage, superusers all (also
    rows whose base link is gone, such as tickets of a deleted widget key)."""
    if request.user.is_superuser:
        return queryset
    return queryset.filter(**{f"{lookup}__in": managed_bases(request)})


class MessageInline(admin.TabularInline):
    model = Message
    readonly_fields = ("role", "text", "answered", "stopped", "created_at")
    fields = readonly_fields
    extra = 0
    can_delete = False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "user", "knowledge_base", "updated_at"]
    # only the bases of the rows the user may see (a plain filter would list every base)
    list_filter = [("knowledge_base", admin.RelatedOnlyFieldListFilter)]
    inlines = [MessageInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return of_managed_bases(super().get_queryset(request), request, "knowledge_base")


class CitationInline(admin.TabularInline):
    model = Citation
    readonly_fields = ("number", "chunk", "quote")
    fields = readonly_fields
    extra = 0


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["__str__", "conversation", "role", "answered", "stopped", "feedback", "created_at"]
    list_filter = ["role", "answered", "stopped", "feedback"]
    readonly_fields = [
        "conversation",
        "role",
        "text",
        "sources",
        "timings",
        "answered",
        "stopped",
        "feedback",
        "feedback_comment",
        "created_at",
    ]
    inlines = [CitationInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return of_managed_bases(super().get_queryset(request), request, "conversation__knowledge_base")
