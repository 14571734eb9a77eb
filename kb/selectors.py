"""Reads on knowledge bases and documents, and every decision about who may see what.

A knowledge base is seen by its owner, its members (users, or Django groups the user is in) and superusers;
staff see only what they are given. Roles rank reader < editor < manager, the owner counting as a manager.
A document may be restricted further to groups: then only members of one of those groups (and superusers)
see it, anywhere. Each rule is a filter of the query that reads the objects, so removing a member or a
group takes effect on the next request, and nothing is filtered after the fact. What a user may not see
does not exist for them: the `*_get_for` selectors raise Http404 whether the object is missing or hidden.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404

from kb.models import ROLE_RANK, AccessChange, Chunk, Document, KnowledgeBase, Membership, Role


def is_signed_in(user: Any) -> bool:
    return user is not None and bool(getattr(user, "is_authenticated", False)) and bool(user.is_active)


def is_superuser(user: Any) -> bool:
    return is_signed_in(user) and bool(user.is_superuser)


def roles_at_least(role: str) -> list[str]:
    """The roles that include `role` (a manager may do what an editor and a reader may)."""
    return [r for r, rank in ROLE_RANK.items() if rank >= ROLE_RANK[Role(role)]]


def _memberships_of(user: Any) -> QuerySet[Membership]:
    # A membership names the user, or a group the user is in (auth_user_groups, read in the same query).
    return Membership.objects.filter(Q(user=user) | Q(group__in=Group.objects.filter(user=user)))


# ---- knowledge bases


def knowledge_base_list_for(*, user: Any, role: str = Role.READER) -> QuerySet[KnowledgeBase]:
    """The knowledge bases in which `user` holds at least `role`."""
    if not is_signed_in(user):
        return KnowledgeBase.objects.none()
    if user.is_superuser:
        return KnowledgeBase.objects.all()
    member = _memberships_of(user).filter(knowledge_base=OuterRef("pk"), role__in=roles_at_least(role))
    return KnowledgeBase.objects.filter(Q(owner=user) | Exists(member))


def knowledge_base_list_readable(*, user: Any) -> QuerySet[KnowledgeBase]:
    return knowledge_base_list_for(user=user, role=Role.READER)


def knowledge_base_get_for(
    *, user: Any, slug: str | None = None, pk: int | None = None, role: str = Role.READER
) -> KnowledgeBase:
    """The knowledge base by slug or id if `user` holds `role` in it; Http404 otherwise (missing or not theirs)."""
    if slug is None and pk is None:
        raise Http404("No such knowledge base")
    lookup = {"slug": slug} if slug is not None else {"pk": pk}
    found = knowledge_base_list_for(user=user, role=role).filter(**lookup).first()
    if found is None:
        raise Http404("No such knowledge base")
    return found


def knowledge_base_role(*, user: Any, knowledge_base: KnowledgeBase) -> str | None:
    """The highest role of `user` in the base (superusers and the owner: manager); None when none."""
    if not is_signed_in(user):
        return None
    if user.is_superuser or knowledge_base.owner_id == user.pk:
        return Role.MANAGER
    roles = set(_memberships_of(user).filter(knowledge_base=knowledge_base).values_list("role", flat=True))
    return max(roles, key=lambda r: ROLE_RANK[Role(r)], default=None)


def user_may(*, user: Any, knowledge_base: KnowledgeBase, role: str) -> bool:
    held = knowledge_base_role(user=user, knowledge_base=knowledge_base)
    return held is not None and ROLE_RANK[Role(held)] >= ROLE_RANK[Role(role)]


# Names kept from before access control (callers in chat and the widget).
def knowledge_bases_for_user(*, user: Any) -> QuerySet[KnowledgeBase]:
    return knowledge_base_list_readable(user=user)


def knowledge_base_for_user(*, user: Any, slug: Any, role: str = Role.READER) -> KnowledgeBase | None:
    if not isinstance(slug, str):
        return None
    try:
        return knowledge_base_get_for(user=user, slug=slug, role=role)
    except Http404:
        return None


# ---- documents


def document_visible_q(*, user: Any, prefix: str = "") -> Q:
    """Documents whose restriction lets `user` see them (base membership is checked separately).

    Anonymous readers (widget visitors, commands run without --user) see unrestricted documents only.
    """
    if is_superuser(user):
        return Q()
    if not is_signed_in(user):
        return Q(**{f"{prefix}restricted": False})
    allowed = Document.restricted_to.through.objects.filter(
        document_id=OuterRef(f"{prefix}id" if prefix else "pk"), group__user=user
    )
    return cast(Q, Q(**{f"{prefix}restricted": False}) | Exists(allowed))


def document_list_for(
    *, user: Any, knowledge_base: KnowledgeBase | None = None, role: str = Role.READER
) -> QuerySet[Document]:
    """Documents `user` may see, in bases where they hold `role` (in `knowledge_base` only, when given)."""
    bases = knowledge_base_list_for(user=user, role=role)
    if knowledge_base is not None:
        bases = bases.filter(pk=knowledge_base.pk)
    return Document.objects.filter(document_visible_q(user=user), knowledge_base__in=bases)


def documents_of(*, knowledge_base: KnowledgeBase, user: Any) -> QuerySet[Document]:
    """The base's documents that `user` may see, newest first, without their extracted text."""
    return document_list_for(user=user, knowledge_base=knowledge_base).defer("text").order_by("-created_at")


