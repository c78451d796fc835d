"""A per-node cache of facts that events invalidate, with a short lifetime as a safety net.

Concurrent misses of one key share a single load (a join storm reads a stream once), and a
load that raced an invalidation is answered but not kept: what it read may be stale.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ExpiringCache(Generic[K, V]):
    """Values kept `seconds` at most (0: nothing is kept), `limit` keys at most."""

    def __init__(
        self,
        seconds: float,
        *,
        limit: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.limit = limit
        self.clock = clock
        self._values: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}
        self._generation = 0  # bumped by every invalidation
        self.hits = 0
        self.loads = 0

    def get(self, key: K) -> V | None:
        found = self._values.get(key)
        if found is None:
            return None
        if found[0] <= self.clock():
            del self._values[key]
            return None
        return found[1]

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The kept value, else the one a load in progress brings, else a new load's."""
        found = self.get(key)
        if found is not None:
            self.hits += 1
            return found
        waiting = self._loading.get(key)
        if waiting is not None:
            self.hits += 1
            try:
                return await asyncio.shield(waiting)
            except asyncio.CancelledError:
                if not waiting.cancelled():
                    raise  # this caller was cancelled
                # the loading caller was: load here instead
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        generation = self._generation
        self.loads += 1
        try:
            value = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters, if any, raise it themselves
            raise
        finally:
            self._loading.pop(key, None)
        future.set_result(value)
        if generation == self._generation:
            self.put(key, value)
        return value

    def put(self, key: K, value: V) -> None:
        if self.seconds <= 0:
            return
        if len(self._values) >= self.limit:
            self._values.clear()
        self._values[key] = (self.clock() + self.seconds, value)

    def drop(self, key: K) -> None:
        self._generation += 1
        self._values.pop(key, None)

    def clear(self) -> None:
        self._generation += 1
        self._values.clear()
