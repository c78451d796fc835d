"""Channel occupancy on Redis, shared by every node.

Per channel: a sorted set of subscribed sockets (socket -> expiry). Presence channels add a
sorted set of member sockets, a hash socket -> user id and a hash user id -> user info; Lua
scripts decide "first socket of this user" and "last socket" atomically across nodes.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from redis.asyncio import Redis

from tajiri_live.realtime.channels import LocalSockets

# Shared by the presence scripts: drop expired sockets and the info of users left with none.
SWEEP = """
local function sweep(z, h, info, now)
  local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, s in ipairs(expired) do
    redis.call('ZREM', z, s)
    redis.call('HDEL', h, s)
  end
  local present = {}
  for _, u in ipairs(redis.call('HVALS', h)) do present[u] = true end
  if #expired > 0 then
    for _, u in ipairs(redis.call('HKEYS', info)) do
      if not present[u] then redis.call('HDEL', info, u) end
    end
  end
  return present
end
"""

ADD_MEMBER = (
    SWEEP
    + """
local present = sweep(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
if present[ARGV[4]] then return 0 end
return 1
"""
)

REMOVE_MEMBER = (
    SWEEP
    + """
if redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[2])
local present = sweep(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
if present[ARGV[3]] then return 0 end
redis.call('HDEL', KEYS[3], ARGV[3])
return 1
"""
)

MEMBERS = (
    SWEEP
    + """
local present = sweep(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
local out = {}
for u, _ in pairs(present) do
  table.insert(out, u)
  table.insert(out, redis.call('HGET', KEYS[3], u) or 'null')
end
return out
"""
)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisChannelRegistry:
    def __init__(self, redis: Redis, *, prefix: str, ttl: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_ms = int(ttl * 1000)
        self._local = LocalSockets()
        self._add = redis.register_script(ADD_MEMBER)
        self._remove = redis.register_script(REMOVE_MEMBER)
        self._members = redis.register_script(MEMBERS)

    def _key(self, app_id: str, kind: str, channel: str = "") -> str:
        return f"{self._prefix}pusher:{app_id}:{kind}" + (f":{channel}" if channel else "")

    def _member_keys(self, app_id: str, channel: str) -> list[str]:
        return [self._key(app_id, k, channel) for k in ("members", "member-user", "member-info")]

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)

    async def subscribe(self, app_id: str, channel: str, socket_id: str) -> None:
        self._local.add(app_id, channel, socket_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(
                self._key(app_id, "subs", channel), {socket_id: self._now_ms() + self._ttl_ms}
            )
            pipe.sadd(self._key(app_id, "channels"), channel)
            await pipe.execute()

    async def unsubscribe(self, app_id: str, channel: str, socket_id: str) -> None:
        self._local.discard(app_id, channel, socket_id)
        await self._redis.zrem(self._key(app_id, "subs", channel), socket_id)

    async def add_member(
        self, app_id: str, channel: str, socket_id: str, user_id: str, user_info: Any
    ) -> bool:
        self._local.add_member(app_id, channel, socket_id, user_id)
        now = self._now_ms()
        first = await self._add(
            keys=self._member_keys(app_id, channel),
            args=[now, now + self._ttl_ms, socket_id, user_id, orjson.dumps(user_info)],
        )
        return bool(first)

    async def remove_member(self, app_id: str, channel: str, socket_id: str, user_id: str) -> bool:
        self._local.discard_member(app_id, channel, socket_id)
        last = await self._remove(
            keys=self._member_keys(app_id, channel), args=[self._now_ms(), socket_id, user_id]
        )
        return bool(last)

    async def members(self, app_id: str, channel: str) -> dict[str, Any]:
        flat = await self._members(keys=self._member_keys(app_id, channel), args=[self._now_ms()])
        return {_text(flat[i]): orjson.loads(_text(flat[i + 1])) for i in range(0, len(flat), 2)}

    async def subscription_count(self, app_id: str, channel: str) -> int:
        key = self._key(app_id, "subs", channel)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", self._now_ms())
            pipe.zcard(key)
            _, count = await pipe.execute()
        return int(count)

    async def occupied(self, app_id: str, prefix: str = "") -> dict[str, int]:
        index = self._key(app_id, "channels")
        names = sorted(
            name
            for name in (_text(n) for n in await self._redis.smembers(index))
            if name.startswith(prefix)
        )
        # One round trip for every channel's count, not one per channel.
        now = self._now_ms()
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                key = self._key(app_id, "subs", name)
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zcard(key)
            replies = await pipe.execute()
        counts = dict(zip(names, replies[1::2], strict=True))
        if empty := [name for name, count in counts.items() if not count]:
            await self._redis.srem(index, *empty)
        found: dict[str, int] = {}
        for name, count in counts.items():
            if count and name.startswith("presence-"):
                found[name] = len(await self.members(app_id, name))
            elif count:
                found[name] = int(count)
        return found

    async def renew(self) -> None:
        expiry = self._now_ms() + self._ttl_ms
        async with self._redis.pipeline(transaction=False) as pipe:
            for (app_id, channel), sockets in self._local.subscribed.items():
                pipe.zadd(self._key(app_id, "subs", channel), dict.fromkeys(sockets, expiry))
                pipe.sadd(self._key(app_id, "channels"), channel)
            for (app_id, channel), members in self._local.members.items():
                pipe.zadd(self._key(app_id, "members", channel), dict.fromkeys(members, expiry))
            await pipe.execute()

    async def close(self) -> None:
        return None
