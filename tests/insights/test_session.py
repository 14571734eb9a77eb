"""Issue 16's acceptance, on the demo manual in three languages: a scripted session of ~50 questions through the
product's own answer path (some repeated, some unanswerable, some rated down), then the analytics page's counts
and charts (headless Chromium), the knowledge-gap report's groups, and the answer cache until a document changes."""

from __future__ import annotations

import asyncio
import warnings
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat.answer import answer
from chat.models import Message, QuestionLog
from chat.services import message_feedback
from insights import gaps
from kb.ingest.pipeline import run_pipeline
from kb.models import Document, KnowledgeBase
from kb.services import membership_set
from tests.conftest import readers_group
from tests.insights.test_analytics import PIXELS_JS
from tests.widget.test_browser import CHROMIUM, CHROMIUM_FLAGS, docent_url, off_the_loop  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

ANSWERABLE = [
    "How do I descale the kettle?",
    "How long does keep-warm hold the water?",
    "How do I do a factory reset of the kettle?",
    "How do I clean the kettle's filter?",
    "What should I do if the kettle does not switch on?",
    "Comment détartrer la bouilloire ?",
    "Combien de temps l'eau reste-t-elle chaude ?",
    "Comment nettoyer le filtre de la bouilloire ?",
    "Comment réinitialiser la bouilloire ?",
    "Que faire si la bouilloire ne s'allume pas ?",
    "如何清除水垢？",
    "保温功能能保持多久？",
    "如何清洗水壶的过滤网？",
    "如何恢复出厂设置？",
    "水壶无法开机怎么办？",
    "How do I set the temperature?",
    "How often should I descale the kettle?",
    "Is it safe to switch the kettle on without water?",
    "Comment régler la température ?",
    "À quelle fréquence faut-il détartrer ?",
    "如何设置温度？",
    "多久需要除垢一次？",
    "水壶可以干烧吗？",
]
# Three topics the manual never mentions, named by words no passage holds: refused by the product's own rule
# (kb.refusal) whatever the model, each asked in the three languages, some twice.
UNANSWERABLE = {
    "app": [
        "How do I link the kettle to the SmartBrew app?",
        "Can the SmartBrew app switch the kettle on remotely?",
        "Comment associer la bouilloire à l'application SmartBrew ?",
        "水壶怎么连接SmartBrew应用？",
    ],
    "cartridge": [
        "Where can I buy the AquaPure filter cartridge?",
        "Où acheter la cartouche filtrante AquaPure ?",
        "在哪里可以买到AquaPure滤芯？",
        "AquaPure滤芯多少钱？",
    ],
    "warranty": [
        "How do I register my kettle on the Kettlecare warranty portal?",
        "Comment enregistrer ma bouilloire sur le portail de garantie Kettlecare ?",
        "Comment créer un compte Kettlecare pour la garantie ?",
        "如何在Kettlecare保修网站上注册我的水壶？",
    ],
}


def ask(user: Any, knowledge_base: Any, question: str) -> dict[str, Any]:
    """The `done` event of `question` asked through the chat's path, with the base's content version before and
    after it (a worker started by an earlier test may re-ingest a document meanwhile: the cache then rightly
    misses)."""

    async def run() -> list[dict[str, Any]]:
        return [event async for event in answer(user=user, knowledge_base=knowledge_base, question=question)]

    before = content_version(knowledge_base)
    events = asyncio.run(run())
    assert events[-1]["type"] == "done", events[-1]
    return {**events[-1], "versions": (before, content_version(knowledge_base))}


def content_version(knowledge_base: Any) -> int:
    return KnowledgeBase.objects.values_list("content_version", flat=True).get(pk=knowledge_base.pk)


