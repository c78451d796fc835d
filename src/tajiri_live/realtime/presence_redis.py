"""Presence on Redis, shared by every node.

Per room: `visits` (member -> visit info; its length is the count), `holds` (`member|holder`),
`refs` (member -> its number of holders), `addrs` (address -> anonymous visits), `staff`
(members never counted), `peak`, `total` (visits started) and `unique` (HyperLogLog).
Per cluster: `nodes` (node -> last heartbeat, Redis time), `dead` (nodes being reaped, with
their last heartbeat), `node:{id}` (the `room|member` entries a node holds) and `timed` (REST
holds, `room|member` -> their end). Every change is one Lua script, so a visit's start and end
are each seen by exactly one caller. Keys are built inside the scripts: one Redis (or one
shard), as for the rest of this backend.
"""

from __future__ import annotations

import math
import time
from typing import Any

from redis.asyncio import Redis

from tajiri_live.core.scriptbatch import LUA_ITEM_ERROR, ScriptBatches
from tajiri_live.realtime.presence import (
    Beat,
    Held,
    LocalHold,
    NodePresence,
    Predecessor,
    RoomCounts,
    Visit,
    new_node_id,
    new_visit_key,
    parse_visit,
)

BATCH = 500  # entries a reaping or sweeping script handles per call

PRELUDE = """
local P = ARGV[1]
local function K(kind, room) return P .. 'presence:' .. kind .. ':' .. room end
local NODES, DEAD = P .. 'presence:nodes', P .. 'presence:dead'
local TIMED, ROOMS = P .. 'presence:timed', P .. 'presence:rooms'
local function INDEX(node) return P .. 'presence:node:' .. node end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A node is in doubt when its heartbeat is late or it is being reaped: its members may be
-- ghosts, so the peak waits.
local function in_doubt(doubt_ms)
  if redis.call('ZCARD', DEAD) > 0 then return true end
  return #redis.call('ZRANGEBYSCORE', NODES, '-inf', now_ms() - doubt_ms, 'LIMIT', 0, 1) > 0
end

local function raise_peak(room, doubt_ms)
  local current = redis.call('HLEN', K('visits', room))
  local peak = tonumber(redis.call('GET', K('peak', room)) or '0')
  if current > peak and not in_doubt(doubt_ms) then
    redis.call('SET', K('peak', room), current)
    peak = current
  end
  return {current, peak}
end

-- Drop `holder`'s hold on `member`: the visit's info when that was its last holder.
local function unhold(room, member, holder)
  if redis.call('HDEL', K('holds', room), member .. '|' .. holder) == 0 then return false end
  if holder == 'rest' then
    redis.call('ZREM', TIMED, room .. '|' .. member)
  else
    redis.call('SREM', INDEX(holder), room .. '|' .. member)
  end
  if redis.call('HINCRBY', K('refs', room), member, -1) > 0 then return false end
  redis.call('HDEL', K('refs', room), member)
  local info = redis.call('HGET', K('visits', room), member)
  if not info then return false end
  redis.call('HDEL', K('visits', room), member)
  local addr = string.match(info, '^[^|]*|[^|]*|([^|]*)|')
  if addr and addr ~= '' and redis.call('HINCRBY', K('addrs', room), addr, -1) <= 0 then
    redis.call('HDEL', K('addrs', room), addr)
  end
  return info
end
"""

# The changes to holds, as functions: a node's changes are applied in batches (`APPLY`).
CHANGES = """
-- -> {0} not counted, {-1} the holder node is not registered, {1, started, info}
local function add(room, member, holder, key, at, addr, region, expiry, cap, doubt_ms)
  if redis.call('SISMEMBER', K('staff', room), member) == 1 then return {0} end
  if holder ~= 'rest' and not redis.call('ZSCORE', NODES, holder) then return {-1} end
  local info = redis.call('HGET', K('visits', room), member)
  local started = 0
  if not info then
    if addr ~= '' then
      if tonumber(redis.call('HGET', K('addrs', room), addr) or '0') >= cap then
        return {0}
      end
      redis.call('HINCRBY', K('addrs', room), addr, 1)
    end
    info = key .. '|' .. at .. '|' .. addr .. '|' .. region
    redis.call('HSET', K('visits', room), member, info)
    redis.call('INCR', K('total', room))
    redis.call('PFADD', K('unique', room), member)
    redis.call('SADD', ROOMS, room)
    started = 1
  end
  if redis.call('HSETNX', K('holds', room), member .. '|' .. holder, '1') == 1 then
    redis.call('HINCRBY', K('refs', room), member, 1)
    if holder ~= 'rest' then redis.call('SADD', INDEX(holder), room .. '|' .. member) end
  end
  if holder == 'rest' then redis.call('ZADD', TIMED, 'GT', expiry, room .. '|' .. member) end
  raise_peak(room, doubt_ms)
  return {1, started, info}
end

-- -> {current, peak, visits started, unique}
local function count(room, doubt_ms)
  local now = raise_peak(room, doubt_ms)
  return {now[1], now[2], tonumber(redis.call('GET', K('total', room)) or '0'),
    redis.call('PFCOUNT', K('unique', room))}
end

-- -> the ended visit's info, or false
local function exclude(room, member)
  redis.call('SADD', K('staff', room), member)
  local holders, cursor = {}, '0'
  repeat
    local page = redis.call('HSCAN', K('holds', room), cursor, 'MATCH', member .. '|*',
      'COUNT', 1000)
    cursor = page[1]
    for i = 1, #page[2], 2 do table.insert(holders, string.sub(page[2][i], #member + 2)) end
  until cursor == '0'
  local ended = false
  for _, holder in ipairs(holders) do ended = unhold(room, member, holder) or ended end
  return ended
end
"""

