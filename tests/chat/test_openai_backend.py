"""The chat protocol with generation on an OpenAI-compatible server (`python -m llama_cpp.server`)."""

import subprocess
import sys
import time

import httpx
import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from chat import llm
from chat.llm.llama import model_path
from chat.models import Message
from chat.routing import websocket_urlpatterns
from config.embedded_services import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def llama_server():
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model_path()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--model_alias",
            "docent-test",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("llama_cpp.server did not start")
        time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(20)


@pytest.fixture
def remote_llm(llama_server, settings):
    settings.DOCENT_LLM_URL = llama_server
    settings.DOCENT_LLM_MODEL = "docent-test"
    llm.reset_backends()
    yield llm.get_backend()
    llm.reset_backends()


async def ask(communicator, kb, question):
    await communicator.send_json_to({"type": "ask", "question": question, "kb": kb, "conversation": None})


async def test_answer_streams_from_the_server(manual_kb, user, remote_llm):
    assert remote_llm.name == "openai-compatible" and remote_llm.health() == "ok"
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/chat/")
    communicator.scope["user"] = user
    assert (await communicator.connect())[0]
    await ask(communicator, manual_kb.slug, "How long does keep-warm hold the water?")
    events = []
    while not events or events[-1]["type"] not in ("done", "error"):
        events.append(await communicator.receive_json_from(timeout=120))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "sources" and kinds[-1] == "done" and "token" in kinds, kinds
    done = events[-1]
    # llama_cpp.server reports no usage when streaming: unknown is null, not a made-up number
    assert done["timings"]["prompt_tokens"] is None or done["timings"]["prompt_tokens"] > 100
    assert done["timings"]["completion_tokens"] > 0
    message = await Message.objects.aget(pk=done["message_id"])
    assert message.text and not message.stopped

    # stop mid-answer keeps the partial answer
    await ask(communicator, manual_kb.slug, "How do I descale the kettle?")
    assert (await communicator.receive_json_from(timeout=60))["type"] == "sources"
    assert (await communicator.receive_json_from(timeout=60))["type"] == "token"
    await communicator.send_json_to({"type": "stop"})
    events = []
    while not events or events[-1]["type"] not in ("done", "error"):
        events.append(await communicator.receive_json_from(timeout=60))
    assert events[-1]["type"] == "done" and events[-1]["stopped"] is True
    await communicator.disconnect()


async def test_unreachable_server_is_an_error_frame_and_the_socket_lives_on(manual_kb, user, settings):
    settings.DOCENT_LLM_URL = f"http://127.0.0.1:{free_port()}/v1"
    llm.reset_backends()
    try:
        communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/chat/")
        communicator.scope["user"] = user
        assert (await communicator.connect())[0]
        await ask(communicator, manual_kb.slug, "How long does keep-warm hold the water?")
        events = []
        while not events or events[-1]["type"] not in ("done", "error"):
            events.append(await communicator.receive_json_from(timeout=60))
        assert events[-1]["code"] == "llm_error" and "unreachable" in events[-1]["message"]
        await communicator.send_to(text_data="nonsense")
        assert (await communicator.receive_json_from())["code"] == "bad_json"
        await communicator.disconnect()
    finally:
        llm.reset_backends()


def test_a_model_server_scores_yes_against_no(remote_llm):
    from chat.prompts import PromptSource, build_check_messages

    sources = [PromptSource(n=1, title="Manual", page=3, heading="Reset", text="Hold the power button for 10 s.")]
    messages = build_check_messages(question="How do I reset the kettle?", sources=sources, budget_tokens=400)
    probability = remote_llm.yes_probability(messages)
    assert probability is not None and 0.0 <= probability <= 1.0
