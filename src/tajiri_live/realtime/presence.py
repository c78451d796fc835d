"""Presence and counters: who is in a room right now, cluster-wide, and the room's totals."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RoomCounts:
    current: int  # members present now (deduplicated: one per member id)
    peak: int  # the highest `current` ever seen (monotonic)
    total_joins: int  # every join, repeats included
    unique: int  # distinct members ever (exact in memory, HyperLogLog with Redis)


class Presence(Protocol):
    """Guarantees: a member counts once per room however many connections or nodes it uses;
    a member's entry expires `ttl` seconds after its node (or REST heartbeat) last renewed it,
    so a dead node's viewers leave the counts within that bound; counts are cluster-wide."""

    async def join(self, room: str, member: str, *, ttl: float | None = None) -> None:
        """Count `member` in `room`. Connection joins (ttl None) are renewed by `renew()`
        while the connection lives; heartbeat joins (ttl set) expire unless joined again."""
        ...

    async def leave(self, room: str, member: str, *, connection: bool = True) -> None:
        """A connection left: stop counting `member` once none of this node's connections
        hold it. With `connection=False` (a REST leave) no hold is released: the entry goes
        only if no connection on this node holds the member."""
        ...

    async def renew(self) -> None:
        """Extend the entries of this node's live connections (the node heartbeat)."""
        ...

    async def counts(self, room: str) -> RoomCounts:
        """Current, peak, joins and unique for `room`, expired members dropped."""
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

    async def close(self) -> None: ...


@dataclass
class LocalHolds:
    """This node's connections per room and member: a member leaves with its last one."""

    rooms: dict[str, Counter[str]] = field(default_factory=dict)

    def hold(self, room: str, member: str) -> None:
        self.rooms.setdefault(room, Counter())[member] += 1

    def release(self, room: str, member: str) -> bool:
        """Drop one hold; True when the member is no longer held here (or never was)."""
        held = self.rooms.get(room)
        if held is None or held[member] <= 0:
            return True
        held[member] -= 1
        if held[member] > 0:
            return False
        del held[member]
        if not held:
            del self.rooms[room]
        return True

    def holds(self, room: str) -> bool:
        return bool(self.rooms.get(room))

    def held(self, room: str, member: str) -> bool:
        held = self.rooms.get(room)
        return held is not None and held[member] > 0
