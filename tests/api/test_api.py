"""The OpenAI-compatible API on the real stack: daphne, Postgres, Redis, the small chat model and the embedder,
called with the official `openai` client and with raw HTTP for each error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from django.core.management import call_command

from api.models import ApiConversation, ApiKey
from api.services import api_key_create, api_key_revoke
from chat.models import Message
from kb import embedder
from kb.services import knowledge_base_create
from tests.servers import docent_server

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How do I descale the kettle?"
UNANSWERABLE = "How do I configure AppArmor profiles?"
LOG = Path(os.environ.get("DOCENT_VAR_DIR", "/tmp")) / "daphne-api.log"


@pytest.fixture(scope="module")
def docent_url() -> Iterator[str]:
    with docent_server(LOG) as url:
        yield url


@pytest.fixture
def api_key(manual_kb, user) -> str:
    return api_key_create(user=user, name="test")[1]


@pytest.fixture
def client(docent_url, api_key) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{docent_url}/v1", api_key=api_key, max_retries=0, timeout=180)


def server_log() -> str:
    return LOG.read_text(errors="replace")[-4000:] if LOG.exists() else "(no log)"


def test_models_are_the_knowledge_bases_the_key_may_read(client, docent_url, user, manual_kb):
    hidden = knowledge_base_create(slug="hidden", name="Hidden")  # nobody shared it with the key's user
    other = knowledge_base_create(slug="other", name="Other", owner=user)
    assert {m.id for m in client.models.list()} == {"kb:manuals", "kb:other"}
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(f"kb:{hidden.slug}")
    assert client.models.retrieve("kb:manuals").id == "kb:manuals"
    narrow = openai.OpenAI(
        base_url=f"{docent_url}/v1", api_key=api_key_create(user=user, knowledge_bases=[other])[1], max_retries=0
    )
    assert [m.id for m in narrow.models.list()] == ["kb:other"]
    with pytest.raises(openai.NotFoundError):
        narrow.models.retrieve("kb:manuals")
    with pytest.raises(openai.NotFoundError) as caught:
        narrow.chat.completions.create(model="kb:manuals", messages=[{"role": "user", "content": QUESTION}])
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_a_cited_answer_without_streaming(client, api_key):
    completion = client.chat.completions.create(model="kb:manuals", messages=[{"role": "user", "content": QUESTION}])
    choice = completion.choices[0]
    text = choice.message.content
    assert text, server_log()
    assert choice.finish_reason in ("stop", "length")
    sources = choice.message.model_extra["sources"]  # type: ignore[index]
    docent = completion.model_extra["docent"]  # type: ignore[index]
    assert sources == docent["sources"]
    assert sources[0]["title"] and sources[0]["url"].startswith("http://127.0.0.1:")
    assert "descal" in sources[0]["snippet"].lower() or "descal" in sources[0]["heading"].lower()
    assert docent["answered"] is True
    # What a 135M model writes varies; that a faithful answer gets cited is tested in test_attribution.py.
    assert set(docent["citations"]) <= {s["n"] for s in sources}
    assert all(s["cited"] == (s["n"] in docent["citations"]) for s in sources)
    # usage is the chat model's own token count, as stored with the answer
    message = Message.objects.get(pk=docent["message_id"])
    assert message.text == text and message.citations.count() == len(docent["citations"])
    assert completion.usage.prompt_tokens == message.timings["prompt_tokens"] > 100
    assert completion.usage.completion_tokens == message.timings["completion_tokens"] > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    # the conversation is the key user's, and remembered as the API's
    assert message.conversation.user.username == "reader"
    assert ApiConversation.objects.get(conversation=message.conversation).key.prefix == api_key[:10]
    assert message.log.channel == "api" and message.log.user_id == message.conversation.user_id
    assert ApiKey.objects.get(prefix=api_key[:10]).last_used_at is not None


def test_a_streamed_answer_ends_with_its_sources_and_usage(client):
    chunks = list(
        client.chat.completions.create(
            model="kb:manuals",
            messages=[{"role": "user", "content": QUESTION}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    early = [c.model_extra["docent"] for c in chunks if c.model_extra and "docent" in c.model_extra]
    assert early[0]["sources"] and "message_id" not in early[0], "the sources come before the text"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    docent = final.model_extra["docent"]  # type: ignore[index]
    assert docent["sources"] and docent["answered"] is True
    assert Message.objects.get(pk=docent["message_id"]).text == text.strip()
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == docent["timings"]["completion_tokens"]
    assert len({c.id for c in chunks}) == 1


def test_follow_ups_come_from_the_messages_and_refusals_keep_their_text(client):
    completion = client.chat.completions.create(
        model="kb:manuals",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": "Fill the kettle with descaler [1]."},
            {"role": "user", "content": [{"type": "text", "text": "How often should I do it?"}]},
        ],
        max_tokens=8,
    )
    docent = completion.model_extra["docent"]  # type: ignore[index]
    assert QUESTION in docent["timings"]["searched_for"]
    assert completion.usage.completion_tokens <= 8
    refused = client.chat.completions.create(model="kb:manuals", messages=[{"role": "user", "content": UNANSWERABLE}])
    assert refused.model_extra["docent"]["answered"] is False  # type: ignore[index]
    assert refused.choices[0].message.content and refused.model_extra["docent"]["sources"] == []  # type: ignore[index]
    assert refused.usage.total_tokens == 0  # no model call


def test_embeddings_are_the_configured_embedders(client, manual_kb):
    texts = ["Descale the kettle every month.", "Détartrez la bouilloire chaque mois.", "每月给水壶除垢。"]
    # the openai client asks for base64 and decodes it
    result = client.embeddings.create(model="kb:manuals", input=texts)
    vectors = np.array([d.embedding for d in result.data], dtype=np.float32)
    expected = embedder.embed_documents(texts, manual_kb.embedder)
    assert vectors.shape == expected.shape == (3, embedder.dimension(manual_kb.embedder))
    assert np.allclose(vectors, expected, atol=1e-5)
    assert result.usage.prompt_tokens == sum(embedder.count_tokens(t, manual_kb.embedder) for t in texts) > 0
    as_floats = client.embeddings.create(model=manual_kb.embedder, input=texts[0], encoding_format="float")
    assert np.allclose(as_floats.data[0].embedding, expected[0], atol=1e-5)
    query = client.embeddings.create(model="kb:manuals", input="descaling", extra_body={"input_type": "query"})
    assert np.allclose(query.data[0].embedding, embedder.embed_query("descaling", manual_kb.embedder), atol=1e-5)


def post(url: str, key: str | None, body: bytes | dict, **headers: str) -> httpx.Response:
    if key:
        headers["Authorization"] = f"Bearer {key}"
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url, content=content, headers={"Content-Type": "application/json", **headers}, timeout=120)


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["type"], error
    return error


def test_errors_in_openai_shape(docent_url, api_key, user):
    url = f"{docent_url}/v1/chat/completions"
    ask = {"model": "kb:manuals", "messages": [{"role": "user", "content": UNANSWERABLE}]}
    assert_error(post(url, None, ask), 401, "invalid_api_key")
    assert_error(post(url, "dk-not-a-key", ask), 401, "invalid_api_key")
    assert_error(httpx.get(f"{docent_url}/v1/models", headers={"Authorization": "Basic x"}), 401, "invalid_api_key")
    assert_error(post(url, api_key, b"{not json"), 400, "bad_json")
    assert_error(post(url, api_key, b"[1, 2]"), 400, "bad_json")
    assert_error(post(url, api_key, {**ask, "messages": []}), 400, "invalid_request")
    assert_error(post(url, api_key, {**ask, "model": "kb:nope"}), 404, "model_not_found")
    assert_error(post(url, api_key, {**ask, "model": "gpt-4o"}), 404, "model_not_found")
    long = {**ask, "messages": [{"role": "user", "content": "word " * 1000}]}
    assert_error(post(url, api_key, long), 400, "question_too_long")
    assert_error(post(url, api_key, b"{" + b" " * (1024 * 1024 + 10) + b"}"), 413, "request_too_large")
    assert_error(httpx.get(url, headers={"Authorization": f"Bearer {api_key}"}), 405, "method_not_allowed")
    embeddings = f"{docent_url}/v1/embeddings"
    assert_error(post(embeddings, api_key, {"model": "kb:manuals", "input": [1, 2]}), 400, "invalid_request")
    assert_error(post(embeddings, api_key, {"model": "kb:manuals", "input": ["x"] * 300}), 413, "too_many_inputs")
    assert_error(post(embeddings, api_key, {"model": "word2vec", "input": "x"}), 404, "model_not_found")

    # a revoked key stops at once
    revoked = api_key_create(user=user)[1]
    assert post(url, revoked, ask).status_code == 200
    api_key_revoke(user=user, key_id=ApiKey.objects.get(prefix=revoked[:10]).pk)
    assert_error(post(url, revoked, ask), 401, "invalid_api_key")

    # a key's own rate limit: 429 with Retry-After, in the client's terms
    limited = api_key_create(user=user, questions_per_minute=1)[1]
    assert post(url, limited, ask).status_code == 200
    response = post(url, limited, ask)
    assert_error(response, 429, "rate_limit_exceeded")
    assert 1 <= int(response.headers["Retry-After"]) <= 60


async def test_a_full_queue_is_503_and_a_lost_model_server_too(manual_kb, user, settings, async_client):
    """In-process (Django's async test client on this event loop): the queue is held full, then the model
    server is unreachable."""
    from asgiref.sync import sync_to_async

    from chat import llm
    from chat.generation import generation_queue
    from config.embedded_services import free_port

    raw = (await sync_to_async(api_key_create)(user=user))[1]
    body = {"model": "kb:manuals", "messages": [{"role": "user", "content": QUESTION}]}
    headers = {"Authorization": f"Bearer {raw}"}
    settings.DOCENT_MAX_QUEUE = 0
    queue = generation_queue(llm.get_backend().slots)
    queue.active = queue.slots  # every slot taken by someone else
    try:
        response = await async_client.post(
            "/v1/chat/completions", body, content_type="application/json", headers=headers
        )
        assert_error(response, 503, "model_busy")
        assert response.headers["Retry-After"] == "5"
    finally:
        queue.active = 0

    settings.DOCENT_LLM_URL = f"http://127.0.0.1:{free_port()}/v1"
    llm.reset_backends()
    try:
        response = await async_client.post(
            "/v1/chat/completions", body, content_type="application/json", headers=headers
        )
        assert_error(response, 503, "llm_unavailable")
    finally:
        llm.reset_backends()


def test_api_key_command_prints_a_working_key_once(manual_kb, user, capsys):
    call_command("api_key", "--user", "reader", "--kb", "manuals", "--json")
    printed = json.loads(capsys.readouterr().out)
    key = ApiKey.objects.get(prefix=printed["key"][:10])
    assert key.key_hash != printed["key"] and printed["key"] not in key.key_hash
    assert [kb.slug for kb in key.knowledge_bases.all()] == ["manuals"]
    with pytest.raises(Exception, match="no knowledge base"):
        call_command("api_key", "--user", "reader", "--kb", "missing")


def test_keys_page_shows_a_new_key_once_and_revokes_only_ones_own(user, django_user_model):
    from django.test import Client

    browser = Client()
    browser.force_login(user)
    page = browser.post("/account/api-keys/", {"name": "Slack bot"})
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    secret = page.context["created"]
    assert secret.startswith("dk-") and secret in page.content.decode()
    assert secret not in browser.get("/account/api-keys/").content.decode()
    key = ApiKey.objects.get(prefix=secret[:10], user=user)
    other = django_user_model.objects.create_user(username="other", password="other-password-1")
    outsider = Client()
    outsider.force_login(other)
    assert outsider.post(f"/account/api-keys/{key.pk}/revoke/").status_code == 404
    assert browser.post(f"/account/api-keys/{key.pk}/revoke/").status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None


NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_the_node_openai_client_streams_a_cited_answer(docent_url, api_key, manual_kb):
    """Another ecosystem's client: OpenAI's npm package (installed by `make setup`), streaming."""
    script = Path(__file__).resolve().parents[1] / "js" / "openai_client.mjs"
    done = subprocess.run(
        [NODE, str(script), f"{docent_url}/v1", api_key, "kb:manuals", QUESTION],  # type: ignore[list-item]
        capture_output=True,
        text=True,
        timeout=300,
        cwd=script.parents[2],
    )
    assert done.returncode == 0, done.stderr + server_log()
    got = json.loads(done.stdout)
    assert "kb:manuals" in got["models"]
    assert got["text"].strip() and got["finish"] in ("stop", "length")
    assert got["docent"]["answered"] is True and got["docent"]["sources"][0]["url"].startswith(docent_url)
    assert Message.objects.get(pk=got["docent"]["message_id"]).text == got["text"].strip()
    assert got["dimension"] == embedder.dimension(manual_kb.embedder)
    assert got["notFound"] == {"status": 404, "code": "model_not_found"}
