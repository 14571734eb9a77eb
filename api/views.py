"""`/v1/...`: the OpenAI-compatible transport over `chat.answer.answer` and the embedders.

Each request: bearer key → its user and bases → the same answer path as the websocket (retrieval, refusal,
follow-ups, answer language, generation queue), written in OpenAI's format (api.protocol).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from api import protocol
from api.models import ApiConversation, ApiKey
from api.protocol import ApiError
from api.selectors import api_key_knowledge_base, api_key_knowledge_bases
from api.services import api_key_authenticate
from chat.answer import answer
from chat.events import AnswerError
from chat.limits import Limit, rate_limit_hit
from chat.models import QuestionLog
from kb import embedder, encoders
from kb.models import KnowledgeBase

logger = logging.getLogger(__name__)

# An API view: the request, the caller's key, then the URL's arguments; the decorated view takes the request and the
# URL's arguments (Django calls a coroutine function's view as async).
ApiView = Callable[..., Coroutine[Any, Any, HttpResponseBase]]


def error_response(error: ApiError) -> JsonResponse:
    response = JsonResponse(error.body(), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    if error.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="docent"'
    return response


def internal_error() -> ApiError:
    return ApiError(500, "Something went wrong; the error has been logged.", type="server_error", code="internal")


def bearer(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def api_view(*methods: str) -> Callable[[ApiView], ApiView]:
    """Method check, body size (413), bearer key (401) and OpenAI-shaped errors around an async view."""

    def decorate(view: ApiView) -> ApiView:
        @csrf_exempt
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            try:
                if request.method not in methods:
                    raise ApiError(
                        405, f"Use {' or '.join(methods)}.", type="invalid_request_error", code="method_not_allowed"
                    )
                length = request.headers.get("Content-Length", "0")
                if (int(length) if length.isdigit() else 0) > settings.DOCENT_API_MAX_BODY_BYTES:
                    raise ApiError(
                        413,
                        f"Requests are limited to {settings.DOCENT_API_MAX_BODY_BYTES} bytes.",
                        type="invalid_request_error",
                        code="request_too_large",
                    )
                raw = bearer(request)
                key = await sync_to_async(api_key_authenticate)(raw=raw) if raw else None
                if key is None:
                    raise ApiError(
                        401,
                        "Missing, unknown or revoked API key: send `Authorization: Bearer dk-...` (keys are made on "
                        "your API keys page or with `manage.py api_key`).",
                        type="invalid_request_error",
                        code="invalid_api_key",
                    )
                return await view(request, key, *args, **kwargs)
            except ApiError as exc:
                return error_response(exc)
            except Exception:
                logger.exception("API request failed")
                return error_response(internal_error())

        return wrapper

    return decorate


async def check_rate(key: ApiKey, kind: str, per_minute: int) -> None:
    """Count one request of `kind` against the key's per-minute budget (the widget's Redis sliding window);
    ApiError 429 with Retry-After when it is spent."""
    limit = Limit(name="key", bucket=f"api:{kind}:{key.pk}", limit=per_minute, window_s=60)
    exceeded = await rate_limit_hit([limit])
    if exceeded is not None:
        raise ApiError(
            429,
            f"Rate limit of {per_minute} requests a minute for this key reached; retry in {exceeded.retry_after_s} s.",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(exceeded.retry_after_s)},
        )


def answer_error(exc: AnswerError) -> ApiError:
    if exc.code == "busy":
        return ApiError(503, exc.message, type="server_error", code="model_busy", headers={"Retry-After": "5"})
    if exc.code == "llm_error":
        message = f"The chat model is unavailable: {exc.message}"
        return ApiError(503, message, type="server_error", code="llm_unavailable")
    return ApiError(500, exc.message, type="server_error", code=exc.code)


def model_item(knowledge_base: KnowledgeBase) -> dict[str, Any]:
    return {
        "id": protocol.MODEL_PREFIX + knowledge_base.slug,
        "object": "model",
        "created": int(knowledge_base.created_at.timestamp()),
        "owned_by": "docent",
        "name": knowledge_base.name,
    }


def _model_list(key: ApiKey) -> list[dict[str, Any]]:
    return [model_item(kb) for kb in api_key_knowledge_bases(key=key)]


@api_view("GET")
async def models(request: HttpRequest, key: ApiKey) -> HttpResponse:
    return JsonResponse({"object": "list", "data": await sync_to_async(_model_list)(key)})


@api_view("GET")
async def model(request: HttpRequest, key: ApiKey, model_id: str) -> HttpResponse:
    slug = protocol.knowledge_base_slug(model_id)
    knowledge_base = await sync_to_async(api_key_knowledge_base)(key=key, slug=slug)
    if knowledge_base is None:
        raise unknown_model(model_id)
    return JsonResponse(model_item(knowledge_base))


def unknown_model(name: str) -> ApiError:
    return ApiError(
        404,
        f"The model {name!r} does not exist or this key may not use it (GET /v1/models lists the ones it may).",
        type="invalid_request_error",
        code="model_not_found",
        param="model",
    )


def _link_conversation(conversation_id: int, key: ApiKey) -> None:
    ApiConversation.objects.get_or_create(conversation_id=conversation_id, defaults={"key": key})


@api_view("POST")
async def chat_completions(request: HttpRequest, key: ApiKey) -> HttpResponseBase:
    """OpenAI's chat.completions over a knowledge base (`model: "kb:SLUG"`), streamed or not."""
    data = protocol.read_json(request.body)
    chat = protocol.chat_request(
        data,
        max_question_chars=settings.DOCENT_MAX_QUESTION_CHARS,
        max_answer_tokens=settings.DOCENT_MAX_ANSWER_TOKENS,
    )
    knowledge_base = await sync_to_async(api_key_knowledge_base)(key=key, slug=chat.slug)
    if knowledge_base is None:
        raise unknown_model(data["model"])
    await check_rate(key, "chat", key.questions_per_minute or settings.DOCENT_API_QUESTIONS_PER_MINUTE)
    max_tokens = chat.max_tokens or settings.DOCENT_MAX_ANSWER_TOKENS
    events = answer(
        user=key.user,
        knowledge_base=knowledge_base,
        question=chat.question,
        history=chat.history,
        max_tokens=max_tokens,
        channel=QuestionLog.Channel.API,
    )
    base_url = request.build_absolute_uri("/").rstrip("/")
    reply = Reply(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=data["model"],
        base_url=base_url,
        max_tokens=max_tokens,
        include_usage=chat.include_usage,
    )
    # The first event decides the status: a full queue is a 503, not a stream that starts and fails.
    try:
        first = await anext(events)
    except AnswerError as exc:
        raise answer_error(exc) from exc
    if not chat.stream:
        try:
            async for _ in reply.collect(first, events):
                pass
        except AnswerError as exc:
            raise answer_error(exc) from exc
        finally:
            await events.aclose()
        assert reply.done is not None
        await sync_to_async(_link_conversation)(reply.done["conversation"], key)
        return JsonResponse(reply.completion(), json_dumps_params={"ensure_ascii": False})

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield protocol.sse(reply.chunk({"role": "assistant", "content": ""}))
            async for piece in reply.collect(first, events):
                yield piece
        except AnswerError as exc:
            yield protocol.sse(answer_error(exc).body())
        except Exception:
            logger.exception("API stream failed")
            yield protocol.sse(internal_error().body())
        finally:
            await events.aclose()
            if reply.done is not None:
                await sync_to_async(_link_conversation)(reply.done["conversation"], key)
        yield protocol.sse("[DONE]")

    response = StreamingHttpResponse(stream(), content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


class Reply:
    """One answer's events turned into OpenAI chunks (streaming) or kept for one chat.completion."""

    def __init__(
        self, *, id: str, created: int, model: str, base_url: str, max_tokens: int, include_usage: bool
    ) -> None:
        self.id = id
        self.created = created
        self.model = model
        self.base_url = base_url
        self.max_tokens = max_tokens
        self.include_usage = include_usage
        self.found: list[dict[str, Any]] = []  # the sources as `answer` gave them
        self.sources: list[dict[str, Any]] = []  # ... as the API sends them
        self.pieces: list[str] = []
        self.done: dict[str, Any] | None = None

    def chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        return protocol.chunk(id=self.id, created=self.created, model=self.model, delta=delta, finish=finish, **extra)

    async def collect(self, first: dict[str, Any], events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
        """Server-sent events for each answer event, from `first` on; the state is kept for `completion`."""
        event: dict[str, Any] | None = first
        while event is not None:
            kind = event["type"]
            if kind == "queued":
                yield f": queued {event['position']}\n\n".encode()  # an SSE comment: clients skip it
            elif kind == "sources":
                self.found = event["items"]
                self.sources = protocol.api_sources(self.found, base_url=self.base_url)
                yield protocol.sse(self.chunk({}, docent={"sources": self.sources}))
            elif kind == "token":
                self.pieces.append(event["text"])
                yield protocol.sse(self.chunk({"content": event["text"]}))
            elif kind == "done":
                self.done = event
                self.sources = protocol.api_sources(
                    self.found,
                    base_url=self.base_url,
                    citation_urls=event.get("citation_urls"),
                    cited=event["citations"],
                )
                final = self.chunk(
                    {},
                    protocol.finish_reason(event, self.max_tokens),
                    usage=protocol.usage(event),
                    docent=protocol.extension(event, self.sources),
                )
                yield protocol.sse(final)
                if self.include_usage:
                    yield protocol.sse({**self.chunk({}), "choices": [], "usage": protocol.usage(event)})
            event = await anext(events, None)

    def completion(self) -> dict[str, Any]:
        assert self.done is not None
        return protocol.completion(
            id=self.id,
            created=self.created,
            model=self.model,
            text="".join(self.pieces).strip(),
            done=self.done,
            sources=self.sources,
            max_tokens=self.max_tokens,
        )


def _embedder_for(key: ApiKey, name: str) -> str:
    """The embedder a request names: `kb:SLUG` → that base's (the key must be allowed to read it), else an
    installed embedder by name."""
    if name.startswith(protocol.MODEL_PREFIX):
        knowledge_base = api_key_knowledge_base(key=key, slug=name[len(protocol.MODEL_PREFIX) :])
        if knowledge_base is None:
            raise unknown_model(name)
        return knowledge_base.embedder or embedder.default_name()
    if name in encoders.NAMED and encoders.check(name) == "ok":
        return name
    raise unknown_model(name)


def _embed(name: str, texts: list[str], as_queries: bool) -> tuple[Any, int]:
    vectors = embedder.embed_texts(texts, name=name, as_queries=as_queries)
    return vectors, sum(embedder.count_tokens(t, name) for t in texts)


@api_view("POST")
async def embeddings(request: HttpRequest, key: ApiKey) -> HttpResponse:
    """OpenAI's embeddings with Docent's embedders, normalised vectors (cosine = dot product)."""
    data = protocol.read_json(request.body)
    req = protocol.embedding_request(
        data, max_inputs=settings.DOCENT_API_MAX_EMBED_INPUTS, max_chars=settings.DOCENT_API_MAX_EMBED_CHARS
    )
    name = await sync_to_async(_embedder_for)(key, req.model)
    await check_rate(key, "embeddings", settings.DOCENT_API_EMBEDDINGS_PER_MINUTE)
    vectors, tokens = await sync_to_async(_embed, thread_sensitive=False)(name, req.inputs, req.as_queries)
    return JsonResponse(protocol.embeddings(model=req.model, vectors=vectors, tokens=tokens, as_base64=req.base64))
