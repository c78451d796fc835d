"""Comments, reactions, likes and shares: persisted first, then published."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from tajiri_live.core import ratelimit
from tajiri_live.core.auth import Principal
from tajiri_live.core.db import dialect_insert
from tajiri_live.core.errors import ValidationFailed, forbidden, not_found
from tajiri_live.core.ratelimit import RateLimiter
from tajiri_live.core.runtime import Runtime
from tajiri_live.engagement.models import StreamComment, StreamLike, StreamReactionCount
from tajiri_live.engagement.presenters import comment_dict, new_comment_dict
from tajiri_live.engagement.writer import CommentWriter
from tajiri_live.moderation import service as moderation
from tajiri_live.moderation.commenters import CommenterChecks
from tajiri_live.moderation.service import is_moderator
from tajiri_live.realtime.events import NEW_COMMENT, REACTION, Event, stream_channel
from tajiri_live.streams.admission import StreamFacts
from tajiri_live.streams.lifecycle import FINAL_STATUSES
from tajiri_live.streams.models import LiveStream
from tajiri_live.users.models import User
from tajiri_live.users.presenters import Profile

COMMENT_UPDATED = "comment_updated"  # pinned, unpinned, highlighted
COMMENT_DELETED = "comment_deleted"  # removed by its author or a moderator
MAX_COMMENT_PAGE = 200


# --- rules ---------------------------------------------------------------------------------


def ensure_open(stream: LiveStream | StreamFacts, what: str) -> None:
    if stream.status_enum in FINAL_STATUSES:
        raise forbidden(f"The stream has ended: {what} are closed.")


async def enforce_rate(
    runtime: Runtime,
    *,
    action: str,
    stream_id: int,
    user_id: int,
    limit: int,
    window: float,
    limiter: RateLimiter | None = None,
) -> None:
    """The same limit for REST and WebSocket; shared by every node when Redis is used (unless
    the caller brings a limiter of its own)."""
    await ratelimit.enforce(
        limiter or runtime.limiter,
        f"{action}:{stream_id}:{user_id}",
        limit=limit,
        window=window,
        what=f"{action}s",
    )


async def _publish(
    runtime: Runtime,
    stream: LiveStream,
    name: str,
    data: dict[str, Any],
    actor_id: int | None = None,
) -> None:
    await runtime.broker.publish(
        Event(channel=stream_channel(stream.id), name=name, data=data, actor_id=actor_id)
    )


# --- comments ------------------------------------------------------------------------------


async def post_comment(
    *,
    runtime: Runtime,
    stream: StreamFacts,
    principal: Principal,
    content: str,
    writer: CommentWriter,
    checks: CommenterChecks,
) -> dict[str, Any]:
    """Checked outside any transaction, in one statement with the comments arriving at the
    same moment (moderation/commenters.py; the stream's facts come from the node's
    cache); stored by the group-commit writer; published once committed. Returns the
    comment as the client contract spells it."""
    settings = runtime.settings
    if not stream.allow_comments:
        raise forbidden("Comments are turned off for this stream.")
    ensure_open(stream, "comments")
    user_id = principal.user_id
    check = await checks.check(stream_id=stream.id, user_id=user_id, content=content)
    author: Profile | None = check.author
    if author is not None and not check.restricted:  # nearly every comment: no session
        content = await _screened(runtime, stream, principal, content, None, check.repeated)
    else:
        async with runtime.sessions() as session:
            if check.restricted:  # says why (banned, or muted until when)
                await moderation.ensure_allowed(
                    session,
                    runtime=runtime,
                    stream_id=stream.id,
                    user_id=user_id,
                    action="comment",
                )
            repeated = None if author is None else check.repeated
            content = await _screened(runtime, stream, principal, content, session, repeated)
            author = author or await session.get(User, user_id)
    now = runtime.clock.now()
    comment_id = await writer.write(
        stream_id=stream.id, user_id=user_id, content=content, created_at=now
    )
    data = new_comment_dict(
        comment_id, stream.id, user_id, content, created_at=now, author=author, settings=settings
    )
    await runtime.broker.publish(
        Event(channel=stream_channel(stream.id), name=NEW_COMMENT, data=data, actor_id=user_id)
    )
    return data


async def _screened(
    runtime: Runtime,
    stream: StreamFacts,
    principal: Principal,
    content: str,
    session: AsyncSession | None,
    repeated: bool | None,
) -> str:
    """The comment's text as stored, once its length, rate and content pass."""
    settings = runtime.settings
    if len(content) > settings.comment_max_length:
        raise ValidationFailed(
            {
                "content": [
                    f"The content may not be greater than {settings.comment_max_length} characters."
                ]
            }
        )
    await enforce_rate(
        runtime,
        action="comment",
        stream_id=stream.id,
        user_id=principal.user_id,
        limit=settings.comment_limit,
        window=settings.comment_window_seconds,
    )
    return await moderation.screen_comment(
        session,
        runtime=runtime,
        stream=stream,
        principal=principal,
        content=content,
        repeated=repeated,
    )


