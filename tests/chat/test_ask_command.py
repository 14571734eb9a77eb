import json
import subprocess
import sys

import pytest

from chat.models import QuestionLog
from tests.conftest import BASE_DIR

pytestmark = pytest.mark.django_db(transaction=True)


def ask(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "ask", *args], cwd=BASE_DIR, capture_output=True, text=True, timeout=300
    )


def test_ask_json_cites_the_document_that_holds_the_answer(manual_kb):
    result = ask("How long does keep-warm hold the water?", "--kb", manual_kb.slug, "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["answer"] and payload["answered"] is True
    top = payload["sources"][0]
    assert top["title"] == "lumen-k3-manual.en" and "30 minutes" in top["text"]
    # Citations name given sources only (a 135M model may cite nothing when its answer strays).
    assert set(payload["citations"]) <= {s["n"] for s in payload["sources"]}
    assert {"retrieval_ms", "ttft_ms", "total_ms", "tokens_per_s"} <= set(payload["timings"])
    log = QuestionLog.objects.get(knowledge_base=manual_kb)
    assert (log.channel, log.question, log.user_id) == ("command", "How long does keep-warm hold the water?", None)


def test_ask_retrieve_only_skips_the_model(manual_kb):
    result = ask("Hotel allowance in capital cities", "--kb", manual_kb.slug, "--json", "--retrieve-only")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["answer"] is None
    assert "180 euros" in payload["sources"][0]["text"]


def test_ask_unknown_kb_fails_clearly(manual_kb):
    result = ask("anything", "--kb", "nope")
    assert result.returncode != 0 and "no knowledge base 'nope'" in result.stderr
