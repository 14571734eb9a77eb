"""Which language a person is spoken to in: their saved choice, else the language cookie, else the browser's;
the header's switcher; the same choice on the chat socket, the knowledge-base pages and the admin."""

from __future__ import annotations

import io
import json

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.utils import translation

from accounts.language import from_accept_language, language_for_visitor, supported
from accounts.models import Profile
from chat.routing import websocket_urlpatterns
from kb import reasons
from kb.models import Document
from kb.services import document_create, knowledge_base_create

pytestmark = pytest.mark.django_db(transaction=True)

CHINESE = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9,en;q=0.5"}


def in_language(language: str, text: str) -> str:
    with translation.override(language):
        return translation.gettext(text)


def test_browser_languages_map_to_the_interface_languages() -> None:
    assert supported("zh-CN") == supported("zh-Hans") == supported("zh") == "zh-hans"
    assert supported("fr-CA") == "fr" and supported("en-GB") == "en"
    assert supported("de") is None and supported("") is None and supported(None) is None
    assert from_accept_language("de-DE,fr;q=0.8,en;q=0.5") == "fr"
    assert from_accept_language("de-DE") is None
    assert language_for_visitor("zh-Hans", "fr") == "zh-hans"
    assert language_for_visitor("klingon", "fr-FR,fr") == "fr"
    assert language_for_visitor(None, None) == "en"


def test_a_chinese_browser_gets_the_sign_in_page_in_chinese(client) -> None:
    body = client.get("/accounts/login/", **CHINESE).content.decode()
    assert '<html lang="zh-hans">' in body
    assert in_language("zh-hans", "Sign in") == "登录" and "登录" in body
    # Django's own form labels come from Django's catalogue
    assert "用户名" in body and "密码" in body
    # the switcher names each language in itself, in every language
    assert "Français" in body and "English" in body and "简体中文" in body


def test_the_switcher_saves_a_signed_in_users_choice_over_their_browser(client, user) -> None:
    client.force_login(user)
    assert '<html lang="zh-hans">' in client.get("/kb/", **CHINESE).content.decode()
    response = client.post("/i18n/setlang/", {"language": "fr", "next": "/kb/"}, **CHINESE)
    assert response.status_code == 302 and response["Location"] == "/kb/"
    assert Profile.objects.get(user=user).language == "fr"
    body = client.get("/kb/", **CHINESE).content.decode()
    assert '<html lang="fr">' in body and "Bases de connaissances" in body

    # the choice follows the user to another browser, which has no cookie
    other = client.__class__()
    other.force_login(user)
    assert '<html lang="fr">' in other.get("/kb/", **CHINESE).content.decode()


def test_an_anonymous_visitor_switches_with_a_cookie_only(client) -> None:
    response = client.post("/i18n/setlang/", {"language": "fr", "next": "/accounts/login/"}, **CHINESE)
    assert response.cookies["django_language"].value == "fr"
    assert not Profile.objects.exists()
    assert '<html lang="fr">' in client.get("/accounts/login/", **CHINESE).content.decode()
    # a language the interface does not speak changes nothing
    client.post("/i18n/setlang/", {"language": "tlh", "next": "/accounts/login/"})
    assert '<html lang="fr">' in client.get("/accounts/login/").content.decode()


def test_the_javascript_catalogue_is_served_per_language(client) -> None:
    def holds(script: str, text: str) -> bool:
        return text in script or json.dumps(text)[1:-1] in script  # the catalogue may escape non-ASCII

    chinese = client.get("/jsi18n/zh-hans/").content.decode()
    assert holds(chinese, "重新生成") and holds(chinese, "请稍候…（前面还有 %(count)s 个问题）")
    french = client.get("/jsi18n/fr/").content.decode()
    assert holds(french, "Régénérer") and not holds(french, "重新生成")
    assert client.get("/jsi18n/de/").status_code == 404
    assert "Last-Modified" in client.get("/jsi18n/fr/").headers


