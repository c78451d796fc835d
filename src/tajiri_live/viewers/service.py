"""Viewers: who is watching (presence, as visits), their sessions, and the counts pushed to
everyone. The rules are written down in docs/architecture.md, "Counting viewers"."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.core.errors import ApiError
from tajiri_live.core.groupcommit import GroupCommit
from tajiri_live.core.runtime import Runtime
from tajiri_live.realtime.events import VIEWER_COUNT_UPDATED, Event, stream_channel
from tajiri_live.realtime.presence import Predecessor, RoomCounts, Visit
from tajiri_live.streams.admission import StreamFacts
from tajiri_live.streams.models import LiveStream, StreamViewer
from tajiri_live.viewers.sessions import (
    ViewerLog,
    ViewingSession,
    open_visits,
    record,
    write_visits,
)

log = logging.getLogger(__name__)


def room_of(stream_id: int) -> str:
    return f"stream:{stream_id}"


def stream_of(room: str) -> int | None:
    kind, _, value = room.partition(":")
    return int(value) if kind == "stream" and value.isdigit() else None


def member_of(user_id: int | None, anonymous_id: str) -> str:
    """A signed-in person is one member everywhere; an anonymous connection is its own."""
    return f"u:{user_id}" if user_id is not None else f"a:{anonymous_id}"


def user_of(member: str) -> int | None:
    kind, _, value = member.partition(":")
    return int(value) if kind == "u" and value.isdigit() else None


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def session_of(visit: Visit) -> ViewingSession | None:
    """The session row of a visit (None for a room that is not a stream's)."""
    stream_id = stream_of(visit.room)
    if stream_id is None:
        return None
    return ViewingSession(
        stream_id,
        user_of(visit.member),
        _moment(visit.started_at),
        left_at=_moment(visit.ended_at) if visit.ended_at is not None else None,
        key=visit.key,
        region=visit.region,
    )


def _sessions(visits: Iterable[Visit]) -> list[ViewingSession]:
    return [s for s in map(session_of, visits) if s is not None]


async def stop_counting(runtime: Runtime, *, stream_id: int, user_id: int) -> None:
    """The user broadcasts on the stream now (an accepted co-host): their visit ends at once,
    and no connection or join of theirs counts until `count_again`."""
    now = runtime.clock.now()
    ended = await runtime.presence.exclude(
        room_of(stream_id), member_of(user_id, ""), at=now.timestamp()
    )
    if ended is not None:
        async with runtime.sessions() as db:
            await record(db, closed=_sessions([ended]))


async def count_again(runtime: Runtime, *, stream_id: int, user_id: int) -> None:
    """The user no longer broadcasts on the stream (left or removed as a co-host)."""
    await runtime.presence.include(room_of(stream_id), member_of(user_id, ""))


@dataclass
class Viewers:
    """Joins and leaves from sockets and REST, the node's heartbeat and sweeps, and the
    cluster-wide count publisher."""

    runtime: Runtime
    log: ViewerLog
    # REST joins' visit rows: written before the answer, in one statement per batch.
    opened: GroupCommit[ViewingSession, None] = field(init=False)

    def __post_init__(self) -> None:
        self.opened = GroupCommit(
            "viewer-joins",
            self._open,
            describe=lambda viewing: f"a REST join of stream {viewing.stream_id}",
            refused=lambda _, __: ApiError(409, "The join could not be stored: reload the stream."),
        )

    async def _open(self, batch: Sequence[ViewingSession]) -> list[None]:
        if self.runtime.reader.direct:
            await open_visits(self.runtime.reader, batch)
        else:
            # Core on a connection: the ORM session's bookkeeping cost more than the statement.
            async with self.runtime.engine.begin() as connection:
                await write_visits(connection, opened=batch)
        return [None] * len(batch)

    def _now(self) -> float:
        return self.runtime.clock.now().timestamp()

    # --- the node ----------------------------------------------------------------------------

    async def start(self, predecessor: Predecessor | None) -> None:
        """Join the cluster: what a dead predecessor left open ends at its last heartbeat.
        A store that is away does not stop the node from serving: the heartbeat registers it
        when Redis answers, and dead nodes are reaped after the timeout instead."""
        try:
            ended = await self.runtime.presence.register(predecessor=predecessor)
            for viewing in _sessions(ended):
                self.log.left(viewing)
            await self.log.flush()
            await self.reconcile(at=_moment(predecessor.last_beat) if predecessor else None)
            await self.resume_counts()
        except Exception:
            log.exception("viewers: joining the cluster failed; the heartbeat will retry")

    async def heartbeat(self) -> None:
        beat = await self.runtime.presence.heartbeat(at=self._now())
        for viewing in _sessions(beat.started):
            self.log.joined(viewing)
        if beat.recovered:
            log.warning("presence registration was lost: connections held again")
            await self.log.flush()
            await self.reconcile(at=self.runtime.clock.now())
            await self.resume_counts()

    async def sweep(self) -> None:
        """End lapsed REST joins and dead nodes' visits (any node may; each end is seen once)."""
        for viewing in _sessions(await self.runtime.presence.sweep(at=self._now())):
            self.log.left(viewing)

    async def stop(self) -> None:
        await self.opened.close()
        try:
            await self.log.flush()
            await self.runtime.presence.deregister()
        except Exception:  # the other nodes reap this one after the timeout instead
            log.exception("viewers: leaving the cluster cleanly failed")

    async def reconcile(self, *, at: datetime | None) -> int:
        """Close open session rows whose visit presence no longer knows: a predecessor's (on
        SQLite, where presence died with it), or any left when Redis lost its data. They end
        at `at` (the dead node's last heartbeat), or, when that is unknown, where they began."""
        async with self.runtime.sessions() as db:
            rows = (
                await db.execute(
                    select(
                        StreamViewer.id,
                        StreamViewer.stream_id,
                        StreamViewer.visit_key,
                        StreamViewer.joined_at,
                    ).where(StreamViewer.left_at.is_(None))
                )
            ).all()
            by_stream: dict[int, list[Any]] = defaultdict(list)
            for row in rows:
                by_stream[row.stream_id].append(row)
            closing: list[dict[str, Any]] = []
            for stream_id, open_rows in by_stream.items():
                present = await self.runtime.presence.visit_keys(room_of(stream_id))
                for row in open_rows:
                    if row.visit_key in present:
                        continue
                    end = max(row.joined_at, at) if at is not None else row.joined_at
                    seconds = max(0, int((end - row.joined_at).total_seconds()))
                    closing.append({"row_id": row.id, "end": end, "seconds": seconds})
            if closing:
                # Only rows still open: a precise end written meanwhile is kept.
                table = cast(Table, StreamViewer.__table__)
                await db.execute(
                    update(table)
                    .where(table.c.id == bindparam("row_id"), table.c.left_at.is_(None))
                    .values(left_at=bindparam("end"), watch_duration=bindparam("seconds")),
                    closing,
                )
                await db.commit()
                log.info("closed %d session(s) presence no longer knew", len(closing))
        return len(closing)

    async def resume_counts(self) -> None:
        """Streams whose stored count is not zero get their room listed again, so the count
        publisher corrects it (presence that died with a process left it standing)."""
        presence = self.runtime.presence
        async with self.runtime.sessions() as db:
            stored = (
                await db.execute(
                    select(LiveStream.id, LiveStream.peak_viewers).where(
                        LiveStream.current_viewers > 0
                    )
                )
            ).all()
        listed = set(await presence.rooms())
        for stream_id, peak in stored:
            if room_of(stream_id) not in listed:
                await presence.resume(room_of(stream_id), peak=peak)

    # --- sockets -----------------------------------------------------------------------------

    async def watch(
        self, stream_id: int, member: str, *, region: str | None, address: str | None
    ) -> bool:
        """A connection of this node watches the stream; False when it is not counted."""
        held = await self.runtime.presence.hold(
            room_of(stream_id), member, at=self._now(), region=region, address=address
        )
        if held.started is not None:
            for viewing in _sessions([held.started]):
                self.log.joined(viewing)
        return held.counted

    async def unwatch(self, stream_id: int, member: str) -> None:
        ended = await self.runtime.presence.release(room_of(stream_id), member, at=self._now())
        if ended is not None:
            for viewing in _sessions([ended]):
                self.log.left(viewing)

    # --- REST --------------------------------------------------------------------------------

    async def rest_join(self, *, stream: StreamFacts, user_id: int, region: str | None) -> int:
        """Count the user for `rest_join_ttl_seconds` (a later join extends it); the owner and
        accepted co-hosts are not viewers. Returns the current count."""
        room = room_of(stream.id)
        presence = self.runtime.presence
        if not stream.broadcasts(user_id):
            held = await presence.hold_for(
                room,
                member_of(user_id, ""),
                seconds=self.runtime.settings.rest_join_ttl_seconds,
                at=self._now(),
                region=region,
            )
            for viewing in _sessions([held.started] if held.started else []):
                # Written before the answer (it may be read back at once), with the batch of
                # joins that arrived meanwhile.
                await self.opened.write(viewing)
        return (await presence.counts(room)).current

    async def rest_leave(self, session: AsyncSession, *, stream_id: int, user_id: int) -> None:
        """Stop counting the REST join; the user's sockets, if any, still hold them."""
        ended = await self.runtime.presence.drop(
            room_of(stream_id), member_of(user_id, ""), at=self._now()
        )
        if ended is not None:
            await record(session, closed=_sessions([ended]))

    async def current(self, stream_id: int) -> RoomCounts:
        return await self.runtime.presence.counts(room_of(stream_id))

    # --- counts ------------------------------------------------------------------------------

    async def publish_counts(self) -> int:
        """Push `viewer_count_updated` for rooms whose numbers changed (one node per period)."""
        runtime = self.runtime
        presence = runtime.presence
        period = runtime.settings.viewer_count_interval_seconds
        published = 0
        rooms = await presence.rooms()
        if not rooms:
            return 0
        ids = [sid for sid in map(stream_of, rooms) if sid is not None]
        async with runtime.sessions() as session:
            rows = await session.execute(
                select(LiveStream.id, LiveStream.privacy).where(LiveStream.id.in_(ids))
            )
            privacy: dict[int, str] = {stream_id: kind for stream_id, kind in rows}
            for room in rooms:
                stream_id = stream_of(room)
                if stream_id is None or stream_id not in privacy:
                    await presence.retire(room)
                    continue
                counts = await presence.counts(room)
                value = f"{counts.current}|{counts.peak}"
                if await presence.publish_if_changed(room, value, period=period):
                    await self._store(session, stream_id, counts)
                    await session.commit()  # readers who react to the event see the numbers
                    await runtime.broker.publish(self._event(stream_id, counts, privacy[stream_id]))
                    published += 1
                if counts.current == 0:
                    await presence.retire(room)
        return published

    def _event(self, stream_id: int, counts: RoomCounts, privacy: str) -> Event:
        data: dict[str, Any] = {
            "stream_id": stream_id,
            "current_viewers": counts.current,
            "viewers_count": counts.current,  # what the stream grid reads (the Stream's field)
            "peak_viewers": counts.peak,
        }
        also = (self.runtime.settings.global_channel,) if privacy == "public" else ()
        return Event(
            channel=stream_channel(stream_id), name=VIEWER_COUNT_UPDATED, data=data, also=also
        )

    @staticmethod
    async def _store(session: AsyncSession, stream_id: int, counts: RoomCounts) -> None:
        # Peaks only rise, even if the presence store was reset.
        def at_least(column: Any, value: int) -> Any:
            return case((column < value, value), else_=column)

        await session.execute(
            update(LiveStream)
            .where(LiveStream.id == stream_id)
            .values(
                current_viewers=counts.current,
                peak_viewers=at_least(LiveStream.peak_viewers, counts.peak),
                total_viewers=at_least(LiveStream.total_viewers, counts.visits),
                unique_viewers=at_least(LiveStream.unique_viewers, counts.unique),
            )
            .execution_options(synchronize_session=False)
        )
