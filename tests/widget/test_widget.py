"""The support widget on the real stack: keys, origins, visitor sessions, limits, passages, tickets, command."""

from __future__ import annotations

import json
import re
import time
from io import StringIO
from unittest import mock

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.core.management import CommandError, call_command

from chat.models import Conversation, Message, QuestionLog
from chat.routing import websocket_urlpatterns
from chat.widget import tokens
from chat.widget.models import ShownChunk, Ticket, WidgetConversation, WidgetKey
from chat.widget.origins import origin_normalize, origin_of
from chat.widget.services import VisitorAccess, widget_conversation_open
from kb.models import Chunk, Document
from kb.services import knowledge_base_create

pytestmark = pytest.mark.django_db(transaction=True)

SHOP = "http://shop.example"
EVIL = "http://evil.example"
DOCENT = "http://testserver"  # the iframe's page is Docent's own: its sockets come from this origin
QUESTION = "How do I do a factory reset of the Lumen K3 kettle?"
UNANSWERABLE = "How do I configure AppArmor profiles?"  # refused from the knowledge base, without the model


@pytest.fixture
def widget_key(manual_kb) -> WidgetKey:
    return WidgetKey.objects.create(
        knowledge_base=manual_kb, allowed_origins=[SHOP], title="Kettle help", support_email="support@shop.example"
    )


@pytest.fixture
def bare_key(db) -> WidgetKey:
    """A key of an empty knowledge base, for what needs no retrieval."""
    knowledge_base = knowledge_base_create(slug="empty", name="Empty")
    return WidgetKey.objects.create(
        knowledge_base=knowledge_base, allowed_origins=[SHOP], support_email="support@shop.example"
    )


def new_session(key: WidgetKey, origin: str = SHOP) -> str:
    return tokens.session_issue(key=key.key, visitor_id=tokens.new_visitor_id(), origin=origin)


async def connect(key_value: str, token: str, *, origin: str | None = DOCENT, ip: str = "198.51.100.7"):
    headers = [(b"host", b"testserver")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    communicator = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), f"/ws/widget/{key_value}/?s={token}", headers=headers
    )
    communicator.scope["client"] = (ip, 40000)
    connected, code = await communicator.connect()
    return communicator, connected, code


async def collect_answer(communicator):
    events = []
    while True:
        event = await communicator.receive_json_from(timeout=120)
        events.append(event)
        if event["type"] in ("done", "error"):
            return events


async def ask(communicator, question: str, conversation: int | None = None):
    await communicator.send_json_to({"type": "ask", "question": question, "conversation": conversation})
    return await collect_answer(communicator)


def frame_config(html: str) -> dict:  # type: ignore[type-arg]
    found = re.search(r'<script id="docent-widget-config" type="application/json">(.*?)</script>', html, re.S)
    assert found, "the iframe page carries its configuration"
    return json.loads(found.group(1))


# ---- the socket -------------------------------------------------------------------------------------