@pytest.fixture
def session(trilingual_kb, django_user_model, settings):
    """The scripted session: who asked what, and what the product said (the expected counts come from here)."""
    settings.DOCENT_MAX_ANSWER_TOKENS = 24
    manager = django_user_model.objects.create_user("manager", password="manager-password-1")
    membership_set(knowledge_base=trilingual_kb, role="manager", actor=None, user=manager)
    askers = [django_user_model.objects.create_user(n, password=f"{n}-password-1") for n in ("ann", "bob", "cy")]
    for asker in askers:
        asker.groups.add(readers_group())
    outcomes: list[dict[str, Any]] = []
    for i, question in enumerate(ANSWERABLE):
        outcomes.append({"question": question, **ask(askers[i % 3], trilingual_kb, question)})
    for topic in UNANSWERABLE.values():
        for i, question in enumerate(topic):
            outcomes.append({"question": question, **ask(askers[i % 3], trilingual_kb, question)})
    # repeated: by the first asker again and by colleagues who see the same documents
    repeats = []
    for i, question in enumerate(ANSWERABLE[:15]):
        repeats.append({"question": question, **ask(askers[(i + 1) % 3], trilingual_kb, question)})
    outcomes += repeats
    # four answers rated down by their askers
    rated = [o for o in outcomes[: len(ANSWERABLE)] if o["answered"]][:4]
    for outcome in rated:
        message = message_feedback(user=_asker_of(outcome, askers), message_id=outcome["message_id"], rating=-1)
        assert message is not None
    return {"kb": trilingual_kb, "manager": manager, "askers": askers, "outcomes": outcomes, "repeats": repeats}


def _asker_of(outcome: dict[str, Any], askers: list[Any]) -> Any:
    owner = QuestionLog.objects.get(message_id=outcome["message_id"]).user_id
    return next(a for a in askers if a.pk == owner)


def test_the_session_counts_groups_cache_and_charts(session, docent_url, tmp_path):  # noqa: F811
    """One test over the 50 questions (asking them is most of its time): the counts and groups, the charts in
    Chromium, then a changed document answered afresh."""
    counts_groups_and_cache(session)
    if CHROMIUM is None or finders.find("vendor/chart.js/chart.umd.min.js") is None:
        warnings.warn("charts not checked: Debian's chromium or chart.js is not installed (make setup)", stacklevel=1)
    else:
        charts_are_drawn(session, docent_url, tmp_path)
    a_changed_document_is_answered_afresh(session)


def counts_groups_and_cache(session: dict[str, Any]) -> None:
    kb, outcomes, repeats = session["kb"], session["outcomes"], session["repeats"]
    assert len(outcomes) == 50
    unanswerable = {q for topic in UNANSWERABLE.values() for q in topic}
    assert all(not o["answered"] for o in outcomes if o["question"] in unanswerable)
    # a repeat is answered from the cache exactly when its first answer was stored there: a refusal or a non-empty
    # answer (SmolLM2 may write nothing but an unknown source's marker, which is dropped)
    first = {o["question"]: o for o in outcomes[: len(outcomes) - len(repeats)]}
    for repeat in repeats:
        original = first[repeat["question"]]
        stored = not original["answered"] or Message.objects.get(pk=original["message_id"]).text.strip() != ""
        unchanged = original["versions"][0] == original["versions"][1] == repeat["versions"][0]
        if original["versions"][0] == original["versions"][1]:  # else the base changed while it was answered
            expected = stored and unchanged
            assert bool(repeat["timings"].get("cached")) == expected, (repeat, original)
    cached = sum(bool(r["timings"].get("cached")) for r in repeats)
    assert cached >= 10, cached
    assert not any(o["timings"].get("cached") for o in outcomes[: len(outcomes) - len(repeats)])

    client = Client()
    client.force_login(session["manager"])
    today = timezone.localdate().isoformat()
    response = client.get(reverse("insights:analytics", args=[kb.slug]), {"from": today, "to": today})
    assert response.status_code == 200
    totals = response.context["totals"]
    answered = sum(o["answered"] for o in outcomes)
    assert (totals.questions, totals.answered, totals.refused) == (50, answered, 50 - answered)
    assert (totals.cached, totals.thumbs_down, totals.thumbs_up) == (cached, 4, 0)
    channels = {c["value"]: c["count"] for c in response.context["channels"]}
    assert channels == {"chat": 50, "widget": 0, "api": 0, "command": 0}
    languages = {lang["code"]: lang["count"] for lang in response.context["question_languages"]}
    assert languages["en"] >= 15 and languages["fr"] >= 12 and languages["zh"] >= 12, languages

    # the gap report: each unanswerable topic is one group of its own, across its languages
    now = timezone.now()
    report = gaps.gap_report(
        knowledge_base=kb, user=session["manager"], since=now - timedelta(hours=1), until=now + timedelta(hours=1)
    )
    groups = [{q.text for q in group.questions} for group in report.groups]
    for name, topic in UNANSWERABLE.items():
        holding = [g for g in groups if g & set(topic)]
        assert len(holding) == 1 and set(topic) <= holding[0], (name, groups)
        assert not holding[0] & (unanswerable - set(topic)), (name, holding[0])
    rated_down = {o["question"] for o in outcomes if QuestionLog.objects.get(message_id=o["message_id"]).feedback < 0}
    assert len(rated_down) == 4 and rated_down <= set().union(*groups)


