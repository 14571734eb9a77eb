"""The widget in the visitor's language: the snippet's data-lang, else their browser's; the key's texts per
language; the socket's error messages in that language."""

from __future__ import annotations

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from chat.routing import websocket_urlpatterns
from chat.widget.models import WidgetKey
from kb.services import knowledge_base_create
from tests.widget.test_widget import SHOP, frame_config, new_session

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def key(db) -> WidgetKey:
    return WidgetKey.objects.create(
        knowledge_base=knowledge_base_create(slug="shop", name="Shop"),
        allowed_origins=[SHOP],
        title="Kettle help",
        greeting="Hi! Ask about your kettle.",
        greeting_zh="您好！关于水壶的问题都可以问我。",
        greeting_fr="",  # empty: the English one
        suggested_questions=["What does error E4 mean?"],
        suggested_questions_fr=["Que signifie l'erreur E4 ?"],
    )


def test_texts_per_language_fall_back_to_the_english_ones(key) -> None:
    chinese, french, german = key.texts_for("zh-hans"), key.texts_for("fr"), key.texts_for("de")
    assert chinese["greeting"] == "您好！关于水壶的问题都可以问我。" and chinese["title"] == "帮助"
    assert chinese["suggested_questions"] == ["What does error E4 mean?"]
    assert french["greeting"] == "Hi! Ask about your kettle." and french["title"] == "Aide"
    assert french["suggested_questions"] == ["Que signifie l'erreur E4 ?"]
    assert french["handoff_text"].startswith("Vous n'avez pas trouvé")
    assert german == key.texts_for("en") and german["title"] == "Kettle help"


def test_the_frame_speaks_the_browsers_language_unless_the_snippet_says_otherwise(client, key) -> None:
    url = f"/widget/{key.key}/"
    chinese = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    body = chinese.content.decode()
    assert '<html lang="zh-hans">' in body and "/jsi18n/zh-hans/" in body
    assert "您好！关于水壶的问题都可以问我。" in body and "联系人工客服" in body
    assert 'placeholder="请输入您的问题…"' in body
    assert frame_config(body)["language"] == "zh-hans"
    assert chinese.headers["Content-Language"] == "zh-hans"
    assert not chinese.cookies

    french = client.get(url + "?lang=fr", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").content.decode()
    assert '<html lang="fr">' in french and "Parler à une personne" in french
    assert "Que signifie l&#x27;erreur E4" in french
    assert frame_config(french)["language"] == "fr"
    # a language cookie from Docent's own pages is not read by the widget
    client.cookies["django_language"] = "fr"
    assert '<html lang="en">' in client.get(url, HTTP_ACCEPT_LANGUAGE="de").content.decode()


def test_the_loader_gets_the_title_and_frame_in_the_chosen_language(client, key) -> None:
    url = f"/widget/{key.key}/config/"
    chinese = client.get(url, headers={"origin": SHOP, "accept-language": "zh-CN"}).json()
    assert chinese["title"] == "帮助" and chinese["frame"] == f"/widget/{key.key}/?lang=zh-hans"
    french = client.get(url + "?lang=fr", headers={"origin": SHOP, "accept-language": "zh-CN"}).json()
    assert french["title"] == "Aide" and french["language"] == "fr"


async def test_the_widget_socket_answers_in_the_frames_language(key) -> None:
    expected_messages = {"fr": "La question est vide.", "zh-hans": "问题不能为空。", "": "The question is empty."}
    for lang, expected in expected_messages.items():
        communicator = WebsocketCommunicator(
            URLRouter(websocket_urlpatterns),
            f"/ws/widget/{key.key}/?s={new_session(key)}&lang={lang}",
            headers=[(b"host", b"testserver"), (b"origin", b"http://testserver")],
        )
        assert (await communicator.connect())[0]
        await communicator.send_json_to({"type": "ask", "question": " "})
        frame = await communicator.receive_json_from()
        assert frame == {"type": "error", "code": "empty_question", "message": expected}
        await communicator.disconnect()