async def test_allowed_visitor_is_answered_with_sources_that_open_in_the_widget_viewer(widget_key, async_client):
    token = new_session(widget_key)
    communicator, connected, _ = await connect(widget_key.key, token)
    assert connected
    events = await ask(communicator, QUESTION)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "sources" and kinds[-1] == "done" and set(kinds[1:-1]) == {"token"}, kinds
    sources = events[0]["items"]
    assert sources
    manual = await Document.objects.aget(original_name="lumen-k3-manual.en.md")
    assert sources[0]["document_id"] == manual.pk
    for source in sources:
        assert source["url"].startswith(f"/widget/{widget_key.key}/passage/{source['chunk_id']}/?s=")

    done = events[-1]
    assert "".join(e["text"] for e in events if e["type"] == "token").strip()
    link = await WidgetConversation.objects.select_related("conversation").aget(conversation_id=done["conversation"])
    session = tokens.session_read(token, key=widget_key.key, max_age=60)
    assert session is not None
    assert link.key_id == widget_key.pk and link.visitor_id == session.visitor_id and link.origin == SHOP
    assert link.conversation.user_id is None and link.ip is None  # no IP address kept unless switched on
    log = await QuestionLog.objects.aget(message_id=done["message_id"])
    assert (log.channel, log.question, log.user_id) == ("widget", QUESTION, None)
    assert log.knowledge_base_id == widget_key.knowledge_base_id

    # a follow-up continues the visitor's own conversation
    follow_up = await ask(communicator, "What does error E4 mean?", done["conversation"])
    assert follow_up[-1]["type"] == "done" and follow_up[-1]["conversation"] == done["conversation"]
    await communicator.disconnect()

    # the passage viewer serves what was shown to this visitor, and nothing else
    shown = await Chunk.objects.aget(pk=sources[0]["chunk_id"])
    response = await async_client.get(sources[0]["url"])
    assert response.status_code == 200
    assert shown.text.split("\n")[0][:40] in response.content.decode()
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"  # only the iframe view is exempt

    shown_ids = {s["chunk_id"] for s in sources} | {s["chunk_id"] for s in follow_up[0]["items"]}
    not_shown = await Chunk.objects.filter(knowledge_base=widget_key.knowledge_base).exclude(pk__in=shown_ids).afirst()
    assert not_shown is not None
    assert (await async_client.get(f"/widget/{widget_key.key}/passage/{not_shown.pk}/?s={token}")).status_code == 404
    other_visitor = new_session(widget_key)
    assert (
        await async_client.get(f"/widget/{widget_key.key}/passage/{shown.pk}/?s={other_visitor}")
    ).status_code == 404
    assert (await async_client.get(f"/widget/{widget_key.key}/passage/{shown.pk}/")).status_code == 404
    # the same session with the kb's own viewer: sign in first
    kb_viewer = await async_client.get(f"/kb/documents/{shown.document_id}/passage/{shown.pk}/?s={token}")
    assert kb_viewer.status_code == 302 and "/accounts/login/" in kb_viewer.headers["Location"]


async def test_a_socket_from_the_embedding_origin_itself_is_accepted(widget_key):
    communicator, connected, _ = await connect(widget_key.key, new_session(widget_key), origin=SHOP)
    assert connected
    await communicator.disconnect()


async def test_foreign_or_missing_origin_is_refused(widget_key):
    for origin in (EVIL, None, "null", "http://shop.example.evil.example"):
        _, connected, code = await connect(widget_key.key, new_session(widget_key), origin=origin)
        assert not connected and code == 4403, origin


async def test_disabled_unknown_and_originless_keys_are_refused(widget_key):
    token = new_session(widget_key)
    _, connected, code = await connect("not-a-key", token)
    assert not connected and code == 4403
    widget_key.enabled = False
    await widget_key.asave()
    _, connected, code = await connect(widget_key.key, token)
    assert not connected and code == 4403
    widget_key.enabled, widget_key.allowed_origins = True, []
    await widget_key.asave()
    _, connected, code = await connect(widget_key.key, token)
    assert not connected and code == 4403


async def test_disabling_a_key_ends_open_chats(widget_key):
    communicator, connected, _ = await connect(widget_key.key, new_session(widget_key))
    assert connected
    widget_key.enabled = False
    await widget_key.asave()
    refused = await ask(communicator, UNANSWERABLE)
    assert refused[-1]["code"] == "unavailable"
    assert (await communicator.receive_output(timeout=5))["code"] == 4403


async def test_forged_expired_and_foreign_sessions_are_refused(widget_key, bare_key):
    good = new_session(widget_key)
    forged = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    with mock.patch("django.core.signing.time.time", return_value=time.time() - 2 * 3600):
        expired = new_session(widget_key)
    other_key = new_session(bare_key)
    removed_origin = new_session(widget_key, origin="https://old-shop.example")
    for token in ("", "garbage", forged, expired, other_key, removed_origin):
        _, connected, code = await connect(widget_key.key, token)
        assert not connected and code == 4403, token
    communicator, connected, _ = await connect(widget_key.key, good)
    assert connected
    await communicator.disconnect()