# ARGV: prefix, address cap, doubt_ms, then the changes in the order they were asked for, each
# an opcode and its arguments: `a` room member holder key at address region expiry (add), `r`
# room member holder (remove), `x` room member (exclude), `i` room member (count again), `c`
# room (read the room's counts).
# -> one reply per change: add's table, the counts' table, the ended visit's info or '' for
# the others, or {'err', message} for a change that failed (the changes after it are still
# applied).
APPLY = (
    PRELUDE
    + CHANGES
    + LUA_ITEM_ERROR
    + """
local cap, doubt_ms = tonumber(ARGV[2]), tonumber(ARGV[3])
local replies, i = {}, 4
while i <= #ARGV do
  local op, ok, reply = ARGV[i]
  if op == 'a' then
    ok, reply = pcall(add, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5],
      ARGV[i + 6], ARGV[i + 7], ARGV[i + 8], cap, doubt_ms)
    i = i + 9
  elseif op == 'r' then
    ok, reply = pcall(unhold, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 'i' then
    ok, reply = pcall(redis.call, 'SREM', K('staff', ARGV[i + 1]), ARGV[i + 2])
    i = i + 3
  elseif op == 'c' then
    ok, reply = pcall(count, ARGV[i + 1], doubt_ms)
    i = i + 2
  else
    ok, reply = pcall(exclude, ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  end
  if not ok then
    reply = item_error(reply)
  elseif not reply then
    reply = ''
  end
  table.insert(replies, reply)
end
return replies
"""
)

# ARGV: prefix, node, predecessor, its last beat (ms) if Redis has none
REGISTER = (
    PRELUDE
    + """
redis.call('ZADD', NODES, now_ms(), ARGV[2])
local before = ARGV[3]
if before ~= '' then
  local beat = redis.call('ZSCORE', NODES, before)
  if beat then
    redis.call('ZREM', NODES, before)
    redis.call('ZADD', DEAD, beat, before)
  elseif not redis.call('ZSCORE', DEAD, before) and redis.call('EXISTS', INDEX(before)) == 1 then
    redis.call('ZADD', DEAD, ARGV[4], before)
  end
end
return 1
"""
)

# ARGV: prefix, node -> 1, or 0 when the node is no longer registered
HEARTBEAT = (
    PRELUDE
    + """
if not redis.call('ZSCORE', NODES, ARGV[2]) then return 0 end
redis.call('ZADD', NODES, now_ms(), ARGV[2])
return 1
"""
)

# ARGV: prefix, timeout_ms -> the nodes to reap (silent longer than the timeout, or left over)
DETECT = (
    PRELUDE
    + """
local stale = redis.call('ZRANGEBYSCORE', NODES, '-inf', now_ms() - tonumber(ARGV[2]),
  'WITHSCORES', 'LIMIT', 0, 100)
for i = 1, #stale, 2 do
  redis.call('ZREM', NODES, stale[i])
  redis.call('ZADD', DEAD, stale[i + 1], stale[i])
end
return redis.call('ZRANGE', DEAD, 0, 99)
"""
)

# ARGV: prefix, node, limit -> {last beat (ms) or nil, {room, member, info, ...}}
REAP = (
    PRELUDE
    + """
local beat = redis.call('ZSCORE', DEAD, ARGV[2])
if not beat then return {false, {}} end
local entries = redis.call('SPOP', INDEX(ARGV[2]), tonumber(ARGV[3]))
local ended = {}
for _, entry in ipairs(entries) do
  local room, member = string.match(entry, '^([^|]*)|(.*)$')
  local info = unhold(room, member, ARGV[2])
  if info then
    table.insert(ended, room)
    table.insert(ended, member)
    table.insert(ended, info)
  end
end
if redis.call('SCARD', INDEX(ARGV[2])) == 0 then redis.call('ZREM', DEAD, ARGV[2]) end
return {beat, ended}
"""
)

