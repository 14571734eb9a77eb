from __future__ import annotations

import secrets
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from chat.models import Conversation
from chat.widget.origins import origin_normalize
from kb.models import Chunk, KnowledgeBase


def new_public_key() -> str:
    # Public (it sits in customers' page source): unguessable only so that keys cannot be enumerated.
    return secrets.token_urlsafe(18)


class WidgetKey(models.Model):
    """One embeddable widget for one knowledge base, and the sites that may embed it.

    What visitors read (title, greeting, suggested questions, hand-off text) is written per language: the
    plain fields in English (and for any language without its own), the `_fr` and `_zh` ones for French and
    Chinese visitors (`texts_for`). An empty French or Chinese field falls back to the English one."""

    class Position(models.TextChoices):
        RIGHT = "right", _("bottom right")
        LEFT = "left", _("bottom left")

    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="widget_keys", verbose_name=_("knowledge base")
    )
    key = models.CharField(_("key"), max_length=64, unique=True, default=new_public_key, editable=False)
    enabled = models.BooleanField(_("enabled"), default=True)
    allowed_origins = ArrayField(
        models.CharField(max_length=200),
        default=list,
        blank=True,
        verbose_name=_("allowed origins"),
        help_text=_("Sites that may embed it, one a line: https://shop.example.com. Empty: none may."),
    )
    title = models.CharField(_("title"), max_length=100, default="Help")
    title_fr = models.CharField(_("title (French)"), max_length=100, blank=True, default="Aide")
    title_zh = models.CharField(_("title (Chinese)"), max_length=100, blank=True, default="帮助")
    greeting = models.TextField(_("greeting"), blank=True, default="Hello! Ask me a question about our products.")
    greeting_fr = models.TextField(
        _("greeting (French)"), blank=True, default="Bonjour\u00a0! Posez-moi vos questions sur nos produits."
    )
    greeting_zh = models.TextField(
        _("greeting (Chinese)"), blank=True, default="您好！关于我们的产品，有什么可以帮您？"
    )
    suggested_questions = ArrayField(
        models.CharField(max_length=300),
        default=list,
        blank=True,
        verbose_name=_("suggested questions"),
        help_text=_("One question a line."),
    )
    suggested_questions_fr = ArrayField(
        models.CharField(max_length=300),
        default=list,
        blank=True,
        verbose_name=_("suggested questions (French)"),
        help_text=_("One question a line."),
    )
    suggested_questions_zh = ArrayField(
        models.CharField(max_length=300),
        default=list,
        blank=True,
        verbose_name=_("suggested questions (Chinese)"),
        help_text=_("One question a line."),
    )
    colour = models.CharField(
        _("colour"),
        max_length=7,
        default="#2563eb",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", _("A colour such as #2563eb."))],
    )
    position = models.CharField(_("position"), max_length=5, choices=Position.choices, default=Position.RIGHT)
    show_sources = models.BooleanField(
        _("show sources"), default=True, help_text=_("Show visitors the passages an answer comes from.")
    )
    handoff_text = models.TextField(
        _("hand-off text"),
        default="Not what you were looking for? Leave your email and a person will get back to you.",
        help_text=_("Shown with 'Talk to a person' and after answers the knowledge base could not give."),
    )
    handoff_text_fr = models.TextField(
        _("hand-off text (French)"),
        blank=True,
        default=(
            "Vous n'avez pas trouvé ce que vous cherchiez\u00a0? Laissez votre adresse e-mail, quelqu'un vous répondra."
        ),
    )
    handoff_text_zh = models.TextField(
        _("hand-off text (Chinese)"),
        blank=True,
        default="没有找到您要的答案？请留下您的电子邮箱，我们的工作人员会尽快回复您。",
    )
    support_email = models.EmailField(
        _("support email"), blank=True, help_text=_("Where 'Talk to a person' messages are mailed.")
    )
    visitor_messages_per_minute = models.PositiveIntegerField(_("visitor messages per minute"), default=6)
    ip_messages_per_minute = models.PositiveIntegerField(_("IP address messages per minute"), default=30)
    messages_per_day = models.PositiveIntegerField(
        _("messages per day"), default=2000, help_text=_("For this key, all visitors together.")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["knowledge_base__name", "created_at"]
        verbose_name = _("widget key")
        verbose_name_plural = _("widget keys")

    def __str__(self) -> str:
        return f"{self.title} ({self.knowledge_base})"

    def texts_for(self, language: str) -> dict[str, Any]:
        """What a visitor reading `language` (en, fr, zh-hans; English otherwise) sees."""
        suffix = {"fr": "_fr", "zh": "_zh"}.get(language.split("-")[0], "")
        texts = {}
        for name in TRANSLATED_FIELDS:
            own = getattr(self, name + suffix) if suffix else None
            texts[name] = own or getattr(self, name)
        return texts

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


TRANSLATED_FIELDS = ("title", "greeting", "suggested_questions", "handoff_text")


class WidgetConversation(models.Model):
    """Which visitor a widget conversation belongs to: only that visitor may continue or read it."""

    conversation = models.OneToOneField(
        Conversation, on_delete=models.CASCADE, primary_key=True, related_name="widget", verbose_name=_("conversation")
    )
    key = models.ForeignKey(WidgetKey, on_delete=models.CASCADE, related_name="conversations", verbose_name=_("key"))
    visitor_id = models.CharField(_("visitor"), max_length=64)
    origin = models.CharField(
        _("origin"), max_length=200, blank=True, help_text=_("The page's origin the visitor chatted from.")
    )
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("widget conversation")
        verbose_name_plural = _("widget conversations")
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
        verbose_name = _("passage shown")
        verbose_name_plural = _("passages shown")
        constraints = [
            models.UniqueConstraint(fields=["key", "visitor_id", "chunk"], name="widget_shown_chunk_unique"),
        ]

    def __str__(self) -> str:
        return f"chunk {self.chunk_id} shown to {self.visitor_id[:8]}"


class Ticket(models.Model):
    """A visitor's 'Talk to a person' message, with the conversation that led to it."""

    key = models.ForeignKey(
        WidgetKey, null=True, on_delete=models.SET_NULL, related_name="tickets", verbose_name=_("key")
    )
    conversation = models.ForeignKey(
        Conversation,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="widget_tickets",
        verbose_name=_("conversation"),
    )
    visitor_id = models.CharField(_("visitor"), max_length=64, blank=True)
    email = models.EmailField(_("email"))
    message = models.TextField(_("message"))
    origin = models.CharField(_("origin"), max_length=200, blank=True)
    mailed_to = models.EmailField(_("mailed to"), blank=True)
    mailed_at = models.DateTimeField(_("mailed at"), null=True, blank=True)
    handled = models.BooleanField(_("handled"), default=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("ticket")
        verbose_name_plural = _("tickets")

    def __str__(self) -> str:
        return f"{self.email}: {self.message[:60]}"
