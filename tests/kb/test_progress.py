"""The knowledge-base page's live rows: pushed from the ingesting process through the channel layer."""

from __future__ import annotations

import io
import re

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from chat.routing import websocket_urlpatterns
from kb.ingest.pipeline import ingest
from kb.services import document_create, knowledge_base_create
from tests.conftest import BASE_DIR, readers_group, share

pytestmark = pytest.mark.django_db(transaction=True)


def _setup() -> tuple[str, int]:
    kb = knowledge_base_create(slug="live")
    share(kb, readers_group())
    data = (BASE_DIR / "kb" / "demo_source" / "lumen-k3-manual.en.md").read_bytes()
    document = document_create(knowledge_base=kb, content=io.BytesIO(data), filename="manual.md", enqueue=False)
    return kb.slug, document.document.pk


async def _connect(path: str, user):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    return communicator, await communicator.connect()


async def test_rows_are_pushed_for_each_stage_until_ready(user):
    slug, document_id = await database_sync_to_async(_setup)()
    communicator, (connected, _) = await _connect(f"/ws/kb/{slug}/", user)
    assert connected
    first = await communicator.receive_from(timeout=10)  # the unfinished document, sent on connect
    assert f'<tr id="doc-{document_id}"' in first and 'hx-swap-oob="true"' in first and 'data-status="queued"' in first

    await database_sync_to_async(ingest)(document_id)
    stages, percents = [], []
    while True:
        row = await communicator.receive_from(timeout=60)
        assert f'id="doc-{document_id}"' in row
        stages.append(re.search(r'data-stage="(\w*)"', row).group(1))
        percents.append(int(re.search(r'data-progress="(\d+)"', row).group(1)))
        if 'data-status="ready"' in row:
            break
    assert {"parse", "chunk", "embed", "store"} <= set(stages)
    assert percents == sorted(percents) and percents[-1] == 100
    await communicator.disconnect()


async def test_the_page_socket_needs_a_user_who_may_see_the_base(user):
    slug, _ = await database_sync_to_async(_setup)()
    _, (connected, code) = await _connect(f"/ws/kb/{slug}/", AnonymousUser())
    assert (connected, code) == (False, 4403)
    _, (connected, code) = await _connect("/ws/kb/no-such-base/", user)
    assert (connected, code) == (False, 4403)
