"""Who may see what, below the routes: searches, term statistics, removal, deleted groups, `ask --user`."""

from __future__ import annotations

import io
import json
from io import StringIO

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.http import Http404
from django.urls import reverse

from chat.routing import websocket_urlpatterns
from kb import retrieval
from kb.ingest import progress
from kb.ingest.pipeline import run_pipeline
from kb.models import AccessChange, Document, KnowledgeBase, Membership
from kb.selectors import (
    document_ids_hidden_from,
    knowledge_base_get_for,
    knowledge_base_list_readable,
    knowledge_base_role,
)
from kb.services import (
    document_create,
    document_delete,
    document_restrict,
    knowledge_base_create,
    membership_remove,
    membership_set,
)

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_TEXT = "Salaries are reviewed every March by the Zorblax committee of Quillfeather."
PUBLIC_TEXT = "The kettle boils water in three minutes. Descale it every month with citric acid."


def _document(kb: KnowledgeBase, name: str, text: str) -> Document:
    document = document_create(
        knowledge_base=kb, content=io.BytesIO(text.encode()), filename=f"{name}.txt", enqueue=False
    ).document
    assert run_pipeline(document).status == Document.Status.READY
    return document


@pytest.fixture
def setting(django_user_model):
    owner = django_user_model.objects.create_user("owner", password="owner-password-1")
    reader = django_user_model.objects.create_user("reader", password="reader-password-1")
    hr = Group.objects.create(name="hr")
    owner.groups.add(hr)
    kb = knowledge_base_create(slug="mixed", name="Mixed", owner=owner)
    membership_set(knowledge_base=kb, role="reader", actor=owner, user=reader)
    public = _document(kb, "public", PUBLIC_TEXT)
    secret = _document(kb, "secret", SECRET_TEXT)
    document_restrict(document=secret, groups=[hr], actor=owner)
    return {"owner": owner, "reader": reader, "hr": hr, "kb": kb, "public": public, "secret": secret}


def _document_ids(result: retrieval.SearchResult) -> set[int]:
    return {h.chunk.document_id for h in result.hits if h.chunk}


@pytest.mark.parametrize("mode", ["dense", "fulltext", "hybrid"])
def test_a_restricted_document_is_searched_only_for_its_groups(setting, mode):
    question = "When are salaries reviewed by the Zorblax committee?"
    as_owner = retrieval.search(knowledge_base=setting["kb"], question=question, mode=mode, user=setting["owner"])
    as_reader = retrieval.search(knowledge_base=setting["kb"], question=question, mode=mode, user=setting["reader"])
    anonymous = retrieval.search(knowledge_base=setting["kb"], question=question, mode=mode)
    assert setting["secret"].pk in _document_ids(as_owner)
    assert setting["secret"].pk not in _document_ids(as_reader)
    assert setting["secret"].pk not in _document_ids(anonymous)


def test_a_search_by_someone_who_may_not_read_the_base_finds_nothing(setting, django_user_model):
    outsider = django_user_model.objects.create_user("outsider", password="outsider-password-1")
    with pytest.raises(Http404):
        retrieval.search(knowledge_base=setting["kb"], question="How long does the kettle take?", user=outsider)


def test_a_document_restricted_after_an_answer_leaves_that_answers_sources(setting):
    from chat.models import Conversation
    from chat.selectors import conversation_history
    from chat.services import answer_save

    kb, reader, public = setting["kb"], setting["reader"], setting["public"]
    chunk = public.chunks.first()
    source = {"n": 1, "document_id": public.pk, "chunk_id": chunk.pk, "title": "public", "url": "/x/"}
    conversation = Conversation.objects.create(user=reader, knowledge_base=kb)
    answer_save(
        conversation=conversation,
        text="Three minutes [1].",
        sources=[source],
        citations=[],
        timings={},
        answered=True,
        stopped=False,
        source_texts={},
    )
    assert conversation_history(conversation=conversation, user=reader)[0]["sources"] == [source]
    document_restrict(document=public, groups=[setting["hr"]], actor=setting["owner"])
    assert conversation_history(conversation=conversation, user=reader)[0]["sources"] == []
    assert conversation_history(conversation=conversation, user=setting["owner"])[0]["sources"] == [source]


