from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from kb.forms import MultipleFileField
from kb.models import Document, KnowledgeBase
from kb.services import DocumentRejected, document_create, document_delete, document_reingest


class BulkUploadForm(forms.Form):
    files = MultipleFileField(
        label=gettext_lazy("Documents"),
        help_text=gettext_lazy("Select any number of files; each is queued for ingestion."),
    )


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "document_count", "upload_link"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug"]

    @admin.display(description=gettext_lazy("Documents"))
    def document_count(self, obj: KnowledgeBase) -> int:
        return obj.documents.count()

    @admin.display(description="")
    def upload_link(self, obj: KnowledgeBase) -> str:
        url = reverse("admin:kb_knowledgebase_upload", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("Upload documents"))

    def get_urls(self):  # type: ignore[no-untyped-def]
        custom = [
            path("<int:pk>/upload/", self.admin_site.admin_view(self.upload_view), name="kb_knowledgebase_upload"),
        ]
        return custom + super().get_urls()

    def upload_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        knowledge_base = get_object_or_404(KnowledgeBase, pk=pk)
        if not self.has_change_permission(request, knowledge_base):
            return HttpResponseRedirect(reverse("admin:index"))
        form = BulkUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            created = unchanged = 0
            for upload in form.cleaned_data["files"]:
                try:
                    result = document_create(
                        knowledge_base=knowledge_base, content=upload, filename=upload.name, uploaded_by=request.user
                    )
                except DocumentRejected as exc:
                    messages.error(request, _("%(name)s: %(reason)s") % {"name": upload.name, "reason": exc})
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
    list_filter = ["status", "knowledge_base", "language"]
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
    fields = ["title", *readonly_fields]
    actions = ["reingest", "delete_documents"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # documents arrive through the knowledge base's upload page

    def get_actions(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deletion goes through the service, which also removes the file
        return actions

    def get_queryset(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        # The extracted text can be megabytes; the list and the form never show it.
        return super().get_queryset(request).defer("text").annotate(chunks_total=Count("chunks"))

    @admin.display(description=gettext_lazy("Passages"), ordering="chunks_total")
    def chunk_count(self, obj: Document) -> int:
        return obj.chunks_total  # type: ignore[attr-defined]

    @admin.action(description=gettext_lazy("Ingest selected documents again"))
    def reingest(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        count = 0
        for document in queryset:
            document_reingest(document=document)
            count += 1
        messages.success(
            request, ngettext("%(count)d document queued.", "%(count)d documents queued.", count) % {"count": count}
        )

    @admin.action(description=gettext_lazy("Delete selected documents and their files"))
    def delete_documents(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        count = 0
        for document in queryset:
            document_delete(document=document)
            count += 1
        messages.success(
            request, ngettext("%(count)d document deleted.", "%(count)d documents deleted.", count) % {"count": count}
        )

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        document_delete(document=obj)
