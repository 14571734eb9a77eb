"""The sharing panel of a knowledge base (htmx): members and roles, document restrictions, the audit logs.

Managers only: anyone else gets 404 for every route here, as for a base that does not exist.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from kb.models import KnowledgeBase, Membership, Role
from kb.selectors import (
    access_change_list,
    document_get_for,
    documents_of,
    knowledge_base_get_for,
    membership_list,
)
from kb.services import document_restrict, membership_remove, membership_set

# Who a membership names, as the add form offers it: the posted value, and its label.
MEMBER_KINDS = [("user", gettext_lazy("user")), ("group", gettext_lazy("group"))]


def _panel(request: HttpRequest, knowledge_base: KnowledgeBase, error: str = "") -> HttpResponse:
    context = {
        "kb": knowledge_base,
        "members": list(membership_list(knowledge_base=knowledge_base)),
        "documents": list(
            documents_of(knowledge_base=knowledge_base, user=request.user).prefetch_related("restricted_to")
        ),
        "groups": list(Group.objects.order_by("name")),
        "roles": Role.choices,
        "kinds": MEMBER_KINDS,
        "changes": list(access_change_list(knowledge_base=knowledge_base)[:50]),
        "error": error,
    }
    return render(request, "kb/_sharing.html", context, status=400 if error else 200)


def _managed(request: HttpRequest, slug: str) -> KnowledgeBase:
    return knowledge_base_get_for(user=request.user, slug=slug, role=Role.MANAGER)


@login_required
def sharing(request: HttpRequest, slug: str) -> HttpResponse:
    return _panel(request, _managed(request, slug))


@login_required
@require_POST
def member_set(request: HttpRequest, slug: str) -> HttpResponse:
    """Add a user or a group by name, or change its role."""
    knowledge_base = _managed(request, slug)
    kind, name, role = request.POST.get("kind"), request.POST.get("name", "").strip(), request.POST.get("role", "")
    if role not in Role.values:
        return _panel(request, knowledge_base, _("Choose a role."))
    if kind == "group":
        group = Group.objects.filter(name=name).first()
        if group is None:
            return _panel(request, knowledge_base, _("There is no group %(name)r.") % {"name": name})
        membership_set(knowledge_base=knowledge_base, role=role, actor=request.user, group=group)
    else:
        user_model = get_user_model()
        user = user_model.objects.filter(**{user_model.USERNAME_FIELD: name}).first()
        if user is None:
            return _panel(request, knowledge_base, _("There is no user %(name)r.") % {"name": name})
        membership_set(knowledge_base=knowledge_base, role=role, actor=request.user, user=user)
    return _panel(request, knowledge_base)


@login_required
@require_POST
def member_remove(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    knowledge_base = _managed(request, slug)
    membership = get_object_or_404(
        Membership.objects.select_related("user", "group"), pk=membership_id, knowledge_base=knowledge_base
    )
    membership_remove(membership=membership, actor=request.user)
    return _panel(request, knowledge_base)


@login_required
@require_POST
def document_restriction(request: HttpRequest, slug: str, document_id: int) -> HttpResponse:
    """Restrict a document to the chosen groups (none chosen: every reader of the base sees it)."""
    knowledge_base = _managed(request, slug)
    document = document_get_for(
        user=request.user, document_id=document_id, role=Role.MANAGER, knowledge_base=knowledge_base
    )
    ids = [int(value) for value in request.POST.getlist("groups") if value.isdigit()]
    document_restrict(document=document, groups=Group.objects.filter(pk__in=ids), actor=request.user)
    return _panel(request, knowledge_base)
