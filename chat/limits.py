"""Limits counted in Redis, so that they hold across every web process (a per-process count would multiply).

One rate limiter, a sliding window (`Limit`, `rate_limit_hit`, `rate_limit_hit_sync`), counts: questions on the
chat socket per user and per IP address (`allow_question`), the widget's messages per visitor, IP and key and its
tickets (chat.widget.services), and the API's requests per key (api.views). Concurrent sockets per user and per IP
(`open_socket`, `close_socket`) are counters that expire on their own, so a crashed process cannot leave a user
locked out for longer than an hour.

Counted on shared connections: the event loop's client (`redis_client`) in async code, the process's one pool of
blocking connections (`redis_sync_client`) in sync code; a connection per call cost a TCP handshake and a Redis
`HELLO` on every question.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import weakref
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings

from core.lazy import process_singleton

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()
SOCKET_TTL_S = 3600
# Every rate-limit window's key starts with this; named when the widget was the limiter's first user, and kept so
# that counters carry over a deploy.
PREFIX = "docent:widget:rate"


def redis_client() -> aioredis.Redis:
    """The running event loop's Redis client for counters: one connection pool per loop (a redis.asyncio
    connection belongs to the loop that opened it), shared by every limit counted on that loop."""
    loop = asyncio.get_running_loop()
    if loop not in _clients:
        _clients[loop] = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    return _clients[loop]


@process_singleton
def _sync_pool() -> redis.ConnectionPool:
    return redis.ConnectionPool.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def redis_sync_client() -> redis.Redis:
    """A blocking client of settings.REDIS_URL on the process's one connection pool, shared by every thread (sync
    views' rate limits, the answer cache); redis-py renews the pool's connections after a fork."""
    return redis.Redis(connection_pool=_sync_pool())


# ---- the rate limiter: a sliding window -----------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """At most `limit` events in any `window_s` seconds for `bucket`."""

    name: str  # what the client is told was exceeded: "user", "visitor", "ip", "key"
    bucket: str  # who is counted, e.g. "visitor:12:abc"
    limit: int
    window_s: int


@dataclass(frozen=True)
class Exceeded:
    limit: Limit
    retry_after_s: int  # whole seconds until the window's oldest event leaves it, at least 1


def _count(pipe: Any, limit: Limit, now: float) -> str:
    """Queue the commands that record one event at `now` and count the window's events (the third result)."""
    name = f"{PREFIX}:{limit.bucket}:{limit.window_s}"
    pipe.zremrangebyscore(name, 0, now - limit.window_s)
    pipe.zadd(name, {f"{now:.6f}:{secrets.token_hex(4)}": now})
    pipe.zcard(name)
    pipe.expire(name, limit.window_s + 1)
    return name


def _exceeded(limit: Limit, oldest: Any, now: float) -> Exceeded:
    """`oldest`: ZRANGE 0 0 WITHSCORES of the window, [(member, score)] or []."""
    retry = (float(oldest[0][1]) + limit.window_s - now) if oldest else limit.window_s
    return Exceeded(limit=limit, retry_after_s=max(1, int(retry + 0.999)))


async def rate_limit_hit(limits: list[Limit]) -> Exceeded | None:
    """Count one event against each limit in turn; the first one exceeded, or None.

    A limit is counted only once the ones before it passed, so a visitor hammering the widget uses up
    their own allowance, not their IP's neighbours' or the key's daily one. Every event is counted, refused
    ones too: a client that keeps sending while refused stays refused until it slows down.
    """
    if not limits:
        return None
    client = redis_client()
    for limit in limits:
        now = time.time()
        pipe = client.pipeline(transaction=True)
        name = _count(pipe, limit, now)
        count = (await pipe.execute())[2]
        if count > limit.limit:
            return _exceeded(limit, await client.zrange(name, 0, 0, withscores=True), now)
    return None


def rate_limit_hit_sync(limits: list[Limit]) -> Exceeded | None:
    """`rate_limit_hit` for sync views, on the process's one pool of blocking connections (thread-safe)."""
    if not limits:
        return None
    client = redis_sync_client()
    for limit in limits:
        now = time.time()
        pipe = client.pipeline(transaction=True)
        name = _count(pipe, limit, now)
        count = pipe.execute()[2]
        if count > limit.limit:
            return _exceeded(limit, client.zrange(name, 0, 0, withscores=True), now)
    return None


# ---- the chat socket's limits ---------------------------------------------------------------------------------


def client_ip(scope: dict[str, Any]) -> str:
    if settings.DOCENT_TRUST_X_FORWARDED_FOR:
        for name, value in scope.get("headers", []):
            if name == b"x-forwarded-for":
                return value.decode("latin-1").split(",")[0].strip()
    client = scope.get("client") or ("unknown", 0)
    return str(client[0])


def identities(scope: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, id) pairs a limit applies to: the signed-in user, if any, and the client address."""
    user = scope.get("user")
    found = [("ip", client_ip(scope))]
    if user is not None and user.is_authenticated:
        found.insert(0, ("user", str(user.pk)))
    return found


def question_limits(scope: dict[str, Any]) -> list[Limit]:
    """The chat socket's questions per minute: DOCENT_QUESTIONS_PER_MINUTE_USER for the signed-in user, then
    DOCENT_QUESTIONS_PER_MINUTE_IP for the client address."""
    per_minute = {"user": settings.DOCENT_QUESTIONS_PER_MINUTE_USER, "ip": settings.DOCENT_QUESTIONS_PER_MINUTE_IP}
    return [Limit(kind, f"question:{kind}:{ident}", per_minute[kind], 60) for kind, ident in identities(scope)]


async def allow_question(scope: dict[str, Any]) -> bool:
    """Count one question against each identity's per-minute budget (`question_limits`); False once one is spent."""
    return await rate_limit_hit(question_limits(scope)) is None


async def open_socket(scope: dict[str, Any]) -> bool:
    """Take one of each identity's concurrent-socket slots; on refusal nothing stays taken."""
    limits = {"user": settings.DOCENT_SOCKETS_PER_USER, "ip": settings.DOCENT_SOCKETS_PER_IP}
    taken: list[str] = []
    client = redis_client()
    for kind, ident in identities(scope):
        key = f"docent:sockets:{kind}:{ident}"
        count = await client.incr(key)
        await client.expire(key, SOCKET_TTL_S)
        taken.append(key)
        if count > limits[kind]:
            for held in taken:
                await client.decr(held)
            return False
    return True


async def close_socket(scope: dict[str, Any]) -> None:
    client = redis_client()
    for kind, ident in identities(scope):
        await client.decr(f"docent:sockets:{kind}:{ident}")
