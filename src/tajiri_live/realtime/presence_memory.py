"""In-process presence: the embedded default (one node; nothing outlives the process)."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field

from tajiri_live.realtime.presence import (
    REST,
    Beat,
    Held,
    LocalHold,
    NodePresence,
    Predecessor,
    RoomCounts,
    Visit,
    new_visit_key,
    parse_visit,
    visit_info,
)


@dataclass
class Room:
    visits: dict[str, str] = field(default_factory=dict)  # member -> visit_info
    holders: dict[str, set[str]] = field(default_factory=dict)  # member -> holders
    addresses: Counter[str] = field(default_factory=Counter)  # anonymous visits per address
    staff: set[str] = field(default_factory=set)  # members never counted
    seen: set[str] = field(default_factory=set)
    peak: int = 0
    started: int = 0


class MemoryPresence(NodePresence):
    def __init__(self, *, node_id: str = "local", address_cap: int = 3) -> None:
        super().__init__(node_id=node_id, address_cap=address_cap)
        self._rooms: dict[str, Room] = {}
        self._timed: dict[tuple[str, str], float] = {}  # (room, member) -> end of a REST hold
        self._listed: set[str] = set()  # rooms with members since they were last retired
        self._last_published: dict[str, str] = {}
        self._last_slot: dict[str, int] = {}

    def _room(self, room: str) -> Room:
        return self._rooms.setdefault(room, Room())

    async def register(self, *, predecessor: Predecessor | None = None) -> list[Visit]:
        return []  # a predecessor's presence died with its process

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
        state = self._room(room)
        if member in state.staff:
            return Held(False)
        started: Visit | None = None
        if member not in state.visits:
            address = hold.address
            if address is not None:
                if state.addresses[address] >= self.address_cap:
                    return Held(False)
                state.addresses[address] += 1
            info = visit_info(new_visit_key(), at, address, hold.region)
            state.visits[member] = info
            state.started += 1
            state.seen.add(member)
            self._listed.add(room)
            started, _ = parse_visit(room, member, info)
        state.holders.setdefault(member, set()).add(holder)
        if expiry is not None:
            key = (room, member)
            self._timed[key] = max(expiry, self._timed.get(key, expiry))
        state.peak = max(state.peak, len(state.visits))
        return Held(True, started)

    async def _remove(self, room: str, member: str, holder: str, *, at: float) -> Visit | None:
        state = self._rooms.get(room)
        holders = state.holders.get(member) if state else None
        if state is None or holders is None or holder not in holders:
            return None
        holders.discard(holder)
        if holder == REST:
            self._timed.pop((room, member), None)
        if holders:
            return None
        del state.holders[member]
        info = state.visits.pop(member, None)
        if info is None:
            return None
        visit, address = parse_visit(room, member, info, ended_at=at)
        if address is not None:
            state.addresses[address] -= 1
            if state.addresses[address] <= 0:
                del state.addresses[address]
        return visit

    async def _exclude(self, room: str, member: str, *, at: float) -> Visit | None:
        state = self._room(room)
        state.staff.add(member)
        ended = None
        for holder in list(state.holders.get(member, ())):
            ended = await self._remove(room, member, holder, at=at) or ended
        return ended

    async def include(self, room: str, member: str) -> None:
        self._room(room).staff.discard(member)

    async def heartbeat(self, *, at: float) -> Beat:
        return Beat([], False)

    async def sweep(self, *, at: float) -> list[Visit]:
        ended: list[Visit] = []
        for (room, member), expiry in list(self._timed.items()):
            if expiry <= at:
                visit = await self._remove(room, member, REST, at=expiry)
                if visit is not None:
                    ended.append(visit)
        return ended

    async def counts(self, room: str) -> RoomCounts:
        state = self._rooms.get(room)
        if state is None:
            return RoomCounts(0, 0, 0, 0)
        state.peak = max(state.peak, len(state.visits))
        return RoomCounts(len(state.visits), state.peak, state.started, len(state.seen))

    async def visit_keys(self, room: str) -> set[str]:
        state = self._rooms.get(room)
        return {info.split("|", 1)[0] for info in state.visits.values()} if state else set()

    async def rooms(self) -> list[str]:
        return list(self._listed)

    async def retire(self, room: str) -> None:
        # The room's totals stay (its peak must not start again from zero); its listing ends.
        state = self._rooms.get(room)
        if state is None or not state.visits:
            self._listed.discard(room)

    async def resume(self, room: str, *, peak: int) -> None:
        state = self._room(room)
        state.peak = max(state.peak, peak)
        self._listed.add(room)

    async def publish_if_changed(self, room: str, value: str, *, period: float) -> bool:
        slot = math.floor(time.time() / period)
        if self._last_slot.get(room) == slot or self._last_published.get(room) == value:
            return False
        self._last_slot[room] = slot
        self._last_published[room] = value
        return True

    async def deregister(self) -> None:
        return None

    async def close(self) -> None:
        return None
