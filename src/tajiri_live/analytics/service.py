"""Stream analytics: live snapshots, the post-stream report, and the retention of raw rows.

Everything is computed in SQL (aggregates over `stream_viewers`, `stream_gifts`,
`stream_analytics`); Python only shapes the few aggregated rows that come back.

Definitions (documented in docs/architecture.md):
- a *session* is one `stream_viewers` row (a join and its leave); open sessions count until
  the stream's end (or now, while it is on);
- total viewers = sessions; unique viewers = distinct signed-in users + anonymous sessions;
- average watch time = mean session length in seconds;
- engagement rate = (likes + comments) / unique viewers;
- viewers at offset t = sessions with joined_at <= start + t < left_at.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.analytics.models import StreamAnalytics, StreamReport
from tajiri_live.battles import service as battles_service
from tajiri_live.core.clock import iso
from tajiri_live.core.db import dialect_insert, epoch
from tajiri_live.core.runtime import Runtime
from tajiri_live.engagement.models import StreamComment, StreamLike
from tajiri_live.gifts.models import StreamGift
from tajiri_live.health.models import StreamHealthSample
from tajiri_live.polls.models import StreamPoll, StreamPollOption
from tajiri_live.questions.models import StreamQuestion
from tajiri_live.streams.lifecycle import StreamStatus
from tajiri_live.streams.models import LiveStream, StreamViewer
from tajiri_live.streams.presenters import storage_base_url
from tajiri_live.superchats import service as super_chats
from tajiri_live.users.models import User
from tajiri_live.users.presenters import user_dict

RETENTION_POINTS = 100  # the retention curve has this many steps (plus its start)
TIMELINE_POINTS = 200  # viewers over time, from the snapshots, at most this many points
TOP = 10
UNKNOWN_REGION = "unknown"


@dataclass
class LiveReportCache:
    """A live stream's report, reused for a few seconds on this node: the console polls it,
    and it changes no faster than the snapshots."""

    ttl_seconds: float
    clock: Callable[[], float] = time.monotonic
    _entries: dict[int, tuple[float, dict[str, Any]]] = field(default_factory=dict)

    def get(self, stream_id: int) -> dict[str, Any] | None:
        entry = self._entries.get(stream_id)
        if entry is None or self.clock() - entry[0] >= self.ttl_seconds:
            return None
        return entry[1]

    def put(self, stream_id: int, data: dict[str, Any]) -> None:
        if self.ttl_seconds > 0:
            now = self.clock()
            self._entries = {
                k: v for k, v in self._entries.items() if now - v[0] < self.ttl_seconds
            }
            self._entries[stream_id] = (now, data)


def engagement_rate(likes: int, comments: int, viewers: int) -> float:
    return round((likes + comments) / viewers, 4) if viewers else 0.0


# --- live snapshots ---------------------------------------------------------------------------


def snapshot_slot(now: datetime, period: float) -> datetime:
    """The start of the snapshot period `now` falls in: every node agrees on it."""
    seconds = math.floor(now.timestamp() / period) * period
    return datetime.fromtimestamp(seconds, tz=now.tzinfo)


async def take_snapshot(
    session: AsyncSession, *, stream: LiveStream, current_viewers: int, at: datetime, period: float
) -> bool:
    """Write the stream's snapshot for the slot of `at`; False when another node already did."""
    since = at - timedelta(seconds=period)
    minute = at - timedelta(seconds=60)
    sid = stream.id
    joins_leaves = (
        await session.execute(
            select(
                func.count().filter(StreamViewer.joined_at > since),
                func.count().filter(StreamViewer.left_at > since),
            ).where(
                StreamViewer.stream_id == sid,
                (StreamViewer.joined_at > since) | (StreamViewer.left_at > since),
            )
        )
    ).one()
    comments_per_minute = await session.scalar(
        select(func.count()).where(
            StreamComment.stream_id == sid, StreamComment.created_at > minute
        )
    )
    gifts_per_minute = await session.scalar(
        select(func.count()).where(StreamGift.stream_id == sid, StreamGift.created_at > minute)
    )
    likes_per_minute = await session.scalar(
        select(func.count()).where(StreamLike.stream_id == sid, StreamLike.created_at > minute)
    )
    data = {
        "joins": int(joins_leaves[0]),
        "leaves": int(joins_leaves[1]),
        "comments_per_minute": int(comments_per_minute or 0),
        "gifts_per_minute": int(gifts_per_minute or 0),
        "likes_per_minute": int(likes_per_minute or 0),
        "shares": stream.shares_count,
        "peak_viewers": stream.peak_viewers,
        "engagement_rate": engagement_rate(
            stream.likes_count, stream.comments_count, max(stream.unique_viewers, current_viewers)
        ),
    }
    insert = dialect_insert(session)
    result = await session.execute(
        insert(StreamAnalytics)
        .values(
            stream_id=sid,
            recorded_at=at,
            viewers_count=current_viewers,
            likes_count=stream.likes_count,
            comments_count=stream.comments_count,
            gifts_count=stream.gifts_count,
            data=data,
            created_at=at,
        )
        .on_conflict_do_nothing(index_elements=["stream_id", "recorded_at"])
    )
    await session.commit()
    return bool(getattr(result, "rowcount", 0))


