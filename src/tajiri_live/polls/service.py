"""Polls: opened and closed by the broadcaster, one open poll per stream (by default), closed
with the stream. Votes are in `votes.py` (batched, coalesced)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import false, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from tajiri_live.core.auth import Principal
from tajiri_live.core.errors import ApiError, ValidationFailed, forbidden, not_found
from tajiri_live.core.runtime import Runtime
from tajiri_live.engagement.service import enforce_rate
from tajiri_live.polls.models import StreamPoll, StreamPollOption, StreamPollVote
from tajiri_live.polls.presenters import poll_event
from tajiri_live.realtime.events import POLL_CLOSED, POLL_CREATED, Event, stream_channel
from tajiri_live.streams.hosts import ensure_host, is_host
from tajiri_live.streams.lifecycle import StreamStatus
from tajiri_live.streams.models import LiveStream

MAX_LISTED = 50


async def _publish(runtime: Runtime, name: str, poll: StreamPoll) -> None:
    await runtime.broker.publish(
        Event(
            channel=stream_channel(poll.stream_id),
            name=name,
            data=poll_event(poll, runtime.clock.now()),
        )
    )


async def load_poll(session: AsyncSession, *, stream_id: int, poll_id: int) -> StreamPoll:
    """The poll with its options, as committed now; 404 unless it belongs to the stream."""
    poll = await session.scalar(
        select(StreamPoll)
        .where(StreamPoll.id == poll_id, StreamPoll.stream_id == stream_id)
        .options(selectinload(StreamPoll.options))
        .execution_options(populate_existing=True)
    )
    if poll is None:
        raise not_found("Poll")
    return poll


async def create_poll(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    principal: Principal,
    question: str,
    options: list[str],
) -> StreamPoll:
    """Open a poll (a host of a live stream); `poll_created` once it is committed."""
    settings = runtime.settings
    await ensure_host(session, stream, principal, "create polls")
    if stream.status != StreamStatus.LIVE.value:
        raise ApiError(
            409,
            f"Polls are for live streams: this stream is {stream.status}.",
            stream_status=stream.status,
        )
    if len(options) > settings.poll_max_options:
        raise ValidationFailed(
            {"options": [f"The options may not have more than {settings.poll_max_options} items."]}
        )
    await enforce_rate(
        runtime,
        action="poll",
        stream_id=stream.id,
        user_id=principal.user_id,
        limit=settings.poll_create_limit,
        window=settings.poll_create_window_seconds,
    )
    stream_id = stream.id
    # PostgreSQL: two hosts opening polls at once queue on the stream's row. SQLite: the
    # poll's insert holds the write lock until the count below is checked and committed.
    await session.execute(
        select(LiveStream.id).where(LiveStream.id == stream_id).with_for_update(key_share=True)
    )
    now = runtime.clock.now()
    poll = StreamPoll(
        stream_id=stream_id, question=question, created_by=principal.user_id, created_at=now
    )
    session.add(poll)
    await session.flush()
    session.add_all(StreamPollOption(poll_id=poll.id, text=text, votes=0) for text in options)
    await session.flush()
    open_polls = await session.scalar(
        select(func.count(StreamPoll.id)).where(
            StreamPoll.stream_id == stream_id, StreamPoll.is_closed == false()
        )
    )
    if int(open_polls or 0) > settings.poll_max_open:
        await session.rollback()
        if settings.poll_max_open == 1:
            message = "This stream already has an open poll: close it first."
        else:
            message = f"This stream already has {settings.poll_max_open} open polls."
        raise ApiError(409, message)
    await session.commit()
    poll = await load_poll(session, stream_id=stream_id, poll_id=poll.id)
    await _publish(runtime, POLL_CREATED, poll)
    return poll


async def close_poll(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    principal: Principal,
    poll_id: int,
) -> StreamPoll:
    """Close a poll (its stream's hosts, or an admin). Closing a closed poll changes nothing."""
    poll = await load_poll(session, stream_id=stream.id, poll_id=poll_id)
    if not principal.is_admin and not await is_host(session, stream, principal):
        raise forbidden("Only the stream's owner and co-hosts can close polls.")
    # On PostgreSQL this waits for vote batches that hold the poll: the totals read after
    # the commit are final, and later batches find the poll closed.
    closed = await session.execute(
        update(StreamPoll)
        .where(StreamPoll.id == poll.id, StreamPoll.is_closed == false())
        .values(is_closed=True, closed_at=runtime.clock.now())
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    poll = await load_poll(session, stream_id=stream.id, poll_id=poll.id)
    if getattr(closed, "rowcount", 0) == 1:
        await _publish(runtime, POLL_CLOSED, poll)
    return poll


async def close_for_stream(session: AsyncSession, *, stream_id: int, now: datetime) -> list[int]:
    """Close the stream's open polls in the caller's transaction (the stream ended); the
    caller publishes them with `announce_closed` once it committed."""
    result = await session.execute(
        update(StreamPoll)
        .where(StreamPoll.stream_id == stream_id, StreamPoll.is_closed == false())
        .values(is_closed=True, closed_at=now)
        .returning(StreamPoll.id)
        .execution_options(synchronize_session=False)
    )
    return [int(poll_id) for poll_id in result.scalars()]


async def announce_closed(runtime: Runtime, *, stream_id: int, poll_ids: list[int]) -> None:
    """`poll_closed` with the final totals, read after the closing commit."""
    if not poll_ids:
        return
    async with runtime.sessions() as session:
        for poll_id in poll_ids:
            poll = await load_poll(session, stream_id=stream_id, poll_id=poll_id)
            await _publish(runtime, POLL_CLOSED, poll)


async def list_polls(
    session: AsyncSession, *, stream_id: int, viewer_id: int | None
) -> list[tuple[StreamPoll, int | None]]:
    """Open polls first, then the newest; with the option the viewer voted for."""
    polls = list(
        await session.scalars(
            select(StreamPoll)
            .where(StreamPoll.stream_id == stream_id)
            .options(selectinload(StreamPoll.options))
            .order_by(StreamPoll.is_closed, StreamPoll.id.desc())
            .limit(MAX_LISTED)
        )
    )
    mine: dict[int, int] = {}
    if viewer_id is not None and polls:
        rows = await session.execute(
            select(StreamPollVote.poll_id, StreamPollVote.option_id).where(
                StreamPollVote.user_id == viewer_id,
                StreamPollVote.poll_id.in_([p.id for p in polls]),
            )
        )
        mine = {int(p): int(o) for p, o in rows}
    return [(poll, mine.get(poll.id)) for poll in polls]


async def voted_option(session: AsyncSession, *, poll_id: int, user_id: int) -> int | None:
    option = await session.scalar(
        select(StreamPollVote.option_id).where(
            StreamPollVote.poll_id == poll_id, StreamPollVote.user_id == user_id
        )
    )
    return int(option) if option is not None else None


async def vote_total(session: AsyncSession, poll_id: int) -> int:
    """Counted from the rows: what the options' totals must always add up to."""
    return int(
        await session.scalar(
            select(func.count(StreamPollVote.id)).where(StreamPollVote.poll_id == poll_id)
        )
        or 0
    )
