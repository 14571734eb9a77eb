"""What the knowledge-gap report keeps: resolved groups, saved evaluation cases, and question embeddings."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.translation import gettext_lazy as _

from kb.models import Document, KnowledgeBase


class GapResolution(models.Model):
    """A group of gap questions a manager marked resolved (e.g. after uploading the document that answers them).

    The group is identified by the QuestionLog ids it held when resolved (`question_ids`, sorted; `signature`
    is their SHA-256, unique per base): those questions leave the open groups, and the report re-checks
    whether they would now be answered. Questions asked later on the same topic form a new open group.
    """

    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="gap_resolutions", verbose_name=_("knowledge base")
    )
    signature = models.CharField(_("signature"), max_length=64)
    question_ids = ArrayField(models.BigIntegerField(), verbose_name=_("questions"))
    central_question = models.TextField(_("central question"))
    note = models.TextField(_("note"), blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("resolved by"),
    )
    resolved_at = models.DateTimeField(_("resolved"), auto_now_add=True)

    class Meta:
        ordering = ["-resolved_at", "-id"]
        verbose_name = _("resolved knowledge gap")
        verbose_name_plural = _("resolved knowledge gaps")
        constraints = [
            models.UniqueConstraint(fields=["knowledge_base", "signature"], name="gap_resolution_signature_unique")
        ]

    def __str__(self) -> str:
        return self.central_question[:80]


class SavedCase(models.Model):
    """A question real users asked, with the document (and page) that should answer it: an evaluation case run
    by `manage.py eval_qa --kb SLUG --saved`. A deleted document leaves the case (it then always misses)."""

    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="saved_cases", verbose_name=_("knowledge base")
    )
    question = models.TextField(_("question"))
    language = models.CharField(_("language"), max_length=12)
    document = models.ForeignKey(
        Document,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("expected document"),
    )
    document_name = models.CharField(_("document name"), max_length=300)
    page = models.PositiveIntegerField(_("page"), null=True, blank=True)
    source_log = models.ForeignKey(
        "chat.QuestionLog",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("asked in"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("saved evaluation case")
        verbose_name_plural = _("saved evaluation cases")

    def __str__(self) -> str:
        return self.question[:80]


class QuestionEmbedding(models.Model):
    """A gap question's vector by its base's embedder (float32 bytes), so each question is embedded once and
    the report stays fast (2,000 questions take ~40 s to embed on 2 cores with multilingual-e5-small)."""

    log = models.OneToOneField("chat.QuestionLog", on_delete=models.CASCADE, primary_key=True, related_name="+")
    embedder = models.CharField(max_length=300)
    vector = models.BinaryField()

    def __str__(self) -> str:
        return f"{self.embedder} vector of question {self.log_id}"