def test_the_knowledge_base_page_in_chinese_with_a_translated_failure_reason(client, user) -> None:
    kb = knowledge_base_create(slug="docs", name="Docs", owner=user)
    created = document_create(knowledge_base=kb, content=io.BytesIO(b"x"), filename="empty.txt", enqueue=False)
    Document.objects.filter(pk=created.document.pk).update(
        status=Document.Status.FAILED, error=reasons.PARSE_TIMEOUT % {"seconds": "600"}, language="fr"
    )
    client.force_login(user)
    body = client.get("/kb/docs/", **CHINESE).content.decode()
    assert "解析此文件耗时超过 600 秒，已被终止" in body  # the stored English reason, read in Chinese
    assert in_language("zh-hans", "Failed") in body and "法文" in body  # status and the document's language
    assert "1 个文档" in body  # the count, through the catalogue's plural forms
    assert "单个文件不超过 100 MB" in body  # the upload hint
    stored = Document.objects.get(pk=created.document.pk).error
    assert stored.startswith("Parsing this file took longer than 600 s")  # the command line reads English


def test_upload_messages_are_in_the_readers_language(client, user, settings) -> None:
    settings.DOCENT_MAX_UPLOAD_BYTES = 10
    knowledge_base_create(slug="docs", name="Docs", owner=user)
    client.force_login(user)
    Profile.objects.create(user=user, language="fr")
    upload = io.BytesIO(b"far more than ten bytes")
    upload.name = "big.txt"
    response = client.post("/kb/docs/upload/", {"files": [upload]}, follow=True)
    body = response.content.decode()
    assert "big.txt\u00a0: Le fichier dépasse la limite de 0\u00a0Mo." in body


def test_the_admin_follows_the_same_language(client, django_user_model) -> None:
    admin = django_user_model.objects.create_superuser(username="boss", password="boss-password-1")
    client.force_login(admin)
    body = client.get("/admin/", **CHINESE).content.decode()
    assert "站点管理" in body  # Django's own catalogue
    assert "知识库" in body and "客服插件" in body and "插件密钥" in body  # Docent's apps and models
    body = client.get("/admin/widget/widgetkey/add/", **CHINESE).content.decode()
    assert "欢迎语（中文）" in body and "推荐问题（法文）" in body


async def test_error_frames_on_the_chat_socket_speak_the_users_language(user) -> None:
    await Profile.objects.acreate(user=user, language="zh-hans")
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/chat/")
    communicator.scope["user"] = user
    assert (await communicator.connect())[0]
    await communicator.send_json_to({"type": "ask", "question": "  ", "kb": "x"})
    frame = await communicator.receive_json_from()
    assert frame == {"type": "error", "code": "empty_question", "message": "问题不能为空。"}
    await communicator.send_json_to({"type": "ask", "question": "Hello?", "kb": "nowhere"})
    frame = await communicator.receive_json_from()
    assert frame["code"] == "unknown_kb" and frame["message"] == "知识库 'nowhere' 不存在，或您无权使用。"
    await communicator.disconnect()


async def test_without_a_saved_choice_the_socket_follows_cookie_then_browser(user) -> None:
    for accept_language, cookies, expected in (
        (b"fr-FR,fr;q=0.9", {}, "La trame n'est pas du JSON valide."),
        (b"fr-FR", {"django_language": "zh-hans"}, "该帧不是有效的 JSON。"),
        (b"de-DE", {}, "The frame is not valid JSON."),
    ):
        headers = [(b"accept-language", accept_language)]
        communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/chat/", headers=headers)
        communicator.scope["user"] = user
        communicator.scope["cookies"] = cookies  # as Channels' CookieMiddleware puts them
        assert (await communicator.connect())[0]
        await communicator.send_to(text_data="{not json")
        assert (await communicator.receive_json_from())["message"] == expected
        await communicator.disconnect()


async def test_live_document_rows_are_rendered_in_the_readers_language(user) -> None:
    await Profile.objects.acreate(user=user, language="zh-hans")

    def processing_document() -> str:
        kb = knowledge_base_create(slug="live", name="Live", owner=user)
        created = document_create(knowledge_base=kb, content=io.BytesIO(b"x"), filename="a.txt", enqueue=False)
        Document.objects.filter(pk=created.document.pk).update(status="processing", stage="embed", progress=40)
        return kb.slug

    from asgiref.sync import sync_to_async

    slug = await sync_to_async(processing_document)()
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/kb/{slug}/")
    communicator.scope["user"] = user
    assert (await communicator.connect())[0]
    row = await communicator.receive_from()
    assert "向量化" in row and "40%" in row  # the stage, from the catalogue
    await communicator.disconnect()