# --- the report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The stretch of time a report covers, in epoch seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


def report_window(stream: LiveStream, now: datetime) -> Window | None:
    began = stream.started_at or stream.live_started_at
    if began is None:
        return None
    # The live part ends when the creator ends it (or the encoder drops for good), not after
    # the outro: ending_started_at, when there is one.
    finished = stream.ending_started_at or stream.ended_at
    end = finished if stream.status_enum is not StreamStatus.LIVE and finished else now
    return Window(began.timestamp(), max(began.timestamp(), end.timestamp()))


def _not_below_zero(value: Any) -> Any:
    return case((value > 0, value), else_=literal(0.0, Float))


def _watched(window: Window) -> Any:
    """A session's seconds: to its leave, or to the stream's end for open ones."""
    end = func.coalesce(epoch(StreamViewer.left_at), literal(window.end, Float))
    return _not_below_zero(end - epoch(StreamViewer.joined_at))


async def build_report(
    runtime: Runtime, *, stream: LiveStream, now: datetime | None = None
) -> dict[str, Any]:
    """The contract's analytics answer plus the report's extras, for any moment of a stream
    (now, unless told). Its independent aggregates run at once, each on its own connection."""
    sessions = runtime.sessions
    storage = storage_base_url(runtime.settings)
    now = now or runtime.clock.now()
    window = report_window(stream, now)
    sid = stream.id

    async def run(query: Any) -> Any:
        async with sessions() as session:
            return await query(session)

    audience = Audience(0, 0, 0.0, [])
    regions: dict[str, int] = {}
    retention: tuple[list[tuple[int, int]], int] = ([], 0)
    timeline: list[dict[str, int]] = []
    health_timeline: list[dict[str, Any]] = []
    polls, questions, chats, battles = await asyncio.gather(
        run(lambda db: _polls(db, sid)),
        run(lambda db: _questions(db, sid)),
        run(lambda db: super_chats.revenue(db, sid)),
        run(lambda db: battles_service.stream_stats(db, sid)),
    )
    if window is None:  # never started: nobody watched
        gifts, gifters = await run(lambda db: _gifts(db, sid))
    else:
        (
            audience,
            regions,
            (gifts, gifters),
            retention,
            timeline,
            health_timeline,
        ) = await asyncio.gather(
            run(lambda db: _audience(db, sid, window)),
            run(lambda db: _regions(db, sid)),
            run(lambda db: _gifts(db, sid)),
            run(lambda db: _retention(db, sid, window)),
            run(lambda db: _timeline(db, sid, window)),
            run(lambda db: _health_timeline(db, sid, window)),
        )
    steps, peak_from_sessions = retention
    unique = audience.unique
    async with sessions() as db:
        profiles = {
            user.id: user
            for user in await db.scalars(
                select(User).where(
                    User.id.in_([u for u, _ in audience.leaders] + [u for u, _, _ in gifters])
                )
            )
        }
    total_gifts, gross, creator_share = gifts
    return {
        "stream_id": sid,
        "status": stream.status,
        "generated_at": iso(now),
        "started_at": iso(stream.started_at),
        "ended_at": iso(stream.ended_at),
        "duration": int(window.duration) if window else 0,
        "total_viewers": audience.sessions,
        "unique_viewers": unique,
        "peak_viewers": max(stream.peak_viewers, peak_from_sessions),
        "current_viewers": stream.current_viewers,
        "average_watch_time": round(audience.average, 1),
        "total_likes": stream.likes_count,
        "total_comments": stream.comments_count,
        "total_shares": stream.shares_count,
        "total_gifts": total_gifts,
        "total_super_chats": chats.count,
        # Coins: gifts and super chats together, and each beside the other.
        "total_revenue": gross + chats.coins,
        "revenue": {
            "gross": gross + chats.coins,
            "creator_share": creator_share + chats.creator_amount,
            "gifts": {"gross": gross, "creator_share": creator_share},
            "super_chats": {
                "gross": chats.coins,
                "creator_share": chats.creator_amount,
                "tzs": chats.tzs,
            },
        },
        "engagement_rate": engagement_rate(stream.likes_count, stream.comments_count, unique),
        "viewers_by_region": dict(sorted(regions.items(), key=lambda kv: (-kv[1], kv[0]))),
        "retention_data": [
            {
                "timestamp": offset,
                "viewers": viewers,
                "share": round(viewers / unique, 4) if unique else 0.0,
            }
            for offset, viewers in steps
        ],
        "top_viewers": [
            {
                "user": user_dict(profiles.get(user_id), storage_base_url=storage),
                "watch_time": round(seconds),
            }
            for user_id, seconds in audience.leaders
        ],
        "top_gifters": [
            {
                "user": user_dict(profiles.get(user_id), storage_base_url=storage),
                "total_value": value,
                "gifts": quantity,
            }
            for user_id, value, quantity in gifters
        ],
        "timeline": timeline,
        "polls": polls,
        "questions": questions,
        "battles": battles,
        "health": {
            "network_quality": stream.network_quality,
            "average_bitrate": round(stream.average_bitrate),
            "average_fps": round(stream.average_fps, 1),
            "average_latency": round(stream.average_latency, 2),
            "total_dropped_frames": stream.total_dropped_frames,
            "samples": sum(point["samples"] for point in health_timeline),
            "poor_samples": sum(point["poor_samples"] for point in health_timeline),
            "timeline": health_timeline,
        },
    }


