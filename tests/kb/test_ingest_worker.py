"""Upload in the Django admin → task on commit → the real Celery worker → searchable chunks."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from kb import retrieval
from kb.models import Chunk, Document
from kb.services import knowledge_base_create
from tests.conftest import DEMO_DIR, wait_for_documents

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def upload(client, knowledge_base, files):
    response = client.post(reverse("admin:kb_knowledgebase_upload", args=[knowledge_base.pk]), {"files": files})
    assert response.status_code == 302, response.content[:500]


def test_admin_upload_is_ingested_by_the_worker_and_searchable(celery_worker, admin_client):
    knowledge_base = knowledge_base_create(slug="kettle", name="Kettle")
    pdf = Path(DEMO_DIR / "lumen-k3-manual.en.pdf")
    upload(admin_client, knowledge_base, [SimpleUploadedFile(pdf.name, pdf.read_bytes(), "application/pdf")])

    [document] = wait_for_documents(list(Document.objects.values_list("pk", flat=True)))
    assert document.status == Document.Status.READY, document.error
    assert document.pages == 6 and document.progress == 100
    chunks = Chunk.objects.filter(document=document)
    assert chunks.count() > 5
    assert all(c.page for c in chunks) and any(c.heading for c in chunks)

    result = retrieval.search(
        knowledge_base=knowledge_base, question="How do I do a factory reset?", mode=retrieval.Mode.DENSE
    )
    assert result.hits[:3], "dense search returned nothing"
    assert any(h.chunk.page == 5 and "10 seconds" in h.chunk.text for h in result.hits[:3])


def test_bad_files_fail_with_a_reason_and_good_ones_stay_intact(celery_worker, admin_client):
    knowledge_base = knowledge_base_create(slug="mixed", name="Mixed")
    good = (DEMO_DIR / "lumen-k3-manual.zh.html").read_bytes()
    upload(
        admin_client,
        knowledge_base,
        [
            SimpleUploadedFile("empty.txt", b"", "text/plain"),
            SimpleUploadedFile("broken.pdf", b"%PDF-1.7\nthis is not really a pdf", "application/pdf"),
            SimpleUploadedFile("manual.zh.html", good, "text/html"),
        ],
    )
    documents = {d.original_name: d for d in wait_for_documents(list(Document.objects.values_list("pk", flat=True)))}
    assert documents["empty.txt"].status == Document.Status.FAILED
    assert "empty" in documents["empty.txt"].error
    assert documents["broken.pdf"].status == Document.Status.FAILED
    assert "corrupt" in documents["broken.pdf"].error
    assert documents["manual.zh.html"].status == Document.Status.READY
    assert Chunk.objects.filter(document=documents["manual.zh.html"]).count() > 5
    assert not Chunk.objects.filter(document__in=[documents["empty.txt"], documents["broken.pdf"]]).exists()

    # the same bytes again change nothing
    upload(admin_client, knowledge_base, [SimpleUploadedFile("again.html", good, "text/html")])
    assert Document.objects.filter(knowledge_base=knowledge_base).count() == 3
