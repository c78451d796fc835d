"""Comments, reactions, likes and shares over REST (the WebSocket path: test_sockets)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tajiri_live.core.ratelimit import MemoryRateLimiter
from tajiri_live.engagement import service
from tajiri_live.realtime.events import NEW_COMMENT, REACTION, Event
from tajiri_live.streams.service import finish_ending

OWNER, FAN, OTHER, COHOST = 1, 2, 3, 4


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks(runtime: Any) -> FakeTime:
    """Drive the rate limiter's clock by hand."""
    clock = FakeTime()
    runtime.limiter = MemoryRateLimiter(now=clock)
    return clock


async def live_stream(client: httpx.AsyncClient, auth: Any, **fields: Any) -> int:
    created = await client.post("/api/streams", json={"title": "x", **fields}, headers=auth(OWNER))
    stream_id = int(created.json()["data"]["id"])
    await client.post(f"/api/streams/{stream_id}/start", headers=auth(OWNER))
    return stream_id


async def comment(
    client: httpx.AsyncClient, auth: Any, stream_id: int, user: int, **body: Any
) -> httpx.Response:
    return await client.post(
        f"/api/streams/{stream_id}/comments", json=body, headers=auth(user, first_name=f"U{user}")
    )


async def test_post_comment_persists_counts_and_publishes(
    client: httpx.AsyncClient, auth: Any, events: list[Event], ticks: FakeTime
) -> None:
    sid = await live_stream(client, auth)
    posted = await comment(client, auth, sid, FAN, content="  Habari za jioni!  ")
    assert posted.status_code == 201
    data = posted.json()["data"]
    assert data["content"] == "Habari za jioni!" and data["user_id"] == FAN
    assert data["user"]["first_name"] == f"U{FAN}" and data["is_pinned"] is False
    ticks.now += 3
    older = await comment(client, auth, sid, FAN, message="from an old client")
    assert older.status_code == 201 and older.json()["data"]["content"] == "from an old client"
    published = [e for e in events if e.name == NEW_COMMENT]
    assert [e.data["id"] for e in published] == [data["id"], older.json()["data"]["id"]]
    assert published[0].actor_id == FAN and published[0].channel == f"stream.{sid}"
    stream = (await client.get(f"/api/streams/{sid}")).json()["data"]
    assert stream["comments_count"] == 2


async def test_comment_validation_and_refusals(
    client: httpx.AsyncClient, auth: Any, ticks: FakeTime, clock: Any, runtime: Any
) -> None:
    sid = await live_stream(client, auth)
    blank = await comment(client, auth, sid, FAN, content="   ")
    assert blank.status_code == 422 and "content" in blank.json()["errors"]
    long = await comment(client, auth, sid, FAN, content="x" * 501)
    assert long.status_code == 422
    assert (
        await client.post(f"/api/streams/{sid}/comments", json={"content": "hi"})
    ).status_code == 401
    spoof = await comment(client, auth, sid, FAN, content="hi", user_id=OTHER)
    assert spoof.status_code == 403
    closed = await live_stream(client, auth, allow_comments=False)
    refused = await comment(client, auth, closed, FAN, content="hi")
    assert refused.status_code == 403 and "turned off" in refused.json()["message"]
    await client.post(f"/api/streams/{sid}/end", headers=auth(OWNER))
    outro = await comment(client, auth, sid, FAN, content="bye!")  # goodbyes in the outro
    assert outro.status_code == 201
    clock.advance(seconds=runtime.settings.outro_seconds)
    await finish_ending(runtime)
    ticks.now += 3
    ended = await comment(client, auth, sid, FAN, content="hi")
    assert ended.status_code == 403 and "ended" in ended.json()["message"]


async def test_one_comment_per_window_per_user_and_stream(
    client: httpx.AsyncClient, auth: Any, ticks: FakeTime
) -> None:
    sid = await live_stream(client, auth)
    assert (await comment(client, auth, sid, FAN, content="one")).status_code == 201
    ticks.now += 1
    limited = await comment(client, auth, sid, FAN, content="two")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2" and limited.json()["retry_after"] == 2
    assert (await comment(client, auth, sid, OTHER, content="other user")).status_code == 201
    ticks.now += 2
    assert (await comment(client, auth, sid, FAN, content="three")).status_code == 201
    stream = (await client.get(f"/api/streams/{sid}")).json()["data"]
    assert stream["comments_count"] == 3  # the refused one was never stored


async def test_listing_catches_up_after_last_id(
    client: httpx.AsyncClient, auth: Any, ticks: FakeTime
) -> None:
    sid = await live_stream(client, auth)
    ids = []
    for n in range(5):
        ticks.now += 3
        ids.append((await comment(client, auth, sid, FAN, content=f"c{n}")).json()["data"]["id"])
    everything = (await client.get(f"/api/streams/{sid}/comments")).json()["data"]
    assert [c["id"] for c in everything] == ids  # oldest first
    newest = (await client.get(f"/api/streams/{sid}/comments?limit=2")).json()["data"]
    assert [c["id"] for c in newest] == ids[-2:]
    after = (await client.get(f"/api/streams/{sid}/comments?last_id={ids[1]}")).json()["data"]
    assert [c["id"] for c in after] == ids[2:]
    assert (await client.get(f"/api/streams/{sid}/comments?limit=0")).status_code == 422


