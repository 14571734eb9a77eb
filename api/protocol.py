"""The OpenAI wire format: requests checked and read, answers and errors written. No I/O here.

Reference: OpenAI's API reference for `POST /v1/chat/completions` (chat.completion, chat.completion.chunk,
server-sent events ending with `data: [DONE]`), `GET /v1/models`, `POST /v1/embeddings` and its error object
`{"error": {"message", "type", "param", "code"}}`.

Docent's extension: every answer carries a `docent` object (README, "API"):
`{"sources": [SOURCE...], "citations": [n...], "answered": bool, "conversation": id, "message_id": id,
"timings": {...}}`; the answer's message also carries `sources`. SOURCE is the websocket's source item with an
absolute `url` (a cited source's link highlights the quoted span) and `cited`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MODEL_PREFIX = "kb:"


class ApiError(Exception):
    """An error answered in OpenAI's shape with `status`; `headers` such as Retry-After go with it."""

    def __init__(
        self, status: int, message: str, *, type: str, code: str, param: str | None = None, headers: dict | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(message: str, *, code: str = "invalid_request", param: str | None = None) -> ApiError:
    return ApiError(400, message, type="invalid_request_error", code=code, param=param)


def read_json(body: bytes) -> dict[str, Any]:
    """The request's JSON object; ApiError 400 (`bad_json`) when it is not one."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise invalid(f"The request body is not valid JSON: {exc}", code="bad_json") from exc
    if not isinstance(data, dict):
        raise invalid("The request body must be a JSON object.", code="bad_json")
    return data


def knowledge_base_slug(model: Any) -> str:
    """`kb:SLUG` → SLUG; ApiError 400 for anything else (a name without the prefix is a mistake worth naming)."""
    if not isinstance(model, str) or not model:
        raise invalid("`model` is required: a knowledge base as `kb:SLUG` (GET /v1/models lists them).", param="model")
    if not model.startswith(MODEL_PREFIX) or len(model) == len(MODEL_PREFIX):
        raise ApiError(
            404,
            f"The model {model!r} does not exist: models are knowledge bases, named `kb:SLUG` (GET /v1/models).",
            type="invalid_request_error",
            code="model_not_found",
            param="model",
        )
    return model[len(MODEL_PREFIX) :]


def message_text(content: Any) -> str:
    """A message's text: a string, or the text parts of a content-part list (images and audio are refused)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise invalid("Only text content parts are supported.", param="messages")
            texts.append(part["text"])
        return "\n".join(texts)
    if content is None:
        return ""
    raise invalid("A message's `content` is a string or a list of text parts.", param="messages")


@dataclass(frozen=True)
class ChatRequest:
    slug: str
    question: str
    # the user's earlier questions, oldest first: the conversation as the client keeps it
    history: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None


def chat_request(data: dict[str, Any], *, max_question_chars: int, max_answer_tokens: int) -> ChatRequest:
    """Read a chat.completions request. The last message is the question (role `user`); earlier `user` messages
    are its conversation. System and assistant messages are accepted and not used: the knowledge base's own
    prompt decides how to answer. Sampling parameters (temperature, top_p, ...) are ignored: answers are
    greedy, as in the chat. `max_tokens` (or `max_completion_tokens`) above the server's limit is lowered to it.
    """
    slug = knowledge_base_slug(data.get("model"))
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("`messages` must be a non-empty list.", param="messages")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise invalid("Each message is an object with a `role` and `content`.", param="messages")
    if messages[-1]["role"] != "user":
        raise invalid("The last message must be the user's question.", param="messages")
    question = message_text(messages[-1].get("content")).strip()
    if not question:
        raise invalid("The question is empty.", code="empty_question", param="messages")
    if len(question) > max_question_chars:
        raise invalid(
            f"Questions are limited to {max_question_chars} characters.", code="question_too_long", param="messages"
        )
    earlier = [m for m in messages[:-1] if m["role"] == "user"]
    history = [message_text(m.get("content")).strip()[:max_question_chars] for m in earlier]
    n = data.get("n", 1)
    if n != 1:
        raise invalid("Only one choice (`n`: 1) is generated.", param="n")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("`stream` is true or false.", param="stream")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict):
        raise invalid("`stream_options` is an object.", param="stream_options")
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise invalid("`max_tokens` is a positive integer.", param="max_tokens")
        max_tokens = min(max_tokens, max_answer_tokens)
    return ChatRequest(
        slug=slug,
        question=question,
        history=[h for h in history if h][-3:],
        stream=stream,
        include_usage=bool(options.get("include_usage")),
        max_tokens=max_tokens,
    )


