from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from chat.selectors import conversation_history, conversations_for_user
from kb.selectors import knowledge_bases_for_user


@login_required
def home(request: HttpRequest, conversation_id: int | None = None) -> HttpResponse:
    knowledge_bases = list(knowledge_bases_for_user(user=request.user))
    conversations = conversations_for_user(user=request.user)[:50]
    conversation = None
    history: list[dict[str, object]] = []
    if conversation_id is not None:
        conversation = conversations_for_user(user=request.user).filter(pk=conversation_id).first()
        if conversation is None:
            raise Http404("No such conversation")
        history = conversation_history(conversation=conversation)
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
