"""`manage.py bench ingest`: end-to-end ingestion of a mixed corpus beside bare `SentenceTransformer.encode`.

The corpus is the maint-guide dev set (PDF and HTML in three languages), the demo manual (PDF, HTML,
Markdown), and DOCX and Markdown renditions of the maint-guide's HTML pages built from their real
text (so every parser the product ships is timed), at least 2 MB in all. Measured in one run:
- in-process: the `ingest` command's path, the next file parsed while the current one embeds;
- Celery: the same documents through 1 and 2 worker processes, from enqueue to the last `ready`
  (workers started and warm before the clock starts);
- baseline: raw `encode` of exactly the texts the pipeline embedded, with the same batch size.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from evaluation.figures import figure
from kb import embedder
from kb.models import Chunk, Document, KnowledgeBase
from kb.services import document_create_from_path, document_delete, knowledge_base_create

BASE_DIR = Path(__file__).resolve().parent.parent
MAINT_GUIDE = BASE_DIR.parent / "shared" / "eval" / "maint-guide" / "files"
QUEUE = "bench-ingest"
MIN_CORPUS_BYTES = 2 * 1024 * 1024

Log = Callable[[str], None]


def _html_sections(path: Path) -> list[tuple[int, str]]:
    """(level, text) for the headings (level 1-4) and body paragraphs (level 0) of an HTML page."""
    import lxml.html

    tree = lxml.html.parse(str(path))
    items: list[tuple[int, str]] = []
    for element in tree.iter("h1", "h2", "h3", "h4", "p", "li", "pre", "dt", "dd"):
        text = " ".join(element.text_content().split())
        if not text:
            continue
        tag = element.tag
        items.append((int(tag[1]) if tag.startswith("h") and len(tag) == 2 else 0, text))
    return items


def _write_docx(sections: list[tuple[int, str]], path: Path) -> None:
    import docx

    document = docx.Document()
    for level, text in sections:
        if level:
            document.add_heading(text, level=min(level, 4))
        else:
            document.add_paragraph(text)
    document.save(str(path))


def _write_markdown(sections: list[tuple[int, str]], path: Path) -> None:
    lines = [f"{'#' * level} {text}" if level else text for level, text in sections]
    path.write_text("\n\n".join(lines) + "\n", encoding="utf-8")


def build_corpus(log: Log) -> list[Path]:
    files = sorted(MAINT_GUIDE.glob("*")) if MAINT_GUIDE.is_dir() else []
    files += [*sorted((BASE_DIR / "kb" / "demo").glob("*")), BASE_DIR / "kb" / "demo_source" / "lumen-k3-manual.en.md"]
    derived = Path(settings.VAR_DIR) / "bench" / "ingest-corpus"
    derived.mkdir(parents=True, exist_ok=True)
    for html in sorted(MAINT_GUIDE.glob("*.html")) if MAINT_GUIDE.is_dir() else []:
        docx_path, md_path = derived / f"{html.stem}.docx", derived / f"{html.stem}.md"
        if not (docx_path.exists() and md_path.exists()):
            sections = _html_sections(html)
            _write_docx(sections, docx_path)
            _write_markdown(sections, md_path)
        files += [docx_path, md_path]
    total = sum(p.stat().st_size for p in files)
    log(f"  corpus: {len(files)} files, {total / 1e6:.2f} MB")
    return files


def _fresh_documents(files: list[Path]) -> tuple[KnowledgeBase, list[Document]]:
    knowledge_base = knowledge_base_create(slug="bench-ingest", name="Benchmark: ingestion")
    for document in Document.objects.filter(knowledge_base=knowledge_base).defer("text"):
        document_delete(document=document)
    documents = [
        document_create_from_path(knowledge_base=knowledge_base, path=path, enqueue=False).document for path in files
    ]
    return knowledge_base, documents


def _chunk_count(documents: list[Document]) -> int:
    return Chunk.objects.filter(document__in=documents).count()


def _in_process(files: list[Path], log: Log) -> tuple[float, int, list[Document]]:
    from kb.ingest.pipeline import ingest

    _, documents = _fresh_documents(files)
    started = time.perf_counter()
    for index, document in enumerate(documents):
        following = documents[index + 1] if index + 1 < len(documents) else None
        result = ingest(document.pk, prefetch=following)
        if result.status != Document.Status.READY:
            raise RuntimeError(f"{document.original_name}: {result.error}")
    seconds = time.perf_counter() - started
    chunks = _chunk_count(documents)
    log(f"  in-process: {chunks} chunks in {seconds:.1f} s")
    return seconds, chunks, documents


def _wait_ready(ids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while Document.objects.filter(pk__in=ids).exclude(status__in=["ready", "failed"]).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("workers did not finish in time")
        time.sleep(0.1)
    failed = list(Document.objects.filter(pk__in=ids, status="failed").values_list("original_name", "error"))
    if failed:
        raise RuntimeError(f"failed: {failed}")


def _with_workers(files: list[Path], concurrency: int, log: Log) -> tuple[float, int]:
    from config.celery import app
    from kb.tasks import ingest_document

    env = {**os.environ, "DOCENT_EMBED_THREADS": str(max(1, (os.cpu_count() or 1) // concurrency))}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", QUEUE, "-c", str(concurrency),
         "-n", f"bench-{os.getpid()}@%h", "-l", "warning"],
        cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not app.control.ping(destination=[f"bench-{os.getpid()}@{os.uname().nodename}"], timeout=0.5):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the benchmark's Celery worker did not start")
        # Warm every pool process (model load, parser start) outside the clock: one small document each,
        # sent together so that each process takes one.
        demo = BASE_DIR / "kb" / "demo"
        _, warm = _fresh_documents([demo / "lumen-k3-manual.fr.html", demo / "lumen-k3-manual.zh.html"][:concurrency])
        for document in warm:
            ingest_document.apply_async((document.pk,), queue=QUEUE)
        _wait_ready([d.pk for d in warm], 300)
        _, documents = _fresh_documents(files)
        started = time.perf_counter()
        for document in documents:
            ingest_document.apply_async((document.pk,), queue=QUEUE)
        _wait_ready([d.pk for d in documents], 1800)
        seconds = time.perf_counter() - started
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
    chunks = _chunk_count(documents)
    log(f"  {concurrency} worker process(es): {chunks} chunks in {seconds:.1f} s")
    return seconds, chunks


def _bare_encode(documents: list[Document]) -> tuple[float, int]:
    from kb.ingest.chunk import ChunkDraft
    from kb.ingest.embed import embedding_text

    titles = {d.pk: d.title for d in documents}
    texts = [
        embedding_text(ChunkDraft(ordinal=0, text=text, page=None, heading=heading), titles[document_id])
        for document_id, text, heading in Chunk.objects.filter(document__in=documents)
        .order_by("document_id", "ordinal")
        .values_list("document_id", "text", "heading")
    ]
    from evaluation.baselines import bare_encoder

    _, embed_documents, _ = bare_encoder(embedder.default_name())  # the bare library, whatever the backend
    embed_documents(texts[:64])  # warm up
    started = time.perf_counter()
    embed_documents(texts)
    return time.perf_counter() - started, len(texts)


@contextlib.contextmanager
def _local_redis(log: Log) -> Iterator[None]:
    """The broker the workers need: the configured Redis, or a private one on its address when none is up."""
    from config.embedded_services import port_open, start_redis

    parts = urlsplit(settings.REDIS_URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if port_open(host, port) or host not in ("127.0.0.1", "localhost"):
        yield
        return
    log(f"  no Redis at {host}:{port}: starting a private one for the benchmark")
    redis = start_redis(port, Path(tempfile.mkdtemp(prefix="docent-bench-redis-")))
    try:
        yield
    finally:
        redis.terminate()
        redis.wait(10)


def bench_ingest(*, files: list[Path] | None, workers: list[int], log: Log) -> dict[str, Any]:
    with _local_redis(log):
        return _bench_ingest(files=files, workers=workers, log=log)


def _bench_ingest(*, files: list[Path] | None, workers: list[int], log: Log) -> dict[str, Any]:
    corpus = files or build_corpus(log)
    embedder.embed_query("warm up")
    seconds, chunks, documents = _in_process(corpus, log)
    bare_seconds, bare_chunks = _bare_encode(documents)
    bare_rate = bare_chunks / bare_seconds
    log(f"  bare encode: {bare_chunks} chunks in {bare_seconds:.1f} s")
    parse_s = sum((d.parse_ms or 0) for d in Document.objects.filter(pk__in=[d.pk for d in documents])) / 1000
    figures = {
        "chunks_per_s": figure(chunks / seconds, "chunks/s", bare_rate),
        "corpus_s": figure(seconds, "s", None),
        "parse_s": figure(parse_s, "s", None),
    }
    for concurrency in workers:
        worker_seconds, worker_chunks = _with_workers(corpus, concurrency, log)
        figures[f"chunks_per_s_{concurrency}_workers"] = figure(worker_chunks / worker_seconds, "chunks/s", bare_rate)
    return {
        "name": "ingest",
        "figures": figures,
        "conditions": {
            "files": len(corpus),
            "corpus_mb": round(sum(p.stat().st_size for p in corpus) / 1e6, 2),
            "formats": sorted({p.suffix.lstrip(".") for p in corpus}),
            "chunks": chunks,
            "chunk_tokens": settings.DOCENT_CHUNK_TOKENS,
            "pdf_parser": settings.DOCENT_PDF_PARSER,
            "baseline": "the embedder's bare library (evaluation.baselines) on the same texts the pipeline embedded",
            "embedder": embedder.model_name(),
            "embed_backend": settings.DOCENT_EMBED_BACKEND,
            "cpu_cores": os.cpu_count(),
        },
    }
