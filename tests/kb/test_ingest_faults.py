"""Ingestion faults on the real stack: parse limits, killed workers, duplicate deliveries, new versions."""

from __future__ import annotations

import io
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from kb.ingest import lease
from kb.ingest.pipeline import ingest
from kb.ingest.store import LeaseLost, store_chunks
from kb.models import Chunk, Document
from kb.services import document_create, document_delete, knowledge_base_create
from tests.conftest import BASE_DIR, FIXTURES, wait_for_documents

pytestmark = pytest.mark.django_db(transaction=True)

MANUAL = BASE_DIR / "kb" / "demo_source" / "lumen-k3-manual.en.md"


def _create(kb, name: str, data: bytes, enqueue: bool = False) -> Document:
    return document_create(knowledge_base=kb, content=io.BytesIO(data), filename=name, enqueue=enqueue).document


def _big_html(rows: int) -> bytes:
    cells = "".join(f"<tr><td>row {i} of the price list</td><td>value {i} in euros</td></tr>" for i in range(rows))
    return f"<html><body><h1>Prices</h1><table>{cells}</table></body></html>".encode()


def _assert_chunks_exact(document: Document) -> None:
    document.refresh_from_db()
    chunks = list(Chunk.objects.filter(document=document).order_by("ordinal"))
    assert chunks, "no chunks"
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert document.text[chunk.start : chunk.end] == chunk.text


def test_chunks_carry_offsets_into_the_extracted_text_and_progress_ends_complete():
    kb = knowledge_base_create(slug="offsets")
    document = _create(kb, "lumen-k3-manual.en.md", MANUAL.read_bytes())
    seen: list[tuple[str, int]] = []
    result = ingest(document.pk, on_progress=lambda d: seen.append((d.stage, d.progress)))
    assert result.status == Document.Status.READY
    _assert_chunks_exact(document)
    stages = [stage for stage, _ in seen]
    assert [s for s in ("parse", "chunk", "embed", "store") if s in stages] == ["parse", "chunk", "embed", "store"]
    percents = [p for _, p in seen]
    assert percents == sorted(percents) and percents[-1] == 100
    document.refresh_from_db()
    assert (document.stage, document.worker, document.heartbeat_at, document.attempts) == ("", "", None, 1)


def test_a_parse_past_the_time_limit_fails_with_the_reason_and_the_next_document_is_ingested(settings):
    settings.DOCENT_PARSE_TIMEOUT_S = 1
    kb = knowledge_base_create(slug="slow")
    slow = _create(kb, "prices.html", _big_html(120_000))
    good = _create(kb, "travel-policy.en.txt", (FIXTURES / "travel-policy.en.txt").read_bytes())
    started = time.monotonic()
    assert ingest(slow.pk).status == Document.Status.FAILED
    assert time.monotonic() - started < 30
    slow.refresh_from_db()
    assert "took longer than 1 s" in slow.error and not slow.chunks.exists()
    settings.DOCENT_PARSE_TIMEOUT_S = 5  # a fresh parser's start-up is not charged to the file
    assert ingest(good.pk).status == Document.Status.READY


def test_a_parse_past_the_memory_limit_fails_with_the_reason_and_the_parser_is_replaced(settings):
    # The parser process holds ~100 MB; reading this 22 MB page takes ~530 MB.
    settings.DOCENT_PARSE_MEMORY_MB = 300
    kb = knowledge_base_create(slug="greedy")
    greedy = _create(kb, "prices.html", _big_html(300_000))
    good = _create(kb, "lumen-k3-manual.en.md", MANUAL.read_bytes())
    assert ingest(greedy.pk).status == Document.Status.FAILED
    greedy.refresh_from_db()
    assert "more than 300 MB of memory" in greedy.error
    assert ingest(good.pk).status == Document.Status.READY


