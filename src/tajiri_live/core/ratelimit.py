"""Rate limits shared by REST and WebSocket: fixed windows, in memory or in Redis."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

from tajiri_live.core.errors import ApiError
from tajiri_live.core.scriptbatch import LUA_ITEM_ERROR, ScriptBatches

# ARGV: prefix, then per hit: key, limit, window (ms). Counts each hit; answers per hit 0,
# or when over the limit how long until its window resets (ms).
HITS_SCRIPT = (
    LUA_ITEM_ERROR
    + """
local function hit(key, limit, window)
  local hits = redis.call('INCR', key)
  if hits == 1 then
    redis.call('PEXPIRE', key, window)
  end
  if hits > tonumber(limit) then
    local left = redis.call('PTTL', key)
    if left < 0 then
      redis.call('PEXPIRE', key, window)
      left = tonumber(window)
    end
    return left
  end
  return 0
end

local replies = {}
for i = 2, #ARGV, 3 do
  local ok, reply = pcall(hit, ARGV[1] .. 'rate:' .. ARGV[i], ARGV[i + 1], ARGV[i + 2])
  table.insert(replies, ok and reply or item_error(reply))
end
return replies
"""
)


class RateLimiter(Protocol):
    """Guarantees: at most `limit` hits per `window` seconds per key, across every node that
    shares the backend."""

    async def hit(self, key: str, *, limit: int, window: float) -> float:
        """Count a hit: 0 if allowed, else the seconds to wait before the next one."""
        ...

    async def close(self) -> None: ...


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

    async def close(self) -> None:
        return None


class RedisRateLimiter:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        # The hits of concurrent requests, one script call for all (core/scriptbatch.py).
        self._hits = ScriptBatches("rate-limits", redis.register_script(HITS_SCRIPT), [prefix])

    async def hit(self, key: str, *, limit: int, window: float) -> float:
        left_ms = await self._hits.call(key, limit, max(1, int(window * 1000)))
        return int(left_ms) / 1000

    async def close(self) -> None:
        await self._hits.close()


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
