"""API keys: a bearer secret that acts as one user, optionally narrowed to some knowledge bases."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from chat.models import Conversation
from kb.models import KnowledgeBase


class ApiKey(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True, help_text="What the key is for, e.g. “Slack bot”.")
    # The key's first characters, shown in lists so that a user can tell keys apart; the rest is never stored.
    prefix = models.CharField(max_length=16, editable=False)
    # SHA-256 of the whole key: keys are 256-bit random strings, so a fast hash cannot be brute-forced, and
    # a lookup by hash costs one index probe per request (GitHub's and Stripe's tokens are stored alike).
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    knowledge_bases = models.ManyToManyField(
        KnowledgeBase,
        blank=True,
        related_name="api_keys",
        help_text="Only these knowledge bases; none selected: every base the user may read.",
    )
    questions_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: DOCENT_API_QUESTIONS_PER_MINUTE."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or self.user})"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class ApiConversation(models.Model):
    """The key a conversation came through (the chat's own conversations have none)."""

    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, primary_key=True, related_name="api")
    key = models.ForeignKey(ApiKey, null=True, on_delete=models.SET_NULL, related_name="conversations")

    class Meta:
        verbose_name = "API conversation"

    def __str__(self) -> str:
        return f"conversation {self.conversation_id} via key {self.key_id}"
