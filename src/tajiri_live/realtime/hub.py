"""The fan-out hub: local sockets subscribed to channels, fed by the broker.

Per event the hub does O(groups) work: encode once per wire encoder, append the frame to the
channel group's log. A wheel visits every member of the busy groups in turn, a slice of
sockets per event-loop step, and writes each socket everything it has not had yet in one call
(the joined bytes are shared by every socket at the same position). Per-socket work is
therefore per visit, not per event, and a frame waits at most one turn of the wheel: a frame
that arrives mid-turn reaches the sockets not yet visited in that same turn, and the loop
stays free between slices to read the broker and serve requests.

Turns are paced by a latency budget (`Pacer`): a frame waits for its socket's next visit, so
the time between two turns' starts is stretched as far as the budget allows, and each write
carries as many frames as it can (CPU goes with writes, not with frames).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, deque
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
from tajiri_live.realtime.slots import Slot, Wire, make_slot, write_slice

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
    # what the transport holds unsent (the writes themselves go through the sink's wire)
    def get_write_buffer_size(self) -> int: ...


class Sink(Protocol):
    """A connected socket as the hub sees it."""

    transport: Transport
    wire: Wire  # every write of the socket goes through it (slots.py)
    socket_id: str  # unique in the cluster (Pusher's `socket_id`)
    own: list[bytes]  # frames for this socket alone, flushed on the next tick
    user_id: int | None

    def close_slow(self) -> None:
        """Close because the peer does not read fast enough."""
        ...

    def close(self, code: int, reason: str) -> None: ...


@dataclass(frozen=True)
class HubSettings:
    tick_seconds: float = 0.02  # the shortest gap between two turns of the wheel
    # End to end (publisher to the client's read), the latency the wheel keeps frames within:
    # turns are spaced as far apart as this allows, so writes are as few as they can be.
    latency_budget_seconds: float = 0.15
    sockets_per_step: int = 100  # sockets written per event-loop step
    slow_check_seconds: float = 0.25  # how often a group's sockets' buffers are checked
    max_buffer_bytes: int = 4 * 1024 * 1024  # unread bytes queued for one socket
    max_buffered_total_bytes: int = 512 * 1024 * 1024  # ... and for all of them together
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
    budget_closed: int = 0  # of those, closed to keep all sockets' unread bytes in budget
    turns: int = 0
    turn_seconds: float = 0.0  # time spent writing (the steps), not the gaps between them
    max_turn_seconds: float = 0.0
    gap_seconds: float = 0.0  # the pacer's gap between two turns' starts, now
    max_wait_seconds: float = 0.0  # the longest a frame waited in the hub for its write


# The share of the latency budget left to what happens outside the wheel: the broker before
# it, the kernel and the client's read after it (end to end those took less than 10 % did:
# with 10 %, the p99 stayed 10-17 ms under a budget of 150; docs/benchmarks.md).
OUTSIDE_SHARE = 0.05
# How often all sockets' unread bytes are added up (every socket asked: 1-2 ms at 10,000).
TOTAL_CHECK_SECONDS = 1.0
# How long the pacer remembers a turn that overran: half of the overrun is forgotten per this
# many seconds, so a slow turn shortens the gap for the turns after it, not for one turn.
OVERRUN_HALF_LIFE_SECONDS = 1.0


class Pacer:
    """How long from one turn's start to the next: as long as the latency budget allows.

    A frame waits in the hub for its socket's next visit: the time between two turns' starts,
    plus how much later in its turn the socket is reached than in the turn before (a turn
    that writes longer, other work between slices, a late timer). That overrun is measured
    every turn (the oldest frame's wait at each write, minus the time the turn could not
    start sooner) and remembered as a decaying maximum; the gap is the hub's share of the
    budget less that, and never below the floor. A turn that writes for longer than the gap
    is followed at once: the gap cannot shorten it, so its length is not counted as overrun.
    """

    def __init__(self, floor_seconds: float, budget_seconds: float) -> None:
        self.floor = floor_seconds
        self.target = max(floor_seconds, budget_seconds * (1 - OUTSIDE_SHARE))
        self.gap = self.target
        self.overrun = 0.0  # the decaying maximum
        self._last_start = self._last_end = -1e9  # long ago

    def turn_ended(self, started: float, now: float, longest_wait: float | None) -> float:
        """Learn from a turn (`longest_wait`: None if it wrote no frame); the next gap."""
        remembered = self.overrun * math.pow(
            0.5, max(0.0, now - self._last_end) / OVERRUN_HALF_LIFE_SECONDS
        )
        excess = 0.0
        if longest_wait is not None:
            earliest = max(self._last_start + self.gap, self._last_end)
            excess = longest_wait - max(0.0, min(started, earliest) - self._last_start)
            # A longer stall (a collector pause) is not the gap's to make up: shortening every
            # gap for seconds after it costs writes and would not have saved its frames.
            excess = min(excess, self.target / 2)
        self.overrun = max(excess, remembered, 0.0)
        self._last_start, self._last_end = started, now
        self.gap = max(self.floor, self.target - self.overrun)
        return self.gap


class Group:
    """The members of one channel that speak one wire protocol, and the frames they are owed."""

    __slots__ = (
        "base",
        "encoder",
        "latest",
        "log",
        "members",
        "next_check",
        "times",
        "turn_head",
        "window_count",
        "window_start",
    )

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.members: dict[Sink, Slot] = {}
        self.next_check = 0.0
        self.log: list[bytes] = []
        self.times: list[float] = []  # when each frame of the log arrived
        self.base = 0  # the sequence number of log[0]
        self.turn_head = 0  # the head when this group's last turn began
        # keep-latest key (an event name or a counter's key) -> (its frame's sequence, version)
        self.latest: dict[str, tuple[int, int | None]] = {}
        self.window_start = 0.0
        self.window_count = 0

    @property
    def head(self) -> int:
        return self.base + len(self.log)

    def append(self, data: bytes, now: float) -> None:
        self.log.append(data)
        self.times.append(now)

    def replace_latest(self, key: str, data: bytes, now: float, version: int | None = None) -> bool:
        """Append a keep-latest frame and blank the older one of that key: a socket that has
        not had the old one yet gets only the new one, a socket that had it gets the update.
        A frame older than the last one of its key (a lower version) is dropped: False."""
        previous = self.latest.get(key)
        if previous is not None:
            seq, seen = previous
            if version is not None and seen is not None and version < seen:
                return False
            if seq >= self.base:
                self.log[seq - self.base] = b""
        self.latest[key] = (self.head, version)
        self.append(data, now)
        return True

    def since(self, seq: int) -> tuple[bytes, int]:
        """The frames from `seq` on, joined, and how many there are."""
        frames = self.log[seq - self.base :]
        return b"".join(frames), sum(1 for f in frames if f)

    def begin_turn(self) -> None:
        """Forget the frames every member has had: the last turn wrote each member at least up
        to the head it began with, and members who joined since start at their join."""
        floor = self.turn_head
        if floor > self.base:
            del self.log[: floor - self.base]
            del self.times[: floor - self.base]
            self.base = floor
        self.turn_head = self.head


@dataclass
class Hub:
    encoders: dict[str, Encoder]
    settings: HubSettings = field(default_factory=HubSettings)
    clock: Callable[[], float] = time.monotonic
    stats: HubStats = field(default_factory=HubStats)

    def __post_init__(self) -> None:
        self._channels: dict[str, dict[str, Group]] = {}
        self._subscriptions: dict[Sink, list[tuple[str, str, str | None]]] = {}
        # every socket the hub writes (subscribed, or sent frames of its own) until its drop:
        # what the process-wide budget of unread bytes adds up
        self._sockets: set[Sink] = set()
        # source channel -> channels fed from it (a Pusher `private-stream.5` is fed by
        # `stream.5`), counted per subscription
        self._feeds: dict[str, Counter[str]] = {}
        self._users: dict[int, set[Sink]] = {}
        self._dirty_groups: set[Group] = set()
        self._dirty_sinks: set[Sink] = set()
        self._step_handle: asyncio.Handle | None = None
        self._turn: deque[tuple[Group, list[Slot]]] = deque()  # slices left in this turn
        self._turn_started = -1e9
        self._turn_cost = 0.0
        self._turn_wait: float | None = None  # the longest a frame written this turn waited
        self._turn_done = True  # no turn under way
        self._pacer = Pacer(self.settings.tick_seconds, self.settings.latency_budget_seconds)
        self.stats.gap_seconds = self._pacer.gap
        self._step_due = 0.0  # when the scheduled step may begin a turn (on `clock`)
        self._closing: list[Sink] = []  # closed on the next step (they hear why first)
        self._next_total_check = 0.0  # when all sockets' unread bytes are next added up

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
        if sink not in group.members:
            group.members[sink] = make_slot(sink.wire, group.head)
        self._subscriptions.setdefault(sink, []).append((channel, encoder, source))
        self._sockets.add(sink)
        if source is not None:
            self._feeds.setdefault(source, Counter())[channel] += 1
        if sink.user_id is not None:
            self._users.setdefault(sink.user_id, set()).add(sink)

    def identify(self, sink: Sink, user_id: int) -> None:
        """A socket that connected anonymously proved who it is (a Pusher channel signed for
        its user): events for that user reach it from now on."""
        if sink.user_id is None:
            sink.user_id = user_id
        if sink.user_id == user_id and sink in self._subscriptions:
            self._users.setdefault(user_id, set()).add(sink)

    def unsubscribe(self, sink: Sink, channel: str) -> None:
        subscriptions = self._subscriptions.get(sink, [])
        for entry in [e for e in subscriptions if e[0] == channel]:
            subscriptions.remove(entry)
            self._leave_group(sink, *entry)

    def drop(self, sink: Sink) -> None:
        """Forget a socket entirely (it closed)."""
        for entry in self._subscriptions.pop(sink, []):
            self._leave_group(sink, *entry)
        self._sockets.discard(sink)
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
        slot = group.members.pop(sink, None)
        if slot is not None:
            slot.alive = False
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
        now = self.clock()
        for channel in event.channels:
            self._deliver_on(event, channel, lane, encoded, banned, now)
            for target in self._feeds.get(channel, ()):
                self._deliver_on(event, target, lane, encoded, banned, now)
        self._schedule()

    def _deliver_on(
        self,
        event: Event,
        channel: str,
        lane: Lane,
        encoded: dict[object, bytes | None],
        banned: object,
        now: float,
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
            if event.to_users is not None:
                # A few users (a stream's hosts): their sockets among the members, by user.
                for user_id in event.to_users:
                    for sink in self._users.get(user_id, ()):
                        if sink in group.members:
                            self.send_own(sink, data)
                continue
            if event.latest_key is not None:
                if not group.replace_latest(event.latest_key, data, now, event.version):
                    continue  # a stale counter value: a newer one was already delivered
            elif lane is Lane.LATEST:
                group.replace_latest(event.name, data, now)
            elif lane is Lane.SAMPLED and not self._admit_sampled(group):
                self._to_actor(event, group, data)
                continue
            else:
                group.append(data, now)
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
        self._sockets.add(sink)
        if len(sink.own) > self.settings.max_own_frames:
            self._close_slow(sink)
            return
        self._dirty_sinks.add(sink)
        self._schedule()

    def _schedule(self) -> None:
        if not (self._dirty_groups or self._dirty_sinks):
            return
        now = self.clock()
        if self._step_handle is not None:
            if not (self._dirty_sinks and self._step_due > now):
                return
            self._step_handle.cancel()  # waiting for the next turn: own frames go sooner
        loop = asyncio.get_running_loop()
        # A socket's own frames (replies, pongs) are not held for the next turn.
        due = now if self._dirty_sinks else self._turn_started + self._pacer.gap
        self._step_due = max(now, due)
        if due > now:
            self._step_handle = loop.call_later(due - now, self._step)
        else:
            self._step_handle = loop.call_soon(self._step)

    def _step(self) -> None:
        """One event-loop step of the wheel: sockets' own frames, then up to a slice's worth of
        sockets (one big room's slice, or several small rooms)."""
        self._step_handle = None
        started = self.clock()
        due = self._turn_started + self._pacer.gap - 0.001  # a timer may fire a little early
        if not self._turn and self._dirty_groups and started >= due:
            self._begin_turn(started)
        if started >= self._next_total_check:
            self._next_total_check = started + TOTAL_CHECK_SECONDS
            self._close_hoarders()
        if self._dirty_sinks:
            self._write_own()
        sockets_left = self.settings.sockets_per_step  # small rooms share a step
        while self._turn and sockets_left > 0:
            group, slots = self._turn.popleft()
            self._write_slice(group, slots)
            sockets_left -= len(slots)
        if self._closing:
            closing, self._closing = self._closing, []
            for sink in closing:
                self._catch_up(sink)
                self.drop(sink)
                sink.close(POLICY_VIOLATION, "banned from this stream")
        if not self._turn_done:
            self._turn_cost += self.clock() - started
        if self._turn:
            self._step_due = started
            self._step_handle = asyncio.get_running_loop().call_soon(self._step)
            return
        if not self._turn_done:
            self._end_turn()
        self._schedule()

    def _begin_turn(self, now: float) -> None:
        self._turn_started = now
        self._turn_cost = 0.0
        self._turn_wait = None
        self._turn_done = False
        groups, self._dirty_groups = self._dirty_groups, set()
        size = max(1, self.settings.sockets_per_step)
        for group in groups:
            if now >= group.next_check:
                group.next_check = now + self.settings.slow_check_seconds
                for sink in self._slow_members(group):
                    self._close_slow(sink)
            group.begin_turn()
            slots = list(group.members.values())
            for offset in range(0, len(slots), size):
                self._turn.append((group, slots[offset : offset + size]))

    def _end_turn(self) -> None:
        stats = self.stats
        cost = self._turn_cost
        self._turn_done = True
        stats.turns += 1
        stats.turn_seconds += cost
        stats.max_turn_seconds = max(stats.max_turn_seconds, cost)
        stats.gap_seconds = self._pacer.turn_ended(
            self._turn_started, self.clock(), self._turn_wait
        )

    def _write_own(self) -> None:
        sinks, self._dirty_sinks = self._dirty_sinks, set()
        for sink in sinks:
            if sink.own and self._too_slow(sink):
                # Frames for one socket (Pusher client events, the hosts' own events) pile up
                # in its transport as a room's do: the same limit closes it.
                sink.own.clear()
                self._close_slow(sink)
            elif sink.own:
                sink.wire.send(self.take_own(sink))

    def take_own(self, sink: Sink) -> bytes:
        """A socket's queued frames, joined and counted, for the caller to write now (the
        step's own-frames write, or the handshake with its 101)."""
        if not sink.own:
            return b""
        data = b"".join(sink.own)
        self.stats.frames_out += len(sink.own)
        self.stats.writes += 1
        sink.own.clear()
        self._dirty_sinks.discard(sink)
        return data

    def _write_slice(self, group: Group, slots: list[Slot]) -> None:
        frames, writes, oldest = write_slice(slots, group.head, group.since)
        stats = self.stats
        stats.frames_out += frames
        stats.writes += writes
        if writes:
            # measured after the slice's writes: the last socket of the slice waited this long
            waited = self.clock() - group.times[oldest - group.base]
            stats.max_wait_seconds = max(stats.max_wait_seconds, waited)
            if self._turn_wait is None or waited > self._turn_wait:
                self._turn_wait = waited

    def _catch_up(self, sink: Sink) -> None:
        """Write a socket everything it is owed now (it is about to be closed)."""
        if sink.own:
            self.stats.frames_out += len(sink.own)
            sink.wire.send(b"".join(sink.own))
            sink.own.clear()
        for channel, encoder, _source in self._subscriptions.get(sink, []):
            group = self._channels.get(channel, {}).get(encoder)
            slot = group.members.get(sink) if group is not None else None
            if group is None or slot is None or slot.seq >= group.head:
                continue
            data, count = group.since(slot.seq)
            slot.seq = group.head
            if count:
                sink.wire.send(data)
                self.stats.frames_out += count

    def _slow_members(self, group: Group) -> list[Sink]:
        return [sink for sink in group.members if self._too_slow(sink)]

    def _too_slow(self, sink: Sink) -> bool:
        """More unread bytes queued than one socket may have."""
        return sink.transport.get_write_buffer_size() > self.settings.max_buffer_bytes

    def _close_hoarders(self) -> None:
        """Keep all sockets' unread bytes within the process's budget: each socket's own limit
        does not bound many sockets that do not read (one address may open thousands), so past
        the budget the sockets holding the most are closed as slow until it holds again."""
        limit = self.settings.max_buffered_total_bytes
        # Added up first, without a pair per socket: at 10,000 sockets, once a second, those
        # were a fifth of a young collection's allocations, for a list thrown away unread.
        total = sum(sink.transport.get_write_buffer_size() for sink in self._sockets)
        if total <= limit:
            return
        sizes = [(sink.transport.get_write_buffer_size(), sink) for sink in self._sockets]
        sizes.sort(key=lambda entry: entry[0], reverse=True)
        for size, sink in sizes:
            if total <= limit or size == 0:
                break
            self._close_slow(sink)
            self.stats.budget_closed += 1
            total -= size

    def _close_slow(self, sink: Sink) -> None:
        self.stats.slow_closed += 1
        self.drop(sink)
        sink.close_slow()

    def close(self) -> None:
        if self._step_handle is not None:
            self._step_handle.cancel()
            self._step_handle = None