# ARGV: prefix, now (the caller's clock, seconds), limit -> {room, member, info, end, ...}
SWEEP = (
    PRELUDE
    + """
local due = redis.call('ZRANGEBYSCORE', TIMED, '-inf', ARGV[2], 'WITHSCORES',
  'LIMIT', 0, tonumber(ARGV[3]))
local ended = {}
for i = 1, #due, 2 do
  local room, member = string.match(due[i], '^([^|]*)|(.*)$')
  redis.call('ZREM', TIMED, due[i])
  local info = unhold(room, member, 'rest')
  if info then
    table.insert(ended, room)
    table.insert(ended, member)
    table.insert(ended, info)
    table.insert(ended, due[i + 1])
  end
end
return ended
"""
)

# ARGV: prefix, room
RETIRE = (
    PRELUDE
    + """
if redis.call('HLEN', K('visits', ARGV[2])) == 0 then redis.call('SREM', ROOMS, ARGV[2]) end
return 1
"""
)

# ARGV: prefix, room, peak
RESUME = (
    PRELUDE
    + """
local room = ARGV[2]
if tonumber(redis.call('GET', K('peak', room)) or '0') < tonumber(ARGV[3]) then
  redis.call('SET', K('peak', room), ARGV[3])
end
redis.call('SADD', ROOMS, room)
return 1
"""
)

