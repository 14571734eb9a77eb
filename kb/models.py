from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.utils.functional import Promise
from django.utils.translation import gettext, pgettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _
from pgvector.django import VectorField


class KnowledgeBase(models.Model):
    slug = models.SlugField(_("slug"), unique=True)
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    # Said instead of an answer when the knowledge base holds nothing relevant, in the question's language.
    refusal_text = models.TextField(
        _("refusal"),
        default="I could not find this in the knowledge base.",
        help_text=_("Said (in English) instead of an answer when the knowledge base holds nothing relevant."),
    )
    refusal_text_fr = models.TextField(
        _("refusal (French)"),
        default="Je n'ai pas trouvé cette information dans la base de connaissances.",
        help_text=_("The same, for questions in French."),
    )
    refusal_text_zh = models.TextField(
        _("refusal (Chinese)"),
        default="知识库中没有找到这方面的信息。",
        help_text=_("The same, for questions in Chinese."),
    )
    retrieval_mode = models.CharField(
        _("retrieval mode"),
        max_length=10,
        choices=[("hybrid", _("hybrid")), ("fulltext", _("full-text")), ("dense", _("dense"))],
        default="hybrid",
    )
    # The embedder its chunks were embedded with (kb.encoders): its questions are embedded by the same one.
    # `manage.py reembed` moves a base to another.
    embedder = models.CharField(_("embedder"), max_length=300, blank=True, default="")
    # The embedder `reembed` is moving the base to (its vectors gather in Chunk.next_embedding); "" when none.
    next_embedder = models.CharField(_("next embedder"), max_length=300, blank=True, default="")
    # Manages the base like a member with the manager role. A base created from the command line has none:
    # only superusers see it until it is shared (kb.selectors holds every access decision).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_knowledge_bases",
        verbose_name=_("owner"),
    )
    # Repeated questions answered from the stored answer (chat.answer_cache) while the base is unchanged.
    answer_cache = models.BooleanField(
        _("answer cache"),
        default=True,
        help_text=_(
            "Answer a question asked again from the stored answer and its sources, without the language model, "
            "until a document, the access rules or these settings change."
        ),
    )
    # Bumped by every change that can change an answer (documents stored, replaced, deleted, access, settings):
    # part of the answer cache's key, so a change leaves the old entries unreachable (kb.services).
    content_version = models.PositiveBigIntegerField(_("content version"), default=0, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("knowledge base")
        verbose_name_plural = _("knowledge bases")

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.embedder:  # a new base takes the configured embedder, however it is created
            from kb.embedder import default_name

            self.embedder = default_name()
        if not self._state.adding and kwargs.get("update_fields") is None:
            # `content_version` moves only by kb.services.knowledge_base_content_changed's atomic increment: a
            # form saving the value it read would set it back, and bring stale cached answers back with it.
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields if not f.primary_key and f.name != "content_version"
            ]
        super().save(*args, **kwargs)

    def refusal_for(self, language: str) -> str:
        """The refusal text in `language` (en, fr, zh; English otherwise)."""
        return {"fr": self.refusal_text_fr, "zh": self.refusal_text_zh}.get(language) or self.refusal_text


class Role(models.TextChoices):
    """What a member may do in a knowledge base; each role includes the ones before it."""

    READER = "reader", _("reader (ask, open passages)")
    EDITOR = "editor", _("editor (upload, delete, re-ingest)")
    MANAGER = "manager", _("manager (members, settings, widget keys)")


ROLE_RANK = {Role.READER: 1, Role.EDITOR: 2, Role.MANAGER: 3}
# A role's name alone, as the audit log shows it.
ROLE_NAMES: dict[str, Promise] = {
    Role.READER: pgettext_lazy("role", "reader"),
    Role.EDITOR: pgettext_lazy("role", "editor"),
    Role.MANAGER: pgettext_lazy("role", "manager"),
}


class Membership(models.Model):
    """A user or a Django group given a role in a knowledge base."""

    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("knowledge base")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="kb_memberships",
        verbose_name=_("user"),
    )
    group = models.ForeignKey(
        Group,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="kb_memberships",
        verbose_name=_("group"),
    )
    role = models.CharField(_("role"), max_length=10, choices=Role.choices, default=Role.READER)
    created_at = models.DateTimeField(_("added"), auto_now_add=True)

    class Meta:
        ordering = ["knowledge_base", "group", "user"]
        verbose_name = _("member")
        verbose_name_plural = _("members")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, group__isnull=True)
                | models.Q(user__isnull=True, group__isnull=False),
                name="membership_user_xor_group",
            ),
            models.UniqueConstraint(fields=["knowledge_base", "user"], name="membership_unique_user"),
            models.UniqueConstraint(fields=["knowledge_base", "group"], name="membership_unique_group"),
        ]

    def __str__(self) -> str:
        who = member_name(user=self.user, group=self.group)
        return gettext("%(member)s: %(role)s of %(knowledge_base)s") % {
            "member": who,
            "role": ROLE_NAMES.get(self.role, self.role),
            "knowledge_base": self.knowledge_base,
        }


