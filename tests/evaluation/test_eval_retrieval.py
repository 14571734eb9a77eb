import json
import math

import pytest
from django.core.management import call_command

from evaluation.beir import (
    CorpusDocument,
    load_corpus,
    load_qrels,
    load_queries,
    mean_metrics,
    mrr_at_k,
    ndcg_at_k,
    query_metrics,
    rank_documents,
    recall_at_k,
    to_ingest,
)
from kb.models import Chunk, Document

QRELS = {"d1": 1, "d3": 1, "d9": 0}


def test_recall_counts_only_relevant_documents_within_k():
    ranked = ["d2", "d1", "d9", "d4", "d3", "d5"]
    assert recall_at_k(ranked, QRELS, 1) == 0.0
    assert recall_at_k(ranked, QRELS, 2) == 0.5
    assert recall_at_k(ranked, QRELS, 5) == 1.0
    assert recall_at_k(ranked, {"d9": 0}, 5) == 0.0  # no relevant document: 0, not a division by zero


def test_mrr_is_the_reciprocal_rank_of_the_first_relevant_document_within_k():
    assert mrr_at_k(["d9", "d2", "d3", "d1"], QRELS) == pytest.approx(1 / 3)  # d9 has relevance 0
    assert mrr_at_k(["d1"], QRELS) == 1.0
    assert mrr_at_k([f"x{i}" for i in range(10)] + ["d1"], QRELS, 10) == 0.0


def test_ndcg_uses_graded_gains_and_the_ideal_order_of_all_judged_documents():
    qrels = {"a": 2, "b": 1, "c": 1, "z": 0}
    ideal = 2 + 1 / math.log2(3) + 1 / math.log2(4)
    # ranked b, x, a: gains 1 at rank 1, 2 at rank 3; c is never retrieved but is in the ideal.
    assert ndcg_at_k(["b", "x", "a"], qrels) == pytest.approx((1 + 2 / 2) / ideal)
    assert ndcg_at_k(["a", "b", "c"], qrels) == pytest.approx(1.0)
    assert ndcg_at_k(["a", "c", "b", "z"], qrels) == pytest.approx(1.0)  # equal grades in either order
    assert ndcg_at_k(["z", "x"], qrels) == 0.0
    assert ndcg_at_k(["a"], {"z": 0}) == 0.0
    # only the top k count, for the retrieved and the ideal alike
    assert ndcg_at_k(["x", "a"], {"a": 1}, k=1) == 0.0
    assert ndcg_at_k(["a", "b"], {"a": 1, "b": 3}, k=1) == pytest.approx(1 / 3)


def test_query_and_mean_metrics():
    first = query_metrics(["d1", "d2", "d3"], QRELS)
    assert first == {
        "recall@1": 0.5,
        "recall@5": 1.0,
        "recall@10": 1.0,
        "mrr@10": 1.0,
        "ndcg@10": pytest.approx((1 + 1 / 2) / (1 + 1 / math.log2(3))),
    }
    second = query_metrics(["x", "y"], QRELS)
    assert set(second.values()) == {0.0}
    summary = mean_metrics([first, second])
    assert summary["recall@1"] == 0.25
    assert summary["mrr@10"] == 0.5
    assert summary["ndcg@10"] == round(first["ndcg@10"] / 2, 4)
    assert summary["n"] == 2
    assert mean_metrics([])["n"] == 0


def test_rank_documents_keeps_the_first_chunk_of_each_document_and_drops_the_query_itself():
    chunks_docs = ["d2", "d2", "q1", "d1", "", "d2", "d3"]
    assert rank_documents(chunks_docs, exclude="q1") == ["d2", "d1", "d3"]
    assert rank_documents(chunks_docs, k=2) == ["d2", "q1"]


