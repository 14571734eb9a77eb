from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.db.models.fields.related import RelatedField
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from kb.forms import UploadForm
from kb.models import AccessChange, Document, KnowledgeBase, Membership, Role
from kb.selectors import document_list_for, knowledge_base_list_for, user_may
from kb.services import (
    document_delete,
    document_reingest,
    document_restrict,
    documents_create,
    knowledge_base_content_changed,
    membership_remove,
    membership_set,
)

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class BulkUploadForm(UploadForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["files"].help_text = gettext_lazy("Select any number of files; each is queued for ingestion.")


class ChunksTotal(TypedDict):
    chunks_total: int


class MembershipInline(admin.TabularInline):
    model = Membership
    fields = ["user", "group", "role"]
    extra = 1

    def has_change_permission(self, request: HttpRequest, obj: KnowledgeBase | None = None) -> bool:
        return obj is None or user_may(user=request.user, knowledge_base=obj, role=Role.MANAGER)

    has_add_permission = has_change_permission
    has_delete_permission = has_change_permission


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(admin.ModelAdmin):
    """Staff see the bases where they are editors (upload) or managers (settings, members); superusers all."""

    list_display = ["name", "slug", "owner", "document_count", "upload_link"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[KnowledgeBase]:
        return knowledge_base_list_for(user=request.user, role=Role.EDITOR)

    def has_change_permission(self, request: HttpRequest, obj: KnowledgeBase | None = None) -> bool:
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or user_may(user=request.user, knowledge_base=obj, role=Role.MANAGER))

    def has_delete_permission(self, request: HttpRequest, obj: KnowledgeBase | None = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or user_may(user=request.user, knowledge_base=obj, role=Role.MANAGER))

    def save_model(self, request: HttpRequest, obj: KnowledgeBase, form: Any, change: bool) -> None:
        if not change and obj.owner_id is None and request.user.is_authenticated:  # the admin's users always are
            obj.owner = request.user  # whoever creates a base in the admin owns it
        super().save_model(request, obj, form, change)
        if change:  # refusals, retrieval mode, the answer cache itself: stored answers may no longer hold
            knowledge_base_content_changed(knowledge_base_id=obj.pk)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        # Through the services, so that every change of access is in the audit log. The admin's own history
        # reads what changed from these lists.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline_form in formset.forms:
            if not hasattr(inline_form, "cleaned_data") or not inline_form.cleaned_data:
                continue
            data = inline_form.cleaned_data
            membership = inline_form.instance
            if data.get("DELETE") and membership.pk:
                formset.deleted_objects.append(membership)
                membership_remove(membership=membership, actor=request.user)
            elif not data.get("DELETE") and (data.get("user") or data.get("group")):
                if membership.pk and (membership.user_id, membership.group_id) != (
                    getattr(data.get("user"), "pk", None),
                    getattr(data.get("group"), "pk", None),
                ):
                    membership_remove(membership=Membership.objects.get(pk=membership.pk), actor=request.user)
                saved = membership_set(
                    knowledge_base=form.instance,
                    role=data["role"],
                    actor=request.user,
                    user=data.get("user"),
                    group=data.get("group"),
                )
                if inline_form.has_changed():
                    if membership.pk:
                        formset.changed_objects.append((saved, inline_form.changed_data))
                    else:
                        formset.new_objects.append(saved)
        return None

    @admin.display(description=gettext_lazy("Documents"))
    def document_count(self, obj: KnowledgeBase) -> int:
        return obj.documents.count()

    @admin.display(description="")
    def upload_link(self, obj: KnowledgeBase) -> str:
        url = reverse("admin:kb_knowledgebase_upload", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("Upload documents"))

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path("<int:pk>/upload/", self.admin_site.admin_view(self.upload_view), name="kb_knowledgebase_upload"),
        ]
        return custom + super().get_urls()

    def upload_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        # editors of the base only; any other id answers as a missing one
        knowledge_base = get_object_or_404(knowledge_base_list_for(user=request.user, role=Role.EDITOR), pk=pk)
        if not request.user.has_perm("kb.add_document") and not request.user.is_superuser:
            return HttpResponseRedirect(reverse("admin:index"))
        form = BulkUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            created = unchanged = 0
            uploads = form.cleaned_data["files"]
            for name, result, rejected in documents_create(
                knowledge_base=knowledge_base, uploads=uploads, uploaded_by=request.user
            ):
                if result is None:
                    messages.error(request, _("%(name)s: %(reason)s") % {"name": name, "reason": rejected})
                    continue
                created += result.created
                unchanged += not result.created
            queued = ngettext("%(count)d document queued", "%(count)d documents queued", created) % {"count": created}
            present = ngettext("%(count)d already present", "%(count)d already present", unchanged) % {
                "count": unchanged
            }
            messages.success(request, _("%(queued)s, %(present)s.") % {"queued": queued, "present": present})
            return HttpResponseRedirect(
                reverse("admin:kb_document_changelist") + f"?knowledge_base__id__exact={knowledge_base.pk}"
            )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Upload documents to %(name)s") % {"name": knowledge_base.name},
            "form": form,
            "knowledge_base": knowledge_base,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/kb/upload.html", context)


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "knowledge_base",
        "status",
        "stage",
        "progress",
        "pages",
        "language",
        "chunk_count",
        "created_at",
    ]
    list_filter = ["status", ("knowledge_base", admin.RelatedOnlyFieldListFilter), "language"]
    search_fields = ["title", "original_name", "sha256"]
    readonly_fields = [
        "knowledge_base",
        "file",
        "original_name",
        "sha256",
        "size",
        "content_type",
        "language",
        "status",
        "stage",
        "progress",
        "error",
        "worker",
        "heartbeat_at",
        "attempts",
        "pages",
        "uploaded_by",
        "created_at",
        "updated_at",
        "parse_ms",
        "embed_ms",
    ]
    fields = ["title", "restricted_to", *readonly_fields]
    filter_horizontal = ["restricted_to"]
    actions = ["reingest", "delete_documents"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # documents arrive through the knowledge base's upload page

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deletion goes through the service, which also removes the file
        return actions

    def get_queryset(self, request: HttpRequest) -> QuerySet[Document]:
        # Documents a staff user may see, in the bases they edit. The extracted text can be megabytes; the list
        # and the form never show it.
        visible = document_list_for(user=request.user, role=Role.EDITOR)
        return visible.select_related("knowledge_base").defer("text").annotate(chunks_total=Count("chunks"))

    def get_field_queryset(
        self, db: str | None, db_field: RelatedField[Any, Any], request: HttpRequest
    ) -> QuerySet[Any] | None:
        if db_field.name == "knowledge_base":
            return knowledge_base_list_for(user=request.user, role=Role.EDITOR)
        return super().get_field_queryset(db, db_field, request)

    def save_model(self, request: HttpRequest, obj: Document, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if "title" in form.changed_data:  # sources and prompts name the document by its title
            knowledge_base_content_changed(knowledge_base_id=obj.knowledge_base_id)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # A restriction moves the document's words between term pools: through the service, never save_m2m.
        groups = list(form.cleaned_data.get("restricted_to") or [])
        document = form.instance
        before = set(document.restricted_to.values_list("pk", flat=True))
        if {g.pk for g in groups} != before or document.restricted != bool(groups):
            document_restrict(document=document, groups=groups, actor=request.user)

    @admin.display(description=gettext_lazy("Passages"), ordering="chunks_total")
    def chunk_count(self, obj: WithAnnotations[Document, ChunksTotal]) -> int:
        return obj.chunks_total  # annotated by get_queryset

    @admin.action(description=gettext_lazy("Ingest selected documents again"))
    def reingest(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        count = 0
        for document in queryset:
            document_reingest(document=document)
            count += 1
        messages.success(
            request, ngettext("%(count)d document queued.", "%(count)d documents queued.", count) % {"count": count}
        )

    @admin.action(description=gettext_lazy("Delete selected documents and their files"))
    def delete_documents(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        count = 0
        for document in queryset:
            document_delete(document=document)
            count += 1
        messages.success(
            request, ngettext("%(count)d document deleted.", "%(count)d documents deleted.", count) % {"count": count}
        )

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        document_delete(document=obj)


@admin.register(AccessChange)
class AccessChangeAdmin(admin.ModelAdmin):
    """The audit log of sharing, for the managers of each base."""

    list_display = ["created_at", "knowledge_base", "actor_name", "action", "target_label"]
    list_filter = ["action", ("knowledge_base", admin.RelatedOnlyFieldListFilter)]
    readonly_fields = ("created_at", "knowledge_base", "actor_name", "action", "target_label", "detail")
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[AccessChange]:
        managed = knowledge_base_list_for(user=request.user, role=Role.MANAGER)
        return super().get_queryset(request).filter(knowledge_base__in=managed)

    @admin.display(description=gettext_lazy("target"), ordering="target")
    def target_label(self, obj: AccessChange) -> str:
        return obj.target_display  # stored in English, shown in the reader's language

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AccessChange | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AccessChange | None = None) -> bool:
        return False
