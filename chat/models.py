from __future__ import annotations

from django.conf import settings
from django.db import models

from kb.models import Chunk, KnowledgeBase


class Conversation(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="conversations"
    )
    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=Role.choices)
    text = models.TextField()
    # The numbered sources the answer was generated from, as sent to the client, so they survive reload
    # even if a document is later re-ingested.
    sources = models.JSONField(default=list, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    answered = models.BooleanField(default=True)  # False: the knowledge base could not answer
    stopped = models.BooleanField(default=False)  # the user stopped the answer mid-way
    feedback = models.SmallIntegerField(default=0, choices=[(1, "helpful"), (0, "none"), (-1, "not helpful")])
    feedback_comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:60]}"


class Citation(models.Model):
    """A source the answer cites, by the number the answer uses for it."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="citations")
    chunk = models.ForeignKey(Chunk, null=True, on_delete=models.SET_NULL, related_name="citations")
    number = models.PositiveSmallIntegerField()
    quote = models.TextField(blank=True)
    # Character offsets of the quoted span in the chunk's text; null when the whole passage is cited.
    start = models.PositiveIntegerField(null=True, blank=True)
    end = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["message_id", "number"]
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
