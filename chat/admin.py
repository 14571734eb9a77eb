from django.contrib import admin

from chat.models import Citation, Conversation, Message


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["role", "text", "answered", "stopped", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "user", "knowledge_base", "updated_at"]
    list_filter = ["knowledge_base"]
    inlines = [MessageInline]


class CitationInline(admin.TabularInline):
    model = Citation
    fields = ["number", "chunk", "quote"]
    readonly_fields = fields
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
