"""ASGI entry point: Django for HTTP, Channels for the chat websockets."""

import os

# Before numpy loads: OpenBLAS's threads spin after each matrix product (an answer's attribution), on the cores
# the chat model decodes on. With its default pool the web process's model ran at 0.37× bare llama.cpp's pace
# (SmolLM2, `bench chat`), with one BLAS thread 0.96-0.99×; the products here are a few sentences' vectors.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

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

    # Nothing here imports torch (spaCy and unstructured do; documents are parsed by workers): with torch loaded
    # after the chat model, its libgomp (the same soname as llama.cpp's) slowed decoding to ~0.5-0.7x bare.
    def _preload() -> None:
        from chat.llm import get_backend
        from kb import embedder
        from kb.language import search_text
        from kb.models import KnowledgeBase

        # each base's question encoder (it also attributes answers to their sources)
        for name in {embedder.default_name(), *KnowledgeBase.objects.values_list("embedder", flat=True)}:
            if name:
                embedder.embed_query("warm up", name)
        backend = get_backend()
        if hasattr(backend, "warm_up"):
            from chat.generation import generation_executor

            # On the thread that will generate: llama.cpp's OpenMP team belongs to the thread that first runs
            # it, and with the model loaded here on the preload thread the web process's answers were decoded
            # at 0.6-0.7x bare llama.cpp's pace in some runs of `bench chat` (a second team makes libgomp
            # throttle both; see README, "The chat model's threads in the web process").
            generation_executor(backend.slots).submit(backend.warm_up).result()
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