async def test_pin_highlight_and_delete_rights(
    client: httpx.AsyncClient, auth: Any, runtime: Any, ticks: FakeTime
) -> None:
    from tajiri_live.streams.models import StreamCoHost

    sid = await live_stream(client, auth)
    first = (await comment(client, auth, sid, FAN, content="a")).json()["data"]["id"]
    ticks.now += 3
    second = (await comment(client, auth, sid, FAN, content="b")).json()["data"]["id"]
    await client.get("/api/streams", headers=auth(COHOST))  # the co-host's user row
    async with runtime.sessions() as session:
        session.add(StreamCoHost(stream_id=sid, user_id=COHOST, status="accepted"))
        await session.commit()
    base = f"/api/streams/{sid}/comments"
    assert (await client.post(f"{base}/{first}/pin", headers=auth(OTHER))).status_code == 403
    assert (await client.post(f"{base}/{first}/pin", headers=auth(OWNER))).status_code == 200
    pinned = await client.post(f"{base}/{second}/pin", headers=auth(COHOST))
    assert pinned.json()["data"]["is_pinned"] is True
    listed = {c["id"]: c for c in (await client.get(base)).json()["data"]}
    assert (listed[first]["is_pinned"], listed[second]["is_pinned"]) == (False, True)
    lit = await client.post(f"{base}/{first}/highlight", headers=auth(OWNER))
    assert lit.json()["data"]["is_highlighted"] is True

    assert (await client.delete(f"{base}/{first}", headers=auth(OTHER))).status_code == 403
    assert (await client.delete(f"{base}/{first}", headers=auth(FAN))).status_code == 200
    assert (await client.delete(f"{base}/{first}", headers=auth(FAN))).status_code == 404
    assert (await client.delete(f"{base}/{second}", headers=auth(COHOST))).status_code == 200
    stream = (await client.get(f"/api/streams/{sid}")).json()["data"]
    async with runtime.sessions() as session:
        assert stream["comments_count"] == await service.comment_total(session, sid) == 0
    assert (await client.get(base)).json()["data"] == []


async def test_reactions_are_counted_exactly_and_limited(
    client: httpx.AsyncClient, auth: Any, events: list[Event], runtime: Any, ticks: FakeTime
) -> None:
    sid = await live_stream(client, auth)
    url = f"/api/streams/{sid}/reactions"
    for _ in range(3):
        assert (
            await client.post(url, json={"reaction_type": "fire"}, headers=auth(FAN))
        ).status_code == 201
    answer = await client.post(url, json={"reaction_type": "heart"}, headers=auth(OTHER))
    assert answer.json()["data"]["reaction_counts"] == {"fire": 3, "heart": 1}
    bad = await client.post(url, json={"reaction_type": "angry"}, headers=auth(FAN))
    assert bad.status_code == 422 and "Allowed" in bad.json()["errors"]["reaction_type"][0]
    for _ in range(runtime.settings.reaction_limit - 3):
        await client.post(url, json={"reaction_type": "clap"}, headers=auth(FAN))
    limited = await client.post(url, json={"reaction_type": "clap"}, headers=auth(FAN))
    assert limited.status_code == 429
    reactions = [e.data for e in events if e.name == REACTION]
    assert reactions[0] == {"stream_id": sid, "user_id": FAN, "reaction_type": "fire"}
    stream = (await client.get(f"/api/streams/{sid}")).json()["data"]
    assert stream["reaction_counts"] == {"fire": 3, "heart": 1, "clap": 7}


async def test_like_toggles_and_shows_on_reads(client: httpx.AsyncClient, auth: Any) -> None:
    sid = await live_stream(client, auth)
    url = f"/api/streams/{sid}/like"
    liked = (await client.post(url, json={"user_id": FAN}, headers=auth(FAN))).json()
    assert (liked["is_liked"], liked["likes_count"]) == (True, 1)
    await client.post(url, headers=auth(OTHER))
    mine = (await client.get(f"/api/streams/{sid}", headers=auth(FAN))).json()["data"]
    assert mine["is_liked"] is True and mine["likes_count"] == 2
    listed = (await client.get("/api/streams", headers=auth(OWNER))).json()["data"]
    assert listed[0]["is_liked"] is False
    undone = (await client.post(url, headers=auth(FAN))).json()
    assert (undone["is_liked"], undone["likes_count"]) == (False, 1)


async def test_shares_are_counted_and_limited(
    client: httpx.AsyncClient, auth: Any, runtime: Any, ticks: FakeTime
) -> None:
    sid = await live_stream(client, auth)
    url = f"/api/streams/{sid}/share"
    counts = [
        (await client.post(url, headers=auth(FAN))).json().get("shares_count")
        for _ in range(runtime.settings.share_limit)
    ]
    assert counts == list(range(1, runtime.settings.share_limit + 1))
    assert (await client.post(url, headers=auth(FAN))).status_code == 429


async def test_concurrent_comments_are_written_together_and_each_gets_its_own_row(
    client: httpx.AsyncClient, auth: Any, runtime: Any, events: list[Event]
) -> None:
    import asyncio

    from sqlalchemy import select

    from tajiri_live.engagement.models import StreamComment

    sid = await live_stream(client, auth)
    users = range(100, 160)
    answers = await asyncio.gather(
        *(comment(client, auth, sid, user, content=f"salamu kutoka {user}") for user in users)
    )
    assert [a.status_code for a in answers] == [201] * len(users)
    async with runtime.sessions() as session:
        rows = {c.id: c for c in await session.scalars(select(StreamComment))}
    for user, answer in zip(users, answers, strict=True):
        data = answer.json()["data"]
        stored = rows[data["id"]]  # the id answered is the row holding this very comment
        assert stored.content == data["content"] == f"salamu kutoka {user}"
        assert stored.user_id == user == data["user_id"]
    assert len(rows) == len(users)
    stream = (await client.get(f"/api/streams/{sid}")).json()["data"]
    assert stream["comments_count"] == len(users)
    assert sorted(e.data["id"] for e in events if e.name == NEW_COMMENT) == sorted(rows)
