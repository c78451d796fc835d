"""Co-hosts: invited by the owner, answered by the invitee, removed or leaving."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from tajiri_live.core.auth import Principal
from tajiri_live.core.db import dialect_insert
from tajiri_live.core.errors import ApiError, ValidationFailed, forbidden, not_found
from tajiri_live.core.runtime import Runtime
from tajiri_live.realtime.events import COHOST_JOINED, Event, stream_channel
from tajiri_live.streams import admission
from tajiri_live.streams.models import LiveStream, StreamCoHost, StreamViewer
from tajiri_live.streams.presenters import cohost_dict
from tajiri_live.users import service as users_service
from tajiri_live.viewers import service as viewers_service

ANSWERS = {"accepted", "declined"}
ACTIVE = {"invited", "accepted"}


async def _load(session: AsyncSession, stream_id: int, cohost_id: int) -> StreamCoHost:
    cohost = await session.scalar(
        select(StreamCoHost)
        .where(StreamCoHost.id == cohost_id, StreamCoHost.stream_id == stream_id)
        .options(selectinload(StreamCoHost.user))
        .execution_options(populate_existing=True)
    )
    if cohost is None:
        raise not_found("Co-host")
    return cohost


async def invitee_of(session: AsyncSession, *, stream_id: int, cohost_id: int) -> int | None:
    """The user a co-host invitation is for (None: no such invitation on this stream)."""
    user_id = await session.scalar(
        select(StreamCoHost.user_id).where(
            StreamCoHost.id == cohost_id, StreamCoHost.stream_id == stream_id
        )
    )
    return int(user_id) if user_id is not None else None


async def invite(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    principal: Principal,
    user_id: int,
) -> StreamCoHost:
    if stream.user_id != principal.user_id and not principal.is_admin:
        raise forbidden("Only the stream's owner can invite co-hosts.")
    if not stream.allow_co_hosts:
        raise forbidden("Co-hosts are turned off for this stream.")
    if user_id == stream.user_id:
        raise ValidationFailed({"user_id": ["The owner cannot be their own co-host."]})
    now = runtime.clock.now()
    await users_service.ensure_user(session, user_id=user_id, now=now)
    # One upsert: a new invitation, or a declined or finished one renewed. Of concurrent
    # invitations one wins; the others find it active (a read then an insert raced).
    fresh = {"status": "invited", "joined_at": None, "left_at": None, "updated_at": now}
    statement = dialect_insert(session)(StreamCoHost).values(
        stream_id=stream.id, user_id=user_id, created_at=now, **fresh
    )
    cohost_id = await session.scalar(
        statement.on_conflict_do_update(
            index_elements=["stream_id", "user_id"],
            set_=fresh,
            where=StreamCoHost.status.not_in(sorted(ACTIVE)),
        ).returning(StreamCoHost.id)
    )
    if cohost_id is None:
        status = await session.scalar(
            select(StreamCoHost.status).where(
                StreamCoHost.stream_id == stream.id, StreamCoHost.user_id == user_id
            )
        )
        await session.rollback()
        raise ApiError(409, f"This user is already {status}.")
    await session.commit()
    return await _load(session, stream.id, int(cohost_id))


async def answer(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    principal: Principal,
    cohost_id: int,
    status: str,
) -> StreamCoHost:
    if status not in ANSWERS:
        raise ValidationFailed({"status": ["The status must be accepted or declined."]})
    cohost = await _load(session, stream.id, cohost_id)
    if cohost.user_id != principal.user_id:
        raise forbidden("Only the invited user can answer this invitation.")
    if cohost.status != "invited":
        raise ApiError(409, f"This invitation was already {cohost.status}.")
    now = runtime.clock.now()
    cohost.status, cohost.updated_at = status, now
    if status == "accepted":
        cohost.joined_at = now
    await session.commit()
    admission.forget(runtime, stream.id)
    cohost = await _load(session, stream.id, cohost.id)
    if status == "accepted":
        # A broadcaster now: no longer one of the stream's viewers (docs: counting viewers).
        await viewers_service.stop_counting(runtime, stream_id=stream.id, user_id=cohost.user_id)
        await runtime.broker.publish(
            Event(
                channel=stream_channel(stream.id),
                name=COHOST_JOINED,
                data=cohost_dict(cohost, runtime.settings),
                actor_id=principal.user_id,
            )
        )
    return cohost


async def end(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    principal: Principal,
    cohost_id: int,
) -> StreamCoHost:
    """The owner removes a co-host, or the co-host leaves."""
    cohost = await _load(session, stream.id, cohost_id)
    if cohost.user_id == principal.user_id:
        status = "left"
    elif stream.user_id == principal.user_id or principal.is_admin:
        status = "removed"
    else:
        raise forbidden("Only the owner or the co-host can do this.")
    if cohost.status not in ACTIVE:
        raise ApiError(409, f"This co-host is already {cohost.status}.")
    now = runtime.clock.now()
    was_broadcasting = cohost.status == "accepted"
    cohost.status, cohost.left_at, cohost.updated_at = status, now, now
    await session.commit()
    admission.forget(runtime, stream.id)  # who broadcasts changed
    if was_broadcasting:
        await viewers_service.count_again(runtime, stream_id=stream.id, user_id=cohost.user_id)
    return await _load(session, stream.id, cohost.id)


async def current_viewers(session: AsyncSession, stream_id: int, limit: int) -> list[StreamViewer]:
    """Signed-in viewers watching now (open visits), newest first, each person once."""
    watching = (
        StreamViewer.stream_id == stream_id,
        StreamViewer.left_at.is_(None),
        StreamViewer.user_id.is_not(None),
    )
    # A person has one open visit; this only guards against rows written before visits.
    latest = select(func.max(StreamViewer.id)).where(*watching).group_by(StreamViewer.user_id)
    rows = await session.scalars(
        select(StreamViewer)
        .where(StreamViewer.id.in_(latest))
        .order_by(StreamViewer.id.desc())
        .limit(limit)
        .options(selectinload(StreamViewer.user))
    )
    return list(rows)
