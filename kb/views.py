from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from kb.forms import UploadForm
from kb.models import Chunk, KnowledgeBase, Role
from kb.selectors import (
    document_get_for,
    documents_of,
    knowledge_base_get_for,
    knowledge_base_list_readable,
    knowledge_base_role,
    passage_for_user,
    user_may,
)
from kb.services import documents_create

PASSAGE_CONTEXT = 6  # chunks shown before and after the cited one (documents ingested without offsets)
EXCERPT_CONTEXT_CHARS = 3000  # extracted text shown around the cited chunk


@login_required
def kb_list(request: HttpRequest) -> HttpResponse:
    return render(request, "kb/list.html", {"knowledge_bases": knowledge_base_list_readable(user=request.user)})


@login_required
def kb_detail(request: HttpRequest, slug: str) -> HttpResponse:
    knowledge_base = knowledge_base_get_for(user=request.user, slug=slug)
    context = {**_documents_context(request, knowledge_base), "form": UploadForm()}
    return render(request, "kb/detail.html", context)


def _documents_context(request: HttpRequest, knowledge_base: KnowledgeBase) -> dict[str, Any]:
    role = knowledge_base_role(user=request.user, knowledge_base=knowledge_base)
    return {
        "kb": knowledge_base,
        "documents": list(documents_of(knowledge_base=knowledge_base, user=request.user)),
        "role": role,
        "may_edit": user_may(user=request.user, knowledge_base=knowledge_base, role=Role.EDITOR),
        "may_manage": user_may(user=request.user, knowledge_base=knowledge_base, role=Role.MANAGER),
    }


@login_required
def kb_documents(request: HttpRequest, slug: str) -> HttpResponse:
    """The document table alone (live updates come over /ws/kb/SLUG/)."""
    knowledge_base = knowledge_base_get_for(user=request.user, slug=slug)
    return render(request, "kb/_documents.html", _documents_context(request, knowledge_base))


@login_required
@require_POST
def kb_upload(request: HttpRequest, slug: str) -> HttpResponse:
    knowledge_base = knowledge_base_get_for(user=request.user, slug=slug, role=Role.EDITOR)
    form = UploadForm(request.POST, request.FILES)
    if form.is_valid():
        uploads = form.cleaned_data["files"]
        for name, result, rejected in documents_create(
            knowledge_base=knowledge_base, uploads=uploads, uploaded_by=request.user
        ):
            if result is None:
                messages.error(request, _("%(name)s: %(reason)s") % {"name": name, "reason": rejected})
            elif result.created:
                messages.success(request, _("%(name)s: queued for processing.") % {"name": name})
            elif result.replaced:
                messages.success(
                    request, _("%(name)s: new version queued; it replaces the previous one.") % {"name": name}
                )
            else:
                messages.info(request, _("%(name)s: already in this knowledge base.") % {"name": name})
    else:
        messages.error(request, _("Choose at least one file to upload."))
    return redirect("kb:detail", slug=knowledge_base.slug)


@login_required
def passage(request: HttpRequest, document_id: int, chunk_id: int) -> HttpResponse:
    found = passage_for_user(user=request.user, document_id=document_id, chunk_id=chunk_id)
    if found is None:
        raise Http404("No such passage")
    document, chunks, cited = found
    span = _span(request, cited.text)
    if document.text and cited.end > cited.start and document.text[cited.start : cited.end] == cited.text:
        # The document's own extracted text around the chunk, the chunk and the quoted span marked exactly.
        context = {"document": document, "cited": cited, "excerpt": _excerpt(document.text, cited, span)}
        return render(request, "kb/passage.html", context)
    index = chunks.index(cited)
    window = chunks[max(0, index - PASSAGE_CONTEXT) : index + PASSAGE_CONTEXT + 1]
    context = {"document": document, "chunks": window, "cited": cited, "span": span}
    return render(request, "kb/passage.html", context)


def _excerpt(text: str, cited: Chunk, span: tuple[str, str, str] | None) -> dict[str, str]:
    """Text before the chunk, the chunk (split around the quote when there is one), and text after it."""
    low = text.rfind("\n\n", 0, max(0, cited.start - EXCERPT_CONTEXT_CHARS))
    low = 0 if low < 0 else low + 2
    high = text.find("\n\n", min(len(text), cited.end + EXCERPT_CONTEXT_CHARS))
    high = len(text) if high < 0 else high
    head, quote, tail = span if span else ("", "", cited.text)
    return {
        "before": text[low : cited.start],
        "head": head,
        "quote": quote,
        "tail": tail,
        "after": text[cited.end : high],
    }


def _span(request: HttpRequest, text: str) -> tuple[str, str, str] | None:
    """?hl=START-END: the cited chunk's text cut around the quoted span (escaped by the template)."""
    try:
        start, end = (int(part) for part in request.GET.get("hl", "").split("-", 1))
    except ValueError:
        return None
    if not 0 <= start < end <= len(text):
        return None
    return text[:start], text[start:end], text[end:]


@login_required
def document_file(request: HttpRequest, document_id: int) -> FileResponse:
    document = document_get_for(user=request.user, document_id=document_id)
    # Always a download, never rendered inline: an uploaded file (HTML, a PDF with scripts, an SVG) must
    # never run in Docent's origin.
    response = FileResponse(
        document.file.open("rb"),
        as_attachment=True,
        filename=document.original_name,
        content_type=document.content_type or "application/octet-stream",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; frame-ancestors 'none'"
    return response