def document_get_for(
    *, user: Any, document_id: int, role: str = Role.READER, knowledge_base: KnowledgeBase | None = None
) -> Document:
    """A document `user` may see in a base where they hold `role` (`knowledge_base`, when given); Http404
    otherwise."""
    visible = document_list_for(user=user, role=role, knowledge_base=knowledge_base)
    found = visible.filter(pk=document_id).defer("text").first()
    if found is None:
        raise Http404("No such document")
    return found


def document_ids_hidden_from(*, user: Any, knowledge_base_id: int) -> tuple[int, ...]:
    """The base's restricted documents that `user` may not see: what every search of the base leaves out.

    One index look-up (restricted documents of the base; a partial index holds only those) in the query that
    also reads the user's groups.
    """
    if is_superuser(user):
        return ()
    with connection.cursor() as cursor:
        if is_signed_in(user):
            cursor.execute(
                """
                SELECT d.id FROM kb_document d
                WHERE d.knowledge_base_id = %s AND d.restricted AND NOT EXISTS (
                    SELECT 1 FROM kb_document_restricted_to r
                    JOIN auth_user_groups g ON g.group_id = r.group_id
                    WHERE r.document_id = d.id AND g.user_id = %s
                )
                ORDER BY d.id
                """,
                [knowledge_base_id, user.pk],
            )
        else:
            cursor.execute(
                "SELECT id FROM kb_document WHERE knowledge_base_id = %s AND restricted ORDER BY id",
                [knowledge_base_id],
            )
        return tuple(row[0] for row in cursor.fetchall())


def search_scope_for(*, user: Any, knowledge_base_id: int) -> tuple[int, ...]:
    """What a search of the base must leave out for `user`: the restricted documents they may not see.

    Http404 when a user (anything but None) may not read the base at all, so that a transport which forgot its
    own check still finds nothing. `user` None is a widget visitor or a command: the caller chose the base, and
    only its unrestricted documents are searched.
    """
    if user is not None and not is_superuser(user):
        if not knowledge_base_list_readable(user=user).filter(pk=knowledge_base_id).exists():
            raise Http404("No such knowledge base")
    return document_ids_hidden_from(user=user, knowledge_base_id=knowledge_base_id)


def chunk_list_for(*, user: Any) -> QuerySet[Chunk]:
    """Chunks of documents `user` may see, in bases they may read."""
    return Chunk.objects.filter(
        document_visible_q(user=user, prefix="document__"),
        knowledge_base__in=knowledge_base_list_readable(user=user),
    )


def passage_for_user(*, user: Any, document_id: int, chunk_id: int) -> tuple[Document, list[Chunk], Chunk] | None:
    """The document, its chunks in reading order, and the cited one; None if not the user's to see."""
    document = document_list_for(user=user).filter(pk=document_id).select_related("knowledge_base").first()
    if document is None:
        return None
    chunks = list(document.chunks.only("id", "ordinal", "text", "page", "heading"))
    cited = next((c for c in chunks if c.pk == chunk_id), None)
    if cited is None:
        return None
    return document, chunks, cited


# ---- members and the audit log (managers only)


def membership_list(*, knowledge_base: KnowledgeBase) -> QuerySet[Membership]:
    return Membership.objects.filter(knowledge_base=knowledge_base).select_related("user", "group")


def access_change_list(*, knowledge_base: KnowledgeBase) -> QuerySet[AccessChange]:
    return AccessChange.objects.filter(knowledge_base=knowledge_base)
