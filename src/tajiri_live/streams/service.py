"""Stream use cases: create, read, edit, and walk the lifecycle with conditional updates."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, false, func, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from tajiri_live.battles import service as battles
from tajiri_live.core import ratelimit
from tajiri_live.core.auth import Principal
from tajiri_live.core.errors import ApiError, ValidationFailed, forbidden, not_found
from tajiri_live.core.runtime import Runtime
from tajiri_live.core.settings import Settings
from tajiri_live.gifts import service as gifts_service
from tajiri_live.notifications import service as notifications
from tajiri_live.notifications.messages import SCHEDULED
from tajiri_live.polls import service as polls
from tajiri_live.realtime.events import STATUS_CHANGED, Event, stream_channel
from tajiri_live.streams import admission, presenters
from tajiri_live.streams.lifecycle import (
    FINAL_STATUSES,
    UNDELETABLE_STATUSES,
    StreamStatus,
    path_to,
)
from tajiri_live.streams.models import LiveStream, StreamCoHost
from tajiri_live.streams.schemas import StreamCreate, StreamUpdate
from tajiri_live.users.models import Follow

log = logging.getLogger(__name__)

STREAM_KEY_BYTES = 32  # 43 url-safe characters
SCHEDULE_GRACE = timedelta(minutes=1)  # clock skew between phone and server
MAX_TRANSITION_ATTEMPTS = 6
VISIBLE_COHOST_STATUSES = ("invited", "accepted")


def new_stream_key() -> str:
    return secrets.token_urlsafe(STREAM_KEY_BYTES)


def _with_people() -> Sequence[Any]:
    return (
        selectinload(LiveStream.user),
        selectinload(LiveStream.cohosts).selectinload(StreamCoHost.user),
    )


# --- visibility ---------------------------------------------------------------------------


# Built once: an alias made per call is cyclic garbage for the collector on every request.
VIEWER_FOLLOWS = aliased(Follow, name="viewer_follows")
OWNER_FOLLOWS = aliased(Follow, name="owner_follows")


def visible_to(viewer: Principal | None) -> ColumnElement[bool]:
    """Public streams to everyone; `friends` to mutual follows; co-hosts and the owner always."""
    public = LiveStream.privacy == "public"
    if viewer is None:
        return public
    if viewer.is_admin:
        return true()
    uid = viewer.user_id
    is_cohost = exists().where(
        StreamCoHost.stream_id == LiveStream.id,
        StreamCoHost.user_id == uid,
        StreamCoHost.status.in_(VISIBLE_COHOST_STATUSES),
    )
    is_mutual = and_(
        exists().where(
            VIEWER_FOLLOWS.follower_id == uid, VIEWER_FOLLOWS.followed_id == LiveStream.user_id
        ),
        exists().where(
            OWNER_FOLLOWS.follower_id == LiveStream.user_id, OWNER_FOLLOWS.followed_id == uid
        ),
    )
    return or_(
        public,
        LiveStream.user_id == uid,
        is_cohost,
        and_(LiveStream.privacy == "friends", is_mutual),
    )


async def get_visible_stream(
    session: AsyncSession, *, stream_id: int, viewer: Principal | None, people: bool = True
) -> LiveStream:
    """The stream if the viewer may see it; 404 otherwise (hidden streams do not exist).
    `people=False` skips loading the owner and co-hosts (actions that do not show them)."""
    query = select(LiveStream).where(LiveStream.id == stream_id)
    stream = await session.scalar(query.options(*_with_people()) if people else query)
    if stream is None:
        raise not_found()
    await _ensure_visible(session, stream, viewer)
    return stream


async def _ensure_visible(session: AsyncSession, stream: LiveStream, viewer: Any) -> None:
    # Most streams are public: only the others pay for the follow and co-host subqueries.
    if stream.privacy != "public" and not await session.scalar(
        select(LiveStream.id).where(LiveStream.id == stream.id, visible_to(viewer))
    ):
        raise not_found()


async def visible_facts(
    runtime: Runtime, *, stream_id: int, viewer: Principal | None
) -> admission.StreamFacts:
    """The admission facts of a stream the viewer may see (404 otherwise): from the node's
    cache for a public one; the others also ask who follows whom, each time."""
    facts = await admission.existing(runtime, stream_id)
    if not facts.public and not facts.broadcasts(viewer.user_id if viewer else None):
        async with runtime.sessions() as session:
            await get_visible_stream(session, stream_id=stream_id, viewer=viewer, people=False)
    return facts


def forget_facts(runtime: Runtime, stream_id: int) -> None:
    """A change no event carries (e.g. ingest's playback columns): this node reads the
    stream's admission facts again next time; the others within their cache's lifetime."""
    admission.forget(runtime, stream_id)


def broadcasting(user_id: int) -> ColumnElement[bool]:
    """The stream's owner or an accepted co-host: they broadcast and are never its viewers."""
    return or_(
        LiveStream.user_id == user_id,
        exists().where(
            StreamCoHost.stream_id == LiveStream.id,
            StreamCoHost.user_id == user_id,
            StreamCoHost.status == "accepted",
        ),
    )


async def get_watched_stream(
    session: AsyncSession,
    *,
    stream_id: int,
    viewer: Principal | None,
    watcher: int | None = None,
) -> tuple[LiveStream, bool]:
    """A stream `viewer` may see (404 otherwise) and whether `watcher` (by default the viewer)
    broadcasts on it, in the same query: socket admission stays one query for public ones."""
    user_id = watcher if watcher is not None else (viewer.user_id if viewer else None)
    role = broadcasting(user_id) if user_id is not None else false()
    row = (
        await session.execute(
            select(LiveStream, role.label("broadcasts")).where(LiveStream.id == stream_id)
        )
    ).first()
    if row is None:
        raise not_found()
    stream, broadcasts = row
    await _ensure_visible(session, stream, viewer)
    return stream, bool(broadcasts)


async def broadcasts(session: AsyncSession, *, stream_id: int, user_id: int) -> bool:
    """Is `user_id` the stream's owner or an accepted co-host?"""
    found = await session.scalar(
        select(LiveStream.id).where(LiveStream.id == stream_id, broadcasting(user_id))
    )
    return found is not None


async def owner_of(session: AsyncSession, stream_id: int) -> int | None:
    """The owner's id of a stream (None: no such stream)."""
    owner = await session.scalar(select(LiveStream.user_id).where(LiveStream.id == stream_id))
    return int(owner) if owner is not None else None


def ensure_owner(stream: LiveStream, principal: Principal) -> None:
    if stream.user_id != principal.user_id and not principal.is_admin:
        raise forbidden("Only the stream's owner can do this.")


async def get_owned_stream(
    session: AsyncSession, *, stream_id: int, principal: Principal
) -> LiveStream:
    stream = await get_visible_stream(session, stream_id=stream_id, viewer=principal)
    ensure_owner(stream, principal)
    return stream


# --- reads --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    items: list[LiveStream]
    total: int
    page: int
    per_page: int


async def list_streams(
    session: AsyncSession,
    *,
    viewer: Principal | None,
    statuses: frozenset[StreamStatus] | None = None,
    owner_id: int | None = None,
    category: str | None = None,
    following: bool = False,
    page: int = 1,
    per_page: int = 20,
) -> Page:
    conditions: list[ColumnElement[bool]] = [visible_to(viewer)]
    if following:  # the streamers the viewer follows (the app's LIVE badges)
        followed = select(Follow.followed_id).where(
            Follow.follower_id == (viewer.user_id if viewer else -1)
        )
        conditions.append(LiveStream.user_id.in_(followed))
    if statuses:
        conditions.append(LiveStream.status.in_(sorted(s.value for s in statuses)))
    if owner_id is not None:
        conditions.append(LiveStream.user_id == owner_id)
    if category:
        conditions.append(LiveStream.category == category)
    total = await session.scalar(select(func.count(LiveStream.id)).where(*conditions)) or 0
    items = await session.scalars(
        select(LiveStream)
        .where(*conditions)
        .order_by(LiveStream.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
        .options(*_with_people())
    )
    return Page(items=list(items), total=total, page=page, per_page=per_page)


# --- writes -------------------------------------------------------------------------------


def _check_schedule(scheduled_at: datetime | None, now: datetime, settings: Settings) -> None:
    if scheduled_at is None:
        return
    if scheduled_at < now - SCHEDULE_GRACE:
        raise ValidationFailed({"scheduled_at": ["The scheduled at must be a date after now."]})
    days = settings.schedule_max_days_ahead
    if scheduled_at > now + timedelta(days=days):
        raise ValidationFailed(
            {"scheduled_at": [f"The scheduled at may be at most {days} days from now."]}
        )


async def creation_allowed(runtime: Runtime, owner: Principal) -> None:
    """A per-user limit on new streams (checked before a thumbnail is stored): a claimed id
    (legacy client identity) could otherwise create streams by the thousand in anyone's name."""
    settings = runtime.settings
    await ratelimit.enforce(
        runtime.limiter,
        f"create_stream:{owner.user_id}",
        limit=settings.stream_create_limit,
        window=settings.stream_create_window_seconds,
        what="new streams",
    )


async def create_stream(
    session: AsyncSession,
    *,
    runtime: Runtime,
    owner: Principal,
    data: StreamCreate,
    thumbnail_path: str | None,
) -> LiveStream:
    now = runtime.clock.now()
    _check_schedule(data.scheduled_at, now, runtime.settings)
    stream = LiveStream(
        user_id=owner.user_id,
        stream_key=new_stream_key(),
        thumbnail_path=thumbnail_path,
        status=StreamStatus.SCHEDULED.value,
        created_at=now,
        updated_at=now,
        **data.model_dump(),
    )
    session.add(stream)
    await session.flush()
    if stream.scheduled_at is not None and stream.scheduled_at > now:
        await notifications.enqueue(session, stream=stream, kind=SCHEDULED, now=now)
    await session.commit()
    return await get_visible_stream(session, stream_id=stream.id, viewer=owner)


async def update_stream(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    data: StreamUpdate,
    thumbnail_path: str | None,
) -> LiveStream:
    changes = data.model_dump(exclude_unset=True)
    if "scheduled_at" in changes and changes["scheduled_at"] != stream.scheduled_at:
        if stream.status != StreamStatus.SCHEDULED:
            raise ApiError(409, f"A stream that is {stream.status} cannot be rescheduled.")
        _check_schedule(changes["scheduled_at"], runtime.clock.now(), runtime.settings)
    for required in (
        "title",
        "privacy",
        "is_recorded",
        "allow_comments",
        "allow_gifts",
        "allow_co_hosts",
        "split_gifts_with_cohosts",
        "tags",
    ):
        if required in changes and changes[required] is None:
            changes.pop(required)
    if thumbnail_path is not None:
        changes["thumbnail_path"] = thumbnail_path
    for name, value in changes.items():
        setattr(stream, name, value)
    now = runtime.clock.now()
    stream.updated_at = now
    if changes.get("scheduled_at") is not None and changes["scheduled_at"] > now:
        await notifications.enqueue(session, stream=stream, kind=SCHEDULED, now=now)
    await session.commit()
    admission.forget(runtime, stream.id)  # privacy or comments may have changed
    return stream


async def delete_stream(session: AsyncSession, *, runtime: Runtime, stream: LiveStream) -> None:
    """A stream without money goes with everything that hangs on it. One that moved money is
    soft-deleted: absent from every read (streams/softdelete.py), its key revoked, its
    gifts and ledger kept whole; its followers' notifications about it are withdrawn."""
    if stream.status_enum in UNDELETABLE_STATUSES:
        raise ApiError(409, f"A stream that is {stream.status} cannot be deleted; end it first.")
    # Both deletes are conditional on the status read above: a `start` that won meanwhile
    # (or another delete) leaves nothing to change, and the answer says what happened.
    stream_id = stream.id
    admission.forget(runtime, stream_id)
    unchanged = (LiveStream.id == stream_id, LiveStream.status == stream.status)
    if not await gifts_service.has_gifts(session, stream_id):
        result = await session.execute(
            delete(LiveStream).where(*unchanged).execution_options(synchronize_session=False)
        )
    else:
        now = runtime.clock.now()
        result = await session.execute(
            update(LiveStream)
            .where(*unchanged)
            .values(deleted_at=now, stream_key_expires_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        await notifications.withdraw(session, stream_id=stream_id)
    if getattr(result, "rowcount", 0) != 1:
        await session.rollback()  # expires `stream`: only its id is used from here
        await _changed_meanwhile(session, stream_id)
    await session.commit()
    admission.forget(runtime, stream_id)


async def _changed_meanwhile(session: AsyncSession, stream_id: int) -> None:
    """Raise what a request that lost a race to another should answer: 404 if the stream was
    deleted, 409 with its status if it moved."""
    status = await session.scalar(select(LiveStream.status).where(LiveStream.id == stream_id))
    if status is None:
        raise not_found()
    raise ApiError(409, f"The stream changed meanwhile: it is now {status}.", current_status=status)


# --- lifecycle ----------------------------------------------------------------------------


def on_air(stream: LiveStream, settings: Settings) -> bool:
    """Can viewers play it? Without ingest nothing tells: `live` is on air. With ingest, only
    once the encoder's playlist exists (a `start` before the encoder is live but silent)."""
    return not settings.ingest_enabled or stream.playback_ready_at is not None


def _stamps(
    stream: LiveStream, target: StreamStatus, now: datetime, hold_seconds: float, on_air: bool
) -> dict[str, Any]:
    if target is StreamStatus.PRE_LIVE:
        return {"pre_live_started_at": now}
    if target is StreamStatus.LIVE:
        # A reconnect keeps the original start; the live segment restarts. `started_at` (and
        # so `duration`) counts from the moment it could be watched, not from `start`.
        return {
            "live_started_at": now,
            "started_at": stream.started_at or (now if on_air else None),
            "ending_started_at": None,
            "ending_deadline": None,
        }
    if target is StreamStatus.ENDING:
        return {
            "ending_started_at": now,
            "ending_deadline": now + timedelta(seconds=hold_seconds),
        }
    # A finished stream's key is revoked: nobody publishes to it again.
    final = {"ending_deadline": None, "stream_key_expires_at": now, "playback_ready_at": None}
    if target is StreamStatus.ENDED:
        started = stream.started_at or now
        return {
            "ended_at": now,
            "duration": max(0, int((now - started).total_seconds())),
            **final,
        }
    return {"cancelled_at": now, **final}


async def _apply_step(
    session: AsyncSession,
    stream: LiveStream,
    target: StreamStatus,
    now: datetime,
    hold_seconds: float,
    on_air: bool,
) -> bool:
    """One conditional update; True if this call made the change."""
    values = _stamps(stream, target, now, hold_seconds, on_air)
    result = await session.execute(
        update(LiveStream)
        .where(LiveStream.id == stream.id, LiveStream.status == stream.status)
        .values(status=target.value, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    for name, value in {"status": target.value, "updated_at": now, **values}.items():
        set_committed_value(stream, name, value)
    return True


async def move(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    target: StreamStatus,
    hold_seconds: float | None = None,
    already_there: frozenset[StreamStatus] = frozenset(),
) -> list[tuple[str, str]]:
    """Walk `stream` to `target`; returns the (old, new) steps this call made.

    A stream already at `target` (or in `already_there`) is left alone: repeated calls are
    no-ops. Races with other nodes are settled by the conditional updates: the loser re-reads
    the row and carries on from where the winner left it.
    """
    hold = runtime.settings.outro_seconds if hold_seconds is None else hold_seconds
    steps: list[Event] = []
    closed_polls: list[int] = []
    ended_battles: list[int] = []
    for _ in range(MAX_TRANSITION_ATTEMPTS):
        current = stream.status_enum
        if current is target or current in already_there:
            break
        path = path_to(current, target)
        if path is None:
            await session.commit()
            await _publish_steps(runtime, steps)
            await polls.announce_closed(runtime, stream_id=stream.id, poll_ids=closed_polls)
            await battles.announce_ended(runtime, ended_battles)
            raise ApiError(
                409,
                f"Cannot change the stream's status from {current.value} to {target.value}.",
                current_status=current.value,
                requested_status=target.value,
            )
        now = runtime.clock.now()
        ready = on_air(stream, runtime.settings)
        if await _apply_step(session, stream, path[0], now, hold, ready):
            steps.append(_status_event(runtime, stream, current.value, now))
            # Followers hear of it through the outbox, committed with the transition.
            await notifications.on_transition(session, stream=stream, target=path[0], now=now)
            if path[0] in FINAL_STATUSES:  # its open polls close with it, its battle is lost
                closed_polls += await polls.close_for_stream(session, stream_id=stream.id, now=now)
                ended_battles += await battles.forfeit_for_stream(
                    session, stream_id=stream.id, now=now
                )
        else:
            await _reread(session, stream)
    await session.commit()
    await _publish_steps(runtime, steps)
    await polls.announce_closed(runtime, stream_id=stream.id, poll_ids=closed_polls)
    await battles.announce_ended(runtime, ended_battles)
    return [(e.data["old_status"], e.data["status"]) for e in steps]


async def _reread(session: AsyncSession, stream: LiveStream) -> None:
    """Another request moved the stream first: carry on from its status, or answer 404 if
    it deleted the stream (a refresh failed there with a 500)."""
    row = (
        await session.execute(
            select(LiveStream.status, LiveStream.started_at, LiveStream.playback_ready_at).where(
                LiveStream.id == stream.id
            )
        )
    ).first()
    if row is None:
        await session.rollback()
        raise not_found()
    for name, value in row._mapping.items():
        set_committed_value(stream, name, value)


def _status_event(runtime: Runtime, stream: LiveStream, old: str, now: datetime) -> Event:
    """`status_changed` as of this step (built now: later steps change the row)."""
    settings = runtime.settings
    data = presenters.status_changed_data(
        stream, old_status=old, status=stream.status, settings=settings, now=now
    )
    also = (settings.global_channel,) if stream.privacy == "public" else ()
    return Event(channel=stream_channel(stream.id), name=STATUS_CHANGED, data=data, also=also)


async def announce_playback(runtime: Runtime, stream: LiveStream) -> None:
    """A live stream's playback became available (its encoder connected after `start`):
    `status_changed` live -> live carries the new `playback_url`."""
    event = _status_event(runtime, stream, stream.status, runtime.clock.now())
    await _publish_steps(runtime, [event])


async def _publish_steps(runtime: Runtime, steps: list[Event]) -> None:
    for event in steps:
        # This node reads the new status at once; the others when the event reaches them.
        admission.forget(runtime, event.data["stream_id"])
        log.info(
            "stream %s: %s -> %s",
            event.data["stream_id"],
            event.data["old_status"],
            event.data["status"],
        )
        await runtime.broker.publish(event)


async def start(session: AsyncSession, *, runtime: Runtime, stream: LiveStream) -> None:
    await move(session, runtime=runtime, stream=stream, target=StreamStatus.LIVE)


async def end(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    hold_seconds: float | None = None,
) -> None:
    """live -> ending; the finishing job makes it `ended` after the hold.

    The key is revoked at once: an explicit end is not a drop, no encoder may resume it."""
    await move(
        session,
        runtime=runtime,
        stream=stream,
        target=StreamStatus.ENDING,
        hold_seconds=hold_seconds,
        already_there=frozenset({StreamStatus.ENDED}),
    )
    if stream.stream_key_expires_at is None or stream.stream_key_expires_at > runtime.clock.now():
        stream.stream_key_expires_at = runtime.clock.now()
        await session.commit()


async def change_status(
    session: AsyncSession, *, runtime: Runtime, stream: LiveStream, target: StreamStatus
) -> None:
    """PATCH status: `live` starts, `ending`/`ended` end (through the outro), others move."""
    if target is StreamStatus.LIVE:
        await start(session, runtime=runtime, stream=stream)
    elif target in (StreamStatus.ENDING, StreamStatus.ENDED):
        await end(session, runtime=runtime, stream=stream)
    else:
        await move(session, runtime=runtime, stream=stream, target=target)


# --- what the jobs ask for ----------------------------------------------------------------


async def _ids(session: AsyncSession, *conditions: ColumnElement[bool]) -> list[int]:
    return list(await session.scalars(select(LiveStream.id).where(*conditions)))


async def _move_many(runtime: Runtime, ids: list[int], target: StreamStatus) -> int:
    moved = 0
    for stream_id in ids:
        async with runtime.sessions() as session:
            stream = await session.get(LiveStream, stream_id)
            if stream is None:
                continue
            try:
                moved += bool(await move(session, runtime=runtime, stream=stream, target=target))
            except ApiError:
                continue  # another node or request moved it elsewhere first
    return moved


async def promote_due_to_pre_live(runtime: Runtime) -> int:
    """Scheduled streams whose start is within the lead time (or passed, not too long ago)."""
    now = runtime.clock.now()
    settings = runtime.settings
    async with runtime.sessions() as session:
        ids = await _ids(
            session,
            LiveStream.status == StreamStatus.SCHEDULED.value,
            LiveStream.scheduled_at.is_not(None),
            LiveStream.scheduled_at <= now + timedelta(seconds=settings.pre_live_lead_seconds),
            LiveStream.scheduled_at > now - timedelta(hours=settings.no_show_hours),
        )
    return await _move_many(runtime, ids, StreamStatus.PRE_LIVE)


async def finish_ending(runtime: Runtime) -> int:
    """`ending` streams whose outro or reconnect window is over become `ended`."""
    now = runtime.clock.now()
    async with runtime.sessions() as session:
        ids = await _ids(
            session,
            LiveStream.status == StreamStatus.ENDING.value,
            or_(LiveStream.ending_deadline.is_(None), LiveStream.ending_deadline <= now),
        )
    return await _move_many(runtime, ids, StreamStatus.ENDED)


async def cancel_no_shows(runtime: Runtime) -> int:
    """Streams that never went live long after their start are called off."""
    cutoff = runtime.clock.now() - timedelta(hours=runtime.settings.no_show_hours)
    async with runtime.sessions() as session:
        ids = await _ids(
            session,
            or_(
                and_(
                    LiveStream.status == StreamStatus.SCHEDULED.value,
                    LiveStream.scheduled_at.is_not(None),
                    LiveStream.scheduled_at <= cutoff,
                ),
                and_(
                    LiveStream.status == StreamStatus.PRE_LIVE.value,
                    func.coalesce(LiveStream.scheduled_at, LiveStream.pre_live_started_at)
                    <= cutoff,
                ),
            ),
        )
    return await _move_many(runtime, ids, StreamStatus.CANCELLED)
