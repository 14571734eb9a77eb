"""Sliding-window rate limits in Redis, shared by every web process (a per-process count would multiply)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from django.conf import settings
from redis.asyncio import Redis

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


async def rate_limit_hit(limits: list[Limit]) -> Exceeded | None:
    """Count one event against each limit in turn; the first one exceeded, or None.

    A limit is counted only once the ones before it passed, so a visitor hammering the widget uses up
    their own allowance, not their IP's neighbours' or the key's daily one.
    """
    if not limits:
        return None
    redis = Redis.from_url(settings.REDIS_URL)
    try:
        for limit in limits:
            name = f"{PREFIX}:{limit.bucket}:{limit.window_s}"
            now = time.time()
            pipe = redis.pipeline(transaction=True)
            pipe.zremrangebyscore(name, 0, now - limit.window_s)
            pipe.zadd(name, {f"{now:.6f}:{secrets.token_hex(4)}": now})
            pipe.zcard(name)
            pipe.expire(name, limit.window_s + 1)
            count = (await pipe.execute())[2]
            if count > limit.limit:
                oldest = await redis.zrange(name, 0, 0, withscores=True)
                retry = (float(oldest[0][1]) + limit.window_s - now) if oldest else limit.window_s
                return Exceeded(limit=limit, retry_after_s=max(1, int(retry + 0.999)))
    finally:
        await redis.aclose()
    return None


def rate_limit_hit_sync(limits: list[Limit]) -> Exceeded | None:
    return async_to_sync(rate_limit_hit)(limits)