# ARGV: prefix, node: leave; entries left over (a release that failed) go to the reapers
DEREGISTER = (
    PRELUDE
    + """
redis.call('ZREM', NODES, ARGV[2])
if redis.call('EXISTS', INDEX(ARGV[2])) == 1 then redis.call('ZADD', DEAD, now_ms(), ARGV[2]) end
return 1
"""
)

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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisPresence(NodePresence):
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        node_id: str | None = None,
        address_cap: int = 3,
        heartbeat_seconds: float = 1.0,
        node_timeout_seconds: float = 10.0,
    ) -> None:
        super().__init__(node_id=node_id or new_node_id(), address_cap=address_cap)
        self._redis = redis
        self._prefix = prefix
        self._timeout = node_timeout_seconds
        # Late by 2.5 beats: the mobile client waits 3 s before it reconnects.
        self._doubt_ms = int(heartbeat_seconds * 2500)
        self._registered = False
        self._lost = False
        self._healthy_since: float | None = None
        self._scripts = {
            name: redis.register_script(body)
            for name, body in {
                "register": REGISTER,
                "heartbeat": HEARTBEAT,
                "detect": DETECT,
                "reap": REAP,
                "sweep": SWEEP,
                "retire": RETIRE,
                "resume": RESUME,
                "deregister": DEREGISTER,
            }.items()
        }
        self._publish = redis.register_script(PUBLISH_SCRIPT)
        # Every change to holds, in the order asked, a batch per script call.
        self._changes = ScriptBatches(
            "presence", redis.register_script(APPLY), [prefix, address_cap, self._doubt_ms]
        )

    async def _run(self, name: str, *args: Any) -> Any:
        return await self._scripts[name](keys=[], args=[self._prefix, *args])

    def _key(self, kind: str, room: str) -> str:
        return f"{self._prefix}presence:{kind}:{room}"

    # --- the node --------------------------------------------------------------------------

    async def register(self, *, predecessor: Predecessor | None = None) -> list[Visit]:
        before = predecessor.node_id if predecessor else ""
        beat_ms = int(predecessor.last_beat * 1000) if predecessor else 0
        self._registered = True  # if Redis is away, the heartbeat registers when it answers
        await self._run("register", self.node_id, before, beat_ms)
        self._lost = False
        self._healthy_since = time.monotonic()
        return await self._reap(before) if before else []

    async def heartbeat(self, *, at: float) -> Beat:
        if not self._registered:
            return Beat([], False)
        try:
            alive = await self._run("heartbeat", self.node_id)
        except Exception:
            self._healthy_since = None  # reap nobody until we have been seen alive a while
            raise
        if self._healthy_since is None:
            self._healthy_since = time.monotonic()
        if alive and not self._lost:
            return Beat([], False)
        return Beat(await self._register_again(at), True)

    async def _register_again(self, at: float) -> list[Visit]:
        """Reaped while alive (a long pause), or Redis lost its data: this node's visits were
        ended; its connections are held again, as a new node, and begin new visits."""
        self.node_id = new_node_id()
        await self._run("register", self.node_id, "", 0)
        self._lost = False
        started: list[Visit] = []
        for room, member, mine in self.local.counted():
            if self.local.get(room, member) is not mine:
                continue  # its connections closed meanwhile
            held = await self._add(room, member, self.node_id, at=at, hold=mine, expiry=None)
            mine.counted = held.counted
            if held.started is not None:
                started.append(held.started)
            if self.local.get(room, member) is not mine and held.counted:
                # Closed while we held it again: let go, or it would stay until this node dies.
                ended = await self._remove(room, member, self.node_id, at=at)
                if ended is not None:
                    started = [v for v in started if v.key != ended.key]
        return started

    async def deregister(self) -> None:
        if self._registered:
            await self._run("deregister", self.node_id)
            self._registered = False

    # --- holds -----------------------------------------------------------------------------

    async def _add(
        self,
        room: str,
        member: str,
        holder: str,
        *,
        at: float,
        hold: LocalHold,
        expiry: float | None,
    ) -> Held:
        reply = await self._changes.call(
            "a",
            room,
            member,
            holder,
            new_visit_key(),
            repr(at),
            hold.address or "",
            hold.region or "",
            repr(expiry) if expiry is not None else "",
        )
        status = int(reply[0])
        if status == -1:
            # Reaped while alive: the next heartbeat registers again and holds this member.
            self._lost = True
            return Held(True)
        if status == 0:
            return Held(False)
        if not int(reply[1]):
            return Held(True)
        visit, _ = parse_visit(room, member, _text(reply[2]))
        return Held(True, visit)

    async def _remove(self, room: str, member: str, holder: str, *, at: float) -> Visit | None:
        info = await self._changes.call("r", room, member, holder)
        return parse_visit(room, member, _text(info), ended_at=at)[0] if info else None

    async def _exclude(self, room: str, member: str, *, at: float) -> Visit | None:
        info = await self._changes.call("x", room, member)
        return parse_visit(room, member, _text(info), ended_at=at)[0] if info else None

    async def include(self, room: str, member: str) -> None:
        await self._changes.call("i", room, member)

    # --- lapsed holds and dead nodes -------------------------------------------------------

    async def sweep(self, *, at: float) -> list[Visit]:
        ended: list[Visit] = []
        while True:
            flat = await self._run("sweep", repr(at), BATCH)
            for i in range(0, len(flat), 4):
                room, member, info, end = (_text(v) for v in flat[i : i + 4])
                ended.append(parse_visit(room, member, info, ended_at=float(end))[0])
            if len(flat) < BATCH * 4:
                break
        if self._may_reap():
            for node in await self._run("detect", int(self._timeout * 1000)):
                ended += await self._reap(_text(node))
        return ended

    def _may_reap(self) -> bool:
        # Only a node that has itself been seen alive for a whole timeout judges others: after
        # Redis comes back, every heartbeat is old, and nobody may reap the rest before they
        # have had the time to beat again.
        healthy = self._healthy_since
        return (
            self._registered and healthy is not None and time.monotonic() - healthy >= self._timeout
        )

    async def _reap(self, node: str) -> list[Visit]:
        """End a dead node's visits at its last heartbeat (several reapers may share one)."""
        ended: list[Visit] = []
        while True:
            beat, flat = await self._run("reap", node, BATCH)
            if beat is None:
                return ended
            at = float(_text(beat)) / 1000
            for i in range(0, len(flat), 3):
                room, member, info = (_text(v) for v in flat[i : i + 3])
                ended.append(parse_visit(room, member, info, ended_at=at)[0])

    # --- reading ---------------------------------------------------------------------------

    async def counts(self, room: str) -> RoomCounts:
        # With the holds, in their order: a count asked after a hold includes it, and a
        # join storm's counts share its script calls.
        current, peak, started, unique = await self._changes.call("c", room)
        return RoomCounts(int(current), int(peak), int(started), int(unique))

    async def visit_keys(self, room: str) -> set[str]:
        infos = await self._redis.hvals(self._key("visits", room))
        return {_text(info).split("|", 1)[0] for info in infos}

    async def rooms(self) -> list[str]:
        members = await self._redis.smembers(f"{self._prefix}presence:rooms")
        return [_text(m) for m in members]

    async def retire(self, room: str) -> None:
        await self._run("retire", room)

    async def resume(self, room: str, *, peak: int) -> None:
        await self._run("resume", room, peak)

    async def publish_if_changed(self, room: str, value: str, *, period: float) -> bool:
        slot = math.floor(time.time() / period)
        won = await self._publish(
            keys=[self._key("published-slot", f"{room}:{slot}"), self._key("published", room)],
            args=[value, int(period * 2000)],
        )
        return bool(won)

    async def close(self) -> None:
        await self._changes.close()
