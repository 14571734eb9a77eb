"""Dense, full-text and hybrid search in three languages, scoping in SQL, and refusal — on Postgres."""

import pytest

from kb import retrieval
from kb.ingest.pipeline import run_pipeline
from kb.models import Chunk, Document
from kb.services import document_create_from_path, knowledge_base_create
from tests.conftest import FIXTURES

pytestmark = pytest.mark.django_db(transaction=True)

RESET = {
    "en": ("How do I do a factory reset of the kettle?", "10 seconds"),
    "fr": ("Comment réinitialiser la bouilloire aux réglages d'usine ?", "10 secondes"),
    "zh": ("如何把水壶恢复出厂设置？", "10秒"),
}


def top_texts(result, n=3):
    return [h.chunk.text for h in result.hits[:n]]


@pytest.mark.parametrize("mode", ["dense", "fulltext", "hybrid"])
def test_each_mode_finds_the_english_passage(trilingual_kb, mode):
    result = retrieval.search(knowledge_base=trilingual_kb, question=RESET["en"][0], mode=mode)
    assert result.mode == mode and result.answerable
    assert any("10 seconds" in text for text in top_texts(result))


@pytest.mark.parametrize("lang", ["en", "fr", "zh"])
@pytest.mark.parametrize("mode", ["fulltext", "hybrid"])
def test_each_language_is_answered_from_its_own_documents(trilingual_kb, lang, mode):
    question, needle = RESET[lang]
    result = retrieval.search(knowledge_base=trilingual_kb, question=question, mode=mode)
    assert result.language == lang and result.scoped_language == lang
    assert {h.chunk.language for h in result.hits} == {lang}
    assert any(needle in text for text in top_texts(result)), top_texts(result)


def test_bm25_prefers_the_rare_term(trilingual_kb):
    result = retrieval.search(knowledge_base=trilingual_kb, question="What does error E7 mean?", mode="fulltext")
    assert "E7" in result.hits[0].chunk.text


def test_scope_by_document_and_tag_is_applied_in_sql(trilingual_kb):
    policy = Document.objects.get(knowledge_base=trilingual_kb, original_name="travel-policy.en.txt")
    manual = Document.objects.get(knowledge_base=trilingual_kb, original_name="lumen-k3-manual.en.md")
    result = retrieval.search(
        knowledge_base=trilingual_kb, question=RESET["en"][0], mode="hybrid", document_ids=[policy.pk], limit=10
    )
    assert result.hits and {h.chunk.document_id for h in result.hits} == {policy.pk}
    Document.objects.filter(pk=manual.pk).update(tags=["kettle"])
    result = retrieval.search(
        knowledge_base=trilingual_kb, question="hotel allowance", mode="fulltext", tags=["kettle"]
    )
    assert {h.chunk.document_id for h in result.hits} <= {manual.pk}


def test_a_passage_far_from_all_others_is_still_found_by_dense_search(trilingual_kb, settings):
    """The travel policy's one chunk among 52 of the kettle manual: HNSW's pruning left it with no incoming edge,
    so no HNSW scan returned it (even unfiltered, ef_search 1000); a base this small is searched exactly."""
    policy = Document.objects.get(knowledge_base=trilingual_kb, original_name="travel-policy.en.txt")
    chunks = Chunk.objects.filter(knowledge_base=trilingual_kb).count()
    assert chunks <= settings.DOCENT_DENSE_EXACT_MAX_CHUNKS
    result = retrieval.search(knowledge_base=trilingual_kb, question=RESET["en"][0], mode="dense", limit=chunks)
    assert policy.pk in {h.chunk.document_id for h in result.hits}
    scoped = retrieval.search(
        knowledge_base=trilingual_kb, question="hotel allowance", mode="dense", document_ids=[policy.pk]
    )
    assert [h.chunk.document_id for h in scoped.hits] == [policy.pk]


def test_a_knowledge_base_never_sees_another_ones_passages(trilingual_kb):
    other = knowledge_base_create(slug="other", name="Other")
    document = document_create_from_path(
        knowledge_base=other, path=FIXTURES / "travel-policy.en.txt", enqueue=False
    ).document
    run_pipeline(document)
    for mode in ("dense", "fulltext", "hybrid"):
        result = retrieval.search(knowledge_base=other, question=RESET["en"][0], mode=mode, limit=10)
        assert {h.chunk.knowledge_base_id for h in result.hits} <= {other.pk}


@pytest.mark.parametrize(
    "question",
    [
        "How do I configure AppArmor for the Lumen K3?",  # a name the manual never mentions
        "Comment programmer la cafetière Nespresso Vertuo avec capsules ?",  # mostly words it never uses
        "如何用 dh-golang 打包 Go 程序？",
    ],
)
def test_questions_the_base_cannot_answer_are_refused(trilingual_kb, question):
    result = retrieval.search(knowledge_base=trilingual_kb, question=question)
    assert not result.answerable and result.refusal_reason


@pytest.mark.parametrize("lang", ["en", "fr", "zh"])
def test_answerable_questions_are_not_refused(trilingual_kb, lang):
    assert retrieval.search(knowledge_base=trilingual_kb, question=RESET[lang][0]).answerable


