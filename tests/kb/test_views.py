"""Web UI upload and the passage viewer, which shows document text escaped."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from kb.ingest.pipeline import run_pipeline
from kb.models import Chunk, Document
from kb.services import document_create, knowledge_base_create

pytestmark = pytest.mark.django_db(transaction=True)


def test_upload_in_the_web_ui_queues_documents(client, user, celery_worker):
    knowledge_base = knowledge_base_create(slug="web", name="Web", owner=user)
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
    knowledge_base = knowledge_base_create(slug="xss", name="XSS", owner=user)
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
    # marked, and the viewer's script (static/docent/passage.js) scrolls to it
    assert f'<mark id="chunk-{chunk.pk}" class="cited" data-docent-cited>'.encode() in page.content
    # The chunk is shown inside the document's own extracted text, at its offsets.
    document.refresh_from_db()
    body = page.content.decode()
    assert "Intro text." in body and document.text[chunk.start : chunk.end] == chunk.text
    quoted = client.get(reverse("kb:passage", args=[document.pk, chunk.pk]) + "?hl=0-8")
    from django.utils.html import escape

    assert f'<mark id="quote">{escape(chunk.text[:8])}</mark>'.encode() in quoted.content
    assert client.get(reverse("kb:passage", args=[document.pk, 999999])).status_code == 404


def test_an_oversized_upload_is_refused_before_it_is_stored_and_the_others_go_through(client, user, settings):
    settings.DOCENT_MAX_UPLOAD_BYTES = 1024 * 1024
    knowledge_base = knowledge_base_create(slug="limits", name="Limits", owner=user)
    client.force_login(user)
    big = SimpleUploadedFile("big.txt", b"Too long a line. " * 100_000)
    small = SimpleUploadedFile("small.txt", b"The archive room opens at nine.")
    response = client.post(reverse("kb:upload", args=[knowledge_base.slug]), {"files": [big, small]}, follow=True)
    notices = [str(m) for m in response.context["messages"]]
    assert any("big.txt" in m and "larger than the 1 MB limit" in m for m in notices), notices
    assert list(Document.objects.filter(knowledge_base=knowledge_base).values_list("original_name", flat=True)) == [
        "small.txt"
    ]


def test_original_files_are_only_ever_served_as_downloads(client, user):
    from io import BytesIO
    from pathlib import Path

    knowledge_base = knowledge_base_create(slug="downloads", name="Downloads", owner=user)
    demo_pdf = Path(__file__).resolve().parents[2] / "kb" / "demo" / "lumen-k3-manual.en.pdf"
    files = {
        "page.html": b"<html><body><script>alert(document.cookie)</script><p>Hello.</p></body></html>",
        "manual.pdf": demo_pdf.read_bytes(),
    }
    client.force_login(user)
    for name, data in files.items():
        document = document_create(
            knowledge_base=knowledge_base, content=BytesIO(data), filename=name, enqueue=False
        ).document
        run_pipeline(document)
        response = client.get(reverse("kb:file", args=[document.pk]))
        assert response.status_code == 200
        assert response["Content-Disposition"].startswith("attachment"), name
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"] == "sandbox; frame-ancestors 'none'"
        assert b"".join(response.streaming_content) == data


def test_the_admin_lists_documents_with_stage_and_chunk_count_without_loading_their_text(admin_client):
    from io import BytesIO

    knowledge_base = knowledge_base_create(slug="admin-list", name="Admin list")
    document = document_create(
        knowledge_base=knowledge_base,
        content=BytesIO(b"Visitors sign in at the front desk."),
        filename="visitors.txt",
        enqueue=False,
    ).document
    run_pipeline(document)
    listing = admin_client.get(reverse("admin:kb_document_changelist"))
    assert listing.status_code == 200 and b"visitors" in listing.content
    assert listing.context["cl"].result_list[0].chunks_total == 1
    assert "text" in listing.context["cl"].result_list[0].get_deferred_fields()
    assert admin_client.get(reverse("admin:kb_document_change", args=[document.pk])).status_code == 200
