"""Rate limits shared by REST and WebSocket: fixed windows, in memory or in Redis."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

from tajiri_live.core.errors import ApiError

# Count a hit; when over the limit, answer how long until the window resets (ms).
HIT_SCRIPT = """
local hits = redis.call('INCR', KEYS[1])
if hits == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if hits > tonumber(ARGV[1]) then
  local left = redis.call('PTTL', KEYS[1])
  if left < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    left = tonumber(ARGV[2])
  end
  return left
end
return 0
"""


class RateLimiter(Protocol):
    """Guarantees: at most `limit` hits per `window` seconds per key, across every node that
    shares the backend."""

    async def hit(self, key: str, *, limit: int, window: float) -> float:
        """Count a hit: 0 if allowed, else the seconds to wait before the next one."""
        ...


class MemoryRateLimiter:
    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._windows: dict[str, tuple[float, int]] = {}

    async def hit(self, key: str, *, limit: int, window: float) -> float:
        now = self._now()
        if len(self._windows) > 100_000:  # forget finished windows now and then
            self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
        ends, hits = self._windows.get(key, (0.0, 0))
        if ends <= now:
            ends, hits = now + window, 0
        hits += 1
        self._windows[key] = (ends, hits)
        return 0.0 if hits <= limit else ends - now


class RedisRateLimiter:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._prefix = prefix
        self._hit = redis.register_script(HIT_SCRIPT)

    async def hit(self, key: str, *, limit: int, window: float) -> float:
        left_ms = await self._hit(
            keys=[f"{self._prefix}rate:{key}"], args=[limit, max(1, int(window * 1000))]
        )
        return int(left_ms) / 1000


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


async def enforce(limiter: RateLimiter, key: str, *, limit: int, window: float, what: str) -> None:
    """Count a hit on `key`; over the limit, a 429 that says when to try again."""
    wait = await limiter.hit(key, limit=limit, window=window)
    if wait > 0:
        seconds = retry_after_header(wait)
        raise ApiError(
            429,
            f"Too many {what}: try again in {seconds} s.",
            headers={"Retry-After": seconds},
            retry_after=int(seconds),
        )
