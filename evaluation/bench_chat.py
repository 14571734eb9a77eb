"""`manage.py bench chat|load`: answers through the real websocket path (daphne, Channels, the consumer,
retrieval, the generation queue) against bare `llama_cpp.Llama` on the same prompt in the same run.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from chat.llm import get_backend
from chat.llm.llama import model_path
from chat.prompts import STOP_SEQUENCES, build_check_messages, build_messages
from config import dev_servers
from evaluation.figures import figure, percentile
from kb import retrieval
from kb.models import KnowledgeBase
from kb.services import document_create_from_path, knowledge_base_create

if TYPE_CHECKING:  # llama_cpp loads its library on import: the benchmark imports it when it runs
    from llama_cpp.llama_types import ChatCompletionRequestMessage, CreateChatCompletionStreamResponse

QUESTIONS = [
    "How do I do a factory reset of the kettle?",
    "What does error code E4 mean?",
    "How often should I descale with hard water?",
    "How long does keep-warm hold the water?",
    "What is the capacity of the kettle?",
]
Log = Callable[[str], None]


def bench_user() -> Any:
    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"email": "bench@localhost"})
    return user


def bench_knowledge_base() -> KnowledgeBase:
    """The benchmark's base, with the benchmark user a reader of it (access control applies to it as to anyone)."""
    from kb.ingest.pipeline import run_pipeline
    from kb.models import Membership
    from kb.services import membership_set

    knowledge_base = knowledge_base_create(slug="bench-chat", name="Benchmark: chat")
    if not knowledge_base.documents.exists():
        path = settings.BASE_DIR / "kb" / "demo" / "lumen-k3-manual.en.pdf"
        run_pipeline(document_create_from_path(knowledge_base=knowledge_base, path=path, enqueue=False).document)
    user = bench_user()
    if not Membership.objects.filter(knowledge_base=knowledge_base, user=user).exists():
        membership_set(knowledge_base=knowledge_base, role="reader", actor=None, user=user)
    return knowledge_base


def session_cookie(user: Any = None) -> str:
    """A `Cookie` header value signing in `user` (default: the benchmark user)."""
    user = user or bench_user()
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