def api_sources(
    sources: list[dict[str, Any]],
    *,
    base_url: str,
    citation_urls: dict[int, str] | None = None,
    cited: list[int] | None = None,
) -> list[dict[str, Any]]:
    """The websocket's SOURCE items with absolute links; a cited one's link highlights its quote."""
    urls = citation_urls or {}
    cited_numbers = set(cited or [])
    return [{**s, "url": base_url + urls.get(s["n"], s["url"]), "cited": s["n"] in cited_numbers} for s in sources]


def finish_reason(done: dict[str, Any], max_tokens: int) -> str:
    return "length" if done["timings"].get("completion_tokens", 0) >= max_tokens else "stop"


def usage(done: dict[str, Any]) -> dict[str, int]:
    """Tokens as the chat model counted them; a refusal made without the model has none."""
    prompt = int(done["timings"].get("prompt_tokens") or 0)
    completion = int(done["timings"].get("completion_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def extension(done: dict[str, Any], sources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "sources": sources,
        "citations": done["citations"],
        "answered": done.get("answered", True),
        "conversation": done["conversation"],
        "message_id": done["message_id"],
        "timings": done["timings"],
    }


def completion(
    *,
    id: str,
    created: int,
    model: str,
    text: str,
    done: dict[str, Any],
    sources: list[dict[str, Any]],
    max_tokens: int,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None, "sources": sources},
                "finish_reason": finish_reason(done, max_tokens),
                "logprobs": None,
            }
        ],
        "usage": usage(done),
        "docent": extension(done, sources),
    }


def chunk(
    *, id: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        **extra,
    }


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event; `data: [DONE]` ends a stream."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str
    inputs: list[str]
    as_queries: bool
    base64: bool


def embedding_request(data: dict[str, Any], *, max_inputs: int, max_chars: int) -> EmbeddingRequest:
    """Read an embeddings request: `input` is a string or a list of strings (token arrays are not accepted);
    `input_type` (Docent's, as Cohere's and Voyage's APIs) is "document" (default) or "query": models with
    query/passage prefixes (e5) embed the two differently. `encoding_format` "float" or "base64"."""
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("`model` is required: `kb:SLUG` (that base's embedder) or an embedder's name.", param="model")
    raw = data.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
        raise invalid("`input` is a string or a non-empty list of strings.", param="input")
    if len(inputs) > max_inputs:
        raise ApiError(
            413,
            f"At most {max_inputs} inputs per request.",
            type="invalid_request_error",
            code="too_many_inputs",
            param="input",
        )
    if any(len(t) > max_chars for t in inputs):
        raise ApiError(
            413,
            f"Inputs are limited to {max_chars} characters each.",
            type="invalid_request_error",
            code="input_too_long",
            param="input",
        )
    if any(not t.strip() for t in inputs):
        raise invalid("An input is empty.", param="input")
    input_type = data.get("input_type", "document")
    if input_type not in ("document", "query"):
        raise invalid('`input_type` is "document" or "query".', param="input_type")
    encoding = data.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise invalid('`encoding_format` is "float" or "base64".', param="encoding_format")
    return EmbeddingRequest(model=model, inputs=inputs, as_queries=input_type == "query", base64=encoding == "base64")


def embeddings(*, model: str, vectors: np.ndarray, tokens: int, as_base64: bool) -> dict[str, Any]:
    """`vectors`: (n, dimension) float32. base64 is the little-endian float32 bytes, as OpenAI sends them."""

    def encode(vector: np.ndarray) -> Any:
        if as_base64:
            return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
        return [float(x) for x in vector]

    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
