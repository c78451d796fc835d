"""Presence: who is in a room now, cluster-wide, as *visits*; and the room's totals.

Words used throughout (docs/architecture.md, "Counting viewers"):
- a *member* is one viewer: `u:{user_id}` for a signed-in person (all their devices, sockets,
  protocols and nodes together), `a:{id}` for one anonymous connection;
- a *holder* keeps a member present: a node (however many of its connections hold the member)
  or a REST join (`rest`, for a while unless renewed);
- a *visit* is a member's continuous presence: it starts with its first holder anywhere in the
  cluster and ends with its last. A visit is what a session row records.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Protocol

from tajiri_live.core import randomids

REST = "rest"  # the holder of REST joins


def new_node_id() -> str:
    return randomids.token_hex(6)


def new_visit_key() -> str:
    return randomids.token_hex(8)


@dataclass(frozen=True, slots=True)
class RoomCounts:
    current: int  # members present now
    peak: int  # the highest `current` seen while no node was in doubt (monotonic)
    visits: int  # visits started: a person's continuous presence counts once, renewals never
    unique: int  # distinct members ever (exact in memory, HyperLogLog with Redis)


@dataclass(frozen=True, slots=True)
class Visit:
    room: str
    member: str
    key: str  # unique; its session row is written, and closed by any node, under it
    started_at: float  # epoch seconds
    region: str | None = None
    ended_at: float | None = None


@dataclass(frozen=True, slots=True)
class Held:
    counted: bool  # False: not counted (a broadcaster, or over its address's anonymous cap)
    started: Visit | None = None  # the visit this hold began, if it began one


@dataclass(frozen=True, slots=True)
class Beat:
    started: list[Visit]  # visits begun again after the node lost its registration
    recovered: bool  # the registration was lost (reaped while alive, or Redis lost its data)


@dataclass(frozen=True, slots=True)
class Predecessor:
    """The process that held this node's slot before: certainly dead (docs: node slots)."""

    node_id: str
    last_beat: float  # epoch seconds


class Presence(Protocol):
    """Guarantees: a member counts once per room however many connections, protocols, nodes and
    REST joins hold it; `hold`/`hold_for` report the visit they begin and `release`/`drop`/
    `exclude`/`sweep` the visits they end, each exactly once cluster-wide, so whoever hears of
    it writes the session row; a member marked out with `exclude` is never counted until
    `include`; anonymous members count at most `address_cap` per address and room; a node that
    stops heartbeating is reaped by any live node after the timeout (its visits end at its last
    heartbeat), or at once by its successor in the same slot; the peak is not raised while a
    node is late (so ghosts of a dying node are never a peak)."""

    node_id: str

    async def register(self, *, predecessor: Predecessor | None = None) -> list[Visit]:
        """Join the cluster as a node; reap `predecessor` now. Returns the visits that ended."""
        ...

    async def hold(
        self,
        room: str,
        member: str,
        *,
        at: float,
        region: str | None = None,
        address: str | None = None,
    ) -> Held:
        """A connection of this node holds `member` (balanced by one `release`)."""
        ...

    async def release(self, room: str, member: str, *, at: float) -> Visit | None:
        """One of this node's connections let go; the visit, if that ended it."""
        ...

    async def hold_for(
        self, room: str, member: str, *, seconds: float, at: float, region: str | None = None
    ) -> Held:
        """A REST join: hold `member` until `at + seconds` (a later join extends it)."""
        ...

    async def drop(self, room: str, member: str, *, at: float) -> Visit | None:
        """A REST leave: the REST hold goes (connections still hold the member)."""
        ...

    async def exclude(self, room: str, member: str, *, at: float) -> Visit | None:
        """Never count `member` here (it broadcasts now): every hold goes, its visit ends."""
        ...

    async def include(self, room: str, member: str) -> None:
        """Count `member` again from its next hold."""
        ...

    async def heartbeat(self, *, at: float) -> Beat:
        """Prove this node alive; a node that lost its registration registers again."""
        ...

    async def sweep(self, *, at: float) -> list[Visit]:
        """End lapsed REST holds and reap dead nodes; the visits that ended."""
        ...

    async def counts(self, room: str) -> RoomCounts: ...

    async def visit_keys(self, room: str) -> set[str]:
        """The keys of the room's visits now (what open session rows may still be)."""
        ...

    async def rooms(self) -> list[str]:
        """Rooms that had members at the last look (cluster-wide)."""
        ...

    async def publish_if_changed(self, room: str, value: str, *, period: float) -> bool:
        """True for exactly one caller per room and period, and only if `value` differs
        from the last value published: one cluster-wide stream of count updates."""
        ...

    async def retire(self, room: str) -> None:
        """Drop `room` from `rooms()` if nobody is in it (after its zero was published)."""
        ...

    async def resume(self, room: str, *, peak: int) -> None:
        """List `room` (its count was stored but presence lost it: a restart) with at least
        `peak` as its peak, so its true count is published again."""
        ...

    async def deregister(self) -> None:
        """Leave the cluster (a clean shutdown, after every connection let go)."""
        ...

    async def close(self) -> None: ...


