"""Sliding-window rate limits in Redis, shared by every web process (a per-process count would multiply).

Counted on shared connections: the event loop's client of `chat.limits.redis_client` in async code (the
widget socket, the API), one process-wide pool in sync code (the ticket view); a connection per call cost a
TCP handshake and a Redis `HELLO` on every question.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from chat.limits import redis_client, redis_sync_client

PREFIX = "docent:widget:rate"


@dataclass(frozen=True)
class Limit:
    name: str  # what the visitor is told was exceeded: "visitor", "ip", "key"
    bucket: str  # who is counted, e.g. "visitor:12:abc"
    limit: int
    window_s: int


@dataclass(frozen=True)
class Exceeded:
    limit: Limit
    retry_after_s: int


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
