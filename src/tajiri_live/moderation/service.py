"""Moderation: who may moderate, bans and mutes, the word filter, spam, and the audit log."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Exists,
    bindparam,
    delete,
    exists,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.core.auth import Principal
from tajiri_live.core.clock import iso
from tajiri_live.core.db import dialect_insert
from tajiri_live.core.errors import ApiError, ValidationFailed, forbidden
from tajiri_live.core.runtime import Runtime
from tajiri_live.engagement.models import StreamComment
from tajiri_live.moderation import bans
from tajiri_live.moderation.models import ModerationAction, StreamRestriction
from tajiri_live.moderation.wordfilter import DEFAULT_WORDS, WordFilter
from tajiri_live.realtime.events import USER_BANNED, Event, stream_channel
from tajiri_live.streams.admission import StreamFacts
from tajiri_live.streams.models import LiveStream, StreamCoHost
from tajiri_live.users import service as users_service
from tajiri_live.users.models import User
from tajiri_live.users.presenters import UserProfile

Author = TypeVar("Author")
AnyStream = LiveStream | StreamFacts  # a row, or the admission facts the hot paths read
LINK = re.compile(r"https?://|www\.", re.IGNORECASE)


async def is_moderator(session: AsyncSession, stream: LiveStream, principal: Principal) -> bool:
    if principal.is_admin or principal.user_id == stream.user_id:
        return True
    return bool(
        await session.scalar(
            select(StreamCoHost.id).where(
                StreamCoHost.stream_id == stream.id,
                StreamCoHost.user_id == principal.user_id,
                StreamCoHost.status == "accepted",
            )
        )
    )


async def ensure_moderator(session: AsyncSession, stream: LiveStream, principal: Principal) -> None:
    if not await is_moderator(session, stream, principal):
        raise forbidden("Only the stream's owner and co-hosts can do this.")


async def audit(
    session: AsyncSession,
    *,
    stream_id: int,
    actor_id: int | None,
    action: str,
    target_user_id: int | None = None,
    comment_id: int | None = None,
    question_id: int | None = None,
    reason: str | None = None,
) -> None:
    session.add(
        ModerationAction(
            stream_id=stream_id,
            actor_id=actor_id,
            action=action,
            target_user_id=target_user_id,
            comment_id=comment_id,
            question_id=question_id,
            reason=reason,
        )
    )


# --- restrictions ------------------------------------------------------------------------


def restriction_conditions(
    stream_id: Any, user_id: Any, now: Any
) -> tuple[ColumnElement[bool], ...]:
    """Bans and mutes of the user on the stream that have not expired (values or bound
    parameters)."""
    return (
        StreamRestriction.stream_id == stream_id,
        StreamRestriction.user_id == user_id,
        or_(StreamRestriction.expires_at.is_(None), StreamRestriction.expires_at > now),
    )


def _active_restrictions(
    runtime: Runtime, *, stream_id: int, user_id: int
) -> tuple[ColumnElement[bool], ...]:
    """The user's bans and mutes on the stream that have not expired."""
    return restriction_conditions(stream_id, user_id, runtime.clock.now())


async def restriction(
    session: AsyncSession, *, runtime: Runtime, stream_id: int, user_id: int
) -> StreamRestriction | None:
    """The user's active ban, else their active mute, else None."""
    active = _active_restrictions(runtime, stream_id=stream_id, user_id=user_id)
    rows = await session.scalars(select(StreamRestriction).where(*active))
    found = {r.kind: r for r in rows}
    return found.get("ban") or found.get("mute")


async def ensure_allowed(
    session: AsyncSession, *, runtime: Runtime, stream_id: int, user_id: int, action: str
) -> None:
    """Banned users may do nothing; muted users may not comment or react (gifts are fine)."""
    found = await restriction(session, runtime=runtime, stream_id=stream_id, user_id=user_id)
    if found is None or (found.kind == "mute" and action == "gift"):
        return
    raise restriction_error(
        found.kind, reason=found.reason, expires_at=found.expires_at, now=runtime.clock.now()
    )