def test_a_second_delivery_backs_off_while_a_live_worker_holds_the_document():
    kb = knowledge_base_create(slug="twice")
    document = _create(kb, "lumen-k3-manual.en.md", MANUAL.read_bytes())
    assert lease.claim(document.pk)[0] == lease.Claim.CLAIMED
    assert lease.claim(document.pk)[0] == lease.Claim.BUSY  # same live process, fresh heartbeat
    assert ingest(document.pk).status == "busy"
    # The heartbeat goes stale: the holder is considered gone and the next delivery takes over.
    Document.objects.filter(pk=document.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert ingest(document.pk).status == Document.Status.READY
    document.refresh_from_db()
    assert document.attempts == 2
    _assert_chunks_exact(document)


def test_a_copy_that_lost_its_lease_writes_nothing():
    kb = knowledge_base_create(slug="lease")
    document = _create(kb, "lumen-k3-manual.en.md", MANUAL.read_bytes())
    _, claimed = lease.claim(document.pk)
    assert claimed is not None
    Document.objects.filter(pk=document.pk).update(worker="other-host:1")  # another worker took over
    import numpy as np

    from kb.ingest.chunk import ChunkDraft

    draft = ChunkDraft(ordinal=0, text="stale copy", page=None, heading="", start=0, end=10)
    with pytest.raises(LeaseLost):
        store_chunks(document=claimed, drafts=[draft], embeddings=np.zeros((1, 384)), languages=["en"], text="x")
    assert not Chunk.objects.filter(document=document).exists()


def test_a_processing_document_whose_worker_died_is_requeued_and_processed(celery_worker):
    kb = knowledge_base_create(slug="orphan")
    document = _create(kb, "lumen-k3-manual.en.md", MANUAL.read_bytes())
    # What a worker killed with SIGKILL leaves behind: processing, held by a pid that no longer exists.
    Document.objects.filter(pk=document.pk).update(
        status=Document.Status.PROCESSING,
        worker=f"{lease.worker_id().rpartition(':')[0]}:999999",
        heartbeat_at=timezone.now(),
    )
    document.refresh_from_db()
    assert not lease._holder_alive(document)
    assert lease.requeue_stale() == [document.pk]
    (document,) = wait_for_documents([document.pk])
    assert document.status == Document.Status.READY and document.attempts == 1
    _assert_chunks_exact(document)


def test_a_worker_killed_mid_document_hands_it_to_the_next_and_it_ends_ready_once(celery_worker):
    kb = knowledge_base_create(slug="killed")
    # Long enough that the worker is still embedding when it is killed (~200 chunks).
    text = "\n\n".join((FIXTURES / "travel-policy.en.txt").read_text() + f"\n\nSection {i}." for i in range(250))
    document = _create(kb, "long-policy.txt", text.encode(), enqueue=True)
    deadline = time.monotonic() + 120
    while True:
        document.refresh_from_db()
        if document.stage == Document.Stage.EMBED and document.worker:
            break
        assert document.status != Document.Status.READY, "finished before it could be killed"
        assert time.monotonic() < deadline, f"never reached the embedding stage: {document.status} {document.error}"
        time.sleep(0.05)
    pid = int(document.worker.rpartition(":")[2])
    assert pid != celery_worker.pid  # the pool process doing the work, not the worker's supervisor
    os.kill(pid, signal.SIGKILL)
    (document,) = wait_for_documents([document.pk], timeout=300)
    assert document.status == Document.Status.READY, document.error
    assert document.attempts == 2
    _assert_chunks_exact(document)
    assert Chunk.objects.filter(document=document).count() == len(
        set(Chunk.objects.filter(document=document).values_list("ordinal", flat=True))
    )


def test_a_new_version_replaces_the_chunks_and_the_file_identical_bytes_do_nothing_delete_removes_all():
    kb = knowledge_base_create(slug="versions")
    first = _create(kb, "notice.txt", b"The boiler is serviced every March by the facilities team.")
    assert ingest(first.pk).status == Document.Status.READY
    old_path = Path(Document.objects.get(pk=first.pk).file.path)

    same = document_create(
        knowledge_base=kb,
        content=io.BytesIO(b"The boiler is serviced every March by the facilities team."),
        filename="copy-of-notice.txt",
        enqueue=False,
    )
    assert (same.created, same.replaced, same.document.pk) == (False, False, first.pk)

    second = document_create(
        knowledge_base=kb,
        content=io.BytesIO(b"The boiler is serviced every October by an outside contractor."),
        filename="notice.txt",
        enqueue=False,
    )
    assert second.replaced and second.document.pk == first.pk
    assert not old_path.exists()
    # Until the new version is processed, the old chunks still answer.
    assert "March" in Chunk.objects.get(document_id=first.pk).text
    assert ingest(first.pk).status == Document.Status.READY
    texts = list(Chunk.objects.filter(document_id=first.pk).values_list("text", flat=True))
    assert texts and all("October" in t and "March" not in t for t in texts)

    document = Document.objects.get(pk=first.pk)
    path = Path(document.file.path)
    document_delete(document=document)
    assert not Chunk.objects.filter(document_id=first.pk).exists()
    assert not path.exists()
