"""Docent's pages and the widget under their Content-Security-Policy in a real browser (Debian's headless
Chromium): nothing they do is refused. Every frame records `securitypolicyviolation` events and the console is
read for Chromium's "Refused to ..." lines; at the end an inline script is injected to show that both would
have caught a violation."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from playwright.sync_api import Error as PlaywrightError

from chat.widget.models import WidgetKey
from chat.widget.services import widget_snippet
from kb.ingest.pipeline import run_pipeline
from kb.models import Chunk
from kb.services import document_create_from_path, knowledge_base_create
from tests.conftest import FIXTURES
from tests.test_i18n_browser import chromium  # noqa: F401
from tests.widget.test_browser import (  # noqa: F401
    CHROMIUM,
    docent_url,
    off_the_loop,
    shop,
    wait_or_explain,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
]
REFUSED = "How do I configure AppArmor profiles?"  # on the empty base: refused without the model
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI} ${event.sourceFile}:${event.lineNumber}`);
});
"""


def violations(page: Any) -> list[str]:
    found = []
    for frame in page.frames:
        try:
            found += [f"{frame.url}: {v}" for v in frame.evaluate("window.__cspViolations || []")]
        except PlaywrightError as exc:  # a frame that went away while being read
            found.append(f"{frame.url}: unreadable ({exc})")
    return found


def test_pages_and_widget_run_under_their_policy(chromium, docent_url, shop, django_user_model):  # noqa: F811
    def setup() -> dict[str, str]:
        user = django_user_model.objects.create_superuser("csp", password="csp-password-123")
        empty = knowledge_base_create(slug="csp-empty", name="Empty", owner=user)
        docs = knowledge_base_create(slug="csp-docs", name="Policies", owner=user)
        path = FIXTURES / "travel-policy.en.txt"
        document = document_create_from_path(knowledge_base=docs, path=path, enqueue=False).document
        run_pipeline(document)
        chunk = Chunk.objects.filter(document=document).order_by("ordinal").first()
        key = WidgetKey.objects.create(knowledge_base=empty, allowed_origins=[shop.origin], title="Help")
        client = Client()
        client.force_login(user)
        return {
            "session": client.cookies["sessionid"].value,
            "passage": reverse("kb:passage", args=[document.pk, chunk.pk]),
            "snippet": widget_snippet(key=key, base_url=docent_url),
        }

    world = off_the_loop(setup)
    context = chromium.new_context()
    context.add_init_script(RECORD_VIOLATIONS)
    context.add_cookies([{"name": "sessionid", "value": world["session"], "url": docent_url}])
    page = context.new_page()
    page.set_default_timeout(30_000)
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    seen: list[str] = []

    # the chat: an answer streamed over the websocket and rendered by render.js
    page.goto(f"{docent_url}/?kb=csp-empty")
    page.locator("#question").fill(REFUSED)
    page.locator("#question").press("Enter")
    wait_or_explain(page, page.locator(".message.assistant[data-done]"), console, 120_000)
    seen += violations(page)
    # htmx pages (the knowledge base loads its sharing panel and opens its progress socket), the passage viewer
    # (its scroll script), the API keys page and the admin
    for path in ("/kb/", "/kb/csp-docs/", world["passage"], "/account/api-keys/", "/admin/", "/admin/kb/document/"):
        page.goto(docent_url + path)
        page.wait_for_load_state("load")
        if path == "/kb/csp-docs/":
            page.locator("form.add-member").wait_for()  # htmx ran: the sharing panel replaced its placeholder
        page.wait_for_timeout(500)  # the progress socket
        seen += violations(page)

    # the widget on a customer's page: bubble, frame, a question answered
    page.goto(shop.page("/help", f"<h1>Shop</h1>{world['snippet']}"))
    page.locator("[data-docent-bubble]").click()
    frame = page.frame_locator("[data-docent-frame]")
    frame.locator("[data-docent-input]").fill(REFUSED)
    frame.locator("[data-docent-input]").press("Enter")
    wait_or_explain(page, frame.locator("[data-docent-answer][data-done]").first, console, 120_000)
    seen += violations(page)

    refused = [line for line in console if "Content Security Policy" in line or "Refused to" in line]
    assert not seen and not refused, f"violations: {seen}\nconsole: {refused}"

    # the control: an inline script on a Docent page is refused, and both listeners see it
    page.goto(f"{docent_url}/kb/")
    with contextlib.suppress(PlaywrightError):  # Playwright may report the refused script as an error
        page.add_script_tag(content="window.__inlineRan = true;")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__inlineRan === undefined")
    assert any("script-src" in v for v in violations(page)), violations(page)
    assert any("Content Security Policy" in line for line in console), console
    context.close()
