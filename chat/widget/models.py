from __future__ import annotations

import secrets

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from chat.models import Conversation
from chat.widget.origins import origin_normalize
from kb.models import Chunk, KnowledgeBase


def new_public_key() -> str:
    # Public (it sits in customers' page source): unguessable only so that keys cannot be enumerated.
    return secrets.token_urlsafe(18)


class WidgetKey(models.Model):
    """One embeddable widget for one knowledge base, and the sites that may embed it."""

    class Position(models.TextChoices):
        RIGHT = "right", "bottom right"
        LEFT = "left", "bottom left"

    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="widget_keys")
    key = models.CharField(max_length=64, unique=True, default=new_public_key, editable=False)
    enabled = models.BooleanField(default=True)
    allowed_origins = ArrayField(
        models.CharField(max_length=200),
        default=list,
        blank=True,
        help_text="Sites that may embed it, one a line: https://shop.example.com. Empty: none may.",
    )
    title = models.CharField(max_length=100, default="Help")
    greeting = models.TextField(blank=True, default="Hello! Ask me a question about our products.")
    suggested_questions = ArrayField(
        models.CharField(max_length=300), default=list, blank=True, help_text="One question a line."
    )
    colour = models.CharField(
        max_length=7,
        default="#2563eb",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "A colour such as #2563eb.")],
    )
    position = models.CharField(max_length=5, choices=Position.choices, default=Position.RIGHT)
    show_sources = models.BooleanField(default=True, help_text="Show visitors the passages an answer comes from.")
    handoff_text = models.TextField(
        default="Not what you were looking for? Leave your email and a person will get back to you.",
        help_text="Shown with 'Talk to a person' and after answers the knowledge base could not give.",
    )
    support_email = models.EmailField(blank=True, help_text="Where 'Talk to a person' messages are mailed.")
    visitor_messages_per_minute = models.PositiveIntegerField(default=6)
    ip_messages_per_minute = models.PositiveIntegerField(default=30)
    messages_per_day = models.PositiveIntegerField(default=2000, help_text="For this key, all visitors together.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["knowledge_base__name", "created_at"]

    def __str__(self) -> str:
        return f"{self.title} ({self.knowledge_base})"

    def clean(self) -> None:
        origins, errors = [], []
        for value in self.allowed_origins or []:
            try:
                origin = origin_normalize(value)
            except ValueError as exc:
                errors.append(str(exc))
                continue
            if origin not in origins:
                origins.append(origin)
        if errors:
            raise ValidationError({"allowed_origins": errors})
        self.allowed_origins = origins


class WidgetConversation(models.Model):
    """Which visitor a widget conversation belongs to: only that visitor may continue or read it."""

    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, primary_key=True, related_name="widget")
    key = models.ForeignKey(WidgetKey, on_delete=models.CASCADE, related_name="conversations")
    visitor_id = models.CharField(max_length=64)
    origin = models.CharField(max_length=200, blank=True, help_text="The page's origin the visitor chatted from.")
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["key", "visitor_id"], name="widget_conv_visitor_idx")]

    def __str__(self) -> str:
        return str(self.conversation)


class ShownChunk(models.Model):
    """A passage that was shown to a visitor as a source: the only passages the public viewer serves them."""

    key = models.ForeignKey(WidgetKey, on_delete=models.CASCADE, related_name="+")
    visitor_id = models.CharField(max_length=64)
    chunk = models.ForeignKey(Chunk, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "visitor_id", "chunk"], name="widget_shown_chunk_unique"),
        ]

    def __str__(self) -> str:
        return f"chunk {self.chunk_id} shown to {self.visitor_id[:8]}"


class Ticket(models.Model):
    """A visitor's 'Talk to a person' message, with the conversation that led to it."""

    key = models.ForeignKey(WidgetKey, null=True, on_delete=models.SET_NULL, related_name="tickets")
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="widget_tickets"
    )
    visitor_id = models.CharField(max_length=64, blank=True)
    email = models.EmailField()
    message = models.TextField()
    origin = models.CharField(max_length=200, blank=True)
    mailed_to = models.EmailField(blank=True)
    mailed_at = models.DateTimeField(null=True, blank=True)
    handled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email}: {self.message[:60]}"