@contextmanager
def docent_server(extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """The web server (config.dev_servers) on a free port, with the models loaded at start; yields HOST:PORT."""
    with dev_servers.docent_server({"DOCENT_PRELOAD": "1", **(extra_env or {})}) as server:
        yield server.host


async def ask_over_websocket(host: str, cookie: str, kb: str, question: str) -> dict[str, Any]:
    """One question over a fresh socket, timed as its user sees it.

    tokens/s is the answer's tokens after the first over the time from the first `token` frame to the last:
    frames may carry several tokens (DOCENT_STREAM_FLUSH_MS), so tokens are the server's own count.
    """
    import websockets

    started = time.perf_counter()
    result: dict[str, Any] = {"positions": [], "frames": 0, "ttft_ms": None, "error": None}
    first = last = None
    async with websockets.connect(
        f"ws://{host}/ws/chat/", additional_headers={"Cookie": cookie, "Origin": f"http://{host}"}, max_size=2**22
    ) as socket:
        await socket.send(json.dumps({"type": "ask", "question": question, "kb": kb, "conversation": None}))
        while True:
            event = json.loads(await socket.recv())
            if event["type"] == "queued":
                result["positions"].append(event["position"])
            elif event["type"] == "token":
                result["frames"] += 1
                last = time.perf_counter()
                if first is None:
                    first = last
                    result["ttft_ms"] = (first - started) * 1000
            elif event["type"] == "done":
                result["done"] = event
                break
            elif event["type"] == "error":
                result["error"] = event["code"]
                break
    ended = time.perf_counter()
    result["total_ms"] = (ended - started) * 1000
    tokens = result.get("done", {}).get("timings", {}).get("completion_tokens", 0)
    result["tokens"] = tokens
    if first is not None and last is not None:
        # Citations and the saved message come after the text: reported apart from the streaming rate.
        result["done_after_text_ms"] = (ended - last) * 1000
        if tokens > 1 and last > first:
            result["decode_s"] = last - first
            result["tokens_per_s"] = (tokens - 1) / (last - first)
    return result


_api_client: Any = None


def ask_over_api(host: str, key: str, kb: str, question: str) -> dict[str, Any]:
    """One question through `POST /v1/chat/completions` with `stream: true`, timed as a client sees it: TTFT at
    the first event with text, tokens/s over the answer's tokens after the first (`usage`, the server's count).

    One HTTP client for the run, as an API client keeps one (making an httpx client builds an SSL context,
    ~25 ms that are the client's, not the server's); a new connection per question, as the websocket opens one.
    """
    import httpx

    global _api_client
    if _api_client is None:
        _api_client = httpx.Client(timeout=300, limits=httpx.Limits(max_keepalive_connections=0))
    started = time.perf_counter()
    result: dict[str, Any] = {"frames": 0, "ttft_ms": None, "error": None, "tokens": 0}
    first = last = None
    body = {"model": f"kb:{kb}", "messages": [{"role": "user", "content": question}], "stream": True}
    with _api_client.stream(
        "POST", f"http://{host}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as response:
        if response.status_code != 200:
            response.read()
            result["error"] = f"HTTP {response.status_code}: {response.text[:200]}"
            return result
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                result["error"] = chunk["error"]["code"]
                break
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                result["frames"] += 1
                last = time.perf_counter()
                if first is None:
                    first = last
                    result["ttft_ms"] = (first - started) * 1000
            if chunk.get("usage") and chunk["choices"]:
                result["tokens"] = chunk["usage"]["completion_tokens"]
                result["done"] = chunk["docent"]
    ended = time.perf_counter()
    result["total_ms"] = (ended - started) * 1000
    tokens = result["tokens"]
    if first is not None and last is not None and tokens > 1 and last > first:
        result["decode_s"] = last - first
        result["tokens_per_s"] = (tokens - 1) / (last - first)
    return result


def api_key_for_bench() -> str:
    from api.services import api_key_create

    return api_key_create(user=bench_user(), name="bench chat", questions_per_minute=100000)[1]


class BareModel:
    """Bare llama_cpp.Llama, loaded and configured as the product loads its model, kept for the whole run
    (the product's model also keeps its context, and with it the prompt prefix, between questions)."""

    def __init__(self) -> None:
        from llama_cpp import Llama

        self.llama = Llama(
            model_path=str(model_path()),
            n_ctx=settings.DOCENT_LLM_CONTEXT,
            n_threads=settings.DOCENT_LLM_THREADS or os.cpu_count() or 1,
            n_batch=512,
            verbose=False,
        )

    def generate(
        self, messages: list[dict[str, str]], max_tokens: int, check: list[dict[str, str]] | None = None
    ) -> dict[str, float]:
        """`check`: the answerability question the product asks first (one token read), when it asks one."""
        # the product's prompts are plain role/content dicts, which is what llama-cpp's message TypedDicts describe
        started = time.perf_counter()
        if check is not None:
            self.llama.create_chat_completion(
                messages=cast("list[ChatCompletionRequestMessage]", check), max_tokens=1, temperature=0.0
            )
        first = None
        count = 0
        chunks = self.llama.create_chat_completion(
            messages=cast("list[ChatCompletionRequestMessage]", messages),
            max_tokens=max_tokens,
            temperature=0.0,
            repeat_penalty=1.1,
            stop=STOP_SEQUENCES,
            stream=True,
        )
        for chunk in cast("Iterator[CreateChatCompletionStreamResponse]", chunks):  # stream=True: chunks
            if chunk["choices"][0].get("delta", {}).get("content"):
                count += 1
                first = first or time.perf_counter()
        end = time.perf_counter()
        first = first or end
        return {
            "ttft_ms": (first - started) * 1000,
            "tokens_per_s": (count - 1) / (end - first) if count > 1 and end > first else 0.0,
            "decode_s": end - first if count > 1 else 0.0,
            "tokens": count,
        }

    def close(self) -> None:
        self.llama.close()


def prompt_for(
    knowledge_base: KnowledgeBase, question: str
) -> tuple[list[dict[str, str]], list[dict[str, str]] | None]:
    """The answer's messages as the product builds them, and the answerability check's when the product asks it."""
    from chat.answer import prompt_sources
    from chat.generation import answer_check_threshold, source_token_budget

    found = retrieval.search(knowledge_base=knowledge_base, question=question)
    backend = get_backend()
    budget = source_token_budget(settings.DOCENT_MAX_ANSWER_TOKENS)
    sources = prompt_sources(found.hits)
    messages = build_messages(
        question=question,
        sources=sources,
        language=found.language,
        budget_tokens=budget,
        count_tokens=backend.count_tokens,
    )
    check = None
    if answer_check_threshold(backend) is not None:
        check = build_check_messages(
            question=question, sources=sources, budget_tokens=budget, count_tokens=backend.count_tokens
        )
    return messages, check


def bench_chat(*, log: Log, rounds: int = 2) -> dict[str, Any]:
    from chat.generation import answer_check_threshold

    knowledge_base = bench_knowledge_base()
    cookie = session_cookie()
    max_tokens = settings.DOCENT_MAX_ANSWER_TOKENS
    prompts = {question: prompt_for(knowledge_base, question) for question in QUESTIONS}
    api_key = api_key_for_bench()
    product: list[dict[str, Any]] = []
    through_api: list[dict[str, Any]] = []
    bare: list[dict[str, float]] = []
    model = BareModel()
    try:
        # Every question is asked twice over the rounds: the answer cache would serve the second asking.
        with docent_server({"DOCENT_ANSWER_CACHE": "0"}) as host:
            asyncio.run(ask_over_websocket(host, cookie, knowledge_base.slug, "warm up: what is the capacity?"))
            ask_over_api(host, api_key, knowledge_base.slug, "warm up: what is the capacity?")
            model.generate(prompts[QUESTIONS[-1]][0], 8)
            # Websocket, API and bare take turns question by question, so a slower spell of the machine hits all.
            for _ in range(rounds):
                for i, question in enumerate(QUESTIONS):
                    product.append(asyncio.run(ask_over_websocket(host, cookie, knowledge_base.slug, question)))
                    # Another question than the websocket's: the same prompt twice in a row would be read from
                    # llama.cpp's prompt cache. Over the rounds each path asks every question equally often.
                    other = QUESTIONS[(i + 2) % len(QUESTIONS)]
                    through_api.append(ask_over_api(host, api_key, knowledge_base.slug, other))
                    bare.append(model.generate(prompts[question][0], max_tokens, check=prompts[question][1]))
                    p, a, b = product[-1], through_api[-1], bare[-1]
                    log(
                        f"  websocket: ttft {p['ttft_ms'] or 0:.0f} ms, {p.get('tokens_per_s', 0):.1f} tok/s "
                        f"({p['tokens']} tokens, {p['frames']} frames) | "
                        f"api: ttft {a['ttft_ms'] or 0:.0f} ms, {a.get('tokens_per_s', 0):.1f} tok/s | "
                        f"bare: ttft {b['ttft_ms']:.0f} ms, {b['tokens_per_s']:.1f} tok/s ({b['tokens']} tokens)"
                    )
    finally:
        model.close()
    failed = [r["error"] for r in product + through_api if r.get("error")]
    if failed:
        raise RuntimeError(f"{len(failed)} answers ended in error frames: {sorted(set(failed))}")
    prompt_tokens = [r["done"]["timings"]["prompt_tokens"] for r in product if "done" in r]

    def rate(runs: list[dict[str, Any]]) -> float:
        # All answers' tokens over all their decoding time: a 12-token answer weighs what it holds.
        seconds = sum(r.get("decode_s", 0.0) for r in runs if r["tokens"] > 1)
        return sum(r["tokens"] - 1 for r in runs if r["tokens"] > 1 and r.get("decode_s")) / seconds if seconds else 0.0

    bare_ttft = statistics.median(b["ttft_ms"] for b in bare)
    return {
        "name": "chat",
        "figures": {
            "ttft_ms": figure(
                statistics.median(r["ttft_ms"] for r in product), "ms", statistics.median(b["ttft_ms"] for b in bare)
            ),
            "tokens_per_s": figure(rate(product), "tokens/s", rate(bare)),
            "done_after_text_ms": figure(statistics.median(r["done_after_text_ms"] for r in product), "ms", None),
            "api_ttft_ms": figure(statistics.median(r["ttft_ms"] for r in through_api), "ms", bare_ttft),
            "api_tokens_per_s": figure(rate(through_api), "tokens/s", rate(bare)),
        },
        "conditions": {
            "questions": len(QUESTIONS) * rounds,
            "path": "websocket client -> daphne -> Channels consumer -> retrieval -> queue -> llama.cpp thread",
            "api_path": "httpx client -> daphne -> /v1/chat/completions (stream) -> the same answer path",
            "baseline": "bare llama_cpp.Llama, same prompt (same retrieved sources), same settings; when the product "
            "asks the answerability question first, bare asks it too (one token)",
            "answer_check": answer_check_threshold(get_backend()),
            "check_ms_median": statistics.median(r["done"]["timings"].get("check_ms", 0.0) for r in product),
            "refused": sum(1 for r in product + through_api if not r["done"].get("answered", True)),
            "model": model_path().name,
            "sources": settings.DOCENT_TOP_K,
            "prompt_sources": settings.DOCENT_PROMPT_SOURCES,
            "prompt_tokens_median": statistics.median(prompt_tokens) if prompt_tokens else None,
            "retrieval_ms_median": statistics.median(r["done"]["timings"]["retrieval_ms"] for r in product),
            "ttft_minus_bare_ms_median": round(
                statistics.median(p["ttft_ms"] - b["ttft_ms"] for p, b in zip(product, bare, strict=True)), 1
            ),
            # each API answer against bare's answer to the same question in the same round
            "api_ttft_minus_bare_ms_median": round(
                statistics.median(
                    a["ttft_ms"] - bare[k - k % len(QUESTIONS) + (k + 2) % len(QUESTIONS)]["ttft_ms"]
                    for k, a in enumerate(through_api)
                ),
                1,
            ),
            # the same answers' pace on the server's generating thread, before any frame is sent
            "model_tokens_per_s_median": statistics.median(
                r["done"]["timings"].get("model_tokens_per_s", 0.0) for r in product
            ),
            "answer_tokens": sum(r["tokens"] for r in product),
            "token_frames": sum(r["frames"] for r in product),
            "stream_flush_ms": settings.DOCENT_STREAM_FLUSH_MS,
            "max_answer_tokens": max_tokens,
            "cpu_cores": os.cpu_count(),
        },
    }


# Questions of the repeated-question workload that are asked once each (QUESTIONS are the repeated ones).
FRESH_QUESTIONS = [
    "How do I pair the kettle with the Brightwater app?",
    "Which temperature presets does the kettle offer?",
    "What should I do before the first boil?",
    "How do I clean the kettle every day?",
    "How long is the warranty of the kettle?",
    "How do I contact customer support?",
    "What does error code E1 mean?",
    "What does error code E2 mean?",
    "What comes in the box with the kettle?",
    "Which safety warnings apply to the kettle?",
    "What temperature should I use for green tea?",
    "Why does the kettle switch off before the water boils?",
    "Can I descale the kettle with vinegar?",
    "What does the keep-warm button do?",
    "Why can the app not find my kettle?",
    "Can I boil less than the minimum amount of water?",
]


def load_questions(clients: int, repeat_share: float, fresh: Iterator[str]) -> list[str]:
    """One round's questions: without `repeat_share`, QUESTIONS in turn (as ever); with it, that share of the
    round repeats QUESTIONS (the first of them, answered before the rounds) and the rest are asked for the first
    time in the run, in an order shuffled with a fixed seed."""
    if not repeat_share:
        return [QUESTIONS[i % len(QUESTIONS)] for i in range(clients)]
    repeated = round(clients * repeat_share)
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(repeated)]
    questions += [next(fresh) for _ in range(clients - repeated)]
    random.Random(clients).shuffle(questions)
    return questions


def fresh_questions() -> Iterator[str]:
    """FRESH_QUESTIONS, then the same with a numbered suffix, never one twice."""
    yield from FRESH_QUESTIONS
    for n in itertools.count(2):
        for question in FRESH_QUESTIONS:
            yield f"{question} (case {n})"


async def _load_round(host: str, cookie: str, kb: str, questions: list[str]) -> list[dict[str, Any]]:
    results = await asyncio.gather(
        *(ask_over_websocket(host, cookie, kb, q) for q in questions), return_exceptions=True
    )
    failed = {"positions": [], "tokens": 0, "ttft_ms": None, "total_ms": 0.0}
    return [r if isinstance(r, dict) else {**failed, "error": repr(r)} for r in results]


def _is_cached(result: dict[str, Any]) -> bool:
    return bool(result.get("done", {}).get("timings", {}).get("cached"))


def _ttft_split(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Share served from the answer cache and TTFT p50/p95 of cached and of uncached answers (ms)."""
    out: dict[str, Any] = {"cached": sum(1 for r in results if _is_cached(r))}
    out["cache_share"] = round(out["cached"] / len(results), 3) if results else 0.0
    for name, cached in (("cached", True), ("uncached", False)):
        ttfts = [r["ttft_ms"] for r in results if r["ttft_ms"] is not None and _is_cached(r) == cached]
        out[f"ttft_{name}_p50_ms"] = round(statistics.median(ttfts), 1) if ttfts else None
        out[f"ttft_{name}_p95_ms"] = round(percentile(ttfts, 0.95), 1) if ttfts else None
    return out


def bench_load(*, clients: list[int], log: Log, max_tokens: int = 32, repeat_share: float = 0.0) -> dict[str, Any]:
    """Rounds of `clients` concurrent questions over the websocket. `repeat_share` (0-1): that share of each
    round repeats questions answered before the rounds (the answer cache on), the rest asked for the first time;
    0 (default) is the uncached workload, the answer cache off."""
    if not 0.0 <= repeat_share <= 1.0:
        raise ValueError("repeat_share is a fraction between 0 and 1")
    knowledge_base = bench_knowledge_base()
    cookie = session_cookie()
    figures: dict[str, Any] = {}
    per_n: dict[str, Any] = {}
    # One benchmark user opens every socket: its per-user limits are lifted for this server only.
    server_env = {
        "DOCENT_MAX_ANSWER_TOKENS": str(max_tokens),
        "DOCENT_MAX_QUEUE": str(max(clients) + 8),
        "DOCENT_SOCKETS_PER_USER": str(max(clients) + 8),
        "DOCENT_QUESTIONS_PER_MINUTE_USER": "100000",
        "DOCENT_QUESTIONS_PER_MINUTE_IP": "100000",
        "DOCENT_ANSWER_CACHE": "1" if repeat_share else "0",
    }
    fresh = fresh_questions()
    repeated = QUESTIONS[: min(len(QUESTIONS), round(max(clients) * repeat_share))]
    everything: list[dict[str, Any]] = []
    seeds: list[dict[str, Any]] = []
    if repeat_share:
        from kb.services import knowledge_base_content_changed

        # Answers stored by an earlier run are not this run's: a new content version leaves them behind.
        knowledge_base_content_changed(knowledge_base_id=knowledge_base.pk)
    with docent_server(server_env) as host:
        asyncio.run(ask_over_websocket(host, cookie, knowledge_base.slug, "warm up: what is the capacity?"))
        if repeat_share:
            # The repeated questions are answered once first, one at a time: the cache holds them.
            for question in repeated:
                seeds.append(asyncio.run(ask_over_websocket(host, cookie, knowledge_base.slug, question)))
            log(f"  seeded {len(seeds)} questions: ttft {[round(r['ttft_ms'] or 0) for r in seeds]} ms")
        for n in clients:
            started = time.perf_counter()
            questions = load_questions(n, repeat_share, fresh)
            results = asyncio.run(_load_round(host, cookie, knowledge_base.slug, questions))
            everything.extend(results)
            wall = time.perf_counter() - started
            answered = sum(1 for r in results if "done" in r)
            dropped = n - answered
            # Positions a client sees only ever count down, and never past the number of clients.
            positions_ok = all(
                r["positions"] == sorted(r["positions"], reverse=True) and all(1 <= p < n for p in r["positions"])
                for r in results
            )
            ttfts = [r["ttft_ms"] for r in results if r["ttft_ms"] is not None]
            totals = [r["total_ms"] for r in results]
            per_n[str(n)] = {
                "answered": answered,
                "dropped": dropped,
                "queue_positions_ok": positions_ok,
                "ttft_p50_ms": round(statistics.median(ttfts), 1) if ttfts else None,
                "ttft_p95_ms": round(percentile(ttfts, 0.95), 1) if ttfts else None,
                "total_p50_ms": round(statistics.median(totals), 1),
                "total_p95_ms": round(percentile(totals, 0.95), 1),
                "wall_s": round(wall, 1),
            }
            if repeat_share:
                per_n[str(n)].update(_ttft_split(results))
            log(f"  {n} clients: {per_n[str(n)]}")
    largest = per_n[str(max(clients))]
    figures["answered"] = figure(largest["answered"], "answers", max(clients))
    figures["dropped"] = figure(largest["dropped"], "answers", None)
    figures["ttft_p50_ms"] = figure(largest["ttft_p50_ms"] or 0.0, "ms", per_n[str(min(clients))]["ttft_p50_ms"])
    figures["ttft_p95_ms"] = figure(largest["ttft_p95_ms"] or 0.0, "ms", per_n[str(min(clients))]["ttft_p95_ms"])
    conditions: dict[str, Any] = {
        "per_clients": per_n,
        "max_answer_tokens": max_tokens,
        "model_slots": 1,
        "baseline": f"the same figure with {min(clients)} client(s)",
        "answer_cache": bool(repeat_share),
        "cpu_cores": os.cpu_count(),
    }
    if repeat_share:
        split = _ttft_split(everything)
        bare = bare_ttfts(knowledge_base, repeated, max_tokens)
        bare_p50, bare_p95 = statistics.median(bare), percentile(bare, 0.95)
        figures["cache_share"] = figure(split["cache_share"], "fraction", repeat_share)
        for name in ("cached", "uncached"):
            for q, bare_q in (("p50", bare_p50), ("p95", bare_p95)):
                figures[f"ttft_{name}_{q}_ms"] = figure(split[f"ttft_{name}_{q}_ms"] or 0.0, "ms", bare_q)
        conditions.update(
            repeat_share=repeat_share,
            all_rounds=split,
            seeded=repeated,
            seed_ttft_ms=[round(r["ttft_ms"] or 0, 1) for r in seeds],
            cache_baseline="bare llama_cpp.Llama answering the repeated questions' prompts one at a time "
            "(TTFT p50/p95), after the rounds, with the product's answerability check when it asks one",
        )
    return {"name": "load", "figures": figures, "conditions": conditions}


def bare_ttfts(knowledge_base: KnowledgeBase, questions: list[str], max_tokens: int) -> list[float]:
    """Bare llama_cpp.Llama's time to first token on `questions`' prompts as the product builds them (ms)."""
    model = BareModel()
    try:
        ttfts = []
        prompts = [prompt_for(knowledge_base, question) for question in questions]
        model.generate(prompts[-1][0], 4)  # loading and the first evaluation are not a first token
        for messages, check in prompts:
            ttfts.append(model.generate(messages, max_tokens, check=check)["ttft_ms"])
        return ttfts
    finally:
        model.close()
