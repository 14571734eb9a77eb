"""The knowledge-gap report on the real stack: grouping by meaning across languages, ranking by people, resolving
and re-checking after a real ingestion, CSV, access, and saved cases run by `eval_qa --saved`."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from chat.models import Conversation, Message, QuestionLog
from chat.widget.models import WidgetConversation, WidgetKey
from insights import gaps
from insights.models import GapResolution, SavedCase
from kb.ingest.pipeline import run_pipeline
from kb.models import Document
from kb.services import document_create, membership_set
from tests.conftest import readers_group

pytestmark = pytest.mark.django_db(transaction=True)

# Three topics the kettle manual does not cover, each asked in English, French and Chinese.
REPAIR = [
    ("en", "Where is the nearest authorised repair centre for the kettle?"),
    ("en", "Who can repair my broken kettle near me?"),
    ("fr", "Où se trouve le centre de réparation agréé le plus proche pour la bouilloire ?"),
    ("fr", "Qui peut réparer ma bouilloire cassée près de chez moi ?"),
    ("zh", "离我最近的水壶授权维修中心在哪里？"),
    ("zh", "我的水壶坏了，附近谁能修？"),
]
INSTALMENTS = [
    ("en", "Can I pay for the kettle in monthly instalments?"),
    ("en", "Is there a payment plan to buy the kettle in several payments?"),
    ("fr", "Puis-je payer la bouilloire en plusieurs mensualités ?"),
    ("fr", "Existe-t-il un paiement échelonné pour acheter la bouilloire ?"),
    ("zh", "买水壶可以分期付款吗？"),
    ("zh", "这个水壶能按月分期支付吗？"),
]
# Refused by the product's own check before any model (kb.refusal): "SmartBrew" is a name no passage holds.
SMARTBREW = [
    ("en", "How do I link the kettle to the SmartBrew app?"),
    ("fr", "Comment associer la bouilloire à l'application SmartBrew ?"),
    ("zh", "水壶怎么连接SmartBrew应用？"),
]
SMARTBREW_DOCUMENTS = {
    "smartbrew.en.txt": "SmartBrew app\n\nThe SmartBrew app links to the Lumen K3 kettle: open SmartBrew, choose Add "
    "kettle and hold the kettle's power button for five seconds until the light blinks blue.",
    "smartbrew.fr.txt": "Application SmartBrew\n\nL'application SmartBrew s'associe à la bouilloire Lumen K3 : ouvrez "
    "SmartBrew, choisissez Ajouter une bouilloire et maintenez le bouton marche cinq secondes jusqu'à ce que le "
    "voyant clignote en bleu.",
    "smartbrew.zh.txt": "SmartBrew 应用\n\nSmartBrew 应用可以连接 Lumen K3 水壶：打开 SmartBrew，选择“添加水壶”，"
    "按住水壶电源键五秒，直到指示灯闪蓝光。",
}


def _log(kb, question, language, *, user=None, answered=False, feedback=0, handed_off=False, message=None):
    return QuestionLog.objects.create(
        knowledge_base=kb,
        user=user,
        channel=QuestionLog.Channel.WIDGET if message else QuestionLog.Channel.CHAT,
        question=question,
        language=language,
        answered=answered,
        feedback=feedback,
        handed_off=handed_off,
        message=message,
    )


def _widget_message(kb, key, visitor):
    conversation = Conversation.objects.create(user=None, knowledge_base=kb, title="widget")
    WidgetConversation.objects.create(conversation=conversation, key=key, visitor_id=visitor)
    return Message.objects.create(conversation=conversation, role=Message.Role.ASSISTANT, text="…")


@pytest.fixture
def people(django_user_model):
    return {
        name: django_user_model.objects.create_user(name, password=f"{name}-password-1")
        for name in ("manager", "reader", "outsider", "ann", "bob", "cy")
    }


@pytest.fixture
def logged(trilingual_kb, people):
    """Gap questions: REPAIR by three users and two widget visitors (one asking twice: handed off),
    INSTALMENTS by one user six times (thumbs down on the French ones), SMARTBREW refused for one user;
    and answered questions that are no gaps."""
    kb = trilingual_kb
    membership_set(knowledge_base=kb, role="manager", actor=None, user=people["manager"])
    membership_set(knowledge_base=kb, role="reader", actor=None, user=people["reader"])
    askers = [people["ann"], people["bob"], people["cy"]]
    for asker in askers:  # readers of the base (the fixture base is shared with this group)
        asker.groups.add(readers_group())
    key = WidgetKey.objects.create(knowledge_base=kb, allowed_origins=["http://shop.example"])
    for i, (language, question) in enumerate(REPAIR):
        if i < 3:
            _log(kb, question, language, user=askers[i])
        else:
            visitor = "visitor-1" if i < 5 else "visitor-2"
            _log(kb, question, language, answered=True, handed_off=True, message=_widget_message(kb, key, visitor))
    for language, question in INSTALMENTS:
        _log(
            kb,
            question,
            language,
            user=people["ann"],
            answered=language == "fr",
            feedback=-1 if language == "fr" else 0,
        )
    for language, question in SMARTBREW:
        _log(kb, question, language, user=people["bob"])
    # answered, rated well or not at all: not gaps
    _log(kb, "How long does the kettle keep water warm?", "en", user=people["ann"], answered=True, feedback=1)
    _log(kb, "Comment détartrer la bouilloire ?", "fr", user=people["bob"], answered=True)
    _log(kb, "如何清洁水壶？", "zh", user=people["cy"], answered=True)
    return kb


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _groups_by_text(report: gaps.GapReport) -> list[set[str]]:
    return [{q.text for q in group.questions} for group in report.groups]


def test_topics_group_whole_and_apart_across_languages_ranked_by_people(logged, people):
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    report = gaps.gap_report(
        knowledge_base=logged, user=people["manager"], since=now - timedelta(days=1), until=now + timedelta(days=1)
    )
    groups = _groups_by_text(report)
    topics = {
        "repair": {q for _, q in REPAIR},
        "instalments": {q for _, q in INSTALMENTS},
        "smartbrew": {q for _, q in SMARTBREW},
    }
    assert report.questions == len(REPAIR) + len(INSTALMENTS) + len(SMARTBREW)  # answered ones left out
    assert sorted(groups, key=len) == sorted(topics.values(), key=len), groups
    # REPAIR: 3 users + 2 widget visitors = 5 people with 6 questions, ahead of INSTALMENTS' 6 questions by one user
    assert [g.users for g in report.groups] == [5, 1, 1]
    assert {q.text for q in report.groups[0].questions} == topics["repair"]
    assert report.groups[1].count == 6 and report.groups[2].count == 3  # same people: more questions first
    repair = report.groups[0]
    assert repair.languages == ["en", "fr", "zh"]
    assert repair.reasons == {"refused": 3, "handed_off": 3}
    assert report.groups[1].reasons == {"refused": 4, "thumbs_down": 2}
    assert repair.central.text in topics["repair"]
    # the closest passages are searched as the viewing manager
    assert repair.passages and all(p.title for p in repair.passages)


def test_page_escapes_questions_caps_and_managers_only(logged, people):
    _log(logged, '<script>alert("x")</script> where to buy a spare lid?', "en", user=people["cy"])
    url = reverse("insights:gaps", args=[logged.slug])
    for name in ("reader", "outsider"):
        assert _client(people[name]).get(url).status_code == 404
        assert _client(people[name]).get(reverse("insights:gaps_csv", args=[logged.slug])).status_code == 404
    response = _client(people["manager"]).get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert f"latest {gaps.GAP_LIMIT} gap questions" in html
    assert html.count("data-gap-group=") == 4
    first = re.search(r'data-gap-users="(\d+)"', html)
    assert first and first.group(1) == "5"
    detail = _client(people["manager"]).get(reverse("kb:detail", args=[logged.slug])).content.decode()
    assert url in detail
    assert url not in _client(people["reader"]).get(reverse("kb:detail", args=[logged.slug])).content.decode()


def test_csv_export_ranks_groups_and_neutralises_formulas(logged, people):
    _log(logged, '=HYPERLINK("http://evil.example", "click")', "en", user=people["cy"])
    response = _client(people["manager"]).get(reverse("insights:gaps_csv", args=[logged.slug]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    assert rows[0]["users"] == "5" and rows[0]["languages"] == "en fr zh"
    formula = next(r for r in rows if "HYPERLINK" in r["central_question"])
    assert formula["central_question"].startswith("'=")
    assert all(not cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())
    assert gaps.csv_cell("-1+2") == "'-1+2" and gaps.csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert gaps.csv_cell("plain") == "plain"


def test_resolve_then_upload_documents_and_the_group_is_answered_now(logged, people):
    client = _client(people["manager"])
    page = client.get(reverse("insights:gaps", args=[logged.slug])).content.decode()
    ids = sorted(QuestionLog.objects.filter(question__in=[q for _, q in SMARTBREW]).values_list("pk", flat=True))
    joined = ",".join(map(str, ids))
    assert f'name="ids" value="{joined}"' in page  # the page offers exactly this group
    resolve = reverse("insights:gap_resolve", args=[logged.slug])
    # no CSRF token: refused (the page's htmx posts send it in X-CSRFToken); a reader may not resolve
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(people["manager"])
    assert strict.post(resolve, {"ids": joined}).status_code == 403
    assert _client(people["reader"]).post(resolve, {"ids": joined}).status_code == 404
    response = client.post(resolve, {"ids": joined, "note": "uploaded the SmartBrew guide"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    page = response.content.decode()
    resolution = GapResolution.objects.get(knowledge_base=logged)
    assert resolution.question_ids == ids and resolution.note == "uploaded the SmartBrew guide"
    assert resolution.signature == gaps.group_signature(ids)
    # the group now shows apart, under the resolved ones
    assert page.count("data-gap-group=") == 2 and f'data-gap-resolution="{resolution.pk}"' in page
    assert f'name="ids" value="{joined}"' not in page
    recheck = reverse("insights:gap_recheck", args=[logged.slug, resolution.pk])
    before = client.get(recheck).content.decode()
    assert 'data-answered="0"' in before and "0 of 3 questions" in before, before
    for name, text in SMARTBREW_DOCUMENTS.items():
        document = document_create(
            knowledge_base=logged, content=io.BytesIO(text.encode()), filename=name, enqueue=False
        ).document
        assert run_pipeline(document).status == Document.Status.READY
    after = client.get(recheck).content.decode()
    assert 'data-answered="3"' in after and "3 of 3 questions would now be answered" in after, after
    # reopening puts the group back among the open ones
    assert client.post(reverse("insights:gap_reopen", args=[logged.slug, resolution.pk])).status_code == 302
    assert not GapResolution.objects.exists()
    assert f'name="ids" value="{joined}"' in client.get(reverse("insights:gaps", args=[logged.slug])).content.decode()


def test_saved_case_runs_in_eval_qa_saved(logged, people):
    client = _client(people["manager"])
    log = QuestionLog.objects.get(question="How long does the kettle keep water warm?")
    manual = Document.objects.get(knowledge_base=logged, original_name="lumen-k3-manual.en.md")
    policy = Document.objects.get(knowledge_base=logged, original_name="travel-policy.en.txt")
    url = reverse("insights:saved_case_create", args=[logged.slug])
    assert _client(people["reader"]).post(url, {"log": log.pk, "document": manual.pk}).status_code == 404
    response = client.post(url, {"log": log.pk, "document": manual.pk, "page": ""}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "data-saved-case" in response.content.decode()
    zh = QuestionLog.objects.get(question=SMARTBREW[2][1])
    client.post(url, {"log": zh.pk, "document": policy.pk, "page": "3"})
    cases = list(SavedCase.objects.filter(knowledge_base=logged).order_by("pk"))
    assert [(c.question, c.language, c.document_id, c.page) for c in cases] == [
        (log.question, "en", manual.pk, None),
        (zh.question, "zh", policy.pk, 3),
    ]
    out = io.StringIO()
    call_command("eval_qa", kb=logged.slug, saved=True, modes="hybrid", stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    assert "hybrid     hit@1" in text and "mrr@10" in text  # the dataset report's table
    warm = re.search(rf"#{cases[0].pk} \[en\] (\d+|miss)", text)
    assert warm and warm.group(1) == "1", text  # the manual answers it first
    assert re.search(rf"#{cases[1].pk} \[zh\] miss", text), text  # the policy has no page 3
    # the table's hit@1 is over both cases: one hit
    assert re.search(r"hybrid\s+hit@1\s+0\.500", text), text
    SavedCase.objects.all().delete()
    with pytest.raises(Exception, match="no saved evaluation cases"):
        call_command("eval_qa", kb=logged.slug, saved=True, stdout=io.StringIO())
