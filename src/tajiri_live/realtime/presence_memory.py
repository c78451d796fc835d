"""In-process presence: the embedded default (one node)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

from tajiri_live.realtime.presence import LocalHolds, RoomCounts


class MemoryPresence:
    def __init__(self, *, member_ttl: float, now: Callable[[], float]) -> None:
        self._ttl = member_ttl
        self._now = now
        self._expiry: dict[str, dict[str, float]] = {}
        self._local = LocalHolds()
        self._peak: dict[str, int] = {}
        self._joins: Counter[str] = Counter()
        self._seen: dict[str, set[str]] = {}
        self._last_published: dict[str, str] = {}
        self._last_slot: dict[str, int] = {}

    async def join(self, room: str, member: str, *, ttl: float | None = None) -> None:
        if ttl is None:
            self._local.hold(room, member)
        self._expiry.setdefault(room, {})[member] = self._now() + (ttl or self._ttl)
        self._joins[room] += 1
        self._seen.setdefault(room, set()).add(member)
        self._bump_peak(room)

    async def leave(self, room: str, member: str, *, connection: bool = True) -> None:
        gone = (
            self._local.release(room, member) if connection else not self._local.held(room, member)
        )
        if gone:
            self._expiry.get(room, {}).pop(member, None)

    async def renew(self) -> None:
        deadline = self._now() + self._ttl
        for room, members in self._local.rooms.items():
            entries = self._expiry.setdefault(room, {})
            for member in members:
                entries[member] = deadline

    def _current(self, room: str) -> int:
        entries = self._expiry.get(room)
        if not entries:
            return 0
        now = self._now()
        for member in [m for m, expiry in entries.items() if expiry <= now]:
            del entries[member]
        return len(entries)

    def _bump_peak(self, room: str) -> None:
        self._peak[room] = max(self._peak.get(room, 0), self._current(room))

    async def counts(self, room: str) -> RoomCounts:
        self._bump_peak(room)
        return RoomCounts(
            current=self._current(room),
            peak=self._peak.get(room, 0),
            total_joins=self._joins[room],
            unique=len(self._seen.get(room, ())),
        )

    async def rooms(self) -> list[str]:
        return list(self._expiry)

    async def retire(self, room: str) -> None:
        if self._current(room) == 0 and not self._local.holds(room):
            self._expiry.pop(room, None)

    async def publish_if_changed(self, room: str, value: str, *, period: float) -> bool:
        slot = math.floor(self._now() / period)
        if self._last_slot.get(room) == slot or self._last_published.get(room) == value:
            return False
        self._last_slot[room] = slot
        self._last_published[room] = value
        return True

    async def close(self) -> None:
        return None