def test_term_statistics_leave_out_what_the_reader_may_not_see(setting):
    kb = setting["kb"]
    lexemes = retrieval.question_lexemes("zorblax quillfeather kettle", "en")
    for user, sees_secret in ((setting["owner"], True), (setting["reader"], False), (None, False)):
        hidden = document_ids_hidden_from(user=user, knowledge_base_id=kb.pk)
        scope = retrieval.Scope(kb.pk, language="en", hidden_document_ids=hidden)
        total, df = retrieval.term_frequencies(scope=scope, lexemes=lexemes)
        assert ("zorblax" in df) == sees_secret, (user, df)
        assert "kettl" in df
        chunks = retrieval.term_frequencies(scope=retrieval.Scope(kb.pk, language="en"), lexemes=[])[0]
        assert total == (chunks if sees_secret else chunks - setting["secret"].chunks.count())
    # The refusal check reads the same statistics: the reader is told the word is in no passage.
    question = "What does the Zorblax committee do?"
    assert not retrieval.search(knowledge_base=kb, question=question, user=setting["reader"]).answerable
    assert retrieval.search(knowledge_base=kb, question=question, user=setting["owner"]).answerable


def test_lifting_a_restriction_moves_its_words_back_and_deleting_it_leaves_no_pool(setting):
    kb, secret = setting["kb"], setting["secret"]
    document_restrict(document=secret, groups=[], actor=setting["owner"])
    scope = retrieval.Scope(kb.pk, language="en")
    assert "zorblax" in retrieval.term_frequencies(scope=scope, lexemes=["zorblax"])[1]
    opened = retrieval.search(knowledge_base=kb, question="Zorblax committee", user=setting["reader"], mode="fulltext")
    assert secret.pk in _document_ids(opened)
    document_restrict(document=secret, groups=[setting["hr"]], actor=setting["owner"])
    document_delete(document=Document.objects.get(pk=secret.pk))
    from kb.models import TermStat

    assert not TermStat.objects.filter(restricted_document_id=secret.pk).exists()
    actions = list(AccessChange.objects.filter(knowledge_base=kb).values_list("action", flat=True))
    assert actions.count("document_restricted") == 2 and "document_opened" in actions


def test_a_deleted_group_leaves_its_documents_restricted(setting):
    setting["hr"].delete()
    owner = setting["owner"]
    hidden = document_ids_hidden_from(user=owner, knowledge_base_id=setting["kb"].pk)
    assert setting["secret"].pk in hidden  # nobody but superusers, never everybody


def test_roles_and_removal_take_effect_on_the_next_request(setting, client):
    kb, reader = setting["kb"], setting["reader"]
    assert knowledge_base_role(user=reader, knowledge_base=kb) == "reader"
    client.force_login(reader)
    assert client.get(reverse("kb:detail", args=[kb.slug])).status_code == 200
    assert client.post(reverse("kb:upload", args=[kb.slug])).status_code == 404  # readers do not upload
    membership = Membership.objects.get(knowledge_base=kb, user=reader)
    membership_remove(membership=membership, actor=setting["owner"])
    assert client.get(reverse("kb:detail", args=[kb.slug])).status_code == 404
    with pytest.raises(Http404):
        knowledge_base_get_for(user=reader, slug=kb.slug)
    log = list(AccessChange.objects.filter(knowledge_base=kb).values_list("action", "target", "actor_name"))
    assert ("member_added", "user reader", "owner") in log and ("member_removed", "user reader", "owner") in log


def test_group_membership_gives_the_groups_role(setting, django_user_model):
    newcomer = django_user_model.objects.create_user("newcomer", password="newcomer-password-1")
    assert not knowledge_base_list_readable(user=newcomer).exists()  # a new user sees nothing until shared
    staff = Group.objects.create(name="staff")
    membership_set(knowledge_base=setting["kb"], role="editor", actor=setting["owner"], group=staff)
    newcomer.groups.add(staff)
    assert knowledge_base_role(user=newcomer, knowledge_base=setting["kb"]) == "editor"
    newcomer.groups.remove(staff)
    assert knowledge_base_role(user=newcomer, knowledge_base=setting["kb"]) is None