def restriction_error(
    kind: str, *, reason: str | None, expires_at: datetime | None, now: datetime
) -> ApiError:
    """The 403 a banned or muted user gets, saying why (and for how long)."""
    if kind == "ban" or expires_at is None:
        return forbidden(
            "You are banned from this stream." + (f" Reason: {reason}" if reason else "")
        )
    minutes = max(1, math.ceil((expires_at - now).total_seconds() / 60))
    return ApiError(
        403,
        f"You are muted on this stream for {minutes} more minute(s).",
        muted_until=iso(expires_at),
    )


async def restrict(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    actor: Principal,
    user_id: int,
    kind: str,
    reason: str | None,
    minutes: int | None = None,
) -> StreamRestriction:
    await ensure_moderator(session, stream, actor)
    if user_id == stream.user_id:
        raise forbidden("The stream's owner cannot be banned or muted.")
    if user_id == actor.user_id:
        raise ValidationFailed({"user_id": ["You cannot restrict yourself."]})
    now = runtime.clock.now()
    await users_service.ensure_user(session, user_id=user_id, now=now)
    entry = await _replace_restriction(
        session,
        stream_id=stream.id,
        user_id=user_id,
        kind=kind,
        reason=reason,
        created_by=actor.user_id,
        expires_at=now + timedelta(minutes=minutes) if minutes else None,
        created_at=now,
    )
    await audit(
        session,
        stream_id=stream.id,
        actor_id=actor.user_id,
        action=kind,
        target_user_id=user_id,
        reason=reason,
    )
    await session.commit()
    bans.forget(runtime, stream.id)
    if kind == "ban":  # every node closes the user's sockets on this stream
        await runtime.broker.publish(
            Event(
                channel=stream_channel(stream.id),
                name=USER_BANNED,
                data={"stream_id": stream.id, "user_id": user_id, "reason": reason},
            )
        )
    return entry


async def _replace_restriction(
    session: AsyncSession, *, stream_id: int, user_id: int, kind: str, **values: Any
) -> StreamRestriction:
    """A new ban or mute replaces the user's previous one of that kind, in one upsert: two
    moderators restricting at once both succeed (a delete then an insert raced)."""
    key = {"stream_id": stream_id, "user_id": user_id, "kind": kind}
    statement = dialect_insert(session)(StreamRestriction).values(**key, **values)
    await session.execute(statement.on_conflict_do_update(index_elements=list(key), set_=values))
    entry = await session.scalar(
        select(StreamRestriction).filter_by(**key).execution_options(populate_existing=True)
    )
    assert entry is not None  # written just above, in this transaction
    return entry


async def lift(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    actor: Principal,
    user_id: int,
    kind: str,
) -> bool:
    await ensure_moderator(session, stream, actor)
    removed = await session.execute(
        delete(StreamRestriction).where(
            StreamRestriction.stream_id == stream.id,
            StreamRestriction.user_id == user_id,
            StreamRestriction.kind == kind,
        )
    )
    await audit(
        session,
        stream_id=stream.id,
        actor_id=actor.user_id,
        action=f"un{kind}",
        target_user_id=user_id,
    )
    await session.commit()
    bans.forget(runtime, stream.id)
    return bool(getattr(removed, "rowcount", 0))


async def active(
    session: AsyncSession, *, runtime: Runtime, stream_id: int, kind: str
) -> list[StreamRestriction]:
    now = runtime.clock.now()
    rows = await session.scalars(
        select(StreamRestriction)
        .where(
            StreamRestriction.stream_id == stream_id,
            StreamRestriction.kind == kind,
            or_(StreamRestriction.expires_at.is_(None), StreamRestriction.expires_at > now),
        )
        .order_by(StreamRestriction.id)
    )
    return list(rows)


async def log(session: AsyncSession, *, stream_id: int, limit: int) -> list[ModerationAction]:
    rows = await session.scalars(
        select(ModerationAction)
        .where(ModerationAction.stream_id == stream_id)
        .order_by(ModerationAction.id.desc())
        .limit(limit)
    )
    return list(rows)


