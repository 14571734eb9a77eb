"""ASGI entry point: Django for HTTP, Channels for the chat websockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from chat.routing import websocket_urlpatterns  # noqa: E402

if os.environ.get("DOCENT_PRELOAD") == "1":
    # `make run` sets this so the first question does not pay for loading the models.
    import threading

    def _preload() -> None:
        from chat.llm import get_backend
        from kb import embedder
        from kb.ingest.nlp import ensure_spacy_model
        from kb.language import search_text
        from kb.models import KnowledgeBase

        # each base's question encoder (it also attributes answers to their sources)
        for name in {embedder.default_name(), *KnowledgeBase.objects.values_list("embedder", flat=True)}:
            if name:
                embedder.embed_query("warm up", name)
        backend = get_backend()
        if hasattr(backend, "load"):
            backend.load()
        ensure_spacy_model()
        search_text("预热", "zh")  # jieba loads its dictionary (~1 s) on first use
        from kb.refusal import zipf

        for language in ("en", "fr", "zh"):  # wordfreq reads each language's list (~0.2 s) on first use
            zipf("warm", language)

    threading.Thread(target=_preload, name="preload", daemon=True).start()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
