"""Analytics against a hand count: synthetic sessions, gifts and counters with known times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update

from tajiri_live.analytics.jobs import generate_reports, purge_old_sessions, snapshot_live_streams
from tajiri_live.analytics.models import StreamAnalytics, StreamReport
from tajiri_live.core.clock import ManualClock
from tajiri_live.core.runtime import Runtime
from tajiri_live.gifts.models import StreamGift
from tajiri_live.streams.jobs import lifecycle_jobs
from tajiri_live.streams.models import LiveStream, StreamViewer
from tajiri_live.users.models import User

OWNER, AMANI, BARAKA, CHIKU, STRANGER, ADMIN = 1, 11, 12, 13, 50, 99
START = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
DURATION = 600  # the stream runs ten minutes

# (user, joined at, left at, region) in seconds from the start; None: still watching at the end
SESSIONS: list[tuple[int | None, int, int | None, str | None]] = [
    (AMANI, 0, 300, "Dar es Salaam"),
    (BARAKA, 60, 600, "Arusha"),
    (AMANI, 400, None, "Dar es Salaam"),  # back again, open until the end: 200 s
    (None, -30, 120, None),  # anonymous, joined in pre-live: 150 s
    (CHIKU, 590, 600, "Arusha"),
]


async def run_stream(
    client: httpx.AsyncClient, auth: Any, runtime: Runtime, clock: ManualClock
) -> int:
    """A stream started at START and ended DURATION seconds later, with the sessions above,
    three gifts (one refunded) and known like and comment counters."""
    clock.set(START - timedelta(minutes=5))
    created = await client.post("/api/streams", json={"title": "Jioni"}, headers=auth(OWNER))
    sid = int(created.json()["data"]["id"])
    clock.set(START)
    assert (await client.post(f"/api/streams/{sid}/start", headers=auth(OWNER))).status_code == 200
    async with runtime.sessions() as session:
        for user_id in (AMANI, BARAKA, CHIKU):
            session.add(
                User(id=user_id, first_name=f"u{user_id}", created_at=START, updated_at=START)
            )
        await session.flush()
        for user_id, joined, left, region in SESSIONS:
            session.add(
                StreamViewer(
                    stream_id=sid,
                    user_id=user_id,
                    joined_at=START + timedelta(seconds=joined),
                    left_at=None if left is None else START + timedelta(seconds=left),
                    watch_duration=0 if left is None else left - joined,
                    region=region,
                    created_at=START,
                )
            )
        gift_id = 1
        for sender, quantity, value, creator, refunded in (
            (BARAKA, 2, 200, 140, False),
            (CHIKU, 1, 500, 350, False),
            (AMANI, 1, 1000, 700, True),
        ):
            session.add(
                StreamGift(
                    stream_id=sid,
                    sender_id=sender,
                    gift_id=gift_id,
                    quantity=quantity,
                    total_value=value,
                    creator_amount=creator,
                    refunded_at=START if refunded else None,
                    created_at=START + timedelta(seconds=100),
                )
            )
        await session.execute(
            update(LiveStream).where(LiveStream.id == sid).values(likes_count=2, comments_count=6)
        )
        await session.commit()
    clock.set(START + timedelta(seconds=DURATION))
    assert (await client.post(f"/api/streams/{sid}/end", headers=auth(OWNER))).status_code == 200
    clock.advance(seconds=runtime.settings.outro_seconds + 1)
    finish = next(job for job in lifecycle_jobs(runtime) if job.name == "streams.to_ended")
    await finish.run()
    return sid


def expected_viewers_at(offset: int) -> int:
    """The hand count: sessions with joined <= offset < left."""
    return sum(
        1 for _, joined, left, _ in SESSIONS if joined <= offset and (left is None or offset < left)
    )


async def test_the_report_matches_a_hand_count(
    client: httpx.AsyncClient, auth: Any, runtime: Runtime, clock: ManualClock
) -> None:
    sid = await run_stream(client, auth, runtime, clock)
    response = await client.get(f"/api/streams/{sid}/analytics", headers=auth(OWNER))
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["stream_id"] == sid
    assert data["duration"] == DURATION
    assert data["total_viewers"] == 5  # sessions
    assert data["unique_viewers"] == 4  # Amani, Baraka, Chiku and one anonymous viewer
    assert data["average_watch_time"] == (300 + 540 + 200 + 150 + 10) / 5  # 240.0
    assert data["peak_viewers"] == 3  # A, B and the anonymous one at 60 s; B, A, C at 594 s
    assert data["viewers_by_region"] == {"Arusha": 2, "Dar es Salaam": 1, "unknown": 1}
    assert (data["total_likes"], data["total_comments"]) == (2, 6)
    assert data["engagement_rate"] == (2 + 6) / 4
    assert data["total_gifts"] == 3  # 2 + 1; the refunded one does not count
    assert data["total_revenue"] == 700
    assert data["revenue"] == {
        "gross": 700,
        "creator_share": 490,
        "gifts": {"gross": 700, "creator_share": 490},
        "super_chats": {"gross": 0, "creator_share": 0, "tzs": 0},
    }
    assert data["total_super_chats"] == 0
    assert [(v["user"]["id"], v["watch_time"]) for v in data["top_viewers"]] == [
        (BARAKA, 540),
        (AMANI, 500),
        (CHIKU, 10),
    ]
    assert [(g["user"]["id"], g["total_value"]) for g in data["top_gifters"]] == [
        (CHIKU, 500),
        (BARAKA, 200),
    ]

    curve = data["retention_data"]
    assert curve[0]["timestamp"] == 0 and curve[-1]["timestamp"] == DURATION
    assert len(curve) == 101  # 6-second steps from the start to the end
    for point in curve:
        assert point["viewers"] == expected_viewers_at(point["timestamp"]), point
        assert point["share"] == round(point["viewers"] / 4, 4)
    at = {p["timestamp"]: p["viewers"] for p in curve}
    assert (at[0], at[60], at[120], at[300], at[402], at[594], at[600]) == (2, 3, 2, 1, 2, 3, 1)


async def test_who_may_read_analytics_and_the_end_answer(
    client: httpx.AsyncClient, auth: Any, runtime: Runtime, clock: ManualClock
) -> None:
    sid = await run_stream(client, auth, runtime, clock)
    assert (await client.get(f"/api/streams/{sid}/analytics")).status_code == 401
    stranger = await client.get(f"/api/streams/{sid}/analytics", headers=auth(STRANGER))
    assert stranger.status_code == 403
    admin = await client.get(f"/api/streams/{sid}/analytics", headers=auth(ADMIN, admin=True))
    assert admin.status_code == 200
    unknown = await client.get("/api/streams/987654/analytics", headers=auth(OWNER))
    assert unknown.status_code == 404


async def test_the_end_answer_carries_the_same_numbers(
    client: httpx.AsyncClient, auth: Any, runtime: Runtime, clock: ManualClock
) -> None:
    clock.set(START)
    created = await client.post("/api/streams", json={"title": "x"}, headers=auth(OWNER))
    sid = int(created.json()["data"]["id"])
    await client.post(f"/api/streams/{sid}/start", headers=auth(OWNER))
    async with runtime.sessions() as session:
        session.add(User(id=AMANI, created_at=START, updated_at=START))
        await session.flush()
        session.add(
            StreamViewer(
                stream_id=sid, user_id=AMANI, joined_at=START, created_at=START, region="Mwanza"
            )
        )
        await session.commit()
    clock.advance(seconds=90)
    ended = (await client.post(f"/api/streams/{sid}/end", headers=auth(OWNER))).json()
    assert ended["analytics"]["total_viewers"] == 1
    assert ended["analytics"]["average_watch_time"] == 90.0  # open session, counted to the end
    assert ended["analytics"]["revenue"] == 0


async def test_reports_are_stored_rerunnable_and_survive_the_purge(
    client: httpx.AsyncClient, auth: Any, runtime: Runtime, clock: ManualClock
) -> None:
    sid = await run_stream(client, auth, runtime, clock)
    assert await generate_reports(runtime) == 1
    assert await generate_reports(runtime) == 0  # nothing new
    async with runtime.sessions() as session:
        report = await session.get(StreamReport, sid)
        assert report is not None and report.data["unique_viewers"] == 4

    clock.advance(days=29)
    assert await purge_old_sessions(runtime) == 0  # not old enough yet
    clock.advance(days=2)
    assert await purge_old_sessions(runtime) == len(SESSIONS)
    async with runtime.sessions() as session:
        left = await session.scalar(
            select(func.count()).select_from(StreamViewer).where(StreamViewer.stream_id == sid)
        )
        report = await session.get(StreamReport, sid)
    assert left == 0
    assert report is not None and report.sessions_purged_at is not None
    data = (await client.get(f"/api/streams/{sid}/analytics", headers=auth(OWNER))).json()["data"]
    assert (data["total_viewers"], data["unique_viewers"], data["average_watch_time"]) == (
        5,
        4,
        240.0,
    )
    assert len(data["retention_data"]) == 101
    assert await purge_old_sessions(runtime) == 0


async def test_one_snapshot_per_stream_and_period_however_many_nodes_take_it(
    client: httpx.AsyncClient, auth: Any, runtime: Runtime, clock: ManualClock
) -> None:
    clock.set(START)
    created = await client.post("/api/streams", json={"title": "x"}, headers=auth(OWNER))
    sid = int(created.json()["data"]["id"])
    await client.post(f"/api/streams/{sid}/start", headers=auth(OWNER))
    await client.post(f"/api/streams/{sid}/join", headers=auth(AMANI), json={"region": "Dodoma"})
    await client.post(f"/api/streams/{sid}/comments", json={"content": "hi"}, headers=auth(AMANI))
    clock.advance(seconds=2)
    assert await snapshot_live_streams(runtime) == 1
    assert await snapshot_live_streams(runtime) == 0  # the same slot: another node's twin
    clock.advance(seconds=runtime.settings.analytics_snapshot_seconds)
    assert await snapshot_live_streams(runtime) == 1
    async with runtime.sessions() as session:
        rows = (
            await session.scalars(
                select(StreamAnalytics)
                .where(StreamAnalytics.stream_id == sid)
                .order_by(StreamAnalytics.recorded_at)
            )
        ).all()
    assert len(rows) == 2
    first, second = rows
    assert first.viewers_count == 1 and first.comments_count == 1
    assert first.data["joins"] == 1 and first.data["comments_per_minute"] == 1
    assert second.data["joins"] == 0  # no join in its own period
    await client.post(f"/api/streams/{sid}/join", headers=auth(BARAKA, region="Mbeya"))
    await client.post(
        f"/api/streams/{sid}/join", headers=auth(CHIKU, region="Mbeya"), json={"region": "Tanga"}
    )
    await client.post(f"/api/streams/{sid}/join", headers=auth(STRANGER))
    data = (
        await client.get(f"/api/streams/{sid}/analytics", headers=auth(ADMIN, admin=True))
    ).json()["data"]
    # The body's region, else the token profile's, else unknown.
    assert data["viewers_by_region"] == {"Dodoma": 1, "Mbeya": 1, "Tanga": 1, "unknown": 1}
    assert [point["viewers"] for point in data["timeline"]] == [1, 1]


def test_the_live_report_cache_expires() -> None:
    from tajiri_live.analytics.service import LiveReportCache

    now = [100.0]
    cache = LiveReportCache(5.0, clock=lambda: now[0])
    cache.put(1, {"unique_viewers": 3})
    assert cache.get(1) == {"unique_viewers": 3}
    now[0] += 4.9
    assert cache.get(1) is not None
    now[0] += 0.2
    assert cache.get(1) is None  # stale: recomputed by the next request
    off = LiveReportCache(0.0)
    off.put(1, {})
    assert off.get(1) is None
