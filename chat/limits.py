"""Per-user and per-IP limits on questions per minute and on open sockets, counted in Redis.

Redis makes the limits hold across every web process; each count expires on its own, so a crashed
process cannot leave a user locked out for longer than the window (sockets: an hour).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()
SOCKET_TTL_S = 3600


def redis_client() -> aioredis.Redis:
    """The running event loop's Redis client for counters: one connection pool per loop (a redis.asyncio
    connection belongs to the loop that opened it), shared by every limit counted on that loop."""
    loop = asyncio.get_running_loop()
    if loop not in _clients:
        _clients[loop] = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    return _clients[loop]


_sync_pool: redis.ConnectionPool | None = None
_sync_lock = threading.Lock()


def redis_sync_client() -> redis.Redis:
    """A blocking client of settings.REDIS_URL on the process's one connection pool, shared by every thread (sync
    views' rate limits, the answer cache); redis-py renews the pool's connections after a fork."""
    global _sync_pool
    with _sync_lock:
        if _sync_pool is None:
            _sync_pool = redis.ConnectionPool.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    return redis.Redis(connection_pool=_sync_pool)


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


async def allow_question(scope: dict[str, Any]) -> bool:
    """Count one question against each identity's per-minute budget; False once any is spent."""
    limits = {"user": settings.DOCENT_QUESTIONS_PER_MINUTE_USER, "ip": settings.DOCENT_QUESTIONS_PER_MINUTE_IP}
    window = int(time.time() // 60)
    pipe = redis_client().pipeline()
    keys = [f"docent:q:{kind}:{ident}:{window}" for kind, ident in identities(scope)]
    for key in keys:
        pipe.incr(key)
        pipe.expire(key, 120)
    counts = (await pipe.execute())[::2]
    return all(count <= limits[kind] for (kind, _), count in zip(identities(scope), counts, strict=True))


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
