"""The fan-out hub: local sockets subscribed to channels, fed by the broker.

Per event the hub does O(groups) work: encode once per wire encoder, append the frame to the
channel group's pending list. Per tick it joins each group's frames once and writes the same
bytes to every member with one call. Per-socket work is therefore per tick, not per event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from tajiri_live.realtime.encoders import Encoder
from tajiri_live.realtime.events import (
    NEW_COMMENT,
    REACTION,
    USER_BANNED,
    VIEWER_COUNT_UPDATED,
    Event,
)

log = logging.getLogger(__name__)


POLICY_VIOLATION = 1008  # the close code for a banned user's sockets


class Lane(IntEnum):
    ALWAYS = 0  # status changes, gifts, errors, a viewer's own actions: never dropped
    LATEST = 1  # counters: only the newest frame per tick is sent
    SAMPLED = 2  # comments: in big busy rooms, at most N per second per room


LANE_OF: dict[str, Lane] = {
    VIEWER_COUNT_UPDATED: Lane.LATEST,
    NEW_COMMENT: Lane.SAMPLED,
    REACTION: Lane.SAMPLED,
}


class Transport(Protocol):
    def write(self, data: bytes) -> None: ...
    def get_write_buffer_size(self) -> int: ...


class Sink(Protocol):
    """A connected socket as the hub sees it."""

    transport: Transport
    socket_id: str  # unique in the cluster (Pusher's `socket_id`)
    own: list[bytes]  # frames for this socket alone, flushed on the next tick
    user_id: int | None

    def close_slow(self) -> None:
        """Close because the peer does not read fast enough."""
        ...

    def close(self, code: int, reason: str) -> None: ...


@dataclass(frozen=True)
class HubSettings:
    tick_seconds: float = 0.02  # the shortest gap between two flushes
    # A flush writes once per socket; when that takes long (big rooms), the next flush waits
    # this many times as long, so CPU per frame stays flat as rooms grow (latency grows).
    flush_cost_factor: float = 0.0
    max_tick_seconds: float = 0.1
    slow_check_seconds: float = 0.25  # how often a group's sockets' buffers are checked
    max_buffer_bytes: int = 4 * 1024 * 1024  # unread bytes queued for one socket
    max_own_frames: int = 1000
    sample_room_size: int = 1000  # rooms this big may have comments sampled...
    sample_per_second: int = 50  # ...down to this many per second


@dataclass
class HubStats:
    events: int = 0
    frames_out: int = 0
    writes: int = 0
    sampled_out: int = 0
    slow_closed: int = 0
    flushes: int = 0
    flush_seconds: float = 0.0
    max_flush_seconds: float = 0.0


class Group:
    """The members of one channel that speak one wire protocol."""

    __slots__ = (
        "encoder",
        "latest",
        "members",
        "next_check",
        "pending",
        "window_count",
        "window_start",
    )

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        # socket -> its transport's bound `write`: the flush loop does nothing else per socket
        self.members: dict[Sink, Callable[[bytes], object]] = {}
        self.next_check = 0.0
        self.pending: list[bytes] = []
        self.latest: dict[str, bytes] = {}
        self.window_start = 0.0
        self.window_count = 0


@dataclass
class Hub:
    encoders: dict[str, Encoder]
    settings: HubSettings = field(default_factory=HubSettings)
    clock: Callable[[], float] = time.monotonic
    stats: HubStats = field(default_factory=HubStats)

    def __post_init__(self) -> None:
        self._channels: dict[str, dict[str, Group]] = {}
        self._subscriptions: dict[Sink, list[tuple[str, str, str | None]]] = {}
        # source channel -> channels fed from it (a Pusher `private-stream.5` is fed by
        # `stream.5`), counted per subscription
        self._feeds: dict[str, Counter[str]] = {}
        self._users: dict[int, set[Sink]] = {}
        self._dirty_groups: set[Group] = set()
        self._dirty_sinks: set[Sink] = set()
        self._flush_handle: asyncio.TimerHandle | None = None
        self._delay = self.settings.tick_seconds
        self._closing: list[Sink] = []  # closed after the next flush (they hear why first)

    # --- membership ------------------------------------------------------------------------

    def subscribe(
        self, sink: Sink, channel: str, encoder: str, *, source: str | None = None
    ) -> None:
        """Deliver `channel`'s events to `sink`; with `source`, also `source`'s events, encoded
        under the name `channel` (one internal channel, several wire names)."""
        groups = self._channels.setdefault(channel, {})
        group = groups.get(encoder)
        if group is None:
            group = groups[encoder] = Group(self.encoders[encoder])
        group.members[sink] = sink.transport.write
        self._subscriptions.setdefault(sink, []).append((channel, encoder, source))
        if source is not None:
            self._feeds.setdefault(source, Counter())[channel] += 1
        if sink.user_id is not None:
            self._users.setdefault(sink.user_id, set()).add(sink)

    def unsubscribe(self, sink: Sink, channel: str) -> None:
        subscriptions = self._subscriptions.get(sink, [])
        for entry in [e for e in subscriptions if e[0] == channel]:
            subscriptions.remove(entry)
            self._leave_group(sink, *entry)

    def drop(self, sink: Sink) -> None:
        """Forget a socket entirely (it closed)."""
        for entry in self._subscriptions.pop(sink, []):
            self._leave_group(sink, *entry)
        if sink.user_id is not None:
            sockets = self._users.get(sink.user_id)
            if sockets is not None:
                sockets.discard(sink)
                if not sockets:
                    del self._users[sink.user_id]
        self._dirty_sinks.discard(sink)

    def _leave_group(self, sink: Sink, channel: str, encoder: str, source: str | None) -> None:
        if source is not None:
            fed = self._feeds.get(source)
            if fed is not None:
                fed[channel] -= 1
                if fed[channel] <= 0:
                    del fed[channel]
                    if not fed:
                        del self._feeds[source]
        groups = self._channels.get(channel)
        if groups is None or encoder not in groups:
            return
        group = groups[encoder]
        group.members.pop(sink, None)
        if not group.members:
            del groups[encoder]
            self._dirty_groups.discard(group)
            if not groups:
                del self._channels[channel]

    def local_count(self, channel: str) -> int:
        return sum(len(g.members) for g in self._channels.get(channel, {}).values())

    def channels(self) -> list[str]:
        return list(self._channels)

    def sockets_of(self, user_id: int) -> set[Sink]:
        return self._users.get(user_id, set())

    # --- delivery --------------------------------------------------------------------------

    async def handle(self, event: Event) -> None:
        """Broker handler."""
        self.deliver(event)

    def deliver(self, event: Event) -> None:
        self.stats.events += 1
        lane = LANE_OF.get(event.name, Lane.ALWAYS)
        encoded: dict[object, bytes | None] = {}
        banned = event.data.get("user_id") if event.name == USER_BANNED else None
        for channel in event.channels:
            self._deliver_on(event, channel, lane, encoded, banned)
            for target in self._feeds.get(channel, ()):
                self._deliver_on(event, target, lane, encoded, banned)
        self._schedule()

    def _deliver_on(
        self,
        event: Event,
        channel: str,
        lane: Lane,
        encoded: dict[object, bytes | None],
        banned: object,
    ) -> None:
        groups = self._channels.get(channel)
        if not groups:
            return
        for group in groups.values():
            encoder = group.encoder
            key: object = (encoder.name, channel) if encoder.per_channel else encoder.name
            if key not in encoded:
                encoded[key] = encoder.encode(event, channel)
            data = encoded[key]
            if data is None:
                continue
            if event.except_socket is not None:
                # Rare (Pusher's "to others"): one queued frame per member but the sender.
                for sink in group.members:
                    if sink.socket_id != event.except_socket:
                        self.send_own(sink, data)
                continue
            if lane is Lane.LATEST:
                group.latest[event.name] = data
            elif lane is Lane.SAMPLED and not self._admit_sampled(group):
                self._to_actor(event, group, data)
                continue
            else:
                group.pending.append(data)
            self._dirty_groups.add(group)
            if isinstance(banned, int):
                self._closing += [s for s in self._users.get(banned, ()) if s in group.members]

    def _admit_sampled(self, group: Group) -> bool:
        settings = self.settings
        if len(group.members) < settings.sample_room_size:
            return True
        now = self.clock()
        if now - group.window_start >= 1.0:
            group.window_start, group.window_count = now, 0
        if group.window_count < settings.sample_per_second:
            group.window_count += 1
            return True
        self.stats.sampled_out += 1
        return False

    def _to_actor(self, event: Event, group: Group, data: bytes) -> None:
        # The author of a sampled-away comment still sees their own comment.
        if event.actor_id is None:
            return
        for sink in self._users.get(event.actor_id, ()):
            if sink in group.members:
                self.send_own(sink, data)

    def send_own(self, sink: Sink, data: bytes) -> None:
        """Queue a frame for one socket (never dropped; a socket that hoards them is closed)."""
        sink.own.append(data)
        if len(sink.own) > self.settings.max_own_frames:
            self._close_slow(sink)
            return
        self._dirty_sinks.add(sink)
        self._schedule()

    def _schedule(self) -> None:
        if self._flush_handle is None and (self._dirty_groups or self._dirty_sinks):
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(self._delay, self.flush)

    def flush(self) -> None:
        """Write everything queued since the last tick: one write per socket per source."""
        self._flush_handle = None
        started = self.clock()
        stats = self.stats
        if self._dirty_sinks:
            sinks, self._dirty_sinks = self._dirty_sinks, set()
            for sink in sinks:
                if sink.own:
                    data = b"".join(sink.own)
                    stats.frames_out += len(sink.own)
                    sink.own.clear()
                    sink.transport.write(data)
                    stats.writes += 1
        if self._dirty_groups:
            groups, self._dirty_groups = self._dirty_groups, set()
            for group in groups:
                parts = group.pending
                if group.latest:
                    parts.extend(group.latest.values())
                    group.latest.clear()
                group.pending = []
                if not parts:
                    continue
                if started >= group.next_check:
                    group.next_check = started + self.settings.slow_check_seconds
                    for sink in self._slow_members(group):
                        self._close_slow(sink)
                blob = b"".join(parts)
                for write in group.members.values():
                    write(blob)
                stats.frames_out += len(parts) * len(group.members)
                stats.writes += len(group.members)
        if self._closing:
            closing, self._closing = self._closing, []
            for sink in closing:
                self.drop(sink)
                sink.close(POLICY_VIOLATION, "banned from this stream")
        settings = self.settings
        cost = self.clock() - started
        stats.flushes += 1
        stats.flush_seconds += cost
        stats.max_flush_seconds = max(stats.max_flush_seconds, cost)
        self._delay = min(
            settings.max_tick_seconds, max(settings.tick_seconds, cost * settings.flush_cost_factor)
        )

    def _slow_members(self, group: Group) -> list[Sink]:
        limit = self.settings.max_buffer_bytes
        return [s for s in group.members if s.transport.get_write_buffer_size() > limit]

    def _close_slow(self, sink: Sink) -> None:
        self.stats.slow_closed += 1
        self.drop(sink)
        sink.close_slow()

    def close(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