async def test_visitor_cannot_continue_or_read_another_visitors_conversation(widget_key, async_client):
    alice_token = new_session(widget_key)
    alice, _, _ = await connect(widget_key.key, alice_token)
    done = (await ask(alice, UNANSWERABLE))[-1]
    assert done["type"] == "done" and done["answered"] is False
    await alice.disconnect()

    bob_token = new_session(widget_key)
    bob, _, _ = await connect(widget_key.key, bob_token)
    refused = await ask(bob, "And in English?", done["conversation"])
    assert refused[-1]["code"] == "unknown_conversation"
    # nor a signed-in user's conversation, which also has a number
    other = await Conversation.objects.acreate(user=None, knowledge_base_id=widget_key.knowledge_base_id)
    assert (await ask(bob, "Hello?", other.pk))[-1]["code"] == "unknown_conversation"
    await bob.disconnect()

    history = f"/widget/{widget_key.key}/conversations/{done['conversation']}/"
    mine = await async_client.get(history, {"s": alice_token})
    assert mine.status_code == 200
    assert [m["role"] for m in mine.json()["messages"]] == ["user", "assistant"]
    assert "timings" not in mine.json()["messages"][1]
    assert (await async_client.get(history, {"s": bob_token})).status_code == 404


async def test_rate_limits_per_visitor_per_ip_and_per_key(widget_key):
    widget_key.visitor_messages_per_minute = 1
    await widget_key.asave()
    communicator, _, _ = await connect(widget_key.key, new_session(widget_key), ip="203.0.113.1")
    assert (await ask(communicator, UNANSWERABLE))[-1]["type"] == "done"
    limited = (await ask(communicator, UNANSWERABLE))[-1]
    assert limited["type"] == "error" and limited["code"] == "rate_limited" and limited["limit"] == "visitor"
    assert 0 < limited["retry_after"] <= 60
    await communicator.disconnect()

    widget_key.visitor_messages_per_minute, widget_key.ip_messages_per_minute = 10, 1
    await widget_key.asave()
    first, _, _ = await connect(widget_key.key, new_session(widget_key), ip="203.0.113.2")
    second, _, _ = await connect(widget_key.key, new_session(widget_key), ip="203.0.113.2")
    assert (await ask(first, UNANSWERABLE))[-1]["type"] == "done"
    assert (await ask(second, UNANSWERABLE))[-1]["limit"] == "ip"
    await first.disconnect()
    await second.disconnect()

    widget_key.ip_messages_per_minute, widget_key.messages_per_day = 10, 3  # two questions counted already
    await widget_key.asave()
    third, _, _ = await connect(widget_key.key, new_session(widget_key), ip="203.0.113.3")
    assert (await ask(third, UNANSWERABLE))[-1]["type"] == "done"
    assert (await ask(third, UNANSWERABLE))[-1]["limit"] == "key"
    # the socket stays usable, and other frames are answered as on /ws/chat/
    await third.send_json_to({"type": "ask", "question": "  "})
    assert (await third.receive_json_from())["code"] == "empty_question"
    await third.disconnect()


async def test_hidden_sources_are_neither_sent_nor_served(widget_key, async_client):
    widget_key.show_sources = False
    await widget_key.asave()
    token = new_session(widget_key)
    communicator, _, _ = await connect(widget_key.key, token)
    events = await ask(communicator, QUESTION)
    await communicator.disconnect()
    assert events[0] == {"type": "sources", "items": []} and events[-1]["type"] == "done"
    assert not await ShownChunk.objects.filter(key=widget_key).aexists()
    chunk = await Chunk.objects.filter(knowledge_base=widget_key.knowledge_base).afirst()
    assert (await async_client.get(f"/widget/{widget_key.key}/passage/{chunk.pk}/?s={token}")).status_code == 404


# ---- the iframe page and the loader's configuration ----------------------------------------------------


