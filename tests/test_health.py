import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


def test_healthz_ok_with_a_worker(client, celery_worker):
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body == {"db": "ok", "redis": "ok", "workers": body["workers"], "llm": "ok", "embedder": "ok"}
    assert body["workers"] >= 1


def test_healthz_names_the_failing_part(client):
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0", DOCENT_LLM_MODEL="/nonexistent/model.gguf"):
        from chat import llm

        llm.reset_backends()
        try:
            response = client.get("/healthz")
        finally:
            llm.reset_backends()
    assert response.status_code == 503
    body = response.json()
    assert body["redis"].startswith("error") and body["llm"].startswith("error")
    assert {"redis", "llm", "workers"} <= set(body["failing"])
