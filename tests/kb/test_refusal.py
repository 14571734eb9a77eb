"""Refusal before the model: only names and jargon the documents never mention, never everyday paraphrases."""

from __future__ import annotations

import pytest

from kb import refusal, retrieval
from kb.ingest.pipeline import run_pipeline
from kb.models import Document
from kb.services import document_create_from_path, knowledge_base_create

POOL_HOURS = """# Horaires du bassin extérieur

Du lundi au samedi, le bassin extérieur est ouvert de 10 h à 20 h.
Le dimanche, il ouvre à 9 h 30 et ferme à 18 h 45.
L'évacuation des bassins commence quinze minutes avant la fermeture.
"""
CANTEEN = """# 食堂就餐须知

员工食堂午餐时间为十一点半至一点半，晚餐时间为五点半至七点。
每位员工每月可获得六百元餐补，直接充入工卡。
"""


@pytest.fixture
def small_bases(transactional_db, tmp_path):
    bases = {}
    for slug, name, text in (("piscine", "horaires.md", POOL_HOURS), ("shitang", "shitang.md", CANTEEN)):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        knowledge_base = knowledge_base_create(slug=slug)
        document = document_create_from_path(knowledge_base=knowledge_base, path=path, enqueue=False).document
        assert run_pipeline(document).status == Document.Status.READY
        bases[slug] = knowledge_base
    return bases


@pytest.mark.parametrize(
    ("slug", "question", "phrase"),
    [
        # most of these words are in no passage of a one-page base: paraphrases, not absent topics
        ("piscine", "À quelle heure ferme le bassin extérieur le dimanche ?", "ferme à 18 h 45"),
        ("piscine", "Jusqu'à quand peut-on nager dehors en fin de semaine ?", "ferme à 18 h 45"),
        ("shitang", "公司食堂中午几点开饭？", "十一点半"),
        ("shitang", "每个月的伙食补贴有多少钱？", "六百元"),
    ],
)
def test_everyday_paraphrases_on_small_bases_are_answered(small_bases, slug, question, phrase):
    result = retrieval.search(knowledge_base=small_bases[slug], question=question, limit=3)
    assert result.answerable, result.refusal_reason
    assert any(phrase in hit.chunk.text for hit in result.hits)


# Names that general language knows (Navigo, Doctolib, Alipay) are not refused on this evidence: their absence
# is no proof that the question is off-topic (README, "Refusal").
@pytest.mark.parametrize(
    ("slug", "question", "missing"),
    [
        ("piscine", "Comment réserver un créneau dans l'application AquaBook ?", "AquaBook"),
        ("piscine", "Le bassin est-il équipé d'un système hydroflux ?", "hydroflux"),
        ("shitang", "食堂支持 WeChatPay 付款吗？", "WeChatPay"),
    ],
)
def test_a_name_the_base_never_mentions_is_refused(small_bases, slug, question, missing):
    result = retrieval.search(knowledge_base=small_bases[slug], question=question)
    assert not result.answerable and missing in result.refusal_reason


def test_ordinary_words_are_not_taken_for_names():
    assert refusal.identifiers("Y a-t-il des règles de savoir-vivre ? Faut-il un e-mail ?") == [
        "savoir-vivre",
        "e-mail",
    ]
    assert refusal.zipf("savoir-vivre", "fr") >= refusal.ORDINARY_WORD_ZIPF
    assert refusal.zipf("apparmor", "en") < refusal.ORDINARY_WORD_ZIPF
    assert refusal.unknown_words("How do I write an autopkgtest for debcargo crates?", "en") == [
        "autopkgtest",
        "debcargo",
    ]
    assert refusal.unknown_words("Comment détartrer la bouilloire chaque semaine ?", "fr") == []
    assert refusal.unknown_words("如何用 debcargo 打包？", "zh") == ["debcargo"]
