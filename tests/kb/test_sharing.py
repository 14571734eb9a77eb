"""The sharing panel (htmx) and the admin: members, roles, restrictions, and the audit of changes and of what
was shown to whom."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from chat.models import Conversation
from chat.services import answer_save
from kb.ingest.pipeline import run_pipeline
from kb.models import AccessChange, Document, Membership
from kb.selectors import knowledge_base_role
from kb.services import document_create, knowledge_base_create, membership_set

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def base(django_user_model):
    owner = django_user_model.objects.create_user("owner", password="owner-password-1")
    colleague = django_user_model.objects.create_user("colleague", password="colleague-password-1")
    kb = knowledge_base_create(slug="shared", name="Shared", owner=owner)
    document = document_create(
        knowledge_base=kb, content=io.BytesIO(b"Payroll closes on the 25th."), filename="payroll.txt", enqueue=False
    ).document
    assert run_pipeline(document).status == Document.Status.READY
    return {"owner": owner, "colleague": colleague, "kb": kb, "document": document}


def test_a_manager_shares_changes_roles_restricts_and_reads_the_log(client, base):
    kb, colleague = base["kb"], base["colleague"]
    client.force_login(base["owner"])
    page = client.get(reverse("kb:detail", args=[kb.slug]))
    assert reverse("kb:sharing", args=[kb.slug]).encode() in page.content  # the panel loads by htmx
    url = reverse("kb:member_set", args=[kb.slug])
    panel = client.post(url, {"kind": "user", "name": "colleague", "role": "reader"}, HTTP_HX_REQUEST="true")
    assert panel.status_code == 200 and b"colleague" in panel.content
    assert knowledge_base_role(user=colleague, knowledge_base=kb) == "reader"
    client.post(url, {"kind": "user", "name": "colleague", "role": "editor"})
    assert knowledge_base_role(user=colleague, knowledge_base=kb) == "editor"
    assert client.post(url, {"kind": "user", "name": "nobody", "role": "reader"}).status_code == 400
    assert client.post(url, {"kind": "group", "name": "no-such-group", "role": "reader"}).status_code == 400

    finance = Group.objects.create(name="finance")
    restrict = reverse("kb:restrict", args=[kb.slug, base["document"].pk])
    assert client.post(restrict, {"groups": [str(finance.pk)]}).status_code == 200
    document = Document.objects.get(pk=base["document"].pk)
    assert document.restricted and list(document.restricted_to.all()) == [finance]

    membership = Membership.objects.get(knowledge_base=kb, user=colleague)
    client.post(reverse("kb:member_remove", args=[kb.slug, membership.pk]))
    assert knowledge_base_role(user=colleague, knowledge_base=kb) is None
    log = client.get(reverse("kb:sharing", args=[kb.slug])).content.decode()
    for action in ("member_added", "role_changed", "document_restricted", "member_removed"):
        assert action in log
    assert [c.actor_name for c in AccessChange.objects.filter(knowledge_base=kb)] == ["owner"] * 4


def test_an_editor_uploads_but_does_not_share(client, base):
    kb, colleague = base["kb"], base["colleague"]
    membership_set(knowledge_base=kb, role="editor", actor=base["owner"], user=colleague)
    client.force_login(colleague)
    page = client.get(reverse("kb:detail", args=[kb.slug]))
    assert (
        b'enctype="multipart/form-data"' in page.content
        and reverse("kb:sharing", args=[kb.slug]).encode() not in page.content
    )
    assert client.get(reverse("kb:sharing", args=[kb.slug])).status_code == 404
    assert (
        client.post(
            reverse("kb:member_set", args=[kb.slug]), {"kind": "user", "name": "colleague", "role": "manager"}
        ).status_code
        == 404
    )
    assert knowledge_base_role(user=colleague, knowledge_base=kb) == "editor"


def test_managers_see_who_was_shown_a_documents_passages(client, base):
    kb, document, colleague = base["kb"], base["document"], base["colleague"]
    chunk = document.chunks.first()
    source = {"n": 1, "document_id": document.pk, "chunk_id": chunk.pk, "title": "payroll", "url": "/"}
    conversation = Conversation.objects.create(user=colleague, knowledge_base=kb, title="When does payroll close?")
    answer_save(
        conversation=conversation,
        text="On the 25th [1].",
        sources=[source],
        citations=[],
        timings={},
        answered=True,
        stopped=False,
        source_texts={},
    )
    client.force_login(base["owner"])
    page = client.get(reverse("chat:document_seen", args=[kb.slug, document.pk]))
    assert page.status_code == 200 and b"colleague" in page.content and f"chunk {chunk.pk}".encode() in page.content
    client.force_login(colleague)  # a reader (here: not even that) never sees the list
    assert client.get(reverse("chat:document_seen", args=[kb.slug, document.pk])).status_code == 404


def test_the_admin_writes_membership_and_restriction_changes_to_the_log(admin_client, base, django_user_model):
    kb, document = base["kb"], base["document"]
    finance = Group.objects.create(name="finance")
    url = reverse("admin:kb_knowledgebase_change", args=[kb.pk])
    form = {
        "name": kb.name,
        "slug": kb.slug,
        "description": "",
        "refusal_text": kb.refusal_text,
        "refusal_text_fr": kb.refusal_text_fr,
        "refusal_text_zh": kb.refusal_text_zh,
        "retrieval_mode": kb.retrieval_mode,
        "embedder": kb.embedder,
        "next_embedder": "",
        "owner": base["owner"].pk,
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-user": "",
        "memberships-0-group": finance.pk,
        "memberships-0-role": "reader",
    }
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Membership.objects.filter(knowledge_base=kb, group=finance, role="reader").exists()
    response = admin_client.post(
        reverse("admin:kb_document_change", args=[document.pk]),
        {"title": document.title, "restricted_to": [finance.pk]},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Document.objects.get(pk=document.pk).restricted
    actions = set(AccessChange.objects.filter(knowledge_base=kb).values_list("action", flat=True))
    assert {"member_added", "document_restricted"} <= actions