# --- what a comment may say ----------------------------------------------------------------


@cache
def _filter(words: tuple[str, ...]) -> WordFilter:
    return WordFilter(list(words))


def word_filter(runtime: Runtime) -> WordFilter:
    words = runtime.settings.bad_words
    if words is None:
        words = [w for group in DEFAULT_WORDS.values() for w in group]
    return _filter(tuple(words))


def repeat_condition(stream_id: Any, user_id: Any, since: Any, content: Any) -> Exists:
    return exists().where(
        StreamComment.stream_id == stream_id,
        StreamComment.user_id == user_id,
        StreamComment.created_at >= since,
        StreamComment.content == content,
    )


def repeat_since(runtime: Runtime) -> datetime:
    return runtime.clock.now() - timedelta(seconds=runtime.settings.spam_repeat_seconds)


def _said_lately(runtime: Runtime, *, stream_id: int, user_id: int, content: str) -> Exists:
    return repeat_condition(stream_id, user_id, repeat_since(runtime), content)


@dataclass(frozen=True)
class AuthorCheck(Generic[Author]):
    author: Author | None  # None: no row yet (the full checks then run)
    restricted: bool  # an active ban or mute: `ensure_allowed` says which, and why
    repeated: bool  # the same text from them on this stream lately


def _restricted(runtime: Runtime, *, stream_id: int, user_id: int) -> Exists:
    return exists().where(*_active_restrictions(runtime, stream_id=stream_id, user_id=user_id))


AUTHOR_COLUMNS = (User.id, User.first_name, User.last_name, User.username, User.profile_photo_path)
_STREAM: BindParameter[int] = bindparam("stream_id")
_USER: BindParameter[int] = bindparam("user_id")
# Built once (building it per comment cost more than running it): values are bound per call.
_COMMENTER_CHECK = select(
    *AUTHOR_COLUMNS,
    exists().where(*restriction_conditions(_STREAM, _USER, bindparam("now"))).label("restricted"),
    repeat_condition(_STREAM, _USER, bindparam("since"), bindparam("content")).label("repeated"),
).where(User.id == _USER)


async def check_commenter(
    runtime: Runtime,
    *,
    stream_id: int,
    user_id: int,
    content: str,
    session: AsyncSession | None = None,
) -> AuthorCheck[UserProfile]:
    """What every comment needs to know, in one statement outside any transaction: its
    author's profile, whether they are restricted here, and whether they said this very
    text lately."""
    values = {
        "stream_id": stream_id,
        "user_id": user_id,
        "now": runtime.clock.now(),
        "since": repeat_since(runtime),
        "content": content,
    }
    # A caller that holds a connection reads on it: waiting for a second one from the same
    # pool could wait for ever when every connection is held by such callers.
    rows: Sequence[Any]
    if session is not None:
        rows = (await session.execute(_COMMENTER_CHECK, values)).all()
    else:
        rows = await runtime.reader.rows(_COMMENTER_CHECK, values)
    return commenter_check(rows[0] if rows else None)


def commenter_check(row: Any) -> AuthorCheck[UserProfile]:
    """A check's answer from its row (None, or NULL author columns: no profile row yet)."""
    if row is None or row.id is None:
        return AuthorCheck(None, restricted=True, repeated=True)
    author = UserProfile(
        id=row.id,
        first_name=row.first_name,
        last_name=row.last_name,
        username=row.username,
        profile_photo_path=row.profile_photo_path,
    )
    return AuthorCheck(author, restricted=bool(row.restricted), repeated=bool(row.repeated))


async def admit_commenter(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream_id: int,
    user_id: int,
    content: str,
    action: str,
) -> AuthorCheck[UserProfile]:
    """`check_commenter`, refusing a banned or muted author with the 403 that says why."""
    check = await check_commenter(
        runtime, stream_id=stream_id, user_id=user_id, content=content, session=session
    )
    if check.restricted:
        await ensure_allowed(
            session, runtime=runtime, stream_id=stream_id, user_id=user_id, action=action
        )
    return check


