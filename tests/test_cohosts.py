"""Co-hosts: invitation, answers, removal and leaving; and who watches now."""

from __future__ import annotations

from typing import Any

import httpx

from tajiri_live.realtime.events import COHOST_JOINED, Event

OWNER, GUEST, OTHER = 1, 2, 3


async def live(client: httpx.AsyncClient, auth: Any, **fields: Any) -> int:
    created = await client.post("/api/streams", json={"title": "x", **fields}, headers=auth(OWNER))
    sid = int(created.json()["data"]["id"])
    await client.post(f"/api/streams/{sid}/start", headers=auth(OWNER))
    return sid


async def test_invite_accept_leave_and_reinvite(
    client: httpx.AsyncClient, auth: Any, events: list[Event]
) -> None:
    sid = await live(client, auth)
    base = f"/api/streams/{sid}/cohosts"
    assert (
        await client.post(base, json={"user_id": GUEST}, headers=auth(OTHER))
    ).status_code == 403
    invited = await client.post(base, json={"user_id": GUEST}, headers=auth(OWNER))
    assert invited.status_code == 201
    cohost = invited.json()["data"]
    assert (cohost["status"], cohost["user_id"]) == ("invited", GUEST)
    assert (
        await client.post(base, json={"user_id": GUEST}, headers=auth(OWNER))
    ).status_code == 409
    url = f"{base}/{cohost['id']}"
    assert (
        await client.put(url, json={"status": "accepted"}, headers=auth(OTHER))
    ).status_code == 403
    assert (await client.put(url, json={"status": "maybe"}, headers=auth(GUEST))).status_code == 422
    accepted = await client.put(url, json={"status": "accepted"}, headers=auth(GUEST))
    assert accepted.json()["data"]["status"] == "accepted"
    assert accepted.json()["data"]["joined_at"]
    joined = [e for e in events if e.name == COHOST_JOINED]
    assert len(joined) == 1 and joined[0].data["user_id"] == GUEST
    shown = (await client.get(f"/api/streams/{sid}")).json()["data"]
    assert [(c["user_id"], c["status"]) for c in shown["cohosts"]] == [(GUEST, "accepted")]
    left = await client.delete(url, headers=auth(GUEST))
    assert left.json()["data"]["status"] == "left" and left.json()["data"]["left_at"]
    assert (await client.delete(url, headers=auth(OWNER))).status_code == 409
    again = await client.post(base, json={"user_id": GUEST}, headers=auth(OWNER))
    assert again.status_code == 201 and again.json()["data"]["status"] == "invited"
    removed = await client.delete(url, headers=auth(OWNER))
    assert removed.json()["data"]["status"] == "removed"


async def test_declines_and_streams_without_cohosts(
    client: httpx.AsyncClient, auth: Any, events: list[Event]
) -> None:
    sid = await live(client, auth)
    invited = (
        await client.post(
            f"/api/streams/{sid}/cohosts", json={"user_id": GUEST}, headers=auth(OWNER)
        )
    ).json()["data"]
    declined = await client.put(
        f"/api/streams/{sid}/cohosts/{invited['id']}",
        json={"status": "declined"},
        headers=auth(GUEST),
    )
    assert declined.json()["data"]["status"] == "declined"
    assert not [e for e in events if e.name == COHOST_JOINED]
    closed = await live(client, auth, allow_co_hosts=False)
    refused = await client.post(
        f"/api/streams/{closed}/cohosts", json={"user_id": GUEST}, headers=auth(OWNER)
    )
    assert refused.status_code == 403
    self_invite = await client.post(
        f"/api/streams/{sid}/cohosts", json={"user_id": OWNER}, headers=auth(OWNER)
    )
    assert self_invite.status_code == 422


async def test_viewers_lists_who_watches_now(client: httpx.AsyncClient, auth: Any) -> None:
    sid = await live(client, auth)
    for user in (GUEST, OTHER):
        await client.post(f"/api/streams/{sid}/join", headers=auth(user, first_name=f"V{user}"))
    await client.post(f"/api/streams/{sid}/leave", headers=auth(OTHER))
    assert (await client.get(f"/api/streams/{sid}/viewers")).status_code == 401
    viewers = (await client.get(f"/api/streams/{sid}/viewers", headers=auth(OWNER))).json()
    assert [(v["user_id"], v["user"]["first_name"]) for v in viewers["data"]] == [
        (GUEST, f"V{GUEST}")
    ]
    assert viewers["data"][0]["left_at"] is None


async def test_the_owner_and_accepted_cohosts_are_never_viewers(
    client: httpx.AsyncClient, auth: Any, runtime: Any, clock: Any
) -> None:
    from sqlalchemy import select

    from tajiri_live.analytics.jobs import report
    from tajiri_live.streams.models import StreamViewer

    sid = await live(client, auth)

    async def join(user: int) -> int:
        answer = await client.post(f"/api/streams/{sid}/join", headers=auth(user))
        assert answer.status_code == 200
        return int(answer.json()["current_viewers"])

    assert await join(OWNER) == 0  # the owner watching their own stream is not a viewer
    invited = await client.post(
        f"/api/streams/{sid}/cohosts", json={"user_id": GUEST}, headers=auth(OWNER)
    )
    assert await join(GUEST) == 1  # invited, still a viewer
    assert await join(OTHER) == 2
    clock.advance(seconds=30)
    url = f"/api/streams/{sid}/cohosts/{invited.json()['data']['id']}"
    await client.put(url, json={"status": "accepted"}, headers=auth(GUEST))
    assert (await runtime.presence.counts(f"stream:{sid}")).current == 1  # broadcasts now
    assert await join(GUEST) == 1  # and does not count however they join
    viewers = (await client.get(f"/api/streams/{sid}/viewers", headers=auth(OWNER))).json()
    assert [v["user_id"] for v in viewers["data"]] == [OTHER]
    await client.delete(url, headers=auth(GUEST))  # leaves the co-hosting
    assert await join(GUEST) == 2  # a viewer again: a new visit

    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                select(StreamViewer.user_id, StreamViewer.watch_duration, StreamViewer.left_at)
                .where(StreamViewer.stream_id == sid)
                .order_by(StreamViewer.id)
            )
        ).all()
    assert [(r.user_id, r.watch_duration, r.left_at is not None) for r in rows] == [
        (GUEST, 30, True),  # the visit ended at the acceptance
        (OTHER, 0, False),
        (GUEST, 0, False),
    ]
    data = await report(runtime, sid)
    assert data is not None and data["total_viewers"] == 3 and data["unique_viewers"] == 2
