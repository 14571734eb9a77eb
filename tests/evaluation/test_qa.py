import json
import shutil

import pytest
from django.core.management import call_command

from evaluation.qa import Outcome, Passage, Question, first_hit_rank, is_hit, refusal, summarise
from tests.conftest import DEMO_DIR


def q(lang="en", file="guide.pdf", page=3, phrases=("build-essential",), unanswerable=False, qid="q"):
    return Question(qid, lang, "?", file, page, list(phrases), unanswerable)


def test_hit_needs_file_page_and_phrase_after_whitespace_normalisation():
    question = q(phrases=["most important  package"])
    assert is_hit(question, Passage("guide.pdf", 3, "the most\nimportant package to install"))
    assert not is_hit(question, Passage("guide.pdf", 4, "the most important package"))
    assert not is_hit(question, Passage("other.pdf", 3, "the most important package"))
    assert not is_hit(question, Passage("guide.pdf", 3, "unrelated"))


def test_chinese_phrases_also_match_with_whitespace_removed():
    question = q(lang="zh", phrases=["最重要的软件包"])
    assert is_hit(question, Passage("guide.pdf", 3, "最重要 的软\n件包"))
    assert not is_hit(q(lang="en", phrases=["ab cd"]), Passage("guide.pdf", 3, "abcd"))


def test_ranks_metrics_and_refusal():
    question = q()
    passages = [Passage("guide.pdf", 1, "x"), Passage("guide.pdf", 3, "get build-essential")]
    assert first_hit_rank(question, passages) == 2
    outcomes = [
        Outcome(q(qid="a"), 1),
        Outcome(q(qid="b", lang="fr"), 2),
        Outcome(q(qid="c", lang="fr"), None),
        Outcome(q(qid="u", unanswerable=True, file=None, phrases=()), None, answered=False),
    ]
    summary = summarise(outcomes)
    assert summary["overall"] == {"hit@1": 0.3333, "hit@5": 0.6667, "mrr@10": 0.5, "n": 3}
    assert summary["by_lang"]["fr"]["hit@5"] == 0.5
    assert refusal(outcomes) == {"unanswerable_refused": 1.0, "answerable_refused": 0.0}


@pytest.mark.django_db(transaction=True)
def test_eval_qa_ingests_the_dataset_and_reports_every_mode(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(DEMO_DIR / "lumen-k3-manual.zh.html", files)
    shutil.copy(DEMO_DIR / "lumen-k3-manual.fr.html", files)
    questions = [
        {
            "id": "zh-01",
            "lang": "zh",
            "question": "如何恢复出厂设置？",
            "file": "lumen-k3-manual.zh.html",
            "page": None,
            "answer_phrases": ["10秒"],
            "unanswerable": False,
            "answer": "将水壶放在底座上，同时按住 TEMP 和 POWER 按钮10秒，直到环形灯蓝色闪烁三次。",
        },
        {
            "id": "fr-01",
            "lang": "fr",
            "question": "Combien de temps dure le maintien au chaud ?",
            "file": "lumen-k3-manual.fr.html",
            "page": None,
            "answer_phrases": ["30 minutes"],
            "unanswerable": False,
            "answer": "La Lumen K3 maintient l'eau à la température choisie pendant 30 minutes après la chauffe.",
        },
        {
            "id": "en-u1",
            "lang": "en",
            "question": "How do I configure AppArmor?",
            "file": None,
            "page": None,
            "answer_phrases": [],
            "unanswerable": True,
        },
    ]
    (tmp_path / "questions.jsonl").write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in questions))
    out = tmp_path / "report.json"
    call_command("eval_qa", dataset=str(tmp_path), kb="evalset", json=str(out), attribution=True)
    report = json.loads(out.read_text())
    # both reference answers restate a source that holds the answer, and are attributed to it
    attribution = report["attribution"]
    assert attribution["answers"] == attribution["with_a_relevant_source"] == 2
    assert attribution["current"]["recall"] == 1.0 and attribution["current"]["precision"] > 0
    assert {(row["overlap"], row["similarity"]) for row in attribution["sweep"]} >= {(0.7, 0.7), (0.6, 0.7)}
    assert set(report["modes"]) == {"dense", "fulltext", "hybrid"}
    assert report["modes"]["fulltext"]["overall"]["n"] == 2
    assert report["modes"]["hybrid"]["overall"]["hit@5"] == 1.0
    assert set(report["refusal"]) >= {"unanswerable_refused", "answerable_refused"}


def test_attribution_scores_count_sources_that_hold_the_answer():
    from chat.attribution import SentenceMatch
    from evaluation.qa import AttributionCase, attribution_scores

    copied = SentenceMatch("copied", overlap=0.9, overlap_source=(1, "a"), similarity=0.9, similarity_source=(1, "a"))
    loose = SentenceMatch("loose", overlap=0.2, overlap_source=(2, "b"), similarity=0.75, similarity_source=(3, "c"))
    cases = [AttributionCase("en", [copied], {1}), AttributionCase("en", [loose], {2})]
    # strict: only the copied sentence is attributed, to the right source
    assert attribution_scores(cases, 0.7, 0.8) == {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "cited": 1}
    # looser similarity also attributes the loose sentence, to a source without the answer
    assert attribution_scores(cases, 0.7, 0.7) == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "cited": 2}
    # nothing attributed: no wrong citation, nothing found
    assert attribution_scores(cases, 1.01, 1.01)["cited"] == 0
