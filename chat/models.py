from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from kb.models import Chunk, KnowledgeBase


class Conversation(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="conversations",
        verbose_name=_("user"),
    )
    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="conversations", verbose_name=_("knowledge base")
    )
    title = models.CharField(_("title"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")

    def __str__(self) -> str:
        return self.title or gettext("Conversation %(id)s") % {"id": self.pk}


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", pgettext_lazy("message role", "User")
        ASSISTANT = "assistant", pgettext_lazy("message role", "Assistant")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", verbose_name=_("conversation")
    )
    role = models.CharField(_("role"), max_length=10, choices=Role.choices)
    text = models.TextField(_("text"))
    # The numbered sources the answer was generated from, as sent to the client, so they survive reload
    # even if a document is later re-ingested.
    sources = models.JSONField(_("sources"), default=list, blank=True)
    timings = models.JSONField(_("timings"), default=dict, blank=True)
    answered = models.BooleanField(_("answered"), default=True)  # False: the knowledge base could not answer
    stopped = models.BooleanField(_("stopped"), default=False)  # the user stopped the answer mid-way
    feedback = models.SmallIntegerField(
        _("feedback"),
        default=0,
        choices=[
            (1, pgettext_lazy("feedback", "helpful")),
            (0, pgettext_lazy("feedback", "none")),
            (-1, pgettext_lazy("feedback", "not helpful")),
        ],
    )
    feedback_comment = models.TextField(_("feedback comment"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("message")
        verbose_name_plural = _("messages")

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:60]}"


class Citation(models.Model):
    """A source the answer cites, by the number the answer uses for it."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="citations", verbose_name=_("message"))
    chunk = models.ForeignKey(
        Chunk, null=True, on_delete=models.SET_NULL, related_name="citations", verbose_name=_("passage")
    )
    number = models.PositiveSmallIntegerField(_("number"))
    quote = models.TextField(_("quote"), blank=True)
    # Character offsets of the quoted span in the chunk's text; null when the whole passage is cited.
    start = models.PositiveIntegerField(_("start"), null=True, blank=True)
    end = models.PositiveIntegerField(_("end"), null=True, blank=True)

    class Meta:
        ordering = ["message_id", "number"]
        verbose_name = _("citation")
        verbose_name_plural = _("citations")
        constraints = [models.UniqueConstraint(fields=["message", "number"], name="citation_unique_number")]

    def __str__(self) -> str:
        return f"[{self.number}] of message {self.message_id}"


class SourceShown(models.Model):
    """A passage shown with an answer, and to whom: the audit a base's managers read ("who saw this document").

    Written with the answer (chat.services); kept when the chunk is re-ingested or deleted (ids, not keys).
    `user` is empty for widget visitors and commands; the conversation's widget link names the visitor.
    """

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="shown")
    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="+")
    document_id = models.BigIntegerField()
    chunk_id = models.BigIntegerField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["document_id", "created_at"], name="source_shown_document_idx")]

    def __str__(self) -> str:
        return f"chunk {self.chunk_id} shown to {self.user_id or 'a visitor'}"


class QuestionLog(models.Model):
    """One question asked of a knowledge base and what became of it: the record analytics and the knowledge-gap
    report read (issue 16), kept for DOCENT_QUESTION_LOG_DAYS and independent of the conversation (a user who
    deletes a conversation keeps its log row anonymous: `message` and `user` become empty).

    Written with the answer (chat.services); `feedback` mirrors the answer's rating and `handed_off` is set when
    the visitor asks for a person after it. No IP address is kept here.
    """

    class Channel(models.TextChoices):
        CHAT = "chat", pgettext_lazy("question channel", "Chat")
        WIDGET = "widget", pgettext_lazy("question channel", "Widget")
        API = "api", pgettext_lazy("question channel", "API")
        COMMAND = "command", pgettext_lazy("question channel", "Command line")

    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="question_logs", verbose_name=_("knowledge base")
    )
    message = models.OneToOneField(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="log", verbose_name=_("answer")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    question = models.TextField(_("question"))
    # the question as searched for when it differs (a follow-up joined to the question before it)
    standalone = models.TextField(_("standalone question"), blank=True)
    language = models.CharField(_("language"), max_length=12, blank=True)
    answered = models.BooleanField(_("answered"))
    refusal_reason = models.TextField(_("refusal reason"), blank=True)
    cached = models.BooleanField(_("served from cache"), default=False)
    ttft_ms = models.FloatField(_("time to first token (ms)"), null=True, blank=True)
    total_ms = models.FloatField(_("total time (ms)"), null=True, blank=True)
    feedback = models.SmallIntegerField(_("feedback"), default=0)
    handed_off = models.BooleanField(_("handed to a person"), default=False)
    # documents of the cited passages (ids, kept when a document is deleted)
    cited_documents = ArrayField(models.BigIntegerField(), default=list, blank=True, verbose_name=_("cited documents"))
    created_at = models.DateTimeField(_("asked"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("question log entry")
        verbose_name_plural = _("question log")
        indexes = [models.Index(fields=["knowledge_base", "created_at"], name="question_log_kb_time_idx")]

    def __str__(self) -> str:
        return self.question[:80]
