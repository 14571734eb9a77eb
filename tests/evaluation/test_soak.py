"""`bench reliability`'s websocket soak at a small scale: 4 sockets for 15 s against a real web server with the
small chat model — one reads its answers, one leaves at each answer's first token, one stalls (neither reads nor
writes) and must be dropped by the server's keep-alive — and no socket is closed unexpectedly."""

from __future__ import annotations

import pytest

from evaluation.bench_chat import bench_user
from evaluation.bench_sockets import role_of, run_soak
from kb.ingest.pipeline import run_pipeline
from kb.services import document_create_from_path, knowledge_base_create
from tests.conftest import FIXTURES

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_small_soak_closes_no_socket_unexpectedly():
    knowledge_base = knowledge_base_create(slug="soak", name="Soak", owner=bench_user())
    path = FIXTURES / "travel-policy.en.txt"
    run_pipeline(document_create_from_path(knowledge_base=knowledge_base, path=path, enqueue=False).document)
    assert [role_of(i) for i in range(4)] == ["steady", "leaver", "steady", "staller"]
    lines: list[str] = []
    result = run_soak(
        sockets=4,
        seconds=15,
        interval_s=4,
        log=lines.append,
        knowledge_base=knowledge_base,
        questions=["How much is the daily meal allowance?", "Who approves travel?"],
    )
    assert result["unexpected_closes"] == 0, lines
    assert result["errors"] == {} and result["handshakes_failed"] == 0, lines
    assert result["asked"] >= 4, lines
    assert result["stalled_dropped"] == result["stalled"] == 1, lines  # the keep-alive freed the stalled socket
    assert result["answering_after"], lines
    assert result["rss_end_mb"] < 2 * result["rss_start_mb"], lines
