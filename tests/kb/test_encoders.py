"""The shipped embedders: multilingual-e5-small (default) and the multilingual Universal Sentence Encoder."""

from __future__ import annotations

import numpy as np
import pytest

from kb import encoders

PASSAGES = [
    "Maintenez les boutons marche et température enfoncés pendant 10 secondes pour réinitialiser la bouilloire.",
    "Le maintien au chaud garde l'eau à la température choisie pendant 30 minutes.",
    "每月用柠檬酸溶液为水壶除垢一次。",
    "Travel expenses are reimbursed within 30 days of the trip.",
]


@pytest.fixture(scope="module", params=[encoders.E5, encoders.USE])
def encoder(request):
    return encoders.load(request.param)


def test_vectors_are_normalised_and_of_the_models_dimension(encoder):
    vectors = encoder.embed_documents(PASSAGES)
    assert vectors.shape == (4, encoder.dimension) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert encoder.embed_documents([]).shape == (0, encoder.dimension)
    assert encoder.embed_queries(["bonjour"], threads=1).shape == (1, encoder.dimension)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How do I reset the kettle to factory settings?", 0),  # English question, French passage
        ("How long does the water stay hot?", 1),
        ("How often should the kettle be descaled?", 2),  # Chinese passage
        ("水壶多久除一次垢？", 2),
        ("Combien de temps l'eau reste-t-elle chaude ?", 1),
    ],
)
def test_questions_find_their_passage_across_languages(encoder, question, expected):
    vectors = encoder.embed_documents(PASSAGES)
    assert int(np.argmax(vectors @ encoder.embed_queries([question])[0])) == expected


def test_tokens_are_counted_without_prefix_or_special_tokens(encoder):
    assert 1 <= encoder.count_tokens("factory reset") <= 4
    assert encoder.count_tokens("") == 0
    assert encoder.count_tokens("除垢 " * 50) > encoder.count_tokens("除垢 " * 10)


def test_e5_embeds_questions_and_passages_with_their_own_prefixes():
    e5 = encoders.load(encoders.E5)
    text = ["factory reset"]
    assert float(e5.embed_queries(text)[0] @ e5.embed_documents(text)[0]) < 0.999  # "query: " vs "passage: "
    assert e5.max_tokens == 510


def test_installed_embedders_are_checked_without_loading(tmp_path):
    assert encoders.check(encoders.E5) == "ok" and encoders.check(encoders.USE) == "ok"
    assert "no sentence-transformers model" in encoders.check(str(tmp_path))
    with pytest.raises(RuntimeError, match="unknown embedder"):
        encoders.load("no-such-model")