async def _load_comment(session: AsyncSession, stream_id: int, comment_id: int) -> StreamComment:
    comment = await session.scalar(
        select(StreamComment)
        .where(
            StreamComment.id == comment_id,
            StreamComment.stream_id == stream_id,
            StreamComment.deleted_at.is_(None),
        )
        .options(selectinload(StreamComment.user))
        .execution_options(populate_existing=True)
    )
    if comment is None:
        raise not_found("Comment")
    return comment


async def list_comments(
    session: AsyncSession,
    *,
    stream_id: int,
    last_id: int | None,
    limit: int,
    now: datetime | None = None,
) -> list[StreamComment]:
    """Oldest first. With `last_id`: the comments after it (catching up after a reconnect);
    without: the newest `limit`, and before them any comment still pinned at `now` (a super
    chat on screen), so a late joiner sees it however busy the room."""
    query = (
        select(StreamComment)
        .where(StreamComment.stream_id == stream_id, StreamComment.deleted_at.is_(None))
        .options(selectinload(StreamComment.user))
    )
    if last_id is not None:
        rows = await session.scalars(
            query.where(StreamComment.id > last_id).order_by(StreamComment.id).limit(limit)
        )
        return list(rows)
    newest = list(
        reversed(list(await session.scalars(query.order_by(StreamComment.id.desc()).limit(limit))))
    )
    if now is None or len(newest) < limit:
        return newest
    pinned = await session.scalars(
        query.where(StreamComment.id < newest[0].id, StreamComment.pinned_until > now)
        .order_by(StreamComment.id)
        .limit(MAX_COMMENT_PAGE)
    )
    return [*pinned, *newest]


async def mark_comment(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    principal: Principal,
    comment_id: int,
    pinned: bool | None = None,
    highlighted: bool | None = None,
) -> StreamComment:
    if not await is_moderator(session, stream, principal):
        raise forbidden("Only the stream's owner and co-hosts can do this.")
    comment = await _load_comment(session, stream.id, comment_id)
    if pinned is not None:
        if pinned:  # one pinned comment at a time
            await session.execute(
                update(StreamComment)
                .where(StreamComment.stream_id == stream.id, StreamComment.id != comment.id)
                .values(is_pinned=False)
                .execution_options(synchronize_session=False)
            )
        comment.is_pinned = pinned
    if highlighted is not None:
        comment.is_highlighted = highlighted
    comment.updated_at = runtime.clock.now()
    change = (
        "pin"
        if pinned
        else "unpin"
        if pinned is not None
        else ("highlight" if highlighted else "unhighlight")
    )
    await moderation.audit(
        session,
        stream_id=stream.id,
        actor_id=principal.user_id,
        action=change,
        target_user_id=comment.user_id,
        comment_id=comment.id,
    )
    await session.commit()
    await _publish(runtime, stream, COMMENT_UPDATED, comment_dict(comment, runtime.settings))
    return comment


async def delete_comment(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    principal: Principal,
    comment_id: int,
) -> None:
    comment = await _load_comment(session, stream.id, comment_id)
    if comment.user_id != principal.user_id and not await is_moderator(session, stream, principal):
        raise forbidden("Only the author, the stream's owner and co-hosts can delete this.")
    deleted = await session.execute(
        update(StreamComment)
        .where(StreamComment.id == comment.id, StreamComment.deleted_at.is_(None))
        .values(deleted_at=runtime.clock.now())
        .execution_options(synchronize_session=False)
    )
    if comment.user_id != principal.user_id:
        await moderation.audit(
            session,
            stream_id=stream.id,
            actor_id=principal.user_id,
            action="comment_deleted",
            target_user_id=comment.user_id,
            comment_id=comment.id,
        )
    if getattr(deleted, "rowcount", 0) == 1:  # a repeated delete changes nothing
        await session.execute(
            update(LiveStream)
            .where(LiveStream.id == stream.id)
            .values(comments_count=LiveStream.comments_count - 1)
            .execution_options(synchronize_session=False)
        )
    await session.commit()
    await _publish(runtime, stream, COMMENT_DELETED, {"id": comment.id, "stream_id": stream.id})


# --- reactions, likes, shares --------------------------------------------------------------