@dataclass(frozen=True)
class Audience:
    sessions: int
    unique: int
    average: float  # seconds per session
    leaders: list[tuple[int, float]]  # (user id, seconds watched), most first


async def _audience(session: AsyncSession, sid: int, window: Window) -> Audience:
    """One pass: per person (a signed-in user, or an anonymous session), the time watched;
    window functions carry the totals beside the top ten."""
    person = func.coalesce(StreamViewer.user_id, -StreamViewer.id)
    per_person = (
        select(
            person.label("person"),
            func.count().label("sessions"),
            func.sum(_watched(window)).label("watched"),
        )
        .where(StreamViewer.stream_id == sid)
        .group_by(text("1"))
        .subquery()
    )
    rows = (
        await session.execute(
            select(
                per_person.c.person,
                per_person.c.watched,
                func.count().over(),
                func.sum(per_person.c.sessions).over(),
                func.sum(per_person.c.watched).over(),
            )
            .order_by(
                (per_person.c.person > 0).desc(), per_person.c.watched.desc(), per_person.c.person
            )
            .limit(TOP)
        )
    ).all()
    if not rows:
        return Audience(0, 0, 0.0, [])
    _, _, unique, sessions, watched = rows[0]
    leaders = [(int(person), float(seconds)) for person, seconds, *_ in rows if person > 0]
    return Audience(int(sessions), int(unique), float(watched) / int(sessions), leaders)


async def _regions(session: AsyncSession, sid: int) -> dict[str, int]:
    """Per region: each signed-in user once, each anonymous session once."""
    per_user = (
        select(
            func.coalesce(StreamViewer.region, UNKNOWN_REGION).label("region"),
            StreamViewer.user_id.label("user_id"),
            func.count().label("sessions"),
        )
        .where(StreamViewer.stream_id == sid)
        .group_by(text("1"), text("2"))
        .subquery()
    )
    people = func.sum(case((per_user.c.user_id.is_(None), per_user.c.sessions), else_=1))
    return {
        str(name): int(count)
        for name, count in await session.execute(
            select(per_user.c.region, people).group_by(per_user.c.region)
        )
    }


