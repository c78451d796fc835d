"""Q&A: viewers ask (moderated like comments, with a limit of their own) and upvote (once per
question, never their own); the broadcaster answers or dismisses."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Exists, exists, false, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from tajiri_live.core.auth import Principal
from tajiri_live.core.clock import iso
from tajiri_live.core.db import dialect_insert
from tajiri_live.core.errors import ApiError, ValidationFailed, forbidden, not_found
from tajiri_live.core.runtime import Runtime
from tajiri_live.engagement.service import enforce_rate, ensure_open
from tajiri_live.moderation import service as moderation
from tajiri_live.questions.models import StreamQuestion, StreamQuestionUpvote
from tajiri_live.questions.presenters import question_event
from tajiri_live.realtime.coalesce import Coalescer
from tajiri_live.realtime.events import (
    QUESTION_ANSWERED,
    QUESTION_DISMISSED,
    QUESTION_SUBMITTED,
    QUESTION_UPVOTED,
    Event,
    stream_channel,
)
from tajiri_live.streams.hosts import ensure_host
from tajiri_live.streams.models import LiveStream
from tajiri_live.streams.presenters import storage_base_url

MAX_PAGE = 200


def _asked_lately(runtime: Runtime, *, stream_id: int, user_id: int, text: str) -> Exists:
    """The same question from the same user lately (as asked, or as stored once masked)."""
    since = runtime.clock.now() - timedelta(seconds=runtime.settings.spam_repeat_seconds)
    return exists().where(
        StreamQuestion.stream_id == stream_id,
        StreamQuestion.user_id == user_id,
        StreamQuestion.created_at >= since,
        StreamQuestion.question.in_({text, moderation.word_filter(runtime).mask(text)}),
    )


async def _publish(runtime: Runtime, question: StreamQuestion, name: str) -> None:
    data = question_event(
        question, storage_base_url=storage_base_url(runtime.settings), now=runtime.clock.now()
    )
    await runtime.broker.publish(
        Event(
            channel=stream_channel(question.stream_id),
            name=name,
            data=data,
            actor_id=question.user_id,
        )
    )


async def load_question(
    session: AsyncSession, *, stream_id: int, question_id: int
) -> StreamQuestion:
    """A listed question of the stream (not dismissed), with its author; else 404."""
    question = await session.scalar(
        select(StreamQuestion)
        .where(
            StreamQuestion.id == question_id,
            StreamQuestion.stream_id == stream_id,
            StreamQuestion.dismissed_at.is_(None),
        )
        .options(selectinload(StreamQuestion.user))
        .execution_options(populate_existing=True)
    )
    if question is None:
        raise not_found("Question")
    return question


async def submit(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    principal: Principal,
    text: str,
) -> StreamQuestion:
    """A viewer's question: the comments' moderation (bans, mutes, links, repeats, the word
    filter) and its own rate limit; `question_submitted` once committed."""
    settings = runtime.settings
    ensure_open(stream, "questions")
    user_id = principal.user_id
    lately = _asked_lately(runtime, stream_id=stream.id, user_id=user_id, text=text)
    check = await moderation.check_author(
        session, runtime=runtime, stream_id=stream.id, user_id=user_id, repeated=lately
    )
    if check.restricted:  # says why (banned, or muted until when)
        await moderation.ensure_allowed(
            session, runtime=runtime, stream_id=stream.id, user_id=user_id, action="question"
        )
    if len(text) > settings.question_max_length:
        raise ValidationFailed(
            {
                "question": [
                    f"The question may not be greater than {settings.question_max_length} "
                    "characters."
                ]
            }
        )
    await enforce_rate(
        runtime,
        action="question",
        stream_id=stream.id,
        user_id=user_id,
        limit=settings.question_limit,
        window=settings.question_window_seconds,
    )
    repeated = check.repeated
    if check.author is None:
        repeated = bool(await session.scalar(select(lately)))
    text = await moderation.screen_text(
        session,
        runtime=runtime,
        stream=stream,
        principal=principal,
        text=text,
        repeated=repeated,
        field="question",
        blocked="question_blocked",
    )
    question = StreamQuestion(
        stream_id=stream.id,
        user_id=user_id,
        question=text,
        upvotes=0,
        is_answered=False,
        created_at=runtime.clock.now(),
    )
    session.add(question)
    await session.commit()
    question = await load_question(session, stream_id=stream.id, question_id=question.id)
    await _publish(runtime, question, QUESTION_SUBMITTED)
    return question


async def upvote(
    session: AsyncSession,
    *,
    runtime: Runtime,
    coalescer: Coalescer,
    stream: LiveStream,
    principal: Principal,
    question_id: int,
) -> int:
    """One upvote per user per question (the database's unique key decides), never one's
    own; the new total goes out as a coalesced `question_upvoted`."""
    settings = runtime.settings
    ensure_open(stream, "questions")
    question = await load_question(session, stream_id=stream.id, question_id=question_id)
    if question.user_id == principal.user_id:
        raise forbidden("You cannot upvote your own question.")
    await moderation.ensure_allowed(
        session, runtime=runtime, stream_id=stream.id, user_id=principal.user_id, action="upvote"
    )
    await enforce_rate(
        runtime,
        action="upvote",
        stream_id=stream.id,
        user_id=principal.user_id,
        limit=settings.upvote_limit,
        window=settings.upvote_window_seconds,
    )
    now = runtime.clock.now()
    insert = dialect_insert(session)
    added = await session.scalar(
        insert(StreamQuestionUpvote)
        .values(question_id=question.id, user_id=principal.user_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["question_id", "user_id"])
        .returning(StreamQuestionUpvote.id)
    )
    if added is None:
        await session.rollback()
        raise ApiError(409, "You have already upvoted this question.")
    total = int(
        await session.scalar(
            update(StreamQuestion)
            .where(StreamQuestion.id == question.id)
            .values(upvotes=StreamQuestion.upvotes + 1)
            .returning(StreamQuestion.upvotes)
            .execution_options(synchronize_session=False)
        )
        or 0
    )
    await session.commit()
    coalescer.offer(
        Event(
            channel=stream_channel(stream.id),
            name=QUESTION_UPVOTED,
            data={
                "question_id": question.id,
                "stream_id": stream.id,
                "upvotes": total,
                "timestamp": iso(now),
            },
            latest_key=f"{QUESTION_UPVOTED}:{question.id}",
            version=total,
        )
    )
    return total


async def answer(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    principal: Principal,
    question_id: int,
) -> StreamQuestion:
    """Mark answered (the stream's hosts); answering again changes nothing."""
    await ensure_host(session, stream, principal, "answer questions")
    question = await load_question(session, stream_id=stream.id, question_id=question_id)
    marked = await session.execute(
        update(StreamQuestion)
        .where(StreamQuestion.id == question.id, StreamQuestion.is_answered == false())
        .values(is_answered=True, answered_at=runtime.clock.now())
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    question = await load_question(session, stream_id=stream.id, question_id=question.id)
    if getattr(marked, "rowcount", 0) == 1:
        await _publish(runtime, question, QUESTION_ANSWERED)
    return question


async def dismiss(
    session: AsyncSession,
    *,
    runtime: Runtime,
    stream: LiveStream,
    principal: Principal,
    question_id: int,
    reason: str | None,
) -> None:
    """Take a question off the list (the stream's moderators), with a moderation log entry."""
    await moderation.ensure_moderator(session, stream, principal)
    question = await load_question(session, stream_id=stream.id, question_id=question_id)
    now = runtime.clock.now()
    await session.execute(
        update(StreamQuestion)
        .where(StreamQuestion.id == question.id)
        .values(dismissed_at=now)
        .execution_options(synchronize_session=False)
    )
    await moderation.audit(
        session,
        stream_id=stream.id,
        actor_id=principal.user_id,
        action="question_dismissed",
        target_user_id=question.user_id,
        question_id=question.id,
        reason=reason,
    )
    await session.commit()
    await runtime.broker.publish(
        Event(
            channel=stream_channel(stream.id),
            name=QUESTION_DISMISSED,
            data={"question_id": question.id, "stream_id": stream.id, "timestamp": iso(now)},
        )
    )


async def list_questions(
    session: AsyncSession, *, stream_id: int, viewer_id: int | None, limit: int
) -> list[tuple[StreamQuestion, bool]]:
    """Unanswered first, most upvoted first, then oldest first; dismissed ones left out. With
    whether the viewer upvoted each."""
    questions = list(
        await session.scalars(
            select(StreamQuestion)
            .where(StreamQuestion.stream_id == stream_id, StreamQuestion.dismissed_at.is_(None))
            .options(selectinload(StreamQuestion.user))
            .order_by(StreamQuestion.is_answered, StreamQuestion.upvotes.desc(), StreamQuestion.id)
            .limit(limit)
        )
    )
    upvoted: set[int] = set()
    if viewer_id is not None and questions:
        upvoted = set(
            await session.scalars(
                select(StreamQuestionUpvote.question_id).where(
                    StreamQuestionUpvote.user_id == viewer_id,
                    StreamQuestionUpvote.question_id.in_([q.id for q in questions]),
                )
            )
        )
    return [(q, q.id in upvoted) for q in questions]
