"""GET /healthz: every part Docent needs, each checked for real and named when it fails."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return f"error: {exc}"
    return "ok" if row else "error: the vector extension is missing (run migrations)"


def _redis() -> str:
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        return f"error: {exc}"
    return "ok"


def _workers() -> int:
    from config.celery import app

    try:
        replies = app.control.ping(timeout=1.0)
    except Exception:  # noqa: BLE001
        return 0
    return len(replies or [])


def _embedder() -> str:
    from kb import embedder, encoders

    status = encoders.check(embedder.default_name())
    return status if status == "ok" else f"error: {status}"


def _llm() -> str:
    from chat.llm import get_backend

    status = get_backend().health()
    return status if status == "ok" else f"error: {status}"


def healthz(request: HttpRequest) -> JsonResponse:
    report: dict[str, Any] = {"db": _database(), "redis": "error: not checked", "workers": 0}
    report["redis"] = _redis()
    report["workers"] = _workers() if report["redis"] == "ok" else 0
    report["llm"] = _llm()
    report["embedder"] = _embedder()
    failing = [k for k, v in report.items() if (k == "workers" and v == 0) or (k != "workers" and v != "ok")]
    if failing:
        report["failing"] = failing
    return JsonResponse(report, status=503 if failing else 200)
