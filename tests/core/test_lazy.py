"""core.lazy: built once per process (per arguments), under a lock, and forgotten on reset."""

from __future__ import annotations

import threading
import time

from core.lazy import process_singleton


def test_one_value_per_arguments_built_once_across_threads():
    calls: list[int] = []

    @process_singleton
    def pool(size: int) -> object:
        """A slow factory."""
        calls.append(size)
        time.sleep(0.05)  # long enough for every thread to arrive while the first builds
        return object()

    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(pool(1))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1] and len({id(r) for r in results}) == 1
    assert pool(2) is not pool(1) and calls == [1, 2]
    assert pool.__doc__ == "A slow factory."

    first = pool(1)
    pool.reset()
    assert pool(1) is not first and calls == [1, 2, 1]
