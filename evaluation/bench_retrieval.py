"""`manage.py bench retrieval`: the product's figures beside the bare library doing the same work.

Benchmarks build their own knowledge bases (slugs starting with `bench-`) and keep them, so a second
run measures instead of rebuilding.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import statistics
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.test.utils import override_settings

from evaluation import manpages
from evaluation.baselines import bare_encoder
from evaluation.figures import figure, percentile
from kb import embedder, retrieval, vector_index
from kb.ingest.chunk import ChunkDraft
from kb.ingest.store import merge_search_index, store_chunks
from kb.models import Chunk, Document, KnowledgeBase
from kb.services import knowledge_base_create

# Chunk budget of the benchmark corpus, in embedder tokens: sentence-level chunks (README, "bench retrieval"),
# because e5 embeds ~20 such texts a second on this machine's two shared cores and 100,000 of the product's
# 224-token chunks would take hours.
CHUNK_TOKENS = 24
EMBEDDING_CACHE = Path(settings.VAR_DIR) / "bench" / "embeddings"
EF_SEARCH_CURVE = (40, 64, 100, 200, 400)

Report = dict[str, Any]


def corpus_or_explain() -> None:
    """Raise CorpusUnavailable naming the Debian packages to install when the corpus's sources are missing."""
    missing = manpages.missing_packages()
    if missing:
        raise CorpusUnavailable(
            "bench retrieval builds its base from Debian's man pages; missing: "
            + ", ".join(missing)
            + f". Install them with `apt-get install -y {' '.join(missing)}` (or `make bench-corpus`)."
        )


class CorpusUnavailable(RuntimeError):
    """The benchmark corpus's Debian packages are not installed (the message names them)."""


def package_versions() -> dict[str, str]:
    """Installed versions of the corpus's Debian packages ("" when dpkg does not know one)."""
    names = [manpages.FORMATTER_PACKAGE, "manpages-dev", *(package for _, _, package in manpages.SOURCES)]
    versions = {}
    for name in names:
        try:
            out = subprocess.run(
                ["dpkg-query", "-W", "-f", "${Version}", name], capture_output=True, text=True, check=False
            ).stdout
        except OSError:
            out = ""
        versions[name] = out.strip()
    return versions