def test_iframe_is_framable_only_by_the_keys_origins(client, bare_key):
    bare_key.allowed_origins = [SHOP, "https://www.shop.example"]
    bare_key.save()
    url = f"/widget/{bare_key.key}/"
    response = client.get(url, headers={"referer": f"{SHOP}/products/kettle?x=1", "sec-fetch-dest": "iframe"})
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert f"frame-ancestors {SHOP} https://www.shop.example;" in csp
    assert "X-Frame-Options" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    assert not response.cookies, "the widget sets no cookie"
    config = frame_config(response.content.decode())
    session = tokens.session_read(config["session"], key=bare_key.key, max_age=60)
    assert session is not None and session.origin == SHOP
    assert config["wsPath"] == f"/ws/widget/{bare_key.key}/"
    body = response.content.decode()
    assert "data-docent-input" in body and "data-docent-handoff" in body

    # the browser says who embeds it: a foreign page, or no frame at all, gets nothing
    assert client.get(url, headers={"referer": f"{EVIL}/"}).status_code == 403
    assert client.get(url, headers={"sec-fetch-dest": "document"}).status_code == 403
    assert client.get(url).status_code == 200  # no Referer: the CSP header is what the browser enforces
    bare_key.allowed_origins = []
    bare_key.save()
    assert client.get(url).status_code == 403
    bare_key.enabled = False
    bare_key.save()
    assert client.get(url).status_code == 404
    assert client.get("/widget/forged-key/").status_code == 404
    # every other page keeps refusing to be framed
    assert client.get("/accounts/login/").headers["X-Frame-Options"] == "DENY"


def test_loader_configuration_is_readable_only_from_allowed_origins(client, bare_key):
    url = f"/widget/{bare_key.key}/config/"
    allowed = client.get(url, headers={"origin": SHOP})
    assert allowed.status_code == 200 and allowed.headers["Access-Control-Allow-Origin"] == SHOP
    assert allowed.json()["frame"] == f"/widget/{bare_key.key}/?lang=en"
    foreign = client.get(url, headers={"origin": EVIL})
    assert foreign.status_code == 403 and "Access-Control-Allow-Origin" not in foreign.headers
    assert "Access-Control-Allow-Origin" not in client.get(url).headers


def test_returning_visitor_gets_a_session_of_their_own(client, bare_key):
    page = frame_config(client.get(f"/widget/{bare_key.key}/", headers={"referer": SHOP + "/"}).content.decode())
    earlier_visitor = tokens.visitor_credential_issue(key=bare_key.key, visitor_id="earlier-visitor")
    body = json.dumps({"visitor": earlier_visitor, "session": page["session"]})
    renewed = client.post(f"/widget/{bare_key.key}/session/", body, content_type="application/json")
    assert renewed.status_code == 200
    session = tokens.session_read(renewed.json()["session"], key=bare_key.key, max_age=60)
    assert session is not None and session.visitor_id == "earlier-visitor" and session.origin == SHOP
    foreign = client.post(
        f"/widget/{bare_key.key}/session/", body, content_type="application/json", headers={"origin": EVIL}
    )
    assert foreign.status_code == 403
    forged = json.dumps({"visitor": "x", "session": "y"})
    assert client.post(f"/widget/{bare_key.key}/session/", forged, content_type="application/json").status_code == 403


# ---- talk to a person -----------------------------------------------------------------------------------