def a_changed_document_is_answered_afresh(session: dict[str, Any]) -> None:
    """A document changes: the same question is answered afresh, then from the cache again."""
    kb, repeats = session["kb"], session["repeats"]
    manual = Document.objects.get(knowledge_base=kb, original_name="lumen-k3-manual.en.md")
    # ingested again in this process, as the fixture ingests (document_reingest would also hand it to a worker
    # that an earlier test may have started, which would change the base once more while this test asks)
    Document.objects.filter(pk=manual.pk).update(status=Document.Status.QUEUED)
    manual.refresh_from_db()
    assert run_pipeline(manual).status == Document.Status.READY
    question = next(r["question"] for r in repeats if r["timings"].get("cached"))
    again = ask(session["askers"][0], kb, question)
    assert not again["timings"].get("cached") and again["timings"]["completion_tokens"] > 0
    stored = Message.objects.get(pk=again["message_id"]).text.strip() != ""
    last = ask(session["askers"][1], kb, question)
    if again["versions"][0] == again["versions"][1] == last["versions"][0]:
        assert bool(last["timings"].get("cached")) == stored, (again, last)


def charts_are_drawn(session: dict[str, Any], url: str, tmp_path: Any) -> None:
    from playwright.sync_api import sync_playwright

    kb, outcomes = session["kb"], session["outcomes"]
    answered = sum(o["answered"] for o in outcomes)

    def sign_in() -> str:
        client = Client()
        client.force_login(session["manager"])
        return client.cookies["sessionid"].value

    cookie = off_the_loop(sign_in)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        context = browser.new_context(locale="zh-CN", viewport={"width": 1200, "height": 900})
        context.add_cookies([{"name": "sessionid", "value": cookie, "url": url}])
        page = context.new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{url}/kb/{kb.slug}/analytics/")
        page.wait_for_selector("html[data-charts]")
        assert page.locator("html").get_attribute("data-charts") == "5", errors
        canvases = page.locator("canvas[data-chart]").all()
        pixels = {canvas.get_attribute("data-chart"): canvas.evaluate(PIXELS_JS) for canvas in canvases}
        for name, found in pixels.items():
            assert found["drawn"] > 2000, f"{name}: {found}"
        # today's bar holds the answered (blue) and the refused (orange) questions
        assert pixels["questions"]["blue"] > 200 and pixels["questions"]["orange"] > 100, pixels["questions"]
        assert page.locator('[data-total="questions"]').inner_text() == "50"
        assert page.locator('[data-total="answered"]').inner_text() == str(answered)
        page.screenshot(path=str(tmp_path / "analytics-session-zh.png"), full_page=True)
        page.goto(f"{url}/kb/{kb.slug}/gaps/")
        for topic in UNANSWERABLE.values():
            assert page.get_by_text(topic[0]).count() >= 1
        page.screenshot(path=str(tmp_path / "gaps-session-zh.png"), full_page=True)
        assert not errors
        context.close()
        browser.close()