def build_base(
    knowledge_base: KnowledgeBase,
    corpus: list[manpages.CorpusChunk],
    log: Callable[[str], None],
    *,
    group_texts: int = 2000,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Store `corpus` in the base, one document per man page, through the product's own store (chunks,
    full-text vectors, postings, term statistics; the GIN pending list merged after each document).

    Pages go in turn by language (an English page, a French one, a Chinese one, ...), in groups of about
    `group_texts` chunks: the group's texts missing from the on-disk embedding cache (`EMBEDDING_CACHE`, keyed
    by embedder and sha256 of the text; other processes may fill it meanwhile) are embedded by the base's
    embedder and added to it, on a second thread while the group before is stored. Pages already stored (an
    interrupted run) are skipped. With `deadline` (a `time.monotonic()` value), no group is started after
    it: the base is left partly built, a balanced part of the corpus, and the next run goes on.

    Returns {"embedded": texts embedded now, "embed_s": seconds embedding, "stored_documents": documents
    written now, "pages_left": pages not stored because of the deadline}.
    """
    name = knowledge_base.embedder
    cache = manpages.EmbeddingCache(EMBEDDING_CACHE, name)
    stored = set(Document.objects.filter(knowledge_base=knowledge_base).values_list("title", flat=True))
    lanes: dict[str, dict[str, list[manpages.CorpusChunk]]] = {}
    for chunk in corpus:
        lanes.setdefault(chunk.language, {}).setdefault(chunk.page, []).append(chunk)
    # languages in turn, so that an interrupted first run leaves a cache that serves a smaller balanced base
    todo = [
        (page, chunks)
        for group in itertools.zip_longest(*(lane.items() for lane in lanes.values()))
        for page, chunks in (item for item in group if item is not None)
        if page_title(page) not in stored
    ]
    groups: list[list[tuple[str, list[manpages.CorpusChunk]]]] = []
    for item in todo:
        if not groups or sum(len(chunks) for _, chunks in groups[-1]) >= group_texts:
            groups.append([])
        groups[-1].append(item)
    total = sum(len(chunks) for _, chunks in todo)
    log(f"  {len(todo)} pages ({total} chunks) to store; {len(cache)} texts in the embedding cache")

    def embed(group: list[tuple[str, list[manpages.CorpusChunk]]]) -> tuple[int, float]:
        started = time.perf_counter()
        cache.refresh()
        texts = [c.text for _, chunks in group for c in chunks]
        count = cache.fill(texts, lambda batch: embedder.embed_documents(batch, name), batch=len(texts) or 1)
        return count, time.perf_counter() - started

    embedded, embed_seconds, written, done, left = 0, 0.0, 0, 0, 0
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(embed, groups[0]) if groups else None
        for number, group in enumerate(groups):
            assert pending is not None
            count, seconds = pending.result()
            embedded, embed_seconds = embedded + count, embed_seconds + seconds
            following = groups[number + 1] if number + 1 < len(groups) else None
            if following is not None and (deadline is None or time.monotonic() < deadline):
                pending = pool.submit(embed, following)
            else:
                pending = None
            for page, chunks in group:
                store_page(knowledge_base, page, chunks, cache.get([c.text for c in chunks]))
                written += 1
            done += sum(len(chunks) for _, chunks in group)
            log(f"  stored {done}/{total} chunks ({written} pages), {embedded} embedded, {time.strftime('%H:%M:%S')}")
            if pending is None:
                left = len(todo) - written
                break
    if left:
        log(f"  build stopped at its deadline: {left} pages left for the next run")
    return {"embedded": embedded, "embed_s": embed_seconds, "stored_documents": written, "pages_left": left}


def store_page(
    knowledge_base: KnowledgeBase, page: str, chunks: list[manpages.CorpusChunk], vectors: np.ndarray
) -> None:
    """One man page as a ready document of the base, its chunks stored by kb.ingest.store.store_chunks."""
    languages = [c.language for c in chunks]
    with transaction.atomic():
        document = Document(
            knowledge_base=knowledge_base,
            title=page_title(page),
            original_name=Path(page).name,
            sha256=hashlib.sha256(f"{knowledge_base.pk}:{page}".encode()).hexdigest(),
            size=sum(len(c.text.encode()) for c in chunks),
            status=Document.Status.READY,
            progress=100,
            language=max(set(languages), key=languages.count),
        )
        document.file.save(Path(page).name, ContentFile(page.encode()), save=False)
        document.save()
        drafts = [ChunkDraft(ordinal=i, text=c.text, page=None, heading=c.heading) for i, c in enumerate(chunks)]
        store_chunks(document=document, drafts=drafts, embeddings=vectors, languages=languages)
    merge_search_index()


def page_title(page: str) -> str:
    """A man page's document title: its path under /usr/share/man ("fr/man1/ls.1.gz")."""
    path = Path(page)
    try:
        return str(path.relative_to(manpages.MAN_ROOT))
    except ValueError:
        return str(path)


def pick_queries(
    queries: list[manpages.Query], count: int, rng: random.Random
) -> tuple[list[manpages.Query], list[manpages.Query]]:
    """(warm-up, timed): `count` queries each, as many of each language as there are (one third each when the
    sources allow), different queries in the two lists, shuffled."""
    by_language: dict[str, list[manpages.Query]] = {}
    for query in queries:
        by_language.setdefault(query.language, []).append(query)
    languages = sorted(by_language)
    for language in languages:
        rng.shuffle(by_language[language])
    warm_up: list[manpages.Query] = []
    timed: list[manpages.Query] = []
    pool = [
        q
        for i in range(max(map(len, by_language.values()), default=0))
        for q in (by_language[x][i] for x in languages if i < len(by_language[x]))
    ]
    for i, query in enumerate(pool[: 2 * count]):
        (timed if i % 2 else warm_up).append(query)
    return warm_up, timed


def rebuild_hnsw(dimension: int) -> float:
    vector_index.ensure_index(dimension)
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
        started = time.perf_counter()
        cursor.execute(f"REINDEX INDEX {vector_index.index_name(dimension)}")
        return time.perf_counter() - started


def exact_neighbours(knowledge_base_id: int, vector: np.ndarray, limit: int) -> list[int]:
    literal = "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(
            "SELECT id FROM kb_chunk WHERE knowledge_base_id = %s AND vector_dims(embedding) = %s"
            " ORDER BY embedding <=> %s::vector, id LIMIT %s",
            [knowledge_base_id, len(vector), literal, limit],
        )
        return [row[0] for row in cursor.fetchall()]