@dataclass
class LocalHold:
    connections: int
    counted: bool
    region: str | None
    address: str | None


@dataclass
class LocalHolds:
    """This node's connections per room and member: the member's node hold goes with the last
    one. Kept to renew what a lost registration dropped."""

    rooms: dict[str, dict[str, LocalHold]] = field(default_factory=dict)

    def get(self, room: str, member: str) -> LocalHold | None:
        return self.rooms.get(room, {}).get(member)

    def add(self, room: str, member: str, hold: LocalHold) -> None:
        self.rooms.setdefault(room, {})[member] = hold

    def remove(self, room: str, member: str) -> None:
        held = self.rooms.get(room)
        if held is not None:
            held.pop(member, None)
            if not held:
                del self.rooms[room]

    def holds(self, room: str) -> bool:
        return bool(self.rooms.get(room))

    def counted(self) -> list[tuple[str, str, LocalHold]]:
        return [(r, m, h) for r, held in self.rooms.items() for m, h in held.items() if h.counted]


class NodePresence(ABC):
    """What both backends share: the node's own connections (a member is held once per node)
    and the calls that only reach the store for a member's first and last connection."""

    def __init__(self, *, node_id: str, address_cap: int) -> None:
        self.node_id = node_id
        self.address_cap = address_cap
        self.local = LocalHolds()

    async def hold(
        self,
        room: str,
        member: str,
        *,
        at: float,
        region: str | None = None,
        address: str | None = None,
    ) -> Held:
        known = self.local.get(room, member)
        if known is not None:
            known.connections += 1
            return Held(known.counted)
        mine = LocalHold(1, True, region, address if member.startswith("a:") else None)
        self.local.add(room, member, mine)
        try:
            held = await self._add(room, member, self.node_id, at=at, hold=mine, expiry=None)
        except BaseException:
            self.local.remove(room, member)
            raise
        mine.counted = held.counted
        return held

    async def release(self, room: str, member: str, *, at: float) -> Visit | None:
        known = self.local.get(room, member)
        if known is None:
            return None
        known.connections -= 1
        if known.connections > 0:
            return None
        self.local.remove(room, member)
        if not known.counted:
            return None
        return await self._remove(room, member, self.node_id, at=at)

    async def hold_for(
        self, room: str, member: str, *, seconds: float, at: float, region: str | None = None
    ) -> Held:
        rest = LocalHold(1, True, region, None)
        return await self._add(room, member, REST, at=at, hold=rest, expiry=at + seconds)

    async def drop(self, room: str, member: str, *, at: float) -> Visit | None:
        return await self._remove(room, member, REST, at=at)

    async def exclude(self, room: str, member: str, *, at: float) -> Visit | None:
        known = self.local.get(room, member)
        if known is not None:
            known.counted = False  # its other connections here do not count either
        return await self._exclude(room, member, at=at)

    @abstractmethod
    async def _exclude(self, room: str, member: str, *, at: float) -> Visit | None:
        """The store's side of `exclude` (each backend's own)."""

    @abstractmethod
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
        """Record a holder of a member in the store (each backend's own)."""

    @abstractmethod
    async def _remove(self, room: str, member: str, holder: str, *, at: float) -> Visit | None:
        """Drop a holder of a member from the store (each backend's own)."""


def visit_info(key: str, at: float, address: str | None, region: str | None) -> str:
    """A visit as the stores keep it: `key|start|address|region` (the region may hold `|`)."""
    return f"{key}|{at!r}|{address or ''}|{region or ''}"


def parse_visit(
    room: str, member: str, info: str, *, ended_at: float | None = None
) -> tuple[Visit, str | None]:
    """The visit and its address, from `visit_info`."""
    key, start, address, region = info.split("|", 3)
    visit = Visit(room, member, key, float(start), region or None, ended_at)
    return visit, address or None
