"""The widget in a real browser: Debian's headless Chromium driven by Playwright, Docent served by daphne on
127.0.0.1 and the customer's pages on other origins (127.0.0.2 allowed, 127.0.0.3 not)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from chat.widget import tokens
from chat.widget.models import Ticket, WidgetConversation, WidgetKey
from chat.widget.services import widget_snippet
from tests.servers import docent_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BASE_DIR = Path(__file__).resolve().parents[2]
QUESTION = "How do I do a factory reset of the Lumen K3 kettle?"
UNANSWERABLE = "How do I configure AppArmor profiles?"
ANSWER_TIMEOUT_MS = 180_000

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
]

T = TypeVar("T")


def off_the_loop(fn: Callable[[], T]) -> T:
    """Run ORM code in another thread: Playwright's sync API keeps an event loop running in this one,
    where Django refuses synchronous database calls."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


SERVER_LOG = Path(os.environ.get("DOCENT_VAR_DIR", "/tmp")) / "daphne-widget.log"


def wait_or_explain(page: Any, locator: Any, console: list[str], timeout: float = ANSWER_TIMEOUT_MS) -> None:
    """Wait for the locator; on timeout, fail with what the widget and the server were doing."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        locator.wait_for(timeout=timeout)
    except PlaywrightTimeout as exc:
        frames = "\n".join(f"--- {f.url}\n{f.content()[-2500:]}" for f in page.frames[1:])
        server = SERVER_LOG.read_text(errors="replace")[-6000:] if SERVER_LOG.exists() else "(no log)"
        logged = "\n".join(console)
        raise AssertionError(f"{exc}\n{frames}\n--- console\n{logged}\n--- server log\n{server}") from exc


@pytest.fixture(scope="module")
def docent_url() -> Iterator[str]:
    """Docent under daphne, as `make run` serves it, on the test database and Redis."""
    with docent_server(SERVER_LOG) as url:
        yield url


class HostSite:
    """A customer's website: serves whatever page the test puts at a path."""

    def __init__(self, host: str) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.split("?")[0])
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write((body or "not found").encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.origin = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def page(self, path: str, body: str) -> str:
        self.pages[path] = f"<!doctype html><html><head><title>Shop</title></head><body>{body}</body></html>"
        return self.origin + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def shop() -> Iterator[HostSite]:
    site = HostSite("127.0.0.2")
    yield site
    site.close()


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[HostSite]:
    site = HostSite("127.0.0.3")
    yield site
    site.close()


@pytest.fixture
def widget_key(manual_kb, shop) -> WidgetKey:
    return WidgetKey.objects.create(
        knowledge_base=manual_kb,
        allowed_origins=[shop.origin],
        title="Kettle help",
        greeting="Hi! Ask about your kettle.",
        suggested_questions=["What does error E4 mean?"],
        visitor_messages_per_minute=3,
        support_email="support@shop.example",
    )


@pytest.fixture
def browser(widget_key) -> Iterator[Any]:
    # Started after the database fixtures, so stopped before their teardown (see off_the_loop).
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


def test_visitor_chats_on_an_allowed_site_with_sources_history_handoff_and_a_rate_limit(
    browser, widget_key, docent_url, shop
):
    snippet = widget_snippet(key=widget_key, base_url=docent_url)
    url = shop.page("/kettle", f'<h1 id="shop-title">Lumen kettles</h1><p>Our products.</p>{snippet}')
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("websocket", lambda ws: console.append(f"websocket {ws.url}"))
    page.goto(url)

    bubble = page.locator("[data-docent-bubble]")
    bubble.wait_for()
    # the host page is as it was, plus the widget's one container
    assert page.locator("#shop-title").inner_text() == "Lumen kettles"
    assert page.evaluate("document.body.children.length") == 4  # h1, p, the snippet's script, the container
    bubble.click()
    frame = page.frame_locator("[data-docent-frame]")
    assert "Ask about your kettle" in frame.locator("[data-docent-greeting]").inner_text()

    question = frame.locator("[data-docent-input]")
    question.fill(QUESTION)
    question.press("Enter")
    answer = frame.locator("[data-docent-answer][data-done]").first
    wait_or_explain(page, answer, console)
    assert answer.get_attribute("data-docent-error") is None, answer.inner_text()
    assert answer.locator(".text").inner_text().strip()
    sources = answer.locator("[data-docent-source]")
    assert sources.count() >= 1

    # a source opens the passage, in a new tab, from Docent's public viewer
    with context.expect_page() as opened:
        sources.first.click()
    passage = opened.value
    passage.wait_for_load_state()
    assert passage.url.startswith(f"{docent_url}/widget/{widget_key.key}/passage/")
    assert passage.locator("[data-docent-passage] .passage-text").inner_text().strip()
    passage.close()

    # the conversation survives a page load
    page.reload()
    page.locator("[data-docent-bubble]").click()
    frame = page.frame_locator("[data-docent-frame]")
    wait_or_explain(page, frame.locator("[data-docent-answer][data-done]").first, console, 30_000)
    links = off_the_loop(lambda: list(WidgetConversation.objects.filter(key=widget_key)))
    assert len(links) == 1 and links[0].origin == shop.origin

    # "Talk to a person" files a ticket with the conversation
    frame.locator("[data-docent-handoff-open]").click()
    handoff = frame.locator("[data-docent-handoff]")
    handoff.locator("input[name=email]").fill("ann@customer.example")
    handoff.locator("textarea[name=message]").fill("The reset did not work.")
    handoff.locator("button[type=submit]").click()
    handoff.get_by_text("Thank you!").wait_for()
    ticket = off_the_loop(lambda: Ticket.objects.get(key=widget_key))
    assert ticket.conversation_id == links[0].conversation_id and ticket.mailed_at is not None

    # three questions a minute for this visitor: the fourth is refused with `rate_limited`
    answers = frame.locator("[data-docent-answer]")
    for text in (UNANSWERABLE, "What does error E4 mean?", UNANSWERABLE):
        finished = answers.count()
        question.fill(text)
        question.press("Enter")
        wait_or_explain(page, frame.locator("[data-docent-answer][data-done]").nth(finished), console)
    assert answers.nth(1).get_attribute("data-docent-error") is None
    limited = answers.nth(answers.count() - 1)
    assert limited.get_attribute("data-docent-error") == "rate_limited", limited.inner_text()
    context.close()


def test_a_site_that_is_not_allowed_gets_no_widget_and_no_answer(browser, widget_key, docent_url, elsewhere):
    snippet = widget_snippet(key=widget_key, base_url=docent_url)
    frame_url = f"{docent_url}/widget/{widget_key.key}/"
    url = elsewhere.page(
        "/copied",
        f'<h1>Copycat</h1><iframe id="forced" referrerpolicy="no-referrer" src="{frame_url}"></iframe>{snippet}',
    )
    context = browser.new_context()
    page = context.new_page()
    failed: dict[str, str] = {}
    page.on("requestfailed", lambda request: failed.__setitem__(request.url, request.failure or ""))
    page.goto(url)
    deadline = time.monotonic() + 15
    while len(failed) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    # the loader may not read the key's configuration here (CORS), so it adds nothing
    assert f"{frame_url}config/" in failed, failed
    assert page.locator("[data-docent-bubble]").count() == 0
    assert page.locator("[data-docent-widget]").count() == 0
    # an iframe pasted by hand: the browser refuses to show it (frame-ancestors), so no chat inside
    assert "ERR_BLOCKED_BY_RESPONSE" in failed.get(frame_url, ""), failed
    assert page.frame_locator("#forced").locator("[data-docent-input]").count() == 0

    # a session taken from an allowed page is no use to this site's own socket
    with urllib.request.urlopen(
        urllib.request.Request(frame_url, headers={"Referer": widget_key.allowed_origins[0] + "/"})
    ) as response:
        html = response.read().decode()
    start = html.index('<script id="docent-widget-config" type="application/json">')
    config_json = html[html.index(">", start) + 1 : html.index("</script>", start)]
    session = json.loads(config_json)["session"]
    assert tokens.session_read(session, key=widget_key.key, max_age=60) is not None
    ws_url = f"{docent_url.replace('http', 'ws', 1)}/ws/widget/{widget_key.key}/?s={session}"
    outcome = page.evaluate(
        """(url) => new Promise((resolve) => {
            const ws = new WebSocket(url);
            let opened = false;
            ws.onopen = () => { opened = true; ws.send(JSON.stringify({type: "ask", question: "Hello?"})); };
            ws.onmessage = (m) => resolve("answered: " + m.data);
            ws.onclose = () => resolve(opened ? "closed after opening" : "refused");
            setTimeout(() => resolve("timeout"), 15000);
        })""",
        ws_url,
    )
    assert outcome == "refused"
    context.close()