def test_ticket_is_created_with_the_conversation_and_mailed(client, bare_key, mailoutbox, settings):
    page = frame_config(client.get(f"/widget/{bare_key.key}/", headers={"referer": SHOP + "/"}).content.decode())
    session = tokens.session_read(page["session"], key=bare_key.key, max_age=60)
    assert session is not None
    access = VisitorAccess(key=bare_key, session=session, token=page["session"])
    settings.DOCENT_LOG_IP_ADDRESSES = True  # the operator's choice; off by default
    conversation_id = widget_conversation_open(
        access=access, conversation_id=None, question="Where is my order?", ip="192.0.2.1"
    )
    assert str(WidgetConversation.objects.get(conversation_id=conversation_id).ip) == "192.0.2.1"
    # the visitor's last answer in the conversation led to the hand-off: the knowledge-gap report counts it
    answer_message = Message.objects.create(conversation_id=conversation_id, role="assistant", text="?", answered=False)
    log = QuestionLog.objects.create(
        knowledge_base_id=bare_key.knowledge_base_id,
        message=answer_message,
        channel="widget",
        question="Where is my order?",
        answered=False,
    )
    url = f"/widget/{bare_key.key}/ticket/"
    body = {"session": page["session"], "email": "ann@customer.example", "message": "Please call me back."}
    response = client.post(url, json.dumps({**body, "conversation": conversation_id}), content_type="application/json")
    assert response.status_code == 201, response.content
    ticket = Ticket.objects.get(pk=response.json()["ticket"])
    assert ticket.conversation_id == conversation_id and ticket.key == bare_key and ticket.origin == SHOP
    assert ticket.mailed_to == "support@shop.example" and ticket.mailed_at is not None
    log.refresh_from_db()
    assert log.handed_off
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == ["support@shop.example"] and mail.reply_to == ["ann@customer.example"]
    assert "Please call me back." in mail.body and f"/admin/chat/conversation/{conversation_id}/" in mail.body

    # another visitor's conversation is not attached; bad input and bad sessions are refused
    stranger = new_session(bare_key)
    response = client.post(
        url, json.dumps({**body, "session": stranger, "conversation": conversation_id}), content_type="application/json"
    )
    assert response.status_code == 201 and Ticket.objects.get(pk=response.json()["ticket"]).conversation is None
    bad_email = json.dumps({**body, "email": "not an email"})
    assert client.post(url, bad_email, content_type="application/json").status_code == 400
    forged = json.dumps({**body, "session": "forged"})
    assert client.post(url, forged, content_type="application/json").status_code == 403
    assert len(mailoutbox) == 2


# ---- nothing else is opened -------------------------------------------------------------------------------


def test_key_and_session_open_nothing_outside_the_widget(client, manual_kb, user):
    key = WidgetKey.objects.create(knowledge_base=manual_kb, allowed_origins=[SHOP])
    token = new_session(key)
    chunk = Chunk.objects.filter(knowledge_base=manual_kb).first()
    assert chunk is not None
    ShownChunk.objects.create(key=key, visitor_id="someone-else", chunk=chunk)
    replay = {"s": token, "key": key.key}
    for url in (
        "/admin/",
        "/admin/chat/conversation/",
        "/admin/widget/widgetkey/",
        "/kb/",
        f"/kb/{manual_kb.slug}/",
        f"/kb/documents/{chunk.document_id}/passage/{chunk.pk}/",
        f"/kb/documents/{chunk.document_id}/file/",
        "/",
    ):
        response = client.get(url, replay, headers={"authorization": f"Bearer {key.key}"})
        assert response.status_code in (302, 404), url
        if response.status_code == 302:
            assert "login" in response.headers["Location"], url
    # the widget's own viewer: only for passages shown to this very visitor
    assert client.get(f"/widget/{key.key}/passage/{chunk.pk}/", {"s": token}).status_code == 404

    # no login cookie is ever SameSite=None
    response = client.post("/accounts/login/", {"username": "reader", "password": "reader-password-1"})
    assert response.status_code == 302
    for name in ("sessionid", "csrftoken"):
        if name in response.cookies:
            assert response.cookies[name]["samesite"].lower() in ("lax", "strict"), name
    assert "sessionid" in response.cookies


# ---- the management command and origins ---------------------------------------------------------------


def test_widget_key_command_creates_then_updates_and_prints_the_snippet(db):
    knowledge_base_create(slug="manuals", name="Manuals")

    def run(*args: str) -> dict:  # type: ignore[type-arg]
        out = StringIO()
        call_command("widget_key", "--kb", "manuals", *args, "--json", stdout=out, stderr=StringIO())
        return json.loads(out.getvalue())

    first = run(
        "--origin",
        "https://Shop.Example.com:443/",
        "--origin",
        "http://127.0.0.2:8123",
        "--base-url",
        "https://docent.example.org/",
    )
    key = WidgetKey.objects.get()
    assert first["key"] == key.key and first["created"] is True
    assert key.allowed_origins == ["https://shop.example.com", "http://127.0.0.2:8123"]
    assert first["snippet"] == (
        f'<script src="https://docent.example.org/static/docent-widget.js" data-key="{key.key}" async></script>'
    )
    second = run("--origin", "https://www.example.org")
    assert second["key"] == key.key and second["created"] is False
    assert second["origins"] == ["https://www.example.org"]
    assert second["snippet"].startswith('<script src="http://127.0.0.1:8000/static/docent-widget.js"')
    with pytest.raises(CommandError):
        call_command("widget_key", "--kb", "manuals", "--origin", "https://shop.example.com/path", stdout=StringIO())
    with pytest.raises(CommandError):
        call_command("widget_key", "--kb", "nope", "--origin", "https://shop.example.com", stdout=StringIO())