async def reaction_allowed(
    runtime: Runtime, *, stream_id: int, user_id: int, reaction_type: str
) -> None:
    """The checks that need no database: the type, then the rate limit (memory or Redis).
    A flood is refused here, before any query."""
    settings = runtime.settings
    if reaction_type not in settings.reaction_types:
        raise ValidationFailed(
            {
                "reaction_type": [
                    "The selected reaction type is invalid. Allowed: "
                    + ", ".join(settings.reaction_types)
                    + "."
                ]
            }
        )
    await enforce_rate(
        runtime,
        action="reaction",
        stream_id=stream_id,
        user_id=user_id,
        limit=settings.reaction_limit,
        window=settings.reaction_window_seconds,
    )


async def react(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    principal: Principal,
    reaction_type: str,
    allowed: bool = False,
) -> dict[str, int]:
    """`allowed`: the caller already ran `reaction_allowed` (the socket does, before it
    reads the stream)."""
    if not allowed:
        await reaction_allowed(
            runtime, stream_id=stream.id, user_id=principal.user_id, reaction_type=reaction_type
        )
    ensure_open(stream, "reactions")
    await moderation.ensure_allowed(
        session, runtime=runtime, stream_id=stream.id, user_id=principal.user_id, action="reaction"
    )
    insert = dialect_insert(session)
    statement = insert(StreamReactionCount).values(
        stream_id=stream.id, reaction_type=reaction_type, count=1
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["stream_id", "reaction_type"],
            set_={"count": StreamReactionCount.count + 1},
        )
    )
    await session.commit()
    counts = (await reaction_counts(session, [stream.id])).get(stream.id, {})
    await _publish(
        runtime,
        stream,
        REACTION,
        {
            "stream_id": stream.id,
            "user_id": principal.user_id,
            "reaction_type": reaction_type,
        },
        actor_id=principal.user_id,
    )
    return counts


async def toggle_like(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    principal: Principal,
) -> tuple[bool, int]:
    """Unlike if liked, else like. Concurrent likes by one user are settled by the unique key
    in the insert itself (ON CONFLICT DO NOTHING): the ones that lose leave it liked, counted
    once (a plain insert failed at its autoflush, before any error handling)."""
    removed = await session.execute(
        delete(StreamLike).where(
            StreamLike.stream_id == stream.id, StreamLike.user_id == principal.user_id
        )
    )
    if getattr(removed, "rowcount", 0):
        liked, change = False, -1
    else:
        insert = dialect_insert(session)
        added = await session.scalar(
            insert(StreamLike)
            .values(stream_id=stream.id, user_id=principal.user_id, created_at=runtime.clock.now())
            .on_conflict_do_nothing(index_elements=["stream_id", "user_id"])
            .returning(StreamLike.id)
        )
        liked, change = True, 1 if added is not None else 0
    if change:
        await session.execute(
            update(LiveStream)
            .where(LiveStream.id == stream.id)
            .values(likes_count=LiveStream.likes_count + change)
            .execution_options(synchronize_session=False)
        )
    await session.commit()
    count = await session.scalar(select(LiveStream.likes_count).where(LiveStream.id == stream.id))
    return liked, int(count or 0)


async def share(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    principal: Principal,
) -> int:
    settings = runtime.settings
    await enforce_rate(
        runtime,
        action="share",
        stream_id=stream.id,
        user_id=principal.user_id,
        limit=settings.share_limit,
        window=settings.share_window_seconds,
    )
    await session.execute(
        update(LiveStream)
        .where(LiveStream.id == stream.id)
        .values(shares_count=LiveStream.shares_count + 1)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    count = await session.scalar(select(LiveStream.shares_count).where(LiveStream.id == stream.id))
    return int(count or 0)


# --- what stream reads add -----------------------------------------------------------------


async def liked_by(session: AsyncSession, user_id: int, stream_ids: Iterable[int]) -> set[int]:
    ids = list(stream_ids)
    if not ids:
        return set()
    rows = await session.scalars(
        select(StreamLike.stream_id).where(
            StreamLike.user_id == user_id, StreamLike.stream_id.in_(ids)
        )
    )
    return set(rows)


async def reaction_counts(
    session: AsyncSession, stream_ids: Iterable[int]
) -> dict[int, dict[str, int]]:
    ids = list(stream_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(
            StreamReactionCount.stream_id,
            StreamReactionCount.reaction_type,
            StreamReactionCount.count,
        ).where(StreamReactionCount.stream_id.in_(ids))
    )
    counts: dict[int, dict[str, int]] = {}
    for stream_id, kind, count in rows:
        counts.setdefault(stream_id, {})[kind] = int(count)
    return counts


async def comment_total(session: AsyncSession, stream_id: int) -> int:
    """Counted from the rows: what `comments_count` must always equal."""
    return int(
        await session.scalar(
            select(func.count(StreamComment.id)).where(
                StreamComment.stream_id == stream_id, StreamComment.deleted_at.is_(None)
            )
        )
        or 0
    )
