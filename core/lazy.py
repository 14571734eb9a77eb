"""Lazy process-wide singletons: a value built on first use, once per process, shared by every thread.

    @process_singleton
    def redis_pool() -> redis.ConnectionPool:
        return redis.ConnectionPool.from_url(settings.REDIS_URL)

    redis_pool()        # built on the first call (under a lock: two threads never build it twice)
    redis_pool.reset()  # forgotten: the next call builds it again (tests that change settings)

A factory with arguments keeps one value per distinct (hashable) arguments, as a registry of per-model
backends or per-size thread pools needs; call it with the same spelling (positional or keyword) each time.
Values are not closed on reset: whoever holds one keeps a working object.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class ProcessSingleton(Generic[P, T]):
    """A factory's values, built on first call under a lock and kept for the process (see the module)."""

    def __init__(self, factory: Callable[P, T]) -> None:
        self._factory = factory
        self._values: dict[Hashable, T] = {}
        self._lock = threading.Lock()
        self.__doc__ = factory.__doc__
        self.__name__ = getattr(factory, "__name__", type(self).__name__)
        self.__wrapped__ = factory

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        key = (args, tuple(sorted(kwargs.items())))
        try:
            return self._values[key]  # built already: no lock on the common path
        except KeyError:
            pass
        with self._lock:
            if key not in self._values:
                self._values[key] = self._factory(*args, **kwargs)
            return self._values[key]

    def reset(self) -> None:
        """Forget every value built so far; the next call builds afresh."""
        with self._lock:
            self._values.clear()


def process_singleton(factory: Callable[P, T]) -> ProcessSingleton[P, T]:
    """Decorate a factory so that it runs once per process (per distinct arguments); `.reset()` forgets."""
    return ProcessSingleton(factory)