def test_origins_compare_as_browsers_send_them():
    assert origin_normalize("HTTPS://Shop.Example.com:443") == "https://shop.example.com"
    assert origin_normalize("http://127.0.0.2:8123/") == "http://127.0.0.2:8123"
    assert origin_normalize("http://[::1]:8000") == "http://[::1]:8000"
    for bad in ("shop.example.com", "ftp://shop.example.com", "https://shop.example.com/path", "https://*.example.com"):
        with pytest.raises(ValueError):
            origin_normalize(bad)
    assert origin_of("https://shop.example.com/a/b?c=d") == "https://shop.example.com"
    assert origin_of("null") is None and origin_of(None) is None


# ---- the admin ------------------------------------------------------------------------------------------


def test_staff_manage_keys_and_read_widget_conversations_and_tickets(client, bare_key, django_user_model):
    staff = django_user_model.objects.create_superuser(username="staff", password="staff-password-1")
    client.force_login(staff)
    form = {
        "knowledge_base": bare_key.knowledge_base_id,
        "enabled": "on",
        "allowed_origins": "https://Shop.Example.com/\r\n\r\nhttp://127.0.0.2:8123",
        "title": "Help",
        "greeting": "Hello",
        "suggested_questions": "Where, exactly, is my order?\r\nHow do I reset it?",
        "colour": "#112233",
        "position": "left",
        "show_sources": "on",
        "handoff_text": "Ask a person",
        "support_email": "",
        "visitor_messages_per_minute": "5",
        "ip_messages_per_minute": "20",
        "messages_per_day": "100",
    }
    assert client.get("/admin/widget/widgetkey/add/").status_code == 200
    response = client.post("/admin/widget/widgetkey/add/", form)
    assert response.status_code == 302, response.content.decode()[-2000:]
    key = WidgetKey.objects.exclude(pk=bare_key.pk).get()
    assert key.allowed_origins == ["https://shop.example.com", "http://127.0.0.2:8123"]
    assert key.suggested_questions == ["Where, exactly, is my order?", "How do I reset it?"]
    invalid = client.post("/admin/widget/widgetkey/add/", {**form, "allowed_origins": "https://shop.example.com/x"})
    assert invalid.status_code == 200 and "has a path" in invalid.content.decode()
    change = client.get(f"/admin/widget/widgetkey/{key.pk}/change/").content.decode()
    assert f"data-key=&quot;{key.key}&quot;" in change  # the snippet, escaped

    access = VisitorAccess(
        key=bare_key, session=tokens.session_read(new_session(bare_key), key=bare_key.key, max_age=60), token=""
    )  # type: ignore[arg-type]
    conversation_id = widget_conversation_open(
        access=access, conversation_id=None, question="Is it <b>safe</b>?", ip=None
    )
    conversation = Conversation.objects.get(pk=conversation_id)
    conversation.messages.create(role="user", text="Is it <b>safe</b>?")
    page = client.get(f"/admin/widget/widgetconversation/{conversation_id}/change/").content.decode()
    assert "Is it &lt;b&gt;safe&lt;/b&gt;?" in page and f"/admin/chat/conversation/{conversation_id}/change/" in page
    assert client.get(f"/admin/chat/conversation/{conversation_id}/change/").status_code == 200
    ticket = Ticket.objects.create(key=bare_key, conversation=conversation, email="a@b.example", message="Hi")
    assert client.get("/admin/widget/ticket/").status_code == 200
    assert (
        f"/admin/chat/conversation/{conversation_id}/change/"
        in client.get(f"/admin/widget/ticket/{ticket.pk}/change/").content.decode()
    )