@pytest.fixture(scope="module")
def cross_encoder_path(tmp_path_factory):
    """A CrossEncoder built locally on the shipped MiniLM weights (its scoring head untrained): it tests the
    reranking path, not ranking quality — no trained reranker ships as a package."""
    from sentence_transformers import CrossEncoder

    from kb import encoders

    path = tmp_path_factory.mktemp("reranker") / "minilm-cross-encoder"
    CrossEncoder(encoders.minilm_path(), num_labels=1, device="cpu").save(str(path))
    return path


def test_a_configured_cross_encoder_reorders_the_fused_candidates_by_its_scores(
    trilingual_kb, settings, cross_encoder_path
):
    from sentence_transformers import CrossEncoder

    from kb.retrieval import rerank

    rerank.get_model.reset()
    settings.DOCENT_RERANK_MODEL = str(cross_encoder_path)
    settings.DOCENT_RERANK_CANDIDATES = 12
    question = RESET["en"][0]
    result = retrieval.search(knowledge_base=trilingual_kb, question=question, mode="hybrid", limit=3)
    assert len(result.hits) == 3 and "rerank_ms" in result.timings_ms
    scores = [h.scores["rerank"] for h in result.hits]
    assert scores == sorted(scores, reverse=True) and [h.score for h in result.hits] == scores
    # The same model, loaded on its own, gives each returned passage the same score.
    model = CrossEncoder(str(cross_encoder_path), device="cpu", max_length=512)
    expected = model.predict([(question, f"{h.chunk.heading}\n{h.chunk.text}") for h in result.hits])
    assert [round(float(x), 4) for x in expected] == [round(s, 4) for s in scores]
    # Without a reranker the same search is the fusion's own top 3.
    settings.DOCENT_RERANK_MODEL = ""
    plain = retrieval.search(knowledge_base=trilingual_kb, question=question, mode="hybrid", limit=3)
    assert "rerank_ms" not in plain.timings_ms and all("rerank" not in h.scores for h in plain.hits)
    rerank.get_model.reset()


def _postings_match_chunks(document_id: int) -> int:
    """Postings of the document, after checking they are exactly its chunks' lexemes and frequencies."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FROM (
                (SELECT c.id, u.lexeme, coalesce(array_length(u.positions, 1), 1), length(c.search_vector)
                 FROM kb_chunk c, unnest(c.search_vector) u WHERE c.document_id = %s
                 EXCEPT SELECT chunk_id, lexeme, tf, dl FROM kb_posting WHERE document_id = %s)
                UNION ALL
                (SELECT chunk_id, lexeme, tf, dl FROM kb_posting WHERE document_id = %s
                 EXCEPT SELECT c.id, u.lexeme, coalesce(array_length(u.positions, 1), 1), length(c.search_vector)
                 FROM kb_chunk c, unnest(c.search_vector) u WHERE c.document_id = %s)
            ) AS differences
            """,
            [document_id] * 4,
        )
        assert cursor.fetchone()[0] == 0
    from kb.models import Posting

    return Posting.objects.filter(document_id=document_id).count()


def test_postings_follow_the_chunks_through_ingest_new_version_and_delete(tmp_path):
    from kb.models import Posting
    from kb.services import document_delete

    knowledge_base = knowledge_base_create(slug="postings", name="Postings")
    path = tmp_path / "travel-policy.en.txt"
    path.write_bytes((FIXTURES / "travel-policy.en.txt").read_bytes())
    document = document_create_from_path(knowledge_base=knowledge_base, path=path, enqueue=False).document
    assert run_pipeline(document).status == Document.Status.READY
    first = _postings_match_chunks(document.pk)
    assert first > 20

    # a new version replaces the chunks, and with them the postings
    path.write_text(path.read_text() + "\n\nKilometre allowance: cycling to a client earns 0.30 EUR per kilometre.\n")
    created = document_create_from_path(knowledge_base=knowledge_base, path=path, enqueue=False)
    assert created.document.pk == document.pk
    assert run_pipeline(created.document).status == Document.Status.READY
    assert _postings_match_chunks(document.pk) > first
    hits = retrieval.search(knowledge_base=knowledge_base, question="cycling kilometre allowance", mode="fulltext").hits
    assert hits and "cycling" in hits[0].chunk.text

    document_delete(document=Document.objects.get(pk=document.pk))
    assert not Posting.objects.filter(document_id=document.pk).exists()
    assert retrieval.search(knowledge_base=knowledge_base, question="hotel allowance", mode="fulltext").hits == []


def test_sources_load_as_the_orm_would_with_their_documents(trilingual_kb):
    from kb.models import Chunk

    ids = list(Chunk.objects.filter(knowledge_base=trilingual_kb).values_list("pk", flat=True)[:5])
    loaded = retrieval.load_chunks(ids)
    expected = Chunk.objects.select_related("document").in_bulk(ids)
    assert set(loaded) == set(ids) and retrieval.load_chunks([]) == {}
    for pk, chunk in loaded.items():
        assert "embedding" in chunk.get_deferred_fields() and "text" in chunk.document.get_deferred_fields()
        for name in ("document_id", "ordinal", "text", "page", "heading", "start", "end", "language"):
            assert getattr(chunk, name) == getattr(expected[pk], name), name
        assert chunk.document.title == expected[pk].document.title
        assert chunk.document.original_name == expected[pk].document.original_name
        # a field left out loads on access, like any deferred field
        assert chunk.document.status == expected[pk].document.status == Document.Status.READY
