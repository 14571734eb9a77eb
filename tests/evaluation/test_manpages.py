"""The retrieval benchmark's corpus builder and embedding cache (evaluation.manpages), on this folder's own tiny man
pages (tests/fixtures/manpages): no Debian documentation package is needed."""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

import numpy as np
import pytest

from evaluation import bench_retrieval, manpages
from evaluation.manpages import EmbeddingCache, blocks_of, build_corpus, man_pages, render
from kb.encoders import E5Encoder
from kb.language import detect_language
from kb.models import Chunk, Document
from kb.services import knowledge_base_create

PAGES = Path(__file__).resolve().parent.parent / "fixtures" / "manpages"
SOURCES = [
    ("en", [PAGES / "man1" / "lantern.1"]),
    ("fr", [PAGES / "fr" / "man1" / "lantern.1"]),
    ("zh", [PAGES / "zh_CN" / "man1" / "lantern.1"]),
]
REPEATED = "The report is sorted by the date of the last visit, the oldest files first."


def test_a_rendered_page_becomes_headed_blocks_without_its_header_footer_or_name() -> None:
    blocks, summary = blocks_of(render(PAGES / "man1" / "lantern.1"))
    texts = [b.text for b in blocks]
    assert summary == "light the way through a dark archive"
    assert [b.text for b in blocks if b.kind == "title"] == ["SYNOPSIS", "DESCRIPTION", "NOTES", "SEE ALSO"]
    assert not any("LANTERN(1)" in t or "User Commands" in t or "NAME" == t for t in texts)
    # an option's tag and its description are one paragraph
    assert "-q, --quiet print nothing but the total at the end of the walk." in texts


def test_fixture_pages_become_distinct_chunks_tagged_with_their_language() -> None:
    chunks, queries = build_corpus(100, max_tokens=24, sources=SOURCES)
    texts = [c.text for c in chunks]
    assert len(texts) == len(set(texts))
    assert texts.count(REPEATED) == 1  # the same sentence under DESCRIPTION and NOTES is kept once
    assert {c.language for c in chunks} == {"en", "fr", "zh"}
    assert all(detect_language(c.text, default="") == c.language for c in chunks)
    assert any("档案只会被读取" in t or "并打印很久没有被打开过" in t for t in texts)
    assert {c.heading for c in chunks if c.language == "fr"} >= {"DESCRIPTION"}
    # the NAME summaries are the queries, one per page in its language, and no chunk holds them
    assert sorted((q.language, q.text) for q in queries) == [
        ("en", "light the way through a dark archive"),
        ("fr", "éclairer le chemin dans une archive obscure"),
        ("zh", "照亮黑暗档案中的道路"),
    ]
    assert not any(q.text in t for q in queries for t in texts)


def test_the_corpus_is_balanced_between_languages_and_smaller_corpora_are_its_prefixes() -> None:
    small, _ = build_corpus(6, max_tokens=24, sources=SOURCES)
    assert [c.language for c in small].count("en") == 2
    assert [c.language for c in small].count("fr") == 2
    assert [c.language for c in small].count("zh") == 2
    full, _ = build_corpus(100, max_tokens=24, sources=SOURCES)
    for language in ("en", "fr", "zh"):
        lane = [c.text for c in full if c.language == language]
        assert [c.text for c in small if c.language == language] == lane[:2]


def test_man_pages_leaves_out_links_and_so_redirections(tmp_path: Path) -> None:
    folder = tmp_path / "fr" / "man1"
    folder.mkdir(parents=True)
    page = folder / "lantern.1.gz"
    page.write_bytes(gzip.compress((PAGES / "fr" / "man1" / "lantern.1").read_bytes()))
    (folder / "alias.1").write_text(".so man1/lantern.1\n")
    os.symlink(page, folder / "link.1.gz")
    assert man_pages("fr", root=tmp_path) == [page]
    assert "parcourt tous les dossiers" in render(page)


