"""chat.limits: the sliding window, counted on shared Redis connections (not one per event)."""

from __future__ import annotations

import secrets

import redis
from django.conf import settings

from chat.limits import Limit, rate_limit_hit, rate_limit_hit_sync


def connections_received() -> int:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return int(client.info("stats")["total_connections_received"])
    finally:
        client.close()


async def test_async_limits_count_on_the_event_loops_one_pool():
    bucket = f"pool-test:{secrets.token_hex(4)}"
    before = connections_received()
    results = [await rate_limit_hit([Limit("visitor", bucket, 20, 60)]) for _ in range(30)]
    opened = connections_received() - before - 1  # less the one that counted
    assert [r is None for r in results] == [True] * 20 + [False] * 10
    last = results[-1]
    assert last is not None and 1 <= last.retry_after_s <= 60
    assert opened <= 2, f"{opened} connections for 30 events"  # the pool's one (the worker may open another)


def test_sync_limits_count_on_the_process_pool():
    bucket = f"pool-test:{secrets.token_hex(4)}"
    before = connections_received()
    results = [rate_limit_hit_sync([Limit("ip", bucket, 3, 3600)]) for _ in range(30)]
    opened = connections_received() - before - 1
    assert [r is None for r in results] == [True] * 3 + [False] * 27
    last = results[-1]
    assert last is not None and last.limit.name == "ip"
    assert opened <= 2, f"{opened} connections for 30 events"


async def test_a_limit_is_counted_only_once_those_before_it_passed():
    first, second = f"pool-test:{secrets.token_hex(4)}", f"pool-test:{secrets.token_hex(4)}"
    limits = [Limit("visitor", first, 1, 60), Limit("key", second, 100, 60)]
    assert await rate_limit_hit(limits) is None
    refused = await rate_limit_hit(limits)
    assert refused is not None and refused.limit.name == "visitor"
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        assert client.zcard(f"docent:widget:rate:{second}:60") == 1  # the refused event did not reach the key's count
    finally:
        client.close()
