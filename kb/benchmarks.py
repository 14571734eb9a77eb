"""`manage.py bench retrieval`: the product's figures beside the bare library doing the same work.

Benchmarks build their own knowledge bases (slugs starting with `bench-`) and keep them, so a second
run measures instead of rebuilding.
"""

from __future__ import annotations

import hashlib
import os
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection, transaction

from kb import embedder, encoders, retrieval, vector_index
from kb.ingest.chunk import ChunkDraft, split_sentences
from kb.ingest.parse import parse_file
from kb.ingest.store import merge_search_index, store_chunks
from kb.language import detect_language
from kb.models import Chunk, Document, KnowledgeBase
from kb.services import knowledge_base_create

BASE_DIR = Path(__file__).resolve().parent.parent
TEXT_SOURCES = [BASE_DIR.parent / "shared" / "eval" / "maint-guide" / "files", BASE_DIR / "kb" / "demo"]
CHUNKS_PER_DOCUMENT = 1000

Report = dict[str, Any]


def figure(value: float, unit: str, baseline: float | None) -> dict[str, Any]:
    ratio = round(value / baseline, 3) if baseline else None
    return {
        "value": round(value, 3),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 3),
        "ratio": ratio,
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def real_sentences() -> list[str]:
    """Sentences of real documents (the maint-guide dev set when present, else the demo manuals)."""
    sentences: list[str] = []
    for folder in TEXT_SOURCES:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix not in {".pdf", ".html"}:
                continue
            blocks = parse_file(path, path.name).blocks
            text = " ".join(b.text for b in blocks)
            sentences.extend(s for s in split_sentences(text) if 30 <= len(s) <= 400)
        if sentences:
            break
    return sentences


def synthesise_chunks(knowledge_base: KnowledgeBase, count: int, log: Callable[[str], None]) -> float:
    """Fill a knowledge base with `count` chunks of 2-4 real sentences each; returns seconds spent embedding.

    Each distinct sentence is embedded once and a chunk's vector is the normalised mean of its sentences'
    vectors: embedding 100,000 chunks one by one takes about 25 minutes on 2 cores, and latency and
    HNSW recall depend on the vectors' distribution, which this keeps real.
    """
    rng = random.Random(20261125)
    pool = real_sentences()
    existing = Chunk.objects.filter(knowledge_base=knowledge_base).count()
    if existing >= count:
        return 0.0
    started = time.perf_counter()
    pool_vectors = embedder.embed_documents(pool, knowledge_base.embedder)
    embed_seconds = time.perf_counter() - started
    log(f"  embedded {len(pool)} distinct sentences in {embed_seconds:.0f} s")
    documents = existing // CHUNKS_PER_DOCUMENT
    while existing < count:
        size = min(CHUNKS_PER_DOCUMENT, count - existing)
        picks = [rng.sample(range(len(pool)), rng.randint(2, 4)) for _ in range(size)]
        texts = [" ".join(pool[i] for i in pick) for pick in picks]
        vectors = np.stack([pool_vectors[pick].mean(axis=0) for pick in picks])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        name = f"synthetic-{documents:04d}.txt"
        with transaction.atomic():
            document = Document(
                knowledge_base=knowledge_base,
                title=name,
                original_name=name,
                sha256=hashlib.sha256(f"{knowledge_base.pk}:{documents}".encode()).hexdigest(),
                size=sum(len(t) for t in texts),
                status=Document.Status.READY,
                progress=100,
            )
            document.file.save(name, ContentFile(b"synthetic benchmark document"), save=False)
            languages = [detect_language(t) for t in texts]
            document.language = max(set(languages), key=languages.count)
            document.save()
            drafts = [ChunkDraft(ordinal=i, text=t, page=None, heading="") for i, t in enumerate(texts)]
            store_chunks(document=document, drafts=drafts, embeddings=vectors, languages=languages)
        merge_search_index()
        existing += size
        documents += 1
        if documents % 10 == 0:
            log(f"  {existing}/{count} chunks")
    return embed_seconds


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


def bench_retrieval(*, chunks: int, queries: int, reindex: bool, log: Callable[[str], None]) -> Report:
    # Every query is embedded, as bare's are: the process's cache of question vectors (kb.embedder) would
    # otherwise serve the hybrid pass the vectors the dense pass made.
    from django.test import override_settings

    with override_settings(DOCENT_QUERY_EMBED_CACHE=0):
        return _bench_retrieval(chunks=chunks, queries=queries, reindex=reindex, log=log)