def test_missing_sources_name_the_packages_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "man1").mkdir()
    (tmp_path / "man1" / "lantern.1").write_text("x")
    monkeypatch.setattr(manpages, "MAN_ROOT", tmp_path)
    assert {"manpages-fr", "manpages-zh"} <= set(manpages.missing_packages())
    assert "manpages" not in manpages.missing_packages()
    with pytest.raises(bench_retrieval.CorpusUnavailable, match=r"apt-get install -y .*manpages-fr"):
        bench_retrieval.corpus_or_explain()


class CountingEncoder:
    """The real e5 encoder, counting the texts it is asked to embed."""

    def __init__(self) -> None:
        self.encoder = E5Encoder()
        self.embedded: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.embedded.extend(texts)
        return self.encoder.embed_documents(texts, threads=1)


def test_the_embedding_cache_returns_the_same_vectors_without_embedding_again(tmp_path: Path) -> None:
    texts = [
        "lantern walks through every folder",
        "L'archive est lue",
        "档案只会被读取",
        "lantern walks through every folder",
    ]
    embed = CountingEncoder()
    cache = EmbeddingCache(tmp_path, "multilingual-e5-small")
    assert cache.fill(texts, embed, batch=2) == 3
    first = cache.get(texts)
    assert first.shape == (4, 384) and np.allclose(first[0], first[3])

    again = EmbeddingCache(tmp_path, "multilingual-e5-small")  # a second run reads the shards back
    assert len(again) == 3
    assert again.fill(texts, embed) == 0
    assert embed.embedded == texts[:3]
    assert np.array_equal(again.get(texts), first)

    assert again.fill([*texts, "une phrase nouvelle"], embed) == 1  # only the new text is embedded
    assert embed.embedded[-1] == "une phrase nouvelle"
    assert np.allclose(again.get(["une phrase nouvelle"])[0], embed.encoder.embed_documents(["une phrase nouvelle"])[0])
    # a cache opened earlier sees what another process added once it refreshes
    assert cache.missing(["une phrase nouvelle"]) == ["une phrase nouvelle"]
    assert cache.refresh() == 1 and cache.missing(["une phrase nouvelle"]) == []
    # another embedder's cache is another folder
    assert len(EmbeddingCache(tmp_path, "use-multilingual-v3")) == 0
    with pytest.raises(KeyError):
        EmbeddingCache(tmp_path, "use-multilingual-v3").get(texts[:1])


@pytest.mark.django_db
def test_build_base_stores_one_document_per_page_from_the_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(bench_retrieval, "EMBEDDING_CACHE", tmp_path)
    chunks, _ = build_corpus(100, max_tokens=24, sources=SOURCES)
    base = knowledge_base_create(slug="bench-corpus-test", name="bench corpus test")
    first = bench_retrieval.build_base(base, chunks, lambda _: None)
    assert first["embedded"] == len(chunks) and first["stored_documents"] == 3
    stored = Chunk.objects.filter(knowledge_base=base)
    assert sorted(stored.values_list("text", flat=True)) == sorted(c.text for c in chunks)
    assert {d.language for d in Document.objects.filter(knowledge_base=base)} == {"en", "fr", "zh"}
    second = bench_retrieval.build_base(base, chunks, lambda _: None)  # nothing left to embed or store
    assert second["embedded"] == 0 and second["stored_documents"] == 0
    assert stored.count() == len(chunks)


@pytest.mark.django_db
def test_build_base_stops_at_its_deadline_and_the_next_run_goes_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(bench_retrieval, "EMBEDDING_CACHE", tmp_path)
    chunks, _ = build_corpus(100, max_tokens=24, sources=SOURCES)
    base = knowledge_base_create(slug="bench-corpus-deadline", name="bench corpus deadline")
    # one page a group; the deadline has passed, so only the first group is embedded and stored
    first = bench_retrieval.build_base(base, chunks, lambda _: None, group_texts=1, deadline=time.monotonic())
    assert first["stored_documents"] == 1 and first["pages_left"] == 2
    assert Document.objects.get(knowledge_base=base).language == "en"
    rest = bench_retrieval.build_base(base, chunks, lambda _: None, group_texts=1)
    assert rest["stored_documents"] == 2 and rest["pages_left"] == 0
    assert rest["embedded"] == len([c for c in chunks if c.language != "en"])
    assert Chunk.objects.filter(knowledge_base=base).count() == len(chunks)
