"""`manage.py bench reliability`: what survives killed workers and a corpus of hostile files.

- Kills: D documents are queued to a Celery worker of the benchmark's own (on the product's queues: stop
  other workers first, or they take part); each time one is being processed
  the worker is SIGKILLed, K times in all: its pool process, or every other time its whole process group
  (main process, pool, parser), after which a new worker is started as a supervisor would. Then: documents
  lost (not `ready` in the end), duplicate chunks (chunks beyond those an undisturbed in-process ingestion
  of the same files makes, or one text twice in a document) and missing ones. Want 0, 0, 0.
- Hostile files: each file of `hostile_corpus()` through the parser process under its time and memory
  allowance (kb.ingest.sandbox): done or failed within it, with its time and peak memory; then a good
  document is ingested and a question about it finds the right passage: the product still answers.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

from evaluation.figures import figure
from kb.models import Chunk, Document
from kb.services import document_create_from_path, document_delete, knowledge_base_create

BASE_DIR = Path(__file__).resolve().parent.parent
Log = Callable[[str], None]


def kill_corpus(directory: Path, count: int) -> list[Path]:
    """`count` distinct text documents of ~40 chunks each, long enough to be killed while embedding."""
    source = (BASE_DIR / "kb" / "demo_source" / "lumen-k3-manual.en.md").read_text(encoding="utf-8")
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        path = directory / f"manual-copy-{number}.md"
        body = source.replace("Lumen K3", f"Lumen K{number + 10}")
        path.write_text(f"# Service bulletin {number}\n\n" + body * 2, encoding="utf-8")
        paths.append(path)
    return paths


def _half(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: len(data) // 2]


def hostile_corpus(directory: Path) -> list[Path]:
    """Files of the kinds that have stalled or crashed parsers elsewhere, each small enough to build fast."""
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {
        "unclosed-brackets.md": b"# Notes\n\nThe pump is checked weekly.\n\n" + b"[" * 50_000,
        "emphasis-soup.md": b"*_" * 100_000,
        "unclosed-links.md": b"[x](" * 25_000,
        "nested-quotes.md": b">" * 100_000 + b" deep",
        "deep-divs.html": b"<html><body>" + b"<div>" * 50_000 + b"deep" + b"</div>" * 50_000 + b"</body></html>",
        "unclosed-tags.html": b"<html><body>" + b"<span><b><i>" * 30_000 + b"<p>tail</p>",
        "one-long-paragraph.html": b"<p>" + b"word " * 200_000 + b"</p>",
        "one-long-line.txt": b"word " * 400_000,
        "control-characters.txt": bytes(range(1, 32)) * 2000,
        "garbage-high-bytes.txt": bytes(0xA1 + (i * 37) % 94 for i in range(200_000)),
        "runaway-quote.csv": b'name,comment\nx,"' + b"never closed " * 20_000 + b"\n",
        "executable-named.pdf": b"\x7fELF" + bytes(4000),
        "truncated.pdf": _half(BASE_DIR / "kb" / "demo" / "lumen-k3-manual.en.pdf"),
        "not-a-pdf-at-all.pdf": b"%PDF-1.7\n" + b"1 0 obj << /Kids [" * 5000,
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    with zipfile.ZipFile(directory / "zip-bomb.docx", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"<w:document>" + b" " * 60_000_000 + b"</w:document>")
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i else "&lol;" * 10}">' for i in range(9))
        + ']><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">&lol8;</w:document>'
    )
    with zipfile.ZipFile(directory / "billion-laughs.docx", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", laughs)
    return sorted(directory.iterdir())


def run_hostile(directory: Path, log: Log) -> list[dict[str, Any]]:
    """Each hostile file through the sandboxed parser: outcome, seconds, peak memory and the allowance."""
    from kb.ingest import sandbox
    from kb.ingest.parse import ParseError

    rows = []
    for path in hostile_corpus(directory):
        time_allowed, memory_allowed = sandbox.limits(path)
        sandbox.parse_file(BASE_DIR / "kb" / "demo_source" / "lumen-k3-manual.en.md", "warm.md")  # a ready parser
        started = time.perf_counter()
        try:
            parsed = sandbox.parse_file(path, path.name)
            outcome = f"done ({len(parsed.blocks)} blocks)"
        except ParseError as exc:
            outcome = f"failed: {exc}"
        seconds = time.perf_counter() - started
        rss_mb = sandbox._parser().peak_rss / 2**20
        within = seconds <= time_allowed + 2 and rss_mb <= memory_allowed / 2**20
        rows.append(
            {
                "file": path.name,
                "bytes": path.stat().st_size,
                "outcome": outcome,
                "seconds": round(seconds, 2),
                "peak_rss_mb": round(rss_mb),
                "allowed_s": round(time_allowed, 1),
                "within": within,
            }
        )
        size_kb = path.stat().st_size / 1e3
        log(f"  {path.name:<26} {size_kb:>9.0f} kB {seconds:>6.2f} s {rss_mb:>5.0f} MB  {outcome[:90]}")
    return rows


def still_answering() -> bool:
    """A good document after the hostile ones: ingested, and a question finds its passage."""
    from kb.ingest.pipeline import ingest
    from kb.retrieval import Scope, fulltext_search

    knowledge_base = knowledge_base_create(slug="bench-reliability-after", name="Benchmark: after hostile files")
    for document in Document.objects.filter(knowledge_base=knowledge_base).defer("text"):
        document_delete(document=document)
    path = BASE_DIR / "kb" / "demo_source" / "lumen-k3-manual.en.md"
    document = document_create_from_path(knowledge_base=knowledge_base, path=path, enqueue=False).document
    if ingest(document.pk).status != Document.Status.READY:
        return False
    hits = fulltext_search(
        scope=Scope(knowledge_base_id=knowledge_base.pk),
        question="How do I descale the kettle?",
        language="en",
        limit=3,
    )
    return any("vinegar" in Chunk.objects.get(pk=hit.chunk_id).text.lower() for hit in hits)


def _start_worker(name: str) -> subprocess.Popen[bytes]:
    from config.celery import app
    from config.launcher import worker_command

    worker = subprocess.Popen(
        # the product's queues: a killed worker's documents are queued again there (kb.ingest.lease)
        worker_command(name, loglevel="warning"),
        cwd=BASE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the main process, its pool and their parsers
    )
    deadline = time.monotonic() + 180
    while not app.control.ping(destination=[name.replace("%h", os.uname().nodename)], timeout=0.5):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the benchmark's Celery worker did not start")
    return worker


def _fresh(slug: str, files: list[Path]) -> list[Document]:
    knowledge_base = knowledge_base_create(slug=slug, name=f"Benchmark: {slug}")
    for document in Document.objects.filter(knowledge_base=knowledge_base).defer("text"):
        document_delete(document=document)
    return [
        document_create_from_path(knowledge_base=knowledge_base, path=path, enqueue=False).document for path in files
    ]


def run_kills(files: list[Path], kills: int, log: Log, *, timeout: float = 1800) -> dict[str, int]:
    """Ingest `files` through a worker killed `kills` times; count what was lost or duplicated."""
    from kb.ingest.pipeline import ingest
    from kb.tasks import ingest_document

    expected = {}
    for document in _fresh("bench-reliability-reference", files):
        ingest(document.pk)
        expected[document.original_name] = list(
            Chunk.objects.filter(document=document).order_by("ordinal").values_list("text", flat=True)
        )
    documents = _fresh("bench-reliability", files)
    ids = [d.pk for d in documents]
    generation = 0
    worker = _start_worker(f"bench-reliability-{os.getpid()}-{generation}@%h")
    done_kills = 0
    rng = random.Random(19)
    try:
        for document in documents:
            ingest_document.delay(document.pk)
        deadline = time.monotonic() + timeout
        while done_kills < kills and time.monotonic() < deadline:
            busy = Document.objects.filter(pk__in=ids, status=Document.Status.PROCESSING).exclude(worker="").first()
            if busy is None or not busy.stage:
                if not Document.objects.filter(pk__in=ids).exclude(status__in=["ready", "failed"]).exists():
                    break
                time.sleep(0.1)
                continue
            time.sleep(rng.uniform(0.2, 2.0))  # somewhere inside parse, chunk, embed or store
            busy.refresh_from_db()
            pid = int(busy.worker.rpartition(":")[2] or 0)
            if busy.status != Document.Status.PROCESSING or not pid:
                continue
            try:
                ours = os.getpgid(pid) == worker.pid  # not another worker's (a test suite's) pool process
            except ProcessLookupError:
                continue
            whole = done_kills % 2 == 1 and ours
            log(f"  kill {done_kills + 1}: {'the whole worker' if whole else 'the pool process'} at {busy.stage}")
            if whole:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
                generation += 1
                worker = _start_worker(f"bench-reliability-{os.getpid()}-{generation}@%h")
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
            done_kills += 1
            time.sleep(1)
        while Document.objects.filter(pk__in=ids).exclude(status__in=["ready", "failed"]).exists():
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        try:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(worker.pid, signal.SIGKILL)
    lost = duplicates = missing = 0
    for document in Document.objects.filter(pk__in=ids):
        texts = list(Chunk.objects.filter(document=document).order_by("ordinal").values_list("text", flat=True))
        if document.status != Document.Status.READY:
            lost += 1
            continue
        reference = Counter(expected[document.original_name])
        actual = Counter(texts)
        duplicates += sum((actual - reference).values())
        missing += sum((reference - actual).values())
    return {"kills": done_kills, "documents": len(ids), "lost": lost, "duplicates": duplicates, "missing": missing}


def bench_reliability(
    *,
    documents: int,
    kills: int,
    log: Log,
    parts: list[str] | None = None,
    rate_factor: float = 3.0,
    soak_sockets: int = 20,
    soak_seconds: float = 60,
    soak_interval_s: float = 20,
) -> dict[str, Any]:
    """The parts named in `parts` (default all: "hostile", "kills", "ratelimits", "soak"); the last two are
    evaluation.bench_sockets' (against a web server of their own, with the small chat model)."""
    from evaluation import bench_sockets
    from evaluation.bench_ingest import _local_redis

    parts = parts or ["hostile", "kills", "ratelimits", "soak"]
    workdir = Path(tempfile.mkdtemp(prefix="docent-bench-reliability-"))
    figures: dict[str, Any] = {}
    conditions: dict[str, Any] = {"cpu_cores": os.cpu_count()}
    if "hostile" in parts:
        log("hostile files (parse under the size-scaled time limit and the memory limit):")
        rows = run_hostile(workdir / "hostile", log)
        answering = still_answering()
        log(f"  afterwards a question finds its passage: {answering}")
        within = sum(row["within"] for row in rows)
        figures |= {
            "hostile_within_allowance": figure(within, "files", len(rows)),
            "hostile_max_parse_s": figure(max(row["seconds"] for row in rows), "s", None),
            "hostile_max_rss_mb": figure(max(row["peak_rss_mb"] for row in rows), "MB", None),
            "answering_after": figure(1.0 if answering else 0.0, "yes", None),
        }
        conditions |= {
            "hostile_files": [f"{row['file']}: {row['outcome'][:60]} in {row['seconds']} s" for row in rows],
            "parse_memory_mb": settings.DOCENT_PARSE_MEMORY_MB,
            "parse_time_limit": f"{settings.DOCENT_PARSE_TIMEOUT_MIN_S:g} s + "
            f"{settings.DOCENT_PARSE_TIMEOUT_S_PER_MB:g} s/MB, at most {settings.DOCENT_PARSE_TIMEOUT_S:g} s",
        }
    with _local_redis(log):
        if "kills" in parts:
            log(f"worker SIGKILL during ingestion: {kills} kills over {documents} documents")
            counts = run_kills(kill_corpus(workdir / "kills", documents), kills, log)
            log(f"  {counts}")
            figures |= {
                "documents_lost": figure(counts["lost"], "documents", None),
                "duplicate_chunks": figure(counts["duplicates"], "chunks", None),
                "missing_chunks": figure(counts["missing"], "chunks", None),
                "kills": figure(counts["kills"], "kills", None),
            }
            conditions["documents"] = counts["documents"]
            conditions["kills"] = "alternately the pool process and the whole worker (restarted)"
        if "ratelimits" in parts:
            log(f"rate limits: a minute of requests at {rate_factor:g}x each per-minute quota")
            limits = bench_sockets.run_rate_limits(factor=rate_factor, log=log)
            for name, row in limits.items():
                for share in ("over_quota_refused", "in_quota_refused"):
                    value = row[share]
                    figures[f"{name}_{share.replace('_quota', '')}"] = figure(
                        float("nan") if value is None else value, "share", None
                    )
            conditions["rate_limits"] = limits
        if "soak" in parts:
            log(
                f"websocket soak: {soak_sockets} sockets for {soak_seconds:g} s, a question every {soak_interval_s:g} s"
            )
            soak = bench_sockets.run_soak(
                sockets=soak_sockets, seconds=soak_seconds, interval_s=soak_interval_s, log=log
            )
            figures |= {
                "soak_unexpected_closes": figure(soak["unexpected_closes"], "closes", None),
                "soak_error_frames": figure(sum(soak["errors"].values()), "frames", None),
                "soak_handshakes_failed": figure(soak["handshakes_failed"], "sockets", soak["handshakes"]),
                "soak_answered": figure(soak["answered"], "answers", soak["asked"]),
                "soak_stalled_dropped": figure(soak["stalled_dropped"], "sockets", soak["stalled"]),
                "soak_rss_start_mb": figure(soak["rss_start_mb"], "MB", None),
                "soak_rss_end_mb": figure(soak["rss_end_mb"], "MB", soak["rss_start_mb"]),
            }
            conditions["soak"] = soak
    return {"name": "reliability", "figures": figures, "conditions": conditions}
