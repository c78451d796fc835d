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

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, case, delete, distinct, func, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tajiri_live.analytics.models import StreamAnalytics, StreamReport
from tajiri_live.core.clock import iso
from tajiri_live.core.db import dialect_insert, epoch
from tajiri_live.engagement.models import StreamComment, StreamLike
from tajiri_live.gifts.models import StreamGift
from tajiri_live.streams.lifecycle import StreamStatus
from tajiri_live.streams.models import LiveStream, StreamViewer
from tajiri_live.users.models import User
from tajiri_live.users.presenters import user_dict

RETENTION_POINTS = 100  # the retention curve has this many steps (plus its start)
TIMELINE_POINTS = 200  # viewers over time, from the snapshots, at most this many points
TOP = 10
UNKNOWN_REGION = "unknown"


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
    session: AsyncSession, *, stream: LiveStream, now: datetime, storage_base_url: str
) -> dict[str, Any]:
    """The contract's analytics answer plus the report's extras, for any moment of a stream."""
    window = report_window(stream, now)
    sid = stream.id
    audience_key = func.coalesce(StreamViewer.user_id, -StreamViewer.id)  # anonymous: a session
    if window is None:
        totals = (0, 0, 0.0)
    else:
        watched = _watched(window)
        row = (
            await session.execute(
                select(
                    func.count(),
                    func.count(distinct(audience_key)),
                    func.coalesce(func.avg(watched), 0.0),
                ).where(StreamViewer.stream_id == sid)
            )
        ).one()
        totals = (int(row[0]), int(row[1]), float(row[2]))
    sessions, unique, average = totals

    region = func.coalesce(StreamViewer.region, UNKNOWN_REGION)
    regions = {
        str(name): int(count)
        for name, count in await session.execute(
            select(region, func.count(distinct(audience_key)))
            .where(StreamViewer.stream_id == sid)
            .group_by(text("1"))
        )
    }

    gifts = (
        await session.execute(
            select(
                func.coalesce(func.sum(StreamGift.quantity), 0),
                func.coalesce(func.sum(StreamGift.total_value), 0),
                func.coalesce(func.sum(StreamGift.creator_amount), 0),
            ).where(StreamGift.stream_id == sid, StreamGift.refunded_at.is_(None))
        )
    ).one()
    total_gifts, gross, creator_share = (int(v) for v in gifts)

    retention: list[dict[str, Any]] = []
    peak_from_sessions = 0
    top_viewers: list[dict[str, Any]] = []
    if window is not None:
        retention, peak_from_sessions = await _retention(session, sid, window, unique)
        watched_by_user = func.sum(_watched(window)).label("watched")
        rows = await session.execute(
            select(User, watched_by_user)
            .join(StreamViewer, StreamViewer.user_id == User.id)
            .where(StreamViewer.stream_id == sid)
            .group_by(User.id)
            .order_by(watched_by_user.desc(), User.id)
            .limit(TOP)
        )
        top_viewers = [
            {
                "user": user_dict(user, storage_base_url=storage_base_url),
                "watch_time": round(seconds),
            }
            for user, seconds in rows
        ]
    given = func.sum(StreamGift.total_value).label("given")
    gifters = await session.execute(
        select(User, given, func.sum(StreamGift.quantity))
        .join(StreamGift, StreamGift.sender_id == User.id)
        .where(StreamGift.stream_id == sid, StreamGift.refunded_at.is_(None))
        .group_by(User.id)
        .order_by(given.desc(), User.id)
        .limit(TOP)
    )
    top_gifters = [
        {
            "user": user_dict(user, storage_base_url=storage_base_url),
            "total_value": int(value),
            "gifts": int(quantity),
        }
        for user, value, quantity in gifters
    ]
    return {
        "stream_id": sid,
        "status": stream.status,
        "generated_at": iso(now),
        "started_at": iso(stream.started_at),
        "ended_at": iso(stream.ended_at),
        "duration": int(window.duration) if window else 0,
        "total_viewers": sessions,
        "unique_viewers": unique,
        "peak_viewers": max(stream.peak_viewers, peak_from_sessions),
        "current_viewers": stream.current_viewers,
        "average_watch_time": round(average, 1),
        "total_likes": stream.likes_count,
        "total_comments": stream.comments_count,
        "total_shares": stream.shares_count,
        "total_gifts": total_gifts,
        "total_revenue": gross,
        "revenue": {"gross": gross, "creator_share": creator_share},
        "engagement_rate": engagement_rate(stream.likes_count, stream.comments_count, unique),
        "viewers_by_region": dict(sorted(regions.items(), key=lambda kv: (-kv[1], kv[0]))),
        "retention_data": retention,
        "top_viewers": top_viewers,
        "top_gifters": top_gifters,
        "timeline": await _timeline(session, sid, window) if window else [],
    }


async def _retention(
    session: AsyncSession, sid: int, window: Window, audience: int
) -> tuple[list[dict[str, Any]], int]:
    """Viewers at each step from the start to the end, from two GROUP BYs over the sessions
    (joins and leaves per step, then a running sum): O(sessions), not O(sessions x steps)."""
    step = max(1.0, math.ceil(window.duration / RETENTION_POINTS))
    steps = math.ceil(window.duration / step)
    # A session counts at offset k*step if it joined at or before it and left after it: so a
    # join counts from step ceil(join offset / step), a leave stops counting at its own ceil.
    start, width = literal(window.start, Float), literal(step, Float)
    joined_step = _not_below_zero(func.ceil((epoch(StreamViewer.joined_at) - start) / width))
    left_step = _not_below_zero(func.ceil((epoch(StreamViewer.left_at) - start) / width))
    joins = {
        int(k): int(n)
        for k, n in await session.execute(
            select(joined_step, func.count())
            .where(StreamViewer.stream_id == sid)
            .group_by(text("1"))
        )
    }
    leaves = {
        int(k): int(n)
        for k, n in await session.execute(
            select(left_step, func.count())
            .where(StreamViewer.stream_id == sid, StreamViewer.left_at.is_not(None))
            .group_by(text("1"))
        )
    }
    curve: list[dict[str, Any]] = []
    watching = 0
    peak = 0
    for k in range(steps + 1):
        watching += joins.get(k, 0) - leaves.get(k, 0)
        offset = min(int(k * step), int(window.duration))
        peak = max(peak, watching)
        curve.append(
            {
                "timestamp": offset,
                "viewers": watching,
                "share": round(watching / audience, 4) if audience else 0.0,
            }
        )
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
    """Delete a reported stream's viewer rows; the report stays, marked final."""
    result = await session.execute(delete(StreamViewer).where(StreamViewer.stream_id == stream_id))
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
    """Streams over before `cutoff` that still have viewer rows (the retention job's list)."""
    over = func.coalesce(LiveStream.ended_at, LiveStream.cancelled_at)
    return (
        select(LiveStream.id)
        .where(
            over < cutoff,
            select(StreamViewer.id).where(StreamViewer.stream_id == LiveStream.id).exists(),
        )
        .order_by(LiveStream.id)
    )
