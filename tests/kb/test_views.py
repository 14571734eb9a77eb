"""Web UI upload and the passage viewer, which shows document text escaped."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from kb.ingest.pipeline import run_pipeline
from kb.models import Chunk, Document
from kb.services import document_create, knowledge_base_create

pytestmark = pytest.mark.django_db(transaction=True)


def test_upload_in_the_web_ui_queues_documents(client, user, celery_worker):
    knowledge_base = knowledge_base_create(slug="web", name="Web")
    client.force_login(user)
    response = client.post(
        reverse("kb:upload", args=[knowledge_base.slug]),
        {"files": [SimpleUploadedFile("notes.txt", b"Gate code is 4711.\n\nParking is behind the building.")]},
    )
    assert response.status_code == 302
    document = Document.objects.get(knowledge_base=knowledge_base)
    from tests.conftest import wait_for_documents

    [document] = wait_for_documents([document.pk])
    assert document.status == Document.Status.READY
    page = client.get(reverse("kb:documents", args=[knowledge_base.slug]))
    assert b"notes" in page.content and b"hx-trigger" not in page.content  # nothing left to poll


def test_passage_viewer_escapes_document_text_and_marks_the_cited_chunk(client, user):
    knowledge_base = knowledge_base_create(slug="xss", name="XSS")
    hostile = b"Intro text.\n\n<script>alert('x')</script> <img src=https://evil.example/p.png onerror=alert(1)>"
    from io import BytesIO

    document = document_create(
        knowledge_base=knowledge_base, content=BytesIO(hostile), filename="hostile.txt", enqueue=False
    ).document
    run_pipeline(document)
    chunk = Chunk.objects.filter(document=document).last()
    client.force_login(user)
    page = client.get(reverse("kb:passage", args=[document.pk, chunk.pk]))
    assert page.status_code == 200
    assert b"<script>alert" not in page.content and b"<img src=https://evil" not in page.content
    assert b"&lt;script&gt;" in page.content
    assert f'id="chunk-{chunk.pk}" class="passage cited"'.encode() in page.content
    assert client.get(reverse("kb:passage", args=[document.pk, 999999])).status_code == 404
