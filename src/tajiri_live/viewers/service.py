"""Viewers: who is watching (presence), their sessions, and the counts pushed to everyone."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.core.runtime import Runtime
from tajiri_live.realtime.events import VIEWER_COUNT_UPDATED, Event, stream_channel
from tajiri_live.realtime.presence import RoomCounts
from tajiri_live.streams.models import LiveStream, StreamViewer
from tajiri_live.viewers.sessions import ViewerLog, ViewingSession

log = logging.getLogger(__name__)


def room_of(stream_id: int) -> str:
    return f"stream:{stream_id}"


def stream_of(room: str) -> int | None:
    kind, _, value = room.partition(":")
    return int(value) if kind == "stream" and value.isdigit() else None


def member_of(user_id: int | None, anonymous_id: str) -> str:
    return f"u:{user_id}" if user_id is not None else f"a:{anonymous_id}"


@dataclass
class Viewers:
    """Joins and leaves from sockets and REST, and the cluster-wide count publisher."""

    runtime: Runtime
    log: ViewerLog

    async def socket_joined(self, stream_id: int, member: str, viewing: ViewingSession) -> None:
        await self.runtime.presence.join(room_of(stream_id), member)
        self.log.joined(viewing)

    async def socket_left(self, stream_id: int, member: str, viewing: ViewingSession) -> None:
        self.log.left(viewing, self.runtime.clock.now())
        await self.runtime.presence.leave(room_of(stream_id), member)

    async def rest_join(
        self, session: AsyncSession, *, stream_id: int, user_id: int, region: str | None = None
    ) -> int:
        """Count the user for a while (renewed by joining again); open a session row once."""
        presence = self.runtime.presence
        await presence.join(
            room_of(stream_id),
            member_of(user_id, ""),
            ttl=self.runtime.settings.rest_join_ttl_seconds,
        )
        open_row = await session.scalar(
            select(StreamViewer.id)
            .where(
                StreamViewer.stream_id == stream_id,
                StreamViewer.user_id == user_id,
                StreamViewer.left_at.is_(None),
            )
            .limit(1)
        )
        if open_row is None:
            now = self.runtime.clock.now()
            session.add(
                StreamViewer(
                    stream_id=stream_id,
                    user_id=user_id,
                    joined_at=now,
                    created_at=now,
                    region=region,
                )
            )
            await session.commit()
        return (await presence.counts(room_of(stream_id))).current

    async def rest_leave(self, session: AsyncSession, *, stream_id: int, user_id: int) -> None:
        await self.runtime.presence.leave(
            room_of(stream_id), member_of(user_id, ""), connection=False
        )
        now = self.runtime.clock.now()
        rows = await session.scalars(
            select(StreamViewer).where(
                StreamViewer.stream_id == stream_id,
                StreamViewer.user_id == user_id,
                StreamViewer.left_at.is_(None),
            )
        )
        for row in rows:
            row.left_at = now
            row.watch_duration = max(0, int((now - row.joined_at).total_seconds()))
        await session.commit()

    async def current(self, stream_id: int) -> RoomCounts:
        return await self.runtime.presence.counts(room_of(stream_id))

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
                total_viewers=at_least(LiveStream.total_viewers, counts.total_joins),
                unique_viewers=at_least(LiveStream.unique_viewers, counts.unique),
            )
            .execution_options(synchronize_session=False)
        )
