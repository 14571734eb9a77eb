"""Citations when the model writes no markers: answer sentences matched to source sentences."""

import pytest

from chat.attribution import attribute

RESET = (
    "To reset the kettle to its factory settings, place it on the base, then press and hold the TEMP and "
    "POWER buttons together for 10 seconds until the ring light blinks blue three times. Release the buttons."
)
KEEP_WARM = "Keep-warm holds the water at the chosen temperature for 30 minutes, then the kettle switches off."
POLICY = "Hotel stays are reimbursed up to 180 euros per night in capital cities and 120 euros elsewhere."


def test_a_copied_sentence_cites_its_source_with_the_quote():
    answer = "Hold the TEMP and POWER buttons together for 10 seconds until the light blinks blue three times."
    [citation] = attribute(answer, {1: KEEP_WARM, 2: RESET, 3: POLICY})
    assert citation.number == 2
    assert "10 seconds" in citation.quote


def test_a_paraphrase_is_matched_by_meaning():
    answer = "The keep warm function keeps your water hot for half an hour and then it turns itself off."
    assert [c.number for c in attribute(answer, {1: POLICY, 2: KEEP_WARM})] == [2]


def test_an_unsupported_answer_cites_nothing():
    answer = "Open the Brightwater app and tap the reset button three times."
    assert attribute(answer, {1: POLICY}) == []
    assert attribute("", {1: RESET}) == []


def test_chinese_answers_are_matched_on_characters():
    source = "同时按住 TEMP 和 POWER 键 10 秒，直到环形灯闪烁三次蓝光。"
    assert [c.number for c in attribute("同时按住TEMP和POWER键10秒，直到环形灯闪烁蓝光。", {4: source})] == [4]


@pytest.mark.django_db(transaction=True)
def test_an_attributed_citation_links_to_its_highlighted_span(client, user):
    from io import BytesIO

    from chat.attribution import Attribution
    from chat.models import Citation, Conversation, Message
    from chat.selectors import citation_urls
    from chat.services import answer_save
    from kb.ingest.pipeline import run_pipeline
    from kb.models import Chunk
    from kb.services import document_create, knowledge_base_create

    knowledge_base = knowledge_base_create(slug="span", name="Span", owner=user)
    document = document_create(
        knowledge_base=knowledge_base, content=BytesIO(RESET.encode()), filename="reset.txt", enqueue=False
    ).document
    run_pipeline(document)
    chunk = Chunk.objects.get(document=document)
    conversation = Conversation.objects.create(user=user, knowledge_base=knowledge_base)
    quote = "Release the buttons."
    source = {"n": 1, "chunk_id": chunk.pk, "url": f"/kb/documents/{document.pk}/passage/{chunk.pk}/"}
    message = answer_save(
        conversation=conversation,
        text="Release them.",
        sources=[source],
        citations=[Attribution(1, quote)],
        timings={},
        answered=True,
        stopped=False,
        source_texts={1: chunk.text},
    )
    citation = Citation.objects.get(message=message)
    assert chunk.text[citation.start : citation.end] == quote
    url = citation_urls(Message.objects.get(pk=message.pk))[1]
    assert url.endswith(f"?hl={citation.start}-{citation.end}")
    client.force_login(user)
    page = client.get(url)
    assert f'<mark id="quote">{quote}</mark>'.encode() in page.content
    assert client.get(url.replace("?hl=", "?hl=99999-")).status_code == 200  # a bad span highlights the chunk
