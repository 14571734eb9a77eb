"""The analytics page (/kb/SLUG/analytics/) and its CSV export, on question-log rows built with known values.

Expected figures are worked out by hand below and the percentiles checked against numpy's (the same linear
interpolation as PostgreSQL's percentile_cont). Access: managers and superusers only, 404 for everyone else.
A headless-Chromium test checks that the charts were drawn (pixels of the bars' colours on the canvases).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import Group
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat.answer import answer
from chat.models import QuestionLog
from insights.analytics import Period, analytics_daily
from insights.views_analytics import csv_cell, period_from
from kb.models import Document, KnowledgeBase
from kb.services import document_create, document_restrict, knowledge_base_create, membership_set
from tests.widget.test_browser import CHROMIUM, CHROMIUM_FLAGS, docent_url, off_the_loop  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

UTC = dt.UTC
FIRST, LAST = dt.date(2026, 3, 1), dt.date(2026, 3, 3)
RANGE = {"from": "2026-03-01", "to": "2026-03-03"}
INJECTION = '=HYPERLINK("http://evil.example","click")'


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


def log(kb: KnowledgeBase, when: dt.datetime, **fields: Any) -> QuestionLog:
    defaults = {"channel": "chat", "question": "q", "language": "en", "answered": True}
    row = QuestionLog.objects.create(knowledge_base=kb, **{**defaults, **fields})
    QuestionLog.objects.filter(pk=row.pk).update(created_at=when)  # created_at is auto_now_add
    return row


def document(kb: KnowledgeBase, title: str) -> Document:
    return document_create(
        knowledge_base=kb, content=io.BytesIO(title.encode()), filename=f"{title}.txt", title=title, enqueue=False
    ).document


class Scene:
    """A base with two public documents and one restricted to a group its owner is not in; six questions in
    the period 1–3 March 2026 (none on the 2nd), two just outside it and one in another base."""

    def __init__(self, django_user_model: Any) -> None:
        make = django_user_model.objects.create_user
        self.owner = make("owner", password="owner-password-1")
        self.reader = make("reader", password="reader-password-1")
        self.outsider = make("outsider", password="outsider-password-1")
        self.staff = make("staff", password="staff-password-1", is_staff=True)
        self.staff_manager = make("staffmanager", password="staff-password-1", is_staff=True)
        self.root = django_user_model.objects.create_superuser("root", password="root-password-1")
        self.kb = knowledge_base_create(slug="lumen", name="Lumen", owner=self.owner)
        other = knowledge_base_create(slug="other", name="Other", owner=self.owner)
        membership_set(knowledge_base=self.kb, role="reader", actor=self.owner, user=self.reader)
        membership_set(knowledge_base=self.kb, role="manager", actor=self.owner, user=self.staff_manager)
        self.alpha, self.beta = document(self.kb, "Alpha guide"), document(self.kb, "Beta guide")
        self.secret = document(self.kb, "Salary grid")
        document_restrict(document=self.secret, groups=[Group.objects.create(name="hr")], actor=self.owner)
        a, b, s = self.alpha.pk, self.beta.pk, self.secret.pk
        log(self.kb, at(1, 8), ttft_ms=100.0, total_ms=900.0, feedback=1, cited_documents=[a])
        log(self.kb, at(1, 9), ttft_ms=200.0, cached=True, cited_documents=[a, b], question="Détartrage ?")
        log(
            self.kb,
            at(1, 23, 59, 59),
            channel="widget",
            language="fr",
            answered=False,
            refusal_reason="not in the documents",
            ttft_ms=5.0,
            feedback=-1,
            handed_off=True,
        )
        log(self.kb, at(3, 0), channel="api", language="zh", ttft_ms=400.0, cited_documents=[b], question="如何除垢？")
        log(self.kb, at(3, 12), channel="command", ttft_ms=1000.0, feedback=-1, cited_documents=[s])
        log(self.kb, at(3, 13), language="", answered=False, ttft_ms=None, question=INJECTION)
        log(self.kb, dt.datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC), cited_documents=[a])  # before the period
        log(self.kb, dt.datetime(2026, 3, 4, 0, 0, 0, tzinfo=UTC), cited_documents=[a])  # after it
        log(other, at(2, 10), cited_documents=[a])  # another base

    def client(self, user: Any) -> Client:
        client = Client()
        client.force_login(user)
        return client


@pytest.fixture
def scene(django_user_model) -> Scene:
    return Scene(django_user_model)


def island(response: Any) -> dict[str, Any]:
    found = re.search(r'<script id="analytics-data" type="application/json">(.*?)</script>', response.content.decode())
    assert found, "no chart data on the page"
    return json.loads(found.group(1))


def test_the_page_counts_the_periods_questions(scene):
    response = scene.client(scene.owner).get(reverse("insights:analytics", args=["lumen"]), RANGE)
    assert response.status_code == 200
    totals = response.context["totals"]
    assert (totals.questions, totals.answered, totals.refused, totals.cached) == (6, 4, 2, 1)
    assert (totals.thumbs_up, totals.thumbs_down, totals.handed_off) == (1, 2, 1)
    # answered questions' times: 100, 200, 400, 1000 ms (refusals left out)
    answered_ttft = [100, 200, 400, 1000]
    assert totals.ttft_median_ms == pytest.approx(300.0) == np.percentile(answered_ttft, 50)
    assert totals.ttft_p95_ms == pytest.approx(910.0) == pytest.approx(np.percentile(answered_ttft, 95))

    days = response.context["days"]
    assert [d.day for d in days] == [FIRST, dt.date(2026, 3, 2), LAST]
    assert [(d.questions, d.answered, d.refused, d.cached, d.thumbs_down, d.handed_off) for d in days] == [
        (3, 2, 1, 1, 1, 1),
        (0, 0, 0, 0, 0, 0),
        (3, 2, 1, 0, 1, 0),
    ]
    assert [(d.ttft_median_ms, d.ttft_p95_ms) for d in days] == [
        (pytest.approx(150.0), pytest.approx(195.0)),
        (None, None),
        (pytest.approx(700.0), pytest.approx(970.0)),
    ]
    assert [(c["value"], c["count"]) for c in response.context["channels"]] == [
        ("chat", 3),
        ("widget", 1),
        ("api", 1),
        ("command", 1),
    ]
    assert [(lang["code"], lang["count"]) for lang in response.context["question_languages"]] == [
        ("en", 3),
        ("", 1),
        ("fr", 1),
        ("zh", 1),
    ]
    # the owner is not in "hr": the restricted document is not named, though an answer cited it
    assert [(d["title"], d["count"]) for d in response.context["documents"]] == [("Alpha guide", 2), ("Beta guide", 2)]
    assert "Salary grid" not in response.content.decode()

    data = island(response)
    assert data["answered"] == [2, 0, 2] and data["refused"] == [1, 0, 1]
    assert data["ttft_median"] == [150, None, 700] and data["ttft_p95"] == [195, None, 970]
    assert data["channels"]["values"] == [3, 1, 1, 1]
    assert data["documents"] == {"labels": ["Alpha guide", "Beta guide"], "values": [2, 2]}
    html = response.content.decode()
    assert re.search(r'data-total="questions">6<', html) and re.search(r'data-total="ttft_p95">910 ms<', html)
    assert html.count('<tr data-day="') == 3
    assert "<script>" not in html  # no inline script: the data is JSON, the code a static module


def test_a_superuser_sees_every_cited_document(scene):
    response = scene.client(scene.root).get(reverse("insights:analytics", args=["lumen"]), RANGE)
    assert [(d["title"], d["count"]) for d in response.context["documents"]] == [
        ("Alpha guide", 2),
        ("Beta guide", 2),
        ("Salary grid", 1),
    ]


@pytest.mark.parametrize(
    ("who", "status"),
    [("owner", 200), ("staff_manager", 200), ("root", 200), ("reader", 404), ("outsider", 404), ("staff", 404)],
)
def test_only_managers_and_superusers_reach_the_page_and_the_export(scene, who, status):
    client = scene.client(getattr(scene, who))
    assert client.get(reverse("insights:analytics", args=["lumen"])).status_code == status
    assert client.get(reverse("insights:analytics_csv", args=["lumen"]), RANGE).status_code == status
    detail = client.get(reverse("kb:detail", args=["lumen"]))
    link = reverse("insights:analytics", args=["lumen"])
    assert (link in detail.content.decode()) == (status == 200)


def test_anonymous_visitors_are_sent_to_sign_in(scene):
    response = Client().get(reverse("insights:analytics", args=["lumen"]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_default_period_is_the_last_30_days_and_bad_dates_are_refused(scene):
    today = timezone.localdate()
    client = scene.client(scene.owner)
    url = reverse("insights:analytics", args=["lumen"])
    default = client.get(url)
    assert default.context["period"] == Period(today - dt.timedelta(days=29), today)
    assert len(default.context["days"]) == 30 and default.context["errors"] == []
    for query, error in [
        ({"from": "yesterday"}, "“yesterday” is not a date."),
        ({"from": "2026-03-05", "to": "2026-03-01"}, "The start date is after the end date."),
        ({"from": "2020-01-01", "to": "2026-03-01"}, "Choose at most 731 days."),
    ]:
        response = client.get(url, query)
        assert response.status_code == 200 and response.context["errors"] == [error]
        assert response.context["period"] == default.context["period"]
        assert error in response.content.decode()
        assert client.get(reverse("insights:analytics_csv", args=["lumen"]), query).status_code == 400
    # one date given: the other follows
    assert period_from({"to": "2026-03-31"}, today=today)[0] == Period(dt.date(2026, 3, 2), dt.date(2026, 3, 31))
    assert period_from({"from": "2026-03-01"}, today=dt.date(2026, 3, 10))[0] == Period(FIRST, dt.date(2026, 3, 10))


def test_days_follow_the_current_time_zone(scene):
    # in Shanghai (UTC+8) the question of 28 February 23:59:59 UTC was asked on 1 March, that of 1 March
    # 23:59:59 on the 2nd; 4 March 00:00 UTC is 08:00 on the 4th, still outside
    with timezone.override("Asia/Shanghai"):
        days = analytics_daily(knowledge_base=scene.kb, period=Period(FIRST, LAST))
    assert [d.questions for d in days] == [3, 1, 3]


def read_csv(response: Any) -> list[list[str]]:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    assert content.startswith("\ufeff".encode())  # spreadsheets read it as UTF-8
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def test_the_csv_export_holds_the_daily_rows_then_the_questions(scene):
    client = scene.client(scene.owner)
    response = client.get(reverse("insights:analytics_csv", args=["lumen"]), RANGE)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="lumen-analytics-2026-03-01-2026-03-03.csv"'
    rows = read_csv(response)
    blank = rows.index([])
    daily, questions = rows[:blank], rows[blank + 1 :]
    assert daily == [
        [
            "date",
            "questions",
            "answered",
            "refused",
            "cached",
            "thumbs_up",
            "thumbs_down",
            "handed_off",
            "ttft_median_ms",
            "ttft_p95_ms",
        ],
        ["2026-03-01", "3", "2", "1", "1", "1", "1", "1", "150.0", "195.0"],
        ["2026-03-02", "0", "0", "0", "0", "0", "0", "0", "", ""],
        ["2026-03-03", "3", "2", "1", "0", "0", "1", "0", "700.0", "970.0"],
    ]
    assert questions[0] == [
        "created_at",
        "question",
        "language",
        "channel",
        "answered",
        "refusal_reason",
        "cached",
        "ttft_ms",
        "feedback",
        "handed_off",
    ]
    assert questions[1:] == [
        ["2026-03-01T08:00:00+00:00", "q", "en", "chat", "true", "", "false", "100.0", "1", "false"],
        ["2026-03-01T09:00:00+00:00", "Détartrage ?", "en", "chat", "true", "", "true", "200.0", "0", "false"],
        [
            "2026-03-01T23:59:59+00:00",
            "q",
            "fr",
            "widget",
            "false",
            "not in the documents",
            "false",
            "5.0",
            "-1",
            "true",
        ],
        ["2026-03-03T00:00:00+00:00", "如何除垢？", "zh", "api", "true", "", "false", "400.0", "0", "false"],
        ["2026-03-03T12:00:00+00:00", "q", "en", "command", "true", "", "false", "1000.0", "-1", "false"],
        # a formula is written as text: the leading apostrophe stops a spreadsheet from running it
        ["2026-03-03T13:00:00+00:00", "'" + INJECTION, "", "chat", "false", "", "false", "", "0", "false"],
    ]
    only_daily = read_csv(client.get(reverse("insights:analytics_csv", args=["lumen"]), {**RANGE, "table": "daily"}))
    assert only_daily == daily
    only_questions = client.get(reverse("insights:analytics_csv", args=["lumen"]), {**RANGE, "table": "questions"})
    assert read_csv(only_questions) == questions
    assert "-questions.csv" in only_questions["Content-Disposition"]
    assert client.get(reverse("insights:analytics_csv", args=["lumen"]), {"table": "users"}).status_code == 400


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted():
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text
    assert csv_cell("a=b") == "a=b" and csv_cell(-1) == -1 and csv_cell(None) == "" and csv_cell(True) == "true"


def test_a_real_refused_question_is_counted_today(scene):
    """Through chat.answer.answer (the chat's path): the base has no passages, so it refuses without the model."""

    async def ask() -> list[dict[str, Any]]:
        return [event async for event in answer(user=scene.owner, knowledge_base=scene.kb, question="E4 error?")]

    events = asyncio.run(ask())
    assert events[-1]["type"] == "done"
    today = timezone.localdate().isoformat()
    response = scene.client(scene.owner).get(
        reverse("insights:analytics", args=["lumen"]), {"from": today, "to": today}
    )
    totals = response.context["totals"]
    assert (totals.questions, totals.answered, totals.refused) == (1, 0, 1)
    assert [c["count"] for c in response.context["channels"]] == [1, 0, 0, 0]


# ---- in a real browser


def chart_library_installed() -> bool:
    return finders.find("vendor/chart.js/chart.umd.min.js") is not None


# the canvas's pixels: how many are drawn, and how many are close to each of the questions chart's colours
PIXELS_JS = """
(canvas) => {
  const context = canvas.getContext("2d");
  const {data} = context.getImageData(0, 0, canvas.width, canvas.height);
  const near = (i, [r, g, b]) => Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 40;
  let drawn = 0, blue = 0, orange = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] === 0) continue;
    drawn += 1;
    if (near(i, [0x25, 0x63, 0xeb])) blue += 1;
    if (near(i, [0xf9, 0x73, 0x16])) orange += 1;
  }
  return {drawn, blue, orange, width: canvas.width, height: canvas.height, png: canvas.toDataURL().length};
}
"""


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
@pytest.mark.skipif(
    not chart_library_installed(), reason="chart.js is not installed (package.json; node_modules/chart.js)"
)
def test_the_charts_are_drawn_in_a_browser(django_user_model, docent_url, tmp_path: Path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    def setup() -> str:
        scene = Scene(django_user_model)
        return scene.client(scene.owner).cookies["sessionid"].value

    session = off_the_loop(setup)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        context = browser.new_context(locale="fr-FR", viewport={"width": 1200, "height": 900})
        context.add_cookies([{"name": "sessionid", "value": session, "url": docent_url}])
        page = context.new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{docent_url}/kb/lumen/analytics/?from=2026-03-01&to=2026-03-03")
        page.wait_for_selector("html[data-charts]")
        assert page.locator("html").get_attribute("data-charts") == "5", errors
        assert page.locator("html").get_attribute("lang") == "fr"
        pixels = {
            canvas.get_attribute("data-chart"): canvas.evaluate(PIXELS_JS)
            for canvas in page.locator("canvas[data-chart]").all()
        }
        for name, found in pixels.items():
            assert found["drawn"] > 2000, f"{name}: {found}"
        # answered (blue) and refused (orange) bars are both on the questions chart
        assert pixels["questions"]["blue"] > 500 and pixels["questions"]["orange"] > 300, pixels["questions"]
        # the tables say the same in French, numbers and dates localised
        assert page.locator('[data-total="ttft_p95"]').inner_text() == "910\u00a0ms"
        assert page.locator('tr[data-day="2026-03-01"] th').text_content() == "01/03/2026"  # in the closed details
        assert not errors
        page.screenshot(path=str(tmp_path / "analytics-fr.png"), full_page=True)
        if os.environ.get("DOCENT_SCREENSHOTS"):
            page.screenshot(path=str(Path(os.environ["DOCENT_SCREENSHOTS"]) / "analytics-fr.png"), full_page=True)
        context.close()
        browser.close()
