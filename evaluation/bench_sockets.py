"""The socket half of `manage.py bench reliability`, against the real web server (config.dev_servers):

- Rate limits: the chat socket, the widget socket and the API's chat completions, each sent requests for one
  minute at a steady `factor` times its per-minute quota, on an empty knowledge base (every question is
  refused by retrieval without the model, so only the limits and the transport are measured). Each request is
  judged against the limiter's rule replayed on the client's clock: chat.limits counts every request (on the
  chat socket, every valid question), refused ones too, in a sliding 60 s window. Figures: the share of
  over-quota requests refused (want 1.0) and of in-quota ones (want 0).
- Soak: N sockets for M minutes, each asking every `interval_s` (one answer at a time), with the small chat
  model: most read their answers; one in five closes its socket at the first token and opens a new one for
  the next question; one in ten asks once and then neither reads nor writes (a sleeping laptop), which the
  server must drop after its keep-alive ping goes unanswered. Figures: unexpected closes (want 0), error
  frames, answers, stalled sockets dropped, server RSS after warm-up and at the end.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from config.dev_servers import DocentServer

Log = Callable[[str], None]
WINDOW_S = 60


# ---- rate limits ------------------------------------------------------------------------------------------


@dataclass
class Sent:
    sent: float  # time.time() when sent
    replied: float  # time.time() when the answer (or refusal) arrived
    refused: bool


def expected_refusals(requests: list[Sent], quota: int) -> list[bool | None]:
    """Whether each request should be refused under chat.limits' sliding window, replayed on the client's clock
    (None: the server's decision moment, somewhere between sending and the reply, straddles a window edge, so
    either is right): every request counted, refused when more than `quota` fall in the 60 s before it (itself
    included).
    """
    verdicts: list[bool | None] = []
    for i, request in enumerate(requests):
        earlier = requests[:i]
        counts = [
            1 + sum(1 for e in earlier if t - WINDOW_S < (e.sent + e.replied) / 2 <= t)
            for t in (request.sent, request.replied)
        ]
        decisions = {count > quota for count in counts}
        verdicts.append(decisions.pop() if len(decisions) == 1 else None)
    return verdicts


def refusal_shares(requests: list[Sent], quota: int) -> dict[str, Any]:
    """Shares of over-quota requests refused (want 1.0) and of in-quota requests refused (want 0.0)."""
    expected = expected_refusals(requests, quota)
    over = [r for r, e in zip(requests, expected, strict=True) if e is True]
    within = [r for r, e in zip(requests, expected, strict=True) if e is False]
    return {
        "requests": len(requests),
        "quota_per_minute": quota,
        "over_quota": len(over),
        "over_quota_refused": sum(r.refused for r in over) / len(over) if over else None,
        "in_quota": len(within),
        "in_quota_refused": sum(r.refused for r in within) / len(within) if within else None,
        "undecidable": expected.count(None),
    }


async def _paced(count: int, spacing_s: float, one: Callable[[], Any]) -> list[Sent]:
    """`count` requests, one every `spacing_s` (a late one goes at once; one at a time)."""
    results: list[Sent] = []
    start = time.monotonic()
    for i in range(count):
        delay = start + i * spacing_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sent = time.time()
        refused = await one()
        results.append(Sent(sent=sent, replied=time.time(), refused=refused))
    return results


async def _socket_answer(socket: Any, frame: dict[str, Any]) -> bool:
    """Send a question; True when it is refused with `rate_limited`, False when it is answered."""
    await socket.send(json.dumps(frame))
    while True:
        event = json.loads(await asyncio.wait_for(socket.recv(), 120))
        if event["type"] == "done":
            return False
        if event["type"] == "error":
            if event["code"] == "rate_limited":
                return True
            raise RuntimeError(f"unexpected error frame {event}")


async def _rate_limits(
    server: DocentServer, *, cookie: str, slug: str, widget: dict[str, Any], api_key: str, factor: float
) -> dict[str, dict[str, Any]]:
    import httpx
    import websockets

    question = "How do I configure AppArmor profiles?"  # the base is empty: refused without the model
    headers = {"Cookie": cookie, "Origin": server.url}

    async def chat() -> list[Sent]:
        quota = settings.DOCENT_QUESTIONS_PER_MINUTE_USER
        async with websockets.connect(f"ws://{server.host}/ws/chat/", additional_headers=headers) as socket:
            frame = {"type": "ask", "question": question, "kb": slug, "conversation": None}
            return await _paced(
                round(factor * quota), WINDOW_S / (factor * quota), lambda: _socket_answer(socket, frame)
            )

    async def widget_socket() -> list[Sent]:
        quota = widget["quota"]
        url = f"ws://{server.host}/ws/widget/{widget['key']}/?s={widget['session']}"
        async with websockets.connect(url, additional_headers={"Origin": server.url}) as socket:
            frame = {"type": "ask", "question": question, "conversation": None}
            return await _paced(
                round(factor * quota), WINDOW_S / (factor * quota), lambda: _socket_answer(socket, frame)
            )

    async def api() -> list[Sent]:
        quota = settings.DOCENT_API_QUESTIONS_PER_MINUTE
        body = {"model": f"kb:{slug}", "messages": [{"role": "user", "content": question}]}
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:

            async def one() -> bool:
                response = await client.post(
                    "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {api_key}"}
                )
                if response.status_code not in (200, 429):
                    raise RuntimeError(f"API answered {response.status_code}: {response.text[:200]}")
                return response.status_code == 429

            return await _paced(round(factor * quota), WINDOW_S / (factor * quota), one)

    chat_sent, widget_sent, api_sent = await asyncio.gather(chat(), widget_socket(), api())
    return {
        "chat_socket": refusal_shares(chat_sent, settings.DOCENT_QUESTIONS_PER_MINUTE_USER),
        "widget_socket": refusal_shares(widget_sent, widget["quota"]),
        "api": refusal_shares(api_sent, settings.DOCENT_API_QUESTIONS_PER_MINUTE),
    }


def rate_limit_world() -> dict[str, Any]:
    """An empty base owned by the rate-limit user, a widget key on it and an API key; their counters reset."""
    import redis
    from django.contrib.auth import get_user_model

    from api.models import ApiKey
    from api.services import api_key_create
    from chat.limits import PREFIX
    from chat.widget.services import visitor_session_start, widget_key_upsert
    from evaluation.bench_chat import session_cookie
    from kb.services import knowledge_base_create

    user, _ = get_user_model().objects.get_or_create(username="bench-ratelimit")
    knowledge_base = knowledge_base_create(slug="bench-ratelimit", name="Benchmark: rate limits (empty)", owner=user)
    shop = "http://shop.example"
    key, _ = widget_key_upsert(knowledge_base=knowledge_base, origins=[shop])
    ApiKey.objects.filter(user=user).delete()
    _, secret = api_key_create(user=user, knowledge_bases=[knowledge_base], name="bench reliability")
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        for pattern in (f"{PREFIX}:question:user:{user.pk}:*", f"{PREFIX}:*:{key.pk}:*", f"{PREFIX}:key:{key.pk}:*"):
            for name in client.scan_iter(pattern):
                client.delete(name)
    finally:
        client.close()
    return {
        "cookie": session_cookie(user),
        "slug": knowledge_base.slug,
        "widget": {
            "key": key.key,
            "session": visitor_session_start(key=key, origin=shop)["session"],
            "quota": key.visitor_messages_per_minute,
        },
        "api_key": secret,
    }


def run_rate_limits(*, factor: float, log: Log) -> dict[str, dict[str, Any]]:
    """Each limit driven at `factor` times its quota for a minute (README, Reliability): with factor > 1 each
    sliding window passes its quota within the minute, so both refusal shares are measured."""
    import logging

    from config.dev_servers import docent_server

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    world = rate_limit_world()
    # Only the per-user quota is measured on the chat socket: the per-address one would add its own refusals.
    server_env = {"DOCENT_QUESTIONS_PER_MINUTE_IP": "100000", "DOCENT_PRELOAD": "1", "DOCENT_LLM_MODEL": "smollm2-135m"}
    with docent_server(server_env) as server:
        results = asyncio.run(
            _rate_limits(
                server,
                cookie=world["cookie"],
                slug=world["slug"],
                widget=world["widget"],
                api_key=world["api_key"],
                factor=factor,
            )
        )
    for name, row in results.items():
        log(f"  {name:<14} {row}")
    return results


# ---- soak -------------------------------------------------------------------------------------------------


@dataclass
class ClientReport:
    role: str  # "steady", "leaver" (closes at the first token), "staller" (asks once, then neither reads nor writes)
    asked: int = 0
    answered: int = 0
    left_mid_answer: int = 0
    unfinished: int = 0  # answers still being written a minute after the soak's end (a slow machine)
    handshakes: int = 0  # sockets this client tried to open
    handshakes_failed: list[str] = field(default_factory=list)  # the server refused or dropped the opening handshake
    unexpected_closes: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    answer_s: list[float] = field(default_factory=list)
    dropped_by_server: bool | None = None


def role_of(index: int) -> str:
    return "staller" if index % 10 == 3 else "leaver" if index % 5 == 1 else "steady"


async def _steady(
    server: DocentServer,
    cookie: str,
    slug: str,
    questions: list[str],
    report: ClientReport,
    *,
    start: float,
    end: float,
    interval_s: float,
    offset_s: float,
) -> None:
    import websockets
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    headers = {"Cookie": cookie, "Origin": server.url}
    next_at = start + offset_s
    socket = None
    try:
        while True:
            delay = next_at - time.monotonic()
            if next_at >= end:
                break
            if delay > 0:
                await asyncio.sleep(delay)
            next_at = max(next_at + interval_s, time.monotonic())
            question = questions[report.asked % len(questions)]
            try:
                if socket is None:
                    report.handshakes += 1
                    socket = await websockets.connect(f"ws://{server.host}/ws/chat/", additional_headers=headers)
                asked_at = time.monotonic()
                report.asked += 1
                await socket.send(json.dumps({"type": "ask", "question": question, "kb": slug, "conversation": None}))
                while True:
                    # an answer still coming a minute after the soak's end is left (counted as unfinished)
                    wait_s = max(1.0, end + 60 - time.monotonic())
                    event = json.loads(await asyncio.wait_for(socket.recv(), wait_s))
                    if event["type"] == "token" and report.role == "leaver":
                        await socket.close()  # gone mid-answer: the server must stop and clean up
                        socket = None
                        report.left_mid_answer += 1
                        break
                    if event["type"] == "done":
                        report.answered += 1
                        report.answer_s.append(time.monotonic() - asked_at)
                        break
                    if event["type"] == "error":
                        report.errors[event["code"]] += 1
                        break
            except ConnectionClosed as exc:
                report.unexpected_closes.append(f"{exc.rcvd.code if exc.rcvd else 'no close frame'}")
                socket = None
            except TimeoutError:
                report.unfinished += 1
                break
            except (OSError, InvalidHandshake) as exc:
                report.handshakes_failed.append(repr(exc)[:120])
    finally:
        if socket is not None:
            await socket.close()


async def _staller(
    server: DocentServer, cookie: str, slug: str, question: str, report: ClientReport, *, end: float, drop_s: float
) -> None:
    import websockets
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    headers = {"Cookie": cookie, "Origin": server.url}
    # max_queue=1: once a frame waits unread, the client stops reading its TCP socket, so pings go unanswered
    report.handshakes += 1
    try:
        socket = await websockets.connect(
            f"ws://{server.host}/ws/chat/", additional_headers=headers, max_queue=1, ping_interval=None
        )
    except (OSError, InvalidHandshake) as exc:
        report.handshakes_failed.append(repr(exc)[:120])
        return
    report.asked += 1
    await socket.send(json.dumps({"type": "ask", "question": question, "kb": slug, "conversation": None}))
    stalled_at = time.monotonic()
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    # Then read again: a socket the server dropped ends (after what was buffered); one still open times out.
    deadline = max(time.monotonic() + 3, stalled_at + drop_s)
    try:
        while True:
            await asyncio.wait_for(socket.recv(), max(0.1, deadline - time.monotonic()))
    except ConnectionClosed:
        report.dropped_by_server = True
    except TimeoutError:
        report.dropped_by_server = False
        await socket.close()


def _rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


async def _soak(
    server: DocentServer,
    *,
    cookie: str,
    slug: str,
    questions: list[str],
    sockets: int,
    seconds: float,
    interval_s: float,
    drop_s: float,
) -> tuple[list[ClientReport], list[float]]:
    from evaluation.bench_chat import ask_over_websocket

    await ask_over_websocket(server.host, cookie, slug, questions[0])  # warm up: model and encoders loaded
    rss = [_rss_mb(server.pid)]
    reports = [ClientReport(role=role_of(i)) for i in range(sockets)]
    start = time.monotonic()
    end = start + seconds
    tasks = []
    for i, report in enumerate(reports):
        if report.role == "staller":
            tasks.append(_staller(server, cookie, slug, questions[i % len(questions)], report, end=end, drop_s=drop_s))
        else:
            offset = i * interval_s / sockets  # spread over the interval: a steady rate, not bursts
            tasks.append(
                _steady(
                    server,
                    cookie,
                    slug,
                    questions,
                    report,
                    start=start,
                    end=end,
                    interval_s=interval_s,
                    offset_s=offset,
                )
            )

    async def sample() -> None:
        while time.monotonic() < end:
            await asyncio.sleep(5)
            rss.append(_rss_mb(server.pid))

    await asyncio.gather(sample(), *tasks)
    await asyncio.sleep(2)  # the server's disconnect handlers have run
    rss.append(_rss_mb(server.pid))
    return reports, rss


def run_soak(
    *,
    sockets: int,
    seconds: float,
    interval_s: float,
    log: Log,
    knowledge_base: Any = None,
    questions: list[str] | None = None,
    model: str = "smollm2-135m",
    ping_s: tuple[int, int] = (5, 5),
) -> dict[str, Any]:
    """The soak against a fresh web server; `knowledge_base` (default the `bench chat` base) must be readable by
    the benchmark user, `questions` about it. The server pings a silent socket after ping_s[0] and drops it
    ping_s[1] later; answers are DOCENT_MAX_ANSWER_TOKENS=48 tokens of `model` without the answerability check,
    decoded on one thread."""
    from config.dev_servers import docent_server
    from evaluation.bench_chat import QUESTIONS, bench_knowledge_base, session_cookie

    knowledge_base = knowledge_base or bench_knowledge_base()
    questions = questions or QUESTIONS
    cookie = session_cookie()
    server_env = {
        "DOCENT_PRELOAD": "1",
        "DOCENT_LLM_MODEL": model,
        "DOCENT_ANSWER_CHECK": "off",
        "DOCENT_ANSWER_CACHE": "0",  # the soak's questions repeat: each must reach the model
        "DOCENT_MAX_ANSWER_TOKENS": "48",
        # one decoding thread: on a machine busy with other work, llama.cpp's thread team waiting at its barriers
        # for a descheduled member made answers 10-20x slower
        "DOCENT_LLM_THREADS": "1",
        "DOCENT_MAX_QUEUE": str(sockets + 8),
        "DOCENT_SOCKETS_PER_USER": str(2 * sockets + 8),
        "DOCENT_QUESTIONS_PER_MINUTE_USER": "100000",
        "DOCENT_QUESTIONS_PER_MINUTE_IP": "100000",
        "DOCENT_WS_PING_INTERVAL_S": str(ping_s[0]),
        "DOCENT_WS_PING_TIMEOUT_S": str(ping_s[1]),
    }
    drop_s = ping_s[0] + ping_s[1] + 5  # daphne checks its sockets once a second
    with docent_server(server_env) as server:
        reports, rss = asyncio.run(
            _soak(
                server,
                cookie=cookie,
                slug=knowledge_base.slug,
                questions=questions,
                sockets=sockets,
                seconds=seconds,
                interval_s=interval_s,
                drop_s=drop_s,
            )
        )
        from evaluation.bench_chat import ask_over_websocket

        after = asyncio.run(ask_over_websocket(server.host, cookie, knowledge_base.slug, questions[0]))
        answering_after = "done" in after
    errors: Counter[str] = Counter()
    for report in reports:
        errors.update(report.errors)
    stallers = [r for r in reports if r.role == "staller"]
    durations = [s for r in reports for s in r.answer_s]
    result = {
        "sockets": sockets,
        "seconds": seconds,
        "interval_s": interval_s,
        "roles": dict(Counter(r.role for r in reports)),
        "asked": sum(r.asked for r in reports),
        "answered": sum(r.answered for r in reports),
        "left_mid_answer": sum(r.left_mid_answer for r in reports),
        "unfinished": sum(r.unfinished for r in reports),
        "unexpected_closes": sum(len(r.unexpected_closes) for r in reports),
        "close_codes": dict(Counter(code for r in reports for code in r.unexpected_closes)),
        "errors": dict(errors),
        "handshakes": sum(r.handshakes for r in reports),
        "handshakes_failed": sum(len(r.handshakes_failed) for r in reports),
        "handshake_errors": sorted({e for r in reports for e in r.handshakes_failed})[:3],
        "stalled_dropped": sum(1 for r in stallers if r.dropped_by_server),
        "stalled": sum(1 for r in stallers if r.dropped_by_server is not None),
        "answer_p50_s": round(statistics.median(durations), 2) if durations else None,
        "rss_start_mb": round(rss[0]),
        "rss_end_mb": round(rss[-1]),
        "rss_max_mb": round(max(rss)),
        "rss_mb_samples": [round(value) for value in rss],  # after warm-up, every 5 s, after the sockets closed
        "answering_after": answering_after,
        "model": model,
        "ping_s": list(ping_s),
    }
    log(f"  {result}")
    return result