def test_command_line_bases_are_seen_by_superusers_only(django_user_model):
    kb = knowledge_base_create(slug="cli-made")
    admin = django_user_model.objects.create_superuser("root", password="root-password-1")
    staff = django_user_model.objects.create_user("staffer", password="staffer-password-1", is_staff=True)
    assert list(knowledge_base_list_readable(user=admin)) == [kb]
    assert not knowledge_base_list_readable(user=staff).exists()


def test_ask_as_a_user_reads_only_what_they_may_see(setting):
    question = "When are salaries reviewed by the Zorblax committee?"
    out = StringIO()
    call_command("ask", question, "--kb", "mixed", "--user", "owner", "--retrieve-only", "--json", stdout=out)
    assert setting["secret"].pk in {s["document_id"] for s in json.loads(out.getvalue())["sources"]}
    out = StringIO()
    call_command("ask", question, "--kb", "mixed", "--user", "reader", "--retrieve-only", "--json", stdout=out)
    assert setting["secret"].pk not in {s["document_id"] for s in json.loads(out.getvalue())["sources"]}
    out = StringIO()
    call_command("ask", question, "--kb", "mixed", "--retrieve-only", "--json", stdout=out)  # no user: public
    assert setting["secret"].pk not in {s["document_id"] for s in json.loads(out.getvalue())["sources"]}
    with pytest.raises(CommandError, match="no user"):
        call_command("ask", question, "--kb", "mixed", "--user", "nobody-else", "--retrieve-only")
    knowledge_base_create(slug="private")
    with pytest.raises(CommandError, match="no knowledge base"):
        call_command("ask", question, "--kb", "private", "--user", "reader", "--retrieve-only")


def test_an_upload_never_replaces_a_restricted_document_its_uploader_cannot_see(setting):
    created = document_create(
        knowledge_base=setting["kb"],
        content=io.BytesIO(b"Other words entirely."),
        filename="secret.txt",
        uploaded_by=setting["reader"],
        enqueue=False,
    )
    assert created.created and created.document.pk != setting["secret"].pk
    assert Document.objects.get(pk=setting["secret"].pk).sha256 == setting["secret"].sha256


async def test_a_removed_member_is_refused_at_the_next_question_and_update(setting):
    reader, kb = setting["reader"], setting["kb"]
    chat = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/chat/")
    chat.scope["user"] = reader
    assert (await chat.connect())[0]
    page = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/kb/{kb.slug}/")
    page.scope["user"] = reader
    assert (await page.connect())[0]
    while not await page.receive_nothing(timeout=0.5):  # rows of recent documents, sent on connect
        await page.receive_from()
    membership = await Membership.objects.select_related("knowledge_base", "user").aget(knowledge_base=kb, user=reader)
    await database_sync_to_async(membership_remove)(membership=membership, actor=setting["owner"])

    await chat.send_json_to({"type": "ask", "question": "How long does the kettle take?", "kb": kb.slug})
    event = await chat.receive_json_from(timeout=30)
    assert event["type"] == "error" and event["code"] == "unknown_kb"

    public = await Document.objects.aget(pk=setting["public"].pk)
    progress.publish(public)
    await database_sync_to_async(progress.flush)()
    output = await page.receive_output(timeout=10)
    assert output["type"] == "websocket.close" and output["code"] == 4403
    await chat.disconnect()


async def test_progress_rows_of_a_restricted_document_reach_only_its_groups(setting):
    kb = setting["kb"]
    sockets = {}
    for name in ("owner", "reader"):
        communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/kb/{kb.slug}/")
        communicator.scope["user"] = setting[name]
        assert (await communicator.connect())[0]
        while not await communicator.receive_nothing(timeout=0.5):  # rows of recent documents, sent on connect
            await communicator.receive_from()
        sockets[name] = communicator
    secret = await Document.objects.aget(pk=setting["secret"].pk)
    progress.publish(secret)
    await database_sync_to_async(progress.flush)()
    owner_row = await sockets["owner"].receive_from(timeout=10)
    reader_row = await sockets["reader"].receive_from(timeout=10)
    assert "secret" in owner_row and 'hx-swap-oob="true"' in owner_row
    assert "secret" not in reader_row and 'hx-swap-oob="delete"' in reader_row
    for communicator in sockets.values():
        await communicator.disconnect()
