"""The int8 ONNX export of the embedder: same shape, nearly the same vectors, the same nearest passages."""

from __future__ import annotations

import numpy as np
import pytest

from kb import embed_onnx, embedder

PASSAGES = [
    "Hold the power and temperature buttons together for 10 seconds to reset the kettle to factory settings.",
    "Descale the kettle every month with a solution of citric acid and water.",
    "Maintenez les boutons marche et température enfoncés pendant 10 secondes pour réinitialiser la bouilloire.",
    "每月用柠檬酸溶液为水壶除垢一次。",
]
QUERIES = ["How do I reset the kettle to factory settings?", "How often should I descale it?"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):  # type: ignore[no-untyped-def]
    target = tmp_path_factory.mktemp("onnx") / "minilm-int8"
    embed_onnx.export(embedder.model_path(), target)
    return target


def test_the_export_keeps_the_models_vectors_and_neighbours(exported):
    from sentence_transformers import SentenceTransformer

    bare = SentenceTransformer(embedder.model_path(), device="cpu")
    onnx = embed_onnx.OnnxEncoder(exported)
    assert (onnx.max_seq_length, onnx.get_embedding_dimension()) == (bare.max_seq_length, 384)
    texts = PASSAGES + QUERIES
    reference = bare.encode(texts, normalize_embeddings=True)
    vectors = onnx.encode(texts, batch_size=2)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert (reference * vectors).sum(axis=1).min() > 0.95  # int8 weights move vectors only slightly
    for query in range(len(QUERIES)):
        q = len(PASSAGES) + query
        assert np.argmax(vectors[: len(PASSAGES)] @ vectors[q]) == np.argmax(reference[: len(PASSAGES)] @ reference[q])
    assert onnx.encode([]).shape == (0, 384)


def test_the_embedder_uses_the_onnx_backend_when_configured(settings, monkeypatch, exported):
    settings.DOCENT_EMBED_BACKEND = "onnx-int8"
    monkeypatch.setattr(embed_onnx, "export_dir", lambda source, name, precision="int8": exported)
    monkeypatch.setattr(embedder, "_model", None)
    model = embedder.get_model()
    assert isinstance(model, embed_onnx.OnnxEncoder)
    assert embedder.embed_documents(PASSAGES).shape == (4, 384)
    assert embedder.count_tokens("factory reset") == 2
    settings.DOCENT_EMBED_BACKEND = "tensorflow"
    monkeypatch.setattr(embedder, "_model", None)
    with pytest.raises(RuntimeError, match="DOCENT_EMBED_BACKEND"):
        embedder.get_model()


def test_questions_are_embedded_by_the_fp32_export_with_the_models_own_vectors(settings, monkeypatch, tmp_path):
    from sentence_transformers import SentenceTransformer

    target = tmp_path / "minilm-fp32"
    embed_onnx.export(embedder.model_path(), target, quantize=False)
    assert embed_onnx.exported(target) and (target / embed_onnx.FP32_FILE).is_file()
    monkeypatch.setattr(embed_onnx, "export_dir", lambda source, name, precision="int8": target)
    monkeypatch.setattr(embedder, "_query_model", None)
    settings.DOCENT_EMBED_BACKEND = "torch"
    settings.DOCENT_QUERY_ENCODER = "onnx"
    assert isinstance(embedder.get_query_model(), embed_onnx.OnnxEncoder)
    bare = SentenceTransformer(embedder.model_path(), device="cpu")
    for text in QUERIES + PASSAGES:
        reference = bare.encode([text], normalize_embeddings=True)[0]
        assert np.abs(embedder.embed_query(text) - reference).max() < 1e-5
    # answers are attributed to sources by the same encoder, in small batches, with the model's vectors
    batch = embedder.embed_sentences(QUERIES + PASSAGES)
    assert np.abs(batch - bare.encode(QUERIES + PASSAGES, normalize_embeddings=True)).max() < 1e-5
    assert embedder.embed_sentences([]).shape == (0, batch.shape[1])

    # "same": questions go through the document model
    monkeypatch.setattr(embedder, "_query_model", None)
    settings.DOCENT_QUERY_ENCODER = "same"
    assert embedder.get_query_model() is embedder.get_model()
    # no export: the document model, never an export on the first question
    monkeypatch.setattr(embedder, "_query_model", None)
    settings.DOCENT_QUERY_ENCODER = "onnx"
    monkeypatch.setattr(embed_onnx, "export_dir", lambda source, name, precision="int8": tmp_path / "missing")
    assert embedder.get_query_model() is embedder.get_model()
    assert not (tmp_path / "missing").exists()
    monkeypatch.setattr(embedder, "_query_model", None)