async def check_author(
    session: AsyncSession, *, runtime: Runtime, stream_id: int, user_id: int, repeated: Exists
) -> AuthorCheck[User]:
    """For any text a viewer posts (comments, questions): the author, whether they are banned
    or muted here, and `repeated` (their own "said this lately" condition), in one query."""
    restricted = _restricted(runtime, stream_id=stream_id, user_id=user_id)
    row = (
        await session.execute(
            select(User, restricted.label("restricted"), repeated.label("repeated")).where(
                User.id == user_id
            )
        )
    ).one_or_none()
    if row is None:
        return AuthorCheck(None, restricted=True, repeated=True)
    return AuthorCheck(row[0], restricted=bool(row[1]), repeated=bool(row[2]))


async def screen_comment(
    session: AsyncSession | None,
    *,
    runtime: Runtime,
    stream: AnyStream,
    principal: Principal,
    content: str,
    repeated: bool | None = None,
) -> str:
    """The text to store (masked if configured), or a 422 for bad words or spam.
    `repeated`: already known from `check_commenter` (None: look it up in `session`).
    Without a session a refusal is logged in one of its own."""
    if repeated is None:
        if session is None:
            raise TypeError("looking up a repeat needs the caller's session")
        repeated = bool(
            await session.scalar(
                select(
                    _said_lately(
                        runtime, stream_id=stream.id, user_id=principal.user_id, content=content
                    )
                )
            )
        )
    return await screen_text(
        session,
        runtime=runtime,
        stream=stream,
        principal=principal,
        text=content,
        repeated=repeated,
        field="content",
        blocked="comment_blocked",
    )


async def screen_text(
    session: AsyncSession | None,
    *,
    runtime: Runtime,
    stream: AnyStream,
    principal: Principal,
    text: str,
    repeated: bool,
    field: str,
    blocked: str,
) -> str:
    """What any viewer's text goes through (comments, questions): links, repeats, the word
    filter. A refusal is a 422 on `field`, logged as `blocked` in the moderation log (in the
    caller's session, or in one of its own when there is none)."""
    settings = runtime.settings
    if len(LINK.findall(text)) > settings.spam_max_links:
        await _blocked(session, runtime, stream, principal, "too many links", blocked)
        raise ValidationFailed({field: ["Looks like spam: too many links."]})
    if repeated:
        await _blocked(session, runtime, stream, principal, "repeated text", blocked)
        raise ValidationFailed({field: ["Looks like spam: you already said that."]})
    words = word_filter(runtime)
    if not words.find(text):
        return text
    if settings.bad_word_action == "reject":
        await _blocked(session, runtime, stream, principal, "bad words", blocked)
        raise ValidationFailed({field: ["Please keep the chat respectful."]})
    return words.mask(text)


async def _blocked(
    session: AsyncSession | None,
    runtime: Runtime,
    stream: AnyStream,
    principal: Principal,
    why: str,
    action: str,
) -> None:
    if session is None:
        async with runtime.sessions() as own:
            await _blocked(own, runtime, stream, principal, why, action)
        return
    await audit(
        session,
        stream_id=stream.id,
        actor_id=None,
        action=action,
        target_user_id=principal.user_id,
        reason=why,
    )
    await session.commit()


def action_dict(entry: ModerationAction) -> dict[str, Any]:
    return {
        "id": entry.id,
        "stream_id": entry.stream_id,
        "actor_id": entry.actor_id,
        "action": entry.action,
        "target_user_id": entry.target_user_id,
        "comment_id": entry.comment_id,
        "question_id": entry.question_id,
        "reason": entry.reason,
        "created_at": iso(entry.created_at),
    }


def restriction_dict(entry: StreamRestriction) -> dict[str, Any]:
    return {
        "id": entry.id,
        "stream_id": entry.stream_id,
        "user_id": entry.user_id,
        "kind": entry.kind,
        "reason": entry.reason,
        "created_by": entry.created_by,
        "expires_at": iso(entry.expires_at) if entry.expires_at else None,
        "created_at": iso(entry.created_at),
    }
