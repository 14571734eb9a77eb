"""The interface in Chinese and French in a real browser (Debian's headless Chromium): a new user whose browser
prefers Chinese sees the chat and knowledge-base pages in Chinese, switches to French in the header, and the
widget on a customer's site follows the visitor's browser or the snippet's data-lang. Every text checked is
looked up in the catalogues, and each page is saved as a screenshot (DOCENT_SCREENSHOTS, else pytest's tmp)."""

from __future__ import annotations

import gettext
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import translation
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from chat.widget.models import WidgetKey
from chat.widget.services import widget_snippet
from kb.services import knowledge_base_create
from tests.widget.test_browser import (  # noqa: F401
    CHROMIUM,
    CHROMIUM_FLAGS,
    docent_url,
    off_the_loop,
    shop,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
]
LOCALE = Path(__file__).resolve().parent.parent / "locale"


def page_text(language: str, text: str, context: str | None = None) -> str:
    """A template's or Python's text in `language`, from the django catalogue."""
    with translation.override(language):
        return translation.pgettext(context, text) if context else translation.gettext(text)


def script_text(language: str, text: str) -> str:
    """A script's text in `language`, from the djangojs catalogue."""
    folder = {"fr": "fr", "zh-hans": "zh_Hans"}[language]
    return gettext.translation("djangojs", LOCALE, languages=[folder]).gettext(text)


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("DOCENT_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def test_a_chinese_browser_sees_chinese_then_french_after_the_switch(
    chromium,
    docent_url,  # noqa: F811
    django_user_model,
    screenshots,
):
    def setup() -> str:
        user = django_user_model.objects.create_user(username="li", password="li-password-123")
        # empty: questions are refused without the model; the user's own base, so they may see it
        knowledge_base_create(slug="handbook", name="Handbook", owner=user)
        client = Client()
        client.force_login(user)
        return client.cookies["sessionid"].value

    session = off_the_loop(setup)
    context = chromium.new_context(locale="zh-CN", viewport={"width": 1100, "height": 700})
    context.add_cookies([{"name": "sessionid", "value": session, "url": docent_url}])
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(docent_url + "/")

    assert page.locator("html").get_attribute("lang") == "zh-hans"
    nav = page.locator(".topbar nav")
    assert nav.get_by_role("link", name=page_text("zh-hans", "Knowledge bases")).count() == 1
    assert page.locator("#send").inner_text() == page_text("zh-hans", "Ask", "button") == "提问"
    placeholder = page_text("zh-hans", "Ask a question about your documents… (Enter sends, Shift+Enter for a new line)")
    assert page.locator("#question").get_attribute("placeholder") == placeholder
    # text written by chat.js comes from the Chinese JavaScript catalogue
    page.locator("#question").fill("如何清除水垢？")
    page.locator("#question").press("Enter")
    answer = page.locator(".message.assistant[data-done]")
    answer.wait_for(timeout=120_000)
    assert script_text("zh-hans", "not found in the knowledge base") in answer.locator(".meta").inner_text()
    assert "知识库中未找到" in answer.locator(".meta").inner_text()
    assert answer.get_by_role("button", name=script_text("zh-hans", "Regenerate")).count() == 1
    page.screenshot(path=str(screenshots / "chat-zh-hans.png"), full_page=True)

    page.goto(docent_url + "/kb/handbook/")
    assert page.locator("table.documents th").first.inner_text() == page_text("zh-hans", "Document")
    assert page.get_by_text(page_text("zh-hans", "No documents yet.")).count() == 1
    page.screenshot(path=str(screenshots / "kb-zh-hans.png"), full_page=True)

    # the header's switcher: every string changes, and the choice is saved for this user
    page.locator("[data-docent-languages] button[value=fr]").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.locator("h1").inner_text() == "Handbook"
    assert page.locator("table.documents th").first.inner_text() == page_text("fr", "Document")
    assert page.get_by_text(page_text("fr", "No documents yet.")).count() == 1
    assert page.locator("button[type=submit]").first.inner_text() == page_text("fr", "Upload") == "Téléverser"
    page.goto(docent_url + "/")
    assert page.locator("#send").inner_text() == page_text("fr", "Ask", "button")
    assert page.locator(".sidebar h2").inner_text() == page_text("fr", "Conversations")
    assert page.evaluate("gettext('Regenerate')") == script_text("fr", "Regenerate") == "Régénérer"
    page.screenshot(path=str(screenshots / "chat-fr.png"), full_page=True)
    context.close()


@pytest.fixture
def kettle_key(db, shop) -> WidgetKey:  # noqa: F811
    return WidgetKey.objects.create(
        knowledge_base=knowledge_base_create(slug="kettles", name="Kettles"),
        allowed_origins=[shop.origin],
        title="Kettle help",
        title_zh="水壶客服",
        title_fr="Aide bouilloire",
        greeting_zh="您好！关于水壶的问题都可以问我。",
        greeting_fr="Bonjour\u00a0! Une question sur votre bouilloire\u00a0?",
        suggested_questions_zh=["错误代码 E4 是什么意思？"],
        suggested_questions_fr=["Que signifie l'erreur E4\u00a0?"],
    )


def test_the_widget_follows_the_visitors_browser_or_the_snippets_language(
    kettle_key,  # before the browser: Playwright's loop in this thread forbids the ORM (see off_the_loop)
    chromium,
    docent_url,  # noqa: F811
    shop,  # noqa: F811
    screenshots,
):
    snippet = widget_snippet(key=kettle_key, base_url=docent_url)
    pages = {
        "zh-hans": shop.page("/zh", f"<h1>水壶商店</h1>{snippet}"),
        "fr": shop.page("/fr", "<h1>Boutique</h1>" + snippet.replace(" async>", ' data-lang="fr" async>')),
    }
    for language, url in pages.items():
        context = chromium.new_context(locale="zh-CN")  # a Chinese browser either way
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(url)
        bubble = page.locator("[data-docent-bubble]")
        bubble.wait_for()
        assert bubble.get_attribute("aria-label") == kettle_key.texts_for(language)["title"]
        bubble.click()
        frame = page.frame_locator("[data-docent-frame]")
        texts = kettle_key.texts_for(language)
        assert frame.locator("[data-docent-greeting]").inner_text() == texts["greeting"]
        assert frame.locator("[data-docent-suggestion]").inner_text() == texts["suggested_questions"][0]
        assert frame.locator("[data-docent-input]").get_attribute("placeholder") == page_text(
            language, "Ask a question…"
        )
        handoff = frame.locator("[data-docent-handoff-open]")
        assert handoff.inner_text() == page_text(language, "Talk to a person")
        # a message to a person: the confirmation is written by frame.js, from the catalogue
        form = frame.locator("[data-docent-handoff]")
        for _ in range(10):  # the frame's script may still be starting (its catalogue loads first) on a busy machine
            handoff.click()
            try:
                form.locator("input[name=email]").wait_for(state="visible", timeout=3_000)
                break
            except PlaywrightTimeout:
                continue
        assert form.locator(".handoff-text").inner_text() == texts["handoff_text"]
        form.locator("input[name=email]").fill("visitor@example.com")
        form.locator("textarea[name=message]").fill("E4?")
        form.locator("button[type=submit]").click()
        thanks = script_text(language, "Thank you! We will reply to %(email)s.") % {"email": "visitor@example.com"}
        form.get_by_text(thanks).wait_for()
        page.screenshot(path=str(screenshots / f"widget-{language}.png"))
        context.close()