async def _gifts(
    session: AsyncSession, sid: int
) -> tuple[tuple[int, int, int], list[tuple[int, int, int]]]:
    """(gifts, gross, creator share) and the top gifters, refunded gifts left out."""
    kept = (StreamGift.stream_id == sid, StreamGift.refunded_at.is_(None))
    totals = (
        await session.execute(
            select(
                func.coalesce(func.sum(StreamGift.quantity), 0),
                func.coalesce(func.sum(StreamGift.total_value), 0),
                func.coalesce(func.sum(StreamGift.creator_amount), 0),
            ).where(*kept)
        )
    ).one()
    given = func.sum(StreamGift.total_value).label("given")
    gifters = await session.execute(
        select(StreamGift.sender_id, given, func.sum(StreamGift.quantity))
        .where(*kept)
        .group_by(StreamGift.sender_id)
        .order_by(given.desc(), StreamGift.sender_id)
        .limit(TOP)
    )
    return (
        (int(totals[0]), int(totals[1]), int(totals[2])),
        [(int(u), int(v), int(q)) for u, v, q in gifters],
    )


async def _retention(
    session: AsyncSession, sid: int, window: Window
) -> tuple[list[tuple[int, int]], int]:
    """(offset, viewers) at each step from the start to the end, and the peak: joins (+1) and
    leaves (-1) summed per step in SQL, then a running sum over the hundred-odd steps:
    O(sessions), not O(sessions x steps)."""
    step = max(1.0, math.ceil(window.duration / RETENTION_POINTS))
    steps = math.ceil(window.duration / step)
    # A session counts at offset k*step if it joined at or before it and left after it: so a
    # join counts from step ceil(join offset / step), a leave stops counting at its own ceil.
    start, width = literal(window.start, Float), literal(step, Float)
    joined_step = _not_below_zero(func.ceil((epoch(StreamViewer.joined_at) - start) / width))
    left_step = _not_below_zero(func.ceil((epoch(StreamViewer.left_at) - start) / width))
    of_stream = StreamViewer.stream_id == sid
    moves = union_all(
        select(joined_step.label("step"), literal(1).label("delta")).where(of_stream),
        select(left_step.label("step"), literal(-1).label("delta")).where(
            of_stream, StreamViewer.left_at.is_not(None)
        ),
    ).subquery()
    change = {
        int(k): int(n)
        for k, n in await session.execute(
            select(moves.c.step, func.sum(moves.c.delta)).group_by(moves.c.step)
        )
    }
    curve: list[tuple[int, int]] = []
    watching = peak = 0
    for k in range(steps + 1):
        watching += change.get(k, 0)
        peak = max(peak, watching)
        curve.append((min(int(k * step), int(window.duration)), watching))
    return curve, peak


async def _timeline(session: AsyncSession, sid: int, window: Window) -> list[dict[str, Any]]:
    """Viewers over time from the live snapshots, at most TIMELINE_POINTS points."""
    step = max(1.0, math.ceil(window.duration / TIMELINE_POINTS))
    start, width = literal(window.start, Float), literal(step, Float)
    bucket = func.floor((epoch(StreamAnalytics.recorded_at) - start) / width)
    rows = await session.execute(
        select(
            bucket,
            func.max(StreamAnalytics.viewers_count),
            func.max(StreamAnalytics.comments_count),
            func.max(StreamAnalytics.likes_count),
        )
        .where(StreamAnalytics.stream_id == sid)
        .group_by(text("1"))
        .order_by(text("1"))
    )
    return [
        {
            "timestamp": max(0, int(k * step)),
            "viewers": int(viewers),
            "comments": int(comments),
            "likes": int(likes),
        }
        for k, viewers, comments, likes in rows
    ]


async def _polls(session: AsyncSession, sid: int) -> dict[str, Any]:
    """Polls run, votes cast, and each poll's final (or current) totals."""
    polls = list(
        await session.scalars(
            select(StreamPoll).where(StreamPoll.stream_id == sid).order_by(StreamPoll.id)
        )
    )
    options: dict[int, list[dict[str, Any]]] = {}
    if polls:
        rows = await session.execute(
            select(
                StreamPollOption.poll_id,
                StreamPollOption.id,
                StreamPollOption.text,
                StreamPollOption.votes,
            )
            .where(StreamPollOption.poll_id.in_([p.id for p in polls]))
            .order_by(StreamPollOption.id)
        )
        for poll_id, option_id, text_, votes in rows:
            options.setdefault(int(poll_id), []).append(
                {"id": int(option_id), "text": text_, "votes": int(votes)}
            )
    listed = [
        {
            "id": poll.id,
            "question": poll.question,
            "is_closed": poll.is_closed,
            "created_at": iso(poll.created_at),
            "closed_at": iso(poll.closed_at),
            "votes": sum(o["votes"] for o in options.get(poll.id, [])),
            "options": options.get(poll.id, []),
        }
        for poll in polls
    ]
    return {"count": len(listed), "votes": sum(p["votes"] for p in listed), "polls": listed}


