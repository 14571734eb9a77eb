"""A stalled websocket client is dropped by the server's keep-alive; a live one is kept (config.web)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest
from django.test import Client

from config.embedded_services import free_port
from config.web import command
from tests.conftest import BASE_DIR

pytestmark = pytest.mark.django_db(transaction=True)

PING_INTERVAL_S, PING_TIMEOUT_S = 1, 2


@pytest.fixture
def server():
    port = free_port()
    env = {
        **os.environ,
        "DOCENT_WS_PING_INTERVAL_S": str(PING_INTERVAL_S),
        "DOCENT_WS_PING_TIMEOUT_S": str(PING_TIMEOUT_S),
    }
    process = subprocess.Popen(command("127.0.0.1", port, env), cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            break
        except urllib.error.HTTPError:
            break  # 503 is an answer too: the server is up
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "the web server did not start"
            time.sleep(0.2)
    yield port
    process.terminate()
    process.wait(20)


def _session(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def test_a_client_that_stops_reading_is_dropped_after_the_ping_timeout(server, user):
    raw = socket.create_connection(("127.0.0.1", server))
    raw.sendall(
        (
            f"GET /ws/chat/ HTTP/1.1\r\nHost: 127.0.0.1:{server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://127.0.0.1:{server}\r\nCookie: sessionid={_session(user)}\r\n\r\n"
        ).encode()
    )
    raw.settimeout(10)
    head = b""
    while b"\r\n\r\n" not in head:
        head += raw.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head[:200]
    opened = time.monotonic()
    time.sleep(PING_INTERVAL_S + PING_TIMEOUT_S + 2)  # never reads, never answers a ping
    raw.settimeout(1)
    closed = False
    while not closed and time.monotonic() - opened < 15:
        try:
            closed = raw.recv(65536) == b""  # only the ping frames queued for us, then the end
        except ConnectionResetError:
            closed = True  # dropped with a TCP abort
        except TimeoutError:
            continue  # still open: keep waiting
    raw.close()
    assert closed, "the server kept a client that answers no ping"


def test_a_live_client_answers_pings_and_keeps_its_socket(server, user):
    from websockets.sync.client import connect

    with connect(
        f"ws://127.0.0.1:{server}/ws/chat/",
        origin=f"http://127.0.0.1:{server}",
        additional_headers={"Cookie": f"sessionid={_session(user)}"},
    ) as websocket:
        time.sleep(PING_INTERVAL_S + PING_TIMEOUT_S + 2)
        websocket.send(json.dumps({"type": "ask", "question": "", "kb": "none", "conversation": None}))
        reply = json.loads(websocket.recv(timeout=10))
        assert reply["type"] == "error"