def test_loaders_read_the_beir_layout(tmp_path):
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "T", "text": "body"}\n\n{"_id": 7, "text": "no title"}\n', encoding="utf-8"
    )
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "what?"}\n', encoding="utf-8")
    (tmp_path / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\t7\t0\nq2\td1\t1\n")
    assert load_corpus(tmp_path / "corpus.jsonl") == [
        CorpusDocument("d1", "T", "body"),
        CorpusDocument("7", "", "no title"),
    ]
    assert load_queries(tmp_path / "queries.jsonl") == {"q1": "what?"}
    assert load_qrels(tmp_path / "test.tsv") == {"q1": {"d1": 2, "7": 0}, "q2": {"d1": 1}}
    corpus = [CorpusDocument("a", "", "x"), CorpusDocument("b", " ", ""), CorpusDocument("a", "", "y")]
    assert [d.text for d in to_ingest(corpus, set())] == ["x"]
    assert to_ingest(corpus, {"a"}) == []


CORPUS = [
    ("bees", "Honey bees", "Honey bees collect nectar from flowers and turn it into honey inside the hive."),
    ("volcano", "Volcanoes", "A volcano erupts when magma rises through the crust and lava flows down its slopes."),
    ("chess", "Chess openings", "The Sicilian Defence is a chess opening in which Black answers e4 with c5."),
    ("tides", "Ocean tides", "Tides are caused by the gravitational pull of the Moon and the Sun on the oceans."),
    ("bread", "Sourdough bread", "Sourdough bread is leavened by a starter of wild yeast and lactic bacteria."),
    ("bees-2", "Bee dances", "Worker bees perform a waggle dance to tell the hive where flowers with nectar are."),
    (
        "photo-fr",
        "La photosynthèse",
        "La photosynthèse permet aux plantes de transformer la lumière du soleil en énergie chimique.",
    ),
    ("velo-fr", "Le Tour de France", "Le Tour de France est une course cycliste disputée chaque été sur les routes."),
]
QUERIES = [
    ("q-bees", "How do bees make honey and dance?"),
    ("q-volcano", "Why does a volcano erupt with lava?"),
    ("q-tides", "What causes the ocean tides?"),
    ("q-photo", "Comment les plantes utilisent-elles la lumière pour la photosynthèse ?"),
    ("q-unjudged", "Who invented sourdough bread?"),  # not in the qrels: not evaluated
]
QREL_ROWS = [
    ("q-bees", "bees", 2),
    ("q-bees", "bees-2", 1),
    ("q-bees", "bread", 0),
    ("q-volcano", "volcano", 1),
    ("q-tides", "tides", 1),
    ("q-photo", "photo-fr", 1),
]


def write_dataset(root):
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as out:
        for doc_id, title, text in CORPUS:
            out.write(json.dumps({"_id": doc_id, "title": title, "text": text}, ensure_ascii=False) + "\n")
    with (root / "queries.jsonl").open("w", encoding="utf-8") as out:
        for query_id, text in QUERIES:
            out.write(json.dumps({"_id": query_id, "text": text}, ensure_ascii=False) + "\n")
    (root / "qrels").mkdir()
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in QREL_ROWS]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")


@pytest.mark.django_db(transaction=True)
def test_eval_retrieval_ingests_the_corpus_and_reports_every_mode(tmp_path):
    write_dataset(tmp_path)
    out = tmp_path / "report.json"
    call_command("eval_retrieval", dataset=str(tmp_path), kb="beir-test", json=str(out))
    report = json.loads(out.read_text())

    assert set(report["modes"]) == {"dense", "fulltext", "hybrid"}
    for figures in report["modes"].values():
        assert set(figures) == {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "n"}
        assert figures["n"] == 4
        assert all(0.0 <= figures[m] <= 1.0 for m in figures if m != "n")
    assert report["modes"]["fulltext"]["recall@5"] == 1.0
    assert report["modes"]["fulltext"]["mrr@10"] == 1.0
    conditions = report["conditions"]
    assert conditions["kb"] == "beir-test"
    assert conditions["documents"] == len(CORPUS)
    assert conditions["queries"] == 4
    assert conditions["languages"] == {"en": 6, "fr": 2}

    documents = Document.objects.filter(knowledge_base__slug="beir-test")
    assert set(documents.values_list("original_name", flat=True)) == {doc_id for doc_id, _, _ in CORPUS}
    assert set(documents.values_list("status", flat=True)) == {Document.Status.READY}
    photo = documents.get(original_name="photo-fr")
    assert photo.title == "La photosynthèse" and photo.language == "fr"
    with photo.file.open("rb") as handle:
        assert handle.read().decode() == CORPUS[6][2]
    chunk = Chunk.objects.get(document=photo)
    assert chunk.heading == "La photosynthèse" and chunk.language == "fr"

    # A second run evaluates the knowledge base as it is, without ingesting again.
    call_command("eval_retrieval", dataset=str(tmp_path), kb="beir-test", modes="fulltext", json=str(out))
    again = json.loads(out.read_text())
    assert set(again["modes"]) == {"fulltext"}
    assert again["modes"]["fulltext"] == report["modes"]["fulltext"]
    assert Chunk.objects.filter(knowledge_base__slug="beir-test").count() == len(CORPUS)