def member_name(*, user: object = None, group: object = None) -> str:
    """The member as the reader's language names it: "user NAME" or "group NAME"."""
    if user is not None:
        return gettext("user %(name)s") % {"name": user}
    return gettext("group %(name)s") % {"name": group}


class AccessChange(models.Model):
    """The audit log of sharing: who changed whose access to what, and when (readable by the base's managers).

    `target` is stored in English ("user NAME", "group NAME", "document TITLE") and shown in the reader's
    language by `target_display`.
    """

    class Action(models.TextChoices):
        MEMBER_ADDED = "member_added", _("member added")
        ROLE_CHANGED = "role_changed", _("role changed")
        MEMBER_REMOVED = "member_removed", _("member removed")
        DOCUMENT_RESTRICTED = "document_restricted", _("document restricted")
        DOCUMENT_OPENED = "document_opened", _("restriction lifted")

    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="access_changes", verbose_name=_("knowledge base")
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("changed by (account)"),
    )
    # kept when the account is deleted
    actor_name = models.CharField(_("changed by"), max_length=150, blank=True)
    action = models.CharField(_("change"), max_length=40, choices=Action.choices)
    target = models.CharField(_("target"), max_length=300)
    detail = models.JSONField(_("details"), default=dict, blank=True)
    created_at = models.DateTimeField(_("when"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("access change")
        verbose_name_plural = _("access changes")

    def __str__(self) -> str:
        return f"{self.actor_name or pgettext('actor', 'system')} {self.get_action_display()} {self.target_display}"

    @property
    def target_display(self) -> str:
        """The stored English target ("user NAME", "group NAME", "document TITLE") in the reader's language."""
        kind, _separator, name = self.target.partition(" ")
        template = ACCESS_TARGETS.get(kind)
        return str(template) % {"name": name} if template is not None and name else self.target

    @property
    def role_display(self) -> str:
        """The role the change gave (or took away), named in the reader's language; "" when none."""
        role = self.detail.get("role", "") if isinstance(self.detail, dict) else ""
        return str(ROLE_NAMES.get(role, role))


ACCESS_TARGETS = {"user": _("user %(name)s"), "group": _("group %(name)s"), "document": _("document %(name)s")}


def document_upload_to(document: Document, filename: str) -> str:
    return f"documents/{document.knowledge_base_id}/{document.sha256[:2]}/{document.sha256}/{filename}"


class Document(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        PROCESSING = "processing", _("Processing")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    class Stage(models.TextChoices):
        NONE = "", "—"
        PARSE = "parse", _("Reading")
        CHUNK = "chunk", _("Splitting into passages")
        EMBED = "embed", _("Embedding")
        STORE = "store", _("Saving")

    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="documents", verbose_name=_("knowledge base")
    )
    title = models.CharField(_("title"), max_length=300)
    file = models.FileField(_("file"), upload_to=document_upload_to, max_length=500)
    original_name = models.CharField(_("original name"), max_length=300)
    sha256 = models.CharField("SHA-256", max_length=64)
    size = models.BigIntegerField(_("size (bytes)"), default=0)
    content_type = models.CharField(_("content type"), max_length=100, blank=True)
    language = models.CharField(_("language"), max_length=8, blank=True)
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True, verbose_name=_("tags"))
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    stage = models.CharField(_("stage"), max_length=8, choices=Stage.choices, default=Stage.NONE, blank=True)
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)  # percent of the whole ingestion
    # The worker holding the document while it is processed, and its last sign of life: a processing
    # document whose heartbeat is stale has lost its worker and is queued again (kb.ingest.lease).
    worker = models.CharField(_("worker"), max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # The text extracted from the file; chunks' start/end index into it, so a citation highlights its span.
    text = models.TextField(_("extracted text"), blank=True)
    # Why it failed: an English sentence from kb.reasons, shown translated by `error_display`.
    error = models.TextField(_("error"), blank=True)
    pages = models.PositiveIntegerField(_("pages"), null=True, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, verbose_name=_("uploaded by")
    )
    # A restricted document is seen only by members of `restricted_to` (and superusers); everyone else cannot
    # retrieve, cite, open or download it, and its words are kept out of their term statistics. The flag, not
    # the group list, says so: a deleted group leaves the document restricted, never open.
    restricted = models.BooleanField(_("restricted"), default=False)
    restricted_to = models.ManyToManyField(
        Group, blank=True, related_name="restricted_documents", verbose_name=_("restricted to groups")
    )
    created_at = models.DateTimeField(_("added"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    parse_ms = models.PositiveIntegerField(_("parsing time (ms)"), null=True, blank=True)
    embed_ms = models.PositiveIntegerField(_("embedding time (ms)"), null=True, blank=True)

    class Meta:
        ordering = ["title"]
        verbose_name = _("document")
        verbose_name_plural = _("documents")
        constraints = [
            models.UniqueConstraint(fields=["knowledge_base", "sha256"], name="document_unique_content_per_kb"),
        ]
        indexes = [
            models.Index(
                fields=["knowledge_base"], condition=models.Q(restricted=True), name="document_restricted_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def error_display(self) -> str:
        """The failure reason in the reader's language (kb.reasons)."""
        from kb.reasons import translate

        return translate(self.error)

    @property
    def language_name(self) -> str:
        """The document's language, named in the reader's language."""
        return str(DOCUMENT_LANGUAGES.get(self.language, self.language))

    @property
    def is_stalled(self) -> bool:
        """Processing, but its worker has stopped sending heartbeats (it will be queued again)."""
        from datetime import timedelta

        from django.utils import timezone

        if self.status != self.Status.PROCESSING or self.heartbeat_at is None:
            return False
        return self.heartbeat_at < timezone.now() - timedelta(seconds=settings.DOCENT_INGEST_STALE_S)


DOCUMENT_LANGUAGES = {"en": _("English"), "fr": _("French"), "zh": _("Chinese")}


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    # Denormalised from the document so that scoping a vector search is a filter on the chunk row itself.
    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="+")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    page = models.PositiveIntegerField(null=True, blank=True)
    heading = models.CharField(max_length=500, blank=True)
    start = models.PositiveIntegerField(default=0)  # offsets of `text` in the document's extracted text
    end = models.PositiveIntegerField(default=0)
    language = models.CharField(max_length=8, blank=True)
    # Any dimension: each embedder's vectors are searched through an HNSW index of their own dimension
    # (kb.vector_index), so bases embedded by different models share the table.
    embedding = VectorField()
    # The next embedder's vector while `manage.py reembed` runs; moved into `embedding` when all are there.
    next_embedding = VectorField(null=True, blank=True)
    search_vector = SearchVectorField(null=True)

    class Meta:
        ordering = ["document_id", "ordinal"]
        verbose_name = _("passage")
        verbose_name_plural = _("passages")
        constraints = [
            models.UniqueConstraint(fields=["document", "ordinal"], name="chunk_unique_ordinal"),
        ]
        indexes = [
            GinIndex(fields=["search_vector"], name="chunk_search_vector_gin"),
            models.Index(fields=["knowledge_base"], name="chunk_kb_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"


class TermStat(models.Model):
    """How many chunks of a knowledge base, in one language, contain a lexeme (lexeme "" : all chunks).

    Unrestricted documents count in the pool `restricted_document_id` 0; each restricted document counts in
    a pool of its own, which a search adds only for a reader who may see that document, so BM25's statistics
    and the refusal check never reveal a restricted document's words.

    Kept in step with the chunks by `kb.ingest.store`, so BM25's document frequencies and the refusal
    check's "does this word occur anywhere" are index look-ups instead of counts over the chunks.
    """

    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="+")
    language = models.CharField(max_length=8)
    lexeme = models.TextField()
    restricted_document_id = models.BigIntegerField(default=0)
    df = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["knowledge_base", "language", "lexeme", "restricted_document_id"], name="termstat_unique_pool"
            ),
        ]
        indexes = [
            models.Index(
                fields=["restricted_document_id"],
                condition=~models.Q(restricted_document_id=0),
                name="termstat_restricted_pool",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.lexeme or '(chunks)'}: {self.df}"


class Posting(models.Model):
    """One lexeme of one chunk with its term frequency: the inverted index BM25 reads.

    Written from the chunk's tsvector by `kb.ingest.store` and deleted with the chunk. Full-text search
    scans these rows index-only for the question's rarer terms instead of reading whole tsvectors
    (measured at 100k chunks: BM25 p50 41 → 13 ms, same ranking; README, "Speed").
    """

    pk = models.CompositePrimaryKey("chunk", "lexeme")
    # the primary key (chunk, lexeme) serves look-ups by chunk: no second index
    chunk = models.ForeignKey(Chunk, on_delete=models.CASCADE, related_name="+", db_index=False)
    lexeme = models.TextField()
    # Copies of the chunk's columns, so the index alone answers a search.
    knowledge_base_id = models.BigIntegerField()
    document_id = models.BigIntegerField()
    language = models.CharField(max_length=8)
    tf = models.SmallIntegerField()  # positions of the lexeme in the chunk (tsvector keeps at most 256)
    dl = models.IntegerField()  # lexemes in the chunk

    class Meta:
        indexes = [
            models.Index(
                fields=["knowledge_base_id", "language", "lexeme"],
                include=["chunk", "document_id", "tf", "dl"],
                name="posting_term",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.lexeme} in chunk {self.chunk_id}: {self.tf}"
