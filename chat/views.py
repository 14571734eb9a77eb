from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from chat.selectors import conversation_get_for, conversation_history, conversations_for_user, document_viewers
from chat.services import message_feedback
from kb.models import Role
from kb.selectors import document_get_for, knowledge_base_get_for, knowledge_base_list_readable


@login_required
def home(request: HttpRequest, conversation_id: int | None = None) -> HttpResponse:
    knowledge_bases = list(knowledge_base_list_readable(user=request.user))
    conversations = conversations_for_user(user=request.user)[:50]
    conversation = None
    history: list[dict[str, object]] = []
    if conversation_id is not None:
        conversation = conversation_get_for(user=request.user, conversation_id=conversation_id)
        history = conversation_history(conversation=conversation, user=request.user)
    selected = conversation.knowledge_base.slug if conversation else request.GET.get("kb", "")
    if not selected and knowledge_bases:
        selected = knowledge_bases[0].slug
    context = {
        "knowledge_bases": knowledge_bases,
        "conversations": conversations,
        "conversation": conversation,
        "history": history,
        "selected_kb": selected,
    }
    return render(request, "chat/home.html", context)


@login_required
@require_POST
def feedback(request: HttpRequest, message_id: int) -> JsonResponse:
    try:
        rating = int(request.POST.get("rating", ""))
        message = message_feedback(
            user=request.user, message_id=message_id, rating=rating, comment=request.POST.get("comment", "")
        )
    except ValueError:
        return JsonResponse({"error": "rating must be -1, 0 or 1"}, status=400)
    if message is None:
        raise Http404("No such answer")
    return JsonResponse({"feedback": message.feedback, "comment": message.feedback_comment})


@login_required
def document_seen(request: HttpRequest, slug: str, document_id: int) -> HttpResponse:
    """Who was shown passages of a document (answers in the web chat, the widget, the command line), for the
    base's managers; 404 for everyone else. Linked from kb's sharing panel; it lives here because the rows are
    chat's (SourceShown) and kb imports nothing of chat."""
    knowledge_base = knowledge_base_get_for(user=request.user, slug=slug, role=Role.MANAGER)
    document = document_get_for(
        user=request.user, document_id=document_id, role=Role.MANAGER, knowledge_base=knowledge_base
    )
    return render(
        request,
        "kb/seen.html",
        {"kb": knowledge_base, "document": document, "rows": document_viewers(document=document)},
    )
