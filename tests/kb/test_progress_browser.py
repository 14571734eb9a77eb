"""The knowledge-base page in a real browser: a document's row follows its ingestion live, with no reload."""

from __future__ import annotations

import io

import pytest
from django.test import Client

from kb.ingest.pipeline import ingest
from kb.services import document_create, knowledge_base_create
from tests.conftest import BASE_DIR
from tests.widget.test_browser import CHROMIUM, CHROMIUM_FLAGS, docent_url, off_the_loop  # noqa: F401

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
]

# Records every stage and status the row shows, so the test sees the intermediate states too.
OBSERVE = """
(id) => {
  window.seen = [];
  const record = () => {
    const cell = document.querySelector(`#doc-${id} td[data-status]`);
    if (cell) window.seen.push(cell.dataset.status + ":" + cell.dataset.stage);
  };
  new MutationObserver(record).observe(document.querySelector("#documents"), {subtree: true, childList: true});
}
"""


def test_the_document_row_shows_each_stage_then_ready_without_a_reload(docent_url, django_user_model):  # noqa: F811
    from playwright.sync_api import sync_playwright

    def setup() -> tuple[str, int, str]:
        user = django_user_model.objects.create_user(username="librarian", password="librarian-password-1")
        kb = knowledge_base_create(slug="live-page", name="Live page", owner=user)
        data = (BASE_DIR / "kb" / "demo_source" / "lumen-k3-manual.en.md").read_bytes()
        document = document_create(knowledge_base=kb, content=io.BytesIO(data), filename="manual.md", enqueue=False)
        client = Client()
        client.force_login(user)
        return kb.slug, document.document.pk, client.cookies["sessionid"].value

    slug, document_id, session = off_the_loop(setup)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        context = browser.new_context()
        context.add_cookies([{"name": "sessionid", "value": session, "url": docent_url}])
        page = context.new_page()
        page.goto(f"{docent_url}/kb/{slug}/")
        row = page.locator(f"#doc-{document_id}")
        assert row.locator('td[data-status="queued"]').count() == 1
        page.wait_for_function("() => window.htmx && document.querySelector('[ws-connect]')")
        page.wait_for_timeout(1500)  # the socket connects and joins the base's group
        page.evaluate(OBSERVE, document_id)
        result = off_the_loop(lambda: ingest(document_id))
        assert result.status == "ready"
        row.locator('td[data-status="ready"]').wait_for(timeout=30_000)
        seen = page.evaluate("window.seen")
        assert any(state.startswith("processing:") for state in seen), seen
        assert seen[-1] == "ready:", seen
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # never reloaded
        browser.close()
