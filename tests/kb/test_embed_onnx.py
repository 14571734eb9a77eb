"""The int8 ONNX export of the embedder: same shape, nearly the same vectors, the same nearest passages."""

from __future__ import annotations

import numpy as np
import pytest

from kb import embed_onnx, encoders

PASSAGES = [
    "Hold the power and temperature buttons together for 10 seconds to reset the kettle to factory settings.",
    "Descale the kettle every month with a solution of citric acid and water.",
    "Maintenez les boutons marche et température enfoncés pendant 10 secondes pour réinitialiser la bouilloire.",
    "每月用柠檬酸溶液为水壶除垢一次。",
]
QUERIES = ["How do I reset the kettle to factory settings?", "How often should I descale it?"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    target = tmp_path_factory.mktemp("onnx") / "minilm-int8"
    embed_onnx.export(encoders.minilm_path(), target)
    return target


def test_the_export_keeps_the_models_vectors_and_neighbours(exported):
    from sentence_transformers import SentenceTransformer

    bare = SentenceTransformer(encoders.minilm_path(), device="cpu")
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


def test_the_embedder_uses_the_onnx_backend_when_configured(monkeypatch, exported):
    monkeypatch.setattr(embed_onnx, "export_dir", lambda source, name, precision="int8": exported)
    encoder = encoders.load(encoders.MINILM, backend="onnx-int8")
    assert isinstance(encoder.document_model(), embed_onnx.OnnxEncoder)
    assert encoder.embed_documents(PASSAGES).shape == (4, 384)
    assert encoder.count_tokens("factory reset") == 2
    with pytest.raises(RuntimeError, match="DOCENT_EMBED_BACKEND"):
        encoders.load(encoders.MINILM, backend="tensorflow")


def test_questions_are_embedded_by_the_fp32_export_with_the_models_own_vectors(monkeypatch, tmp_path):
    from sentence_transformers import SentenceTransformer

    target = tmp_path / "minilm-fp32"
    embed_onnx.export(encoders.minilm_path(), target, quantize=False)
    assert embed_onnx.exported(target) and (target / embed_onnx.FP32_FILE).is_file()
    monkeypatch.setattr(embed_onnx, "export_dir", lambda source, name, precision="int8": target)
    encoder = encoders.load(encoders.MINILM)
    assert isinstance(encoder.query_model(), embed_onnx.OnnxEncoder)
    bare = SentenceTransformer(encoders.minilm_path(), device="cpu")
    vectors = encoder.embed_queries(QUERIES + PASSAGES)
    assert np.abs(vectors - bare.encode(QUERIES + PASSAGES, normalize_embeddings=True)).max() < 1e-5
    assert encoder.embed_queries([]).shape == (0, 384)
    # "same": questions go through the document model
    same = encoders.load(encoders.MINILM, query_encoder="same")
    assert same.query_model() is same.document_model()
    # no export: the document model, never an export on the first question
    monkeypatch.setattr(embed_onnx, "export_dir", lambda source, name, precision="int8": tmp_path / "missing")
    fresh = encoders.load(encoders.MINILM)
    assert fresh.query_model() is fresh.document_model()
    assert not (tmp_path / "missing").exists()
