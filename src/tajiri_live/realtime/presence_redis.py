"""Presence on Redis: a sorted set per room (member -> expiry), shared by every node."""

from __future__ import annotations

import math
import time

from redis.asyncio import Redis

from tajiri_live.realtime.presence import LocalHolds, RoomCounts

# Drop expired members, count, raise the peak; returns current, peak, joins, unique.
COUNTS_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local current = redis.call('ZCARD', KEYS[1])
local peak = tonumber(redis.call('GET', KEYS[2]) or '0')
if current > peak then
  peak = current
  redis.call('SET', KEYS[2], peak)
end
local joins = tonumber(redis.call('GET', KEYS[3]) or '0')
local unique = redis.call('PFCOUNT', KEYS[4])
return {current, peak, joins, unique}
"""

# One winner per room and period, and only when the value changed.
PUBLISH_SCRIPT = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) == false then
  return 0
end
if redis.call('GET', KEYS[2]) == ARGV[1] then
  return 0
end
redis.call('SET', KEYS[2], ARGV[1])
return 1
"""

# Add (or renew) a member and raise the peak in one step, like the memory backend.
JOIN_SCRIPT = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('INCR', KEYS[3])
redis.call('PFADD', KEYS[4], ARGV[3])
redis.call('SADD', KEYS[5], ARGV[4])
local current = redis.call('ZCARD', KEYS[1])
local peak = tonumber(redis.call('GET', KEYS[2]) or '0')
if current > peak then
  redis.call('SET', KEYS[2], current)
end
return current
"""

RETIRE_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[2])
end
return 1
"""

RENEW_CHUNK = 1000


class RedisPresence:
    def __init__(self, redis: Redis, *, prefix: str, member_ttl: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_ms = int(member_ttl * 1000)
        self._local = LocalHolds()
        self._counts = redis.register_script(COUNTS_SCRIPT)
        self._publish = redis.register_script(PUBLISH_SCRIPT)
        self._retire = redis.register_script(RETIRE_SCRIPT)
        self._join = redis.register_script(JOIN_SCRIPT)

    def _key(self, kind: str, room: str = "") -> str:
        return f"{self._prefix}presence:{kind}:{room}" if room else f"{self._prefix}{kind}"

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)

    async def join(self, room: str, member: str, *, ttl: float | None = None) -> None:
        if ttl is None:
            self._local.hold(room, member)
        now = self._now_ms()
        expiry = now + (int(ttl * 1000) if ttl is not None else self._ttl_ms)
        keys = [self._key(kind, room) for kind in ("members", "peak", "joins", "unique")]
        await self._join(
            keys=[*keys, self._key("presence:rooms")], args=[now, expiry, member, room]
        )

    async def leave(self, room: str, member: str, *, connection: bool = True) -> None:
        gone = (
            self._local.release(room, member) if connection else not self._local.held(room, member)
        )
        if gone:
            await self._redis.zrem(self._key("members", room), member)

    async def renew(self) -> None:
        expiry = self._now_ms() + self._ttl_ms
        async with self._redis.pipeline(transaction=False) as pipe:
            for room, members in self._local.rooms.items():
                names = list(members)
                for start in range(0, len(names), RENEW_CHUNK):
                    chunk = names[start : start + RENEW_CHUNK]
                    pipe.zadd(self._key("members", room), dict.fromkeys(chunk, expiry))
                pipe.sadd(self._key("presence:rooms"), room)
            await pipe.execute()

    async def counts(self, room: str) -> RoomCounts:
        keys = [self._key(kind, room) for kind in ("members", "peak", "joins", "unique")]
        current, peak, joins, unique = await self._counts(keys=keys, args=[self._now_ms()])
        return RoomCounts(int(current), int(peak), int(joins), int(unique))

    async def rooms(self) -> list[str]:
        members = await self._redis.smembers(self._key("presence:rooms"))
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    async def retire(self, room: str) -> None:
        if self._local.holds(room):
            return
        await self._retire(
            keys=[self._key("members", room), self._key("presence:rooms")],
            args=[self._now_ms(), room],
        )

    async def publish_if_changed(self, room: str, value: str, *, period: float) -> bool:
        slot = math.floor(time.time() / period)
        won = await self._publish(
            keys=[self._key("published-slot", f"{room}:{slot}"), self._key("published", room)],
            args=[value, int(period * 2000)],
        )
        return bool(won)

    async def close(self) -> None:
        return None