def _bench_retrieval(*, chunks: int, queries: int, reindex: bool, log: Callable[[str], None]) -> Report:
    knowledge_base = knowledge_base_create(slug=f"bench-retrieval-{chunks}", name=f"Benchmark: {chunks} chunks")
    embed_seconds = synthesise_chunks(knowledge_base, chunks, log)
    build_seconds = rebuild_hnsw(embedder.dimension(knowledge_base.embedder)) if (reindex or embed_seconds) else None
    with connection.cursor() as cursor:
        # the steady state autovacuum keeps: statistics, and postings visible to index-only scans
        cursor.execute("VACUUM (ANALYZE) kb_chunk, kb_posting")

    rng = random.Random(7)
    # Twice the timed queries: the first half warms the server up (the HNSW graph and the postings a running
    # server keeps in memory) and is reported as the cold pass; the second half, other questions, is timed.
    sample = list(
        Chunk.objects.filter(knowledge_base=knowledge_base).order_by("?").values_list("text", flat=True)[: 2 * queries]
    )
    # A query is half of one sentence of a chunk: related to its passage, not a copy of it.
    questions = []
    for text in sample:
        sentence = rng.choice(split_sentences(text))
        words = sentence.split()
        questions.append(" ".join(words[: max(4, len(words) // 2)]))

    embedder.embed_query("warm up", knowledge_base.embedder)
    warm_up, questions = questions[: len(questions) // 2], questions[len(questions) // 2 :]
    cold: list[float] = []
    for question in warm_up:
        started = time.perf_counter()
        retrieval.search(knowledge_base=knowledge_base, question=question, mode="hybrid", limit=10)
        cold.append((time.perf_counter() - started) * 1000)

    timings: dict[str, list[float]] = {"dense": [], "hybrid": []}
    steps: dict[str, list[float]] = {}
    for mode in timings:
        for question in questions:
            started = time.perf_counter()
            result = retrieval.search(knowledge_base=knowledge_base, question=question, mode=mode, limit=10)
            timings[mode].append((time.perf_counter() - started) * 1000)
            if mode == "hybrid":
                for step, elapsed in result.timings_ms.items():
                    steps.setdefault(step, []).append(elapsed)

    # Bare library: raw SentenceTransformer.encode and an exact scan of all vectors in memory (numpy).
    vectors = Chunk.objects.filter(knowledge_base=knowledge_base).values_list("embedding", flat=True)
    matrix = np.asarray(list(vectors), dtype="float32")
    bare_description, _, bare_query = encoders.bare(knowledge_base.embedder)
    bare_query("warm up")
    bare: list[float] = []
    for question in questions:
        started = time.perf_counter()
        vector = np.asarray(bare_query(question), dtype="float32")
        scores = matrix @ vector
        np.argpartition(-scores, 10)[:10]
        bare.append((time.perf_counter() - started) * 1000)

    recalls = []
    scope = retrieval.Scope(knowledge_base.pk)
    for question in questions:
        vector = embedder.embed_query(question, knowledge_base.embedder)
        approximate = [h.chunk_id for h in retrieval.dense_search(scope=scope, vector=vector, limit=10)]
        exact = exact_neighbours(knowledge_base.pk, vector, 10)
        recalls.append(len(set(approximate) & set(exact)) / max(1, len(exact)))

    bare_p50, bare_p95 = statistics.median(bare), percentile(bare, 0.95)
    figures = {
        "query_p50_ms": figure(statistics.median(timings["hybrid"]), "ms", bare_p50),
        "query_p95_ms": figure(percentile(timings["hybrid"], 0.95), "ms", bare_p95),
        "dense_query_p50_ms": figure(statistics.median(timings["dense"]), "ms", bare_p50),
        "dense_query_p95_ms": figure(percentile(timings["dense"], 0.95), "ms", bare_p95),
        "hnsw_recall_at_10": figure(statistics.mean(recalls), "fraction", 1.0),
    }
    if build_seconds is not None:
        figures["hnsw_build_s"] = figure(build_seconds, "s", None)
    return {
        "name": "retrieval",
        "figures": figures,
        "conditions": {
            "chunks": chunks,
            "queries": len(questions),
            "hnsw": {
                "m": 16,
                "ef_construction": 64,
                "ef_search": settings.DOCENT_HNSW_EF_SEARCH,
                "iterative_scan": "relaxed_order",
            },
            "query_mode": "hybrid (embedding + HNSW + BM25 over postings + fusion + refusal check) end to end",
            "warm_up": f"{len(warm_up)} other questions first (the server's steady state)",
            "cold_pass_p50_ms": round(statistics.median(cold), 1) if cold else None,
            "cold_pass_p95_ms": round(percentile(cold, 0.95), 1) if cold else None,
            # embed_ms and dense_ms run beside vocabulary and fulltext (a second thread); dense_wait_ms: what they added
            "hybrid_steps_p50_ms": {step: round(statistics.median(v), 1) for step, v in steps.items()},
            "baseline": f"{bare_description} + exact numpy scan over all vectors in memory",
            "embedder": knowledge_base.embedder,
            "cpu_cores": os.cpu_count(),
        },
    }