# Every query is embedded, as bare's are: the process's cache of question vectors (kb.embedder) would otherwise
# serve the hybrid pass the vectors the dense pass made.
@override_settings(DOCENT_QUERY_EMBED_CACHE=0)
def bench_retrieval(
    *,
    chunks: int,
    queries: int,
    reindex: bool,
    log: Callable[[str], None],
    ef_search: tuple[int, ...] = EF_SEARCH_CURVE,
    build_minutes: float | None = None,
) -> Report:
    """Hybrid and dense query latency beside the bare library, and HNSW recall@10 against exact search, on a base
    of `chunks` distinct man-page chunks in English, French and Chinese (evaluation.manpages).

    `queries` timed questions (man pages' NAME summaries, held out of the chunks), after as many others as a
    warm-up; recall@10 is also measured for each `ef_search` value (the trade-off curve; the product's
    setting, DOCENT_HNSW_EF_SEARCH, is what the headline figures use). With `build_minutes`, building the base
    (embedding what the cache lacks, storing) stops after about that long and the figures are measured on
    the part built (`conditions.complete` false; a rerun goes on building). Raises CorpusUnavailable naming the
    Debian packages to install when the sources are missing, or when they hold fewer distinct chunks.
    """
    corpus_or_explain()
    knowledge_base = knowledge_base_create(slug=f"bench-manpages-{chunks}", name=f"Benchmark: {chunks} man-page chunks")
    name = knowledge_base.embedder
    started = time.perf_counter()
    corpus, all_queries = manpages.build_corpus(
        chunks,
        max_tokens=CHUNK_TOKENS,
        count_tokens=lambda text: embedder.count_tokens(text, name),
        log=log,
    )
    corpus_seconds = time.perf_counter() - started
    if len(corpus) < chunks:
        raise CorpusUnavailable(f"the installed man pages hold {len(corpus)} distinct chunks, fewer than {chunks}")
    log(f"  corpus: {len(corpus)} distinct chunks, {len(all_queries)} queries, built in {corpus_seconds:.0f} s")
    deadline = None if build_minutes is None else time.monotonic() + 60 * build_minutes
    built = build_base(knowledge_base, corpus, log, deadline=deadline)
    changed = built["stored_documents"] > 0
    build_seconds = rebuild_hnsw(embedder.dimension(name)) if (reindex or changed) else None
    with connection.cursor() as cursor:
        # the steady state autovacuum keeps: statistics, and postings visible to index-only scans
        cursor.execute("VACUUM (ANALYZE) kb_chunk, kb_posting")
        cursor.execute(
            "SELECT count(*), count(DISTINCT md5(text)) FROM kb_chunk WHERE knowledge_base_id = %s",
            [knowledge_base.pk],
        )
        stored_chunks, distinct_texts = cursor.fetchone()
        cursor.execute(
            "SELECT language, count(*) FROM kb_chunk WHERE knowledge_base_id = %s GROUP BY language ORDER BY 1",
            [knowledge_base.pk],
        )
        per_language = dict(cursor.fetchall())
        cursor.execute("SELECT count(*) FROM kb_document WHERE knowledge_base_id = %s", [knowledge_base.pk])
        (documents,) = cursor.fetchone()

    rng = random.Random(7)
    warm_up_queries, timed_queries = pick_queries(all_queries, queries, rng)
    warm_up = [q.text for q in warm_up_queries]
    questions = [q.text for q in timed_queries]
    pages = {q.text: page_title(q.page) for q in timed_queries}

    embedder.embed_query("warm up", name)
    cold: list[float] = []
    for question in warm_up:
        started = time.perf_counter()
        retrieval.search(knowledge_base=knowledge_base, question=question, mode="hybrid", limit=10)
        cold.append((time.perf_counter() - started) * 1000)

    timings: dict[str, list[float]] = {"dense": [], "hybrid": []}
    by_language: dict[str, list[float]] = {}
    own_page: dict[str, list[bool]] = {"dense": [], "hybrid": []}
    steps: dict[str, list[float]] = {}
    for mode in timings:
        for query in timed_queries:
            started = time.perf_counter()
            result = retrieval.search(knowledge_base=knowledge_base, question=query.text, mode=mode, limit=10)
            elapsed = (time.perf_counter() - started) * 1000
            timings[mode].append(elapsed)
            titles = {h.chunk.document.title for h in result.hits if h.chunk is not None}
            own_page[mode].append(pages[query.text] in titles)
            if mode == "hybrid":
                by_language.setdefault(query.language, []).append(elapsed)
                for step, step_ms in result.timings_ms.items():
                    steps.setdefault(step, []).append(step_ms)

    # Bare library: the encoder package's own query call and an exact scan of all vectors in memory (numpy).
    vectors = Chunk.objects.filter(knowledge_base=knowledge_base).values_list("embedding", flat=True)
    matrix = np.asarray(list(vectors), dtype="float32")
    bare_description, _, bare_query = bare_encoder(name)
    bare_query("warm up")
    bare: list[float] = []
    for question in questions:
        started = time.perf_counter()
        vector = np.asarray(bare_query(question), dtype="float32")
        scores = matrix @ vector
        np.argpartition(-scores, 10)[:10]
        bare.append((time.perf_counter() - started) * 1000)
    del matrix

    # HNSW recall@10 against an exact scan in Postgres, same vectors, same run; then the ef_search curve.
    scope = retrieval.Scope(knowledge_base.pk)
    query_vectors = [embedder.embed_query(question, name).tolist() for question in questions]
    exact = [exact_neighbours(knowledge_base.pk, np.asarray(vector), 10) for vector in query_vectors]
    curve = []
    for value in sorted({settings.DOCENT_HNSW_EF_SEARCH, *ef_search}):
        with override_settings(DOCENT_HNSW_EF_SEARCH=value):
            recalls: list[float] = []
            hnsw_ms: list[float] = []
            for vector, truth in zip(query_vectors, exact, strict=True):
                started = time.perf_counter()
                approximate = [h.chunk_id for h in retrieval.dense_search(scope=scope, vector=vector, limit=10)]
                hnsw_ms.append((time.perf_counter() - started) * 1000)
                recalls.append(len(set(approximate) & set(truth)) / max(1, len(truth)))
        curve.append(
            {
                "ef_search": value,
                "recall_at_10": round(statistics.mean(recalls), 4),
                "hnsw_p50_ms": round(statistics.median(hnsw_ms), 2),
                "hnsw_p95_ms": round(percentile(hnsw_ms, 0.95), 2),
                "product_default": value == settings.DOCENT_HNSW_EF_SEARCH,
            }
        )
    recall = next(point["recall_at_10"] for point in curve if point["product_default"])

    bare_p50, bare_p95 = statistics.median(bare), percentile(bare, 0.95)
    figures = {
        "query_p50_ms": figure(statistics.median(timings["hybrid"]), "ms", bare_p50),
        "query_p95_ms": figure(percentile(timings["hybrid"], 0.95), "ms", bare_p95),
        "dense_query_p50_ms": figure(statistics.median(timings["dense"]), "ms", bare_p50),
        "dense_query_p95_ms": figure(percentile(timings["dense"], 0.95), "ms", bare_p95),
        "hnsw_recall_at_10": figure(recall, "fraction", 1.0),
    }
    if build_seconds is not None:
        figures["hnsw_build_s"] = figure(build_seconds, "s", None)
    token_counts = [embedder.count_tokens(c.text, name) for c in corpus[:: max(1, len(corpus) // 2000)]]
    return {
        "name": "retrieval",
        "figures": figures,
        "conditions": {
            "chunks": stored_chunks,
            "target_chunks": chunks,
            "complete": built["pages_left"] == 0 and stored_chunks == chunks,
            "distinct_texts": distinct_texts,
            "chunks_by_language": per_language,
            "documents": documents,
            "corpus": (
                "Debian man pages rendered by mandoc -T utf8 (NAME sections held out as queries), chunked by"
                f" kb.ingest.chunk.chunk_blocks at {CHUNK_TOKENS} embedder tokens, exact duplicates removed,"
                " chunks in their page's language only"
            ),
            "chunk_tokens_mean": round(statistics.mean(token_counts), 1) if token_counts else None,
            "packages": package_versions(),
            "queries": len(questions),
            "queries_by_language": {x: len(v) for x, v in sorted(by_language.items())},
            "query_source": 'man pages\' NAME summaries ("list directory contents"), held out of the chunks',
            "hnsw": {
                "m": 16,
                "ef_construction": 64,
                "ef_search": settings.DOCENT_HNSW_EF_SEARCH,
                "iterative_scan": "relaxed_order",
            },
            "ef_search_curve": curve,
            "query_mode": "hybrid (embedding + HNSW + BM25 over postings + fusion + refusal check) end to end",
            "hybrid_p50_ms_by_language": {x: round(statistics.median(v), 1) for x, v in sorted(by_language.items())},
            "own_page_in_top10": {mode: round(statistics.mean(v), 3) for mode, v in own_page.items()},
            "warm_up": f"{len(warm_up)} other questions first (the server's steady state)",
            "cold_pass_p50_ms": round(statistics.median(cold), 1) if cold else None,
            "cold_pass_p95_ms": round(percentile(cold, 0.95), 1) if cold else None,
            # embed_ms and dense_ms run beside vocabulary and fulltext (a second thread); dense_wait_ms: what they added
            "hybrid_steps_p50_ms": {step: round(statistics.median(v), 1) for step, v in steps.items()},
            "baseline": f"{bare_description} + exact numpy scan over all vectors in memory",
            "embedder": name,
            "embedded_this_run": built["embedded"],
            "embed_s_this_run": round(built["embed_s"], 1),
            "embedding_cache": str(EMBEDDING_CACHE),
            "cpu_cores": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
    }