async def _questions(session: AsyncSession, sid: int) -> dict[str, int]:
    """Questions asked, answered and dismissed, and their upvotes."""
    q = StreamQuestion
    row = (
        await session.execute(
            select(
                func.count(q.id),
                func.count().filter(q.is_answered.is_(True)),
                func.count().filter(q.dismissed_at.is_not(None)),
                func.coalesce(func.sum(q.upvotes), 0),
            ).where(q.stream_id == sid)
        )
    ).one()
    return {
        "asked": int(row[0]),
        "answered": int(row[1]),
        "dismissed": int(row[2]),
        "upvotes": int(row[3]),
    }


async def _health_timeline(session: AsyncSession, sid: int, window: Window) -> list[dict[str, Any]]:
    """Bitrate and frame rate over time from the health samples (every source), at most
    TIMELINE_POINTS points, each with how many samples were poor."""
    h = StreamHealthSample
    step = max(1.0, math.ceil(window.duration / TIMELINE_POINTS))
    start, width = literal(window.start, Float), literal(step, Float)
    bucket = _not_below_zero(func.floor((epoch(h.recorded_at) - start) / width))
    rows = await session.execute(
        select(
            bucket,
            func.avg(h.bitrate),
            func.avg(h.fps),
            func.avg(h.latency),
            func.count(),
            func.count().filter(h.network_quality == "poor"),
            func.coalesce(func.sum(h.dropped_frames), 0),
        )
        .where(h.stream_id == sid)
        .group_by(text("1"))
        .order_by(text("1"))
    )
    return [
        {
            "timestamp": int(k * step),
            "bitrate": round(bitrate) if bitrate is not None else None,
            "fps": round(fps, 1) if fps is not None else None,
            "latency": round(latency, 2) if latency is not None else None,
            "samples": int(samples),
            "poor_samples": int(poor),
            "dropped_frames": int(dropped),
        }
        for k, bitrate, fps, latency, samples, poor, dropped in rows
    ]


async def stored_report(session: AsyncSession, stream_id: int) -> StreamReport | None:
    return await session.get(StreamReport, stream_id)


async def save_report(
    session: AsyncSession, *, stream_id: int, data: dict[str, Any], now: datetime
) -> None:
    """Insert or replace the report (the job is re-runnable, on any node), unless the rows it
    came from are gone: a purged stream's report is final."""
    insert = dialect_insert(session)
    statement = insert(StreamReport).values(stream_id=stream_id, data=data, generated_at=now)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["stream_id"],
            set_={"data": statement.excluded.data, "generated_at": statement.excluded.generated_at},
            where=StreamReport.sessions_purged_at.is_(None),
        )
    )
    await session.commit()


async def purge_sessions(session: AsyncSession, *, stream_id: int, now: datetime) -> int:
    """Delete a reported stream's viewer rows and health samples; the report (with its health
    timeline) stays, marked final."""
    result = await session.execute(delete(StreamViewer).where(StreamViewer.stream_id == stream_id))
    await session.execute(
        delete(StreamHealthSample).where(StreamHealthSample.stream_id == stream_id)
    )
    await session.execute(
        update(StreamReport)
        .where(StreamReport.stream_id == stream_id)
        .values(sessions_purged_at=now)
    )
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def ended_without_report() -> Any:
    """Ended streams that have no report yet (the post-stream job's work list)."""
    return (
        select(LiveStream.id)
        .outerjoin(StreamReport, StreamReport.stream_id == LiveStream.id)
        .where(LiveStream.status == StreamStatus.ENDED.value, StreamReport.stream_id.is_(None))
        .order_by(LiveStream.id)
    )


def purgeable_streams(cutoff: datetime) -> Any:
    """Streams over before `cutoff` that still have viewer rows or health samples (the
    retention job's list)."""
    over = func.coalesce(LiveStream.ended_at, LiveStream.cancelled_at)
    return (
        select(LiveStream.id)
        .where(
            over < cutoff,
            or_(
                select(StreamViewer.id).where(StreamViewer.stream_id == LiveStream.id).exists(),
                select(StreamHealthSample.id)
                .where(StreamHealthSample.stream_id == LiveStream.id)
                .exists(),
            ),
        )
        .order_by(LiveStream.id)
    )
