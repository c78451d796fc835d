"""The admission facts a node keeps (streams/admission.py) follow what changes them: a node
never answers from facts its own writes made stale, and a user's profile row is written
before anything of theirs needs it."""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa

from tajiri_live.core.runtime import Runtime
from tajiri_live.users.models import User

OWNER, FAN, STRANGER = 1, 2, 3


async def live(client: httpx.AsyncClient, auth: Any) -> int:
    created = await client.post("/api/streams", json={"title": "x"}, headers=auth(OWNER))
    sid = int(created.json()["data"]["id"])
    await client.post(f"/api/streams/{sid}/start", headers=auth(OWNER))
    return sid


async def edit(client: httpx.AsyncClient, auth: Any, sid: int, **changes: Any) -> httpx.Response:
    return await client.put(f"/api/streams/{sid}", json=changes, headers=auth(OWNER))


async def test_changes_to_privacy_comments_and_status_apply_at_once(
    client: httpx.AsyncClient, auth: Any, runtime: Runtime
) -> None:
    sid = await live(client, auth)
    joined = await client.post(f"/api/streams/{sid}/join", headers=auth(FAN))
    assert joined.status_code == 200
    assert runtime.stream_facts.get(sid) is not None  # kept: the next join reads no row

    off = await client.put(
        f"/api/streams/{sid}", json={"allow_comments": False}, headers=auth(OWNER)
    )
    assert off.status_code == 200
    said = await client.post(
        f"/api/streams/{sid}/comments", json={"content": "hello"}, headers=auth(FAN)
    )
    assert said.status_code == 403 and "turned off" in said.json()["message"]

    hidden = await client.put(
        f"/api/streams/{sid}", json={"privacy": "friends"}, headers=auth(OWNER)
    )
    assert hidden.status_code == 200
    refused = await client.post(f"/api/streams/{sid}/join", headers=auth(STRANGER))
    assert refused.status_code == 404
    # The owner still sees it, from the same facts.
    assert (await client.post(f"/api/streams/{sid}/join", headers=auth(OWNER))).status_code == 200

    await edit(client, auth, sid, privacy="public")
    ended = await client.post(f"/api/streams/{sid}/end", headers=auth(OWNER))
    assert ended.status_code == 200
    gone = await client.post(f"/api/streams/{sid}/join", headers=auth(STRANGER))
    assert gone.status_code == 410 and gone.json()["stream_ended"] is True


async def test_a_lifted_ban_and_a_new_ban_apply_at_once_on_this_node(
    client: httpx.AsyncClient, auth: Any, runtime: Runtime
) -> None:
    sid = await live(client, auth)
    bans = f"/api/streams/{sid}/bans"
    assert (await client.post(bans, json={"user_id": FAN}, headers=auth(OWNER))).status_code == 201
    channel = {"channel_name": f"private-stream.{sid}", "socket_id": "1.2"}
    refused = await client.post("/broadcasting/auth", data=channel, headers=auth(FAN))
    assert refused.status_code == 403 and "banned" in refused.json()["message"]
    assert runtime.stream_bans.get(sid) is not None
    lifted = await client.delete(f"{bans}/{FAN}", headers=auth(OWNER))
    assert lifted.status_code in (200, 204)
    allowed = await client.post("/broadcasting/auth", data=channel, headers=auth(FAN))
    assert allowed.status_code == 200, allowed.text


async def test_a_new_users_profile_is_written_before_their_request_is_answered(
    client: httpx.AsyncClient, auth: Any, runtime: Runtime
) -> None:
    sid = await live(client, auth)
    newcomers = [100 + i for i in range(20)]
    for user in newcomers:
        headers = auth(user, first_name=f"Fan{user}")
        said = await client.post(
            f"/api/streams/{sid}/comments", json={"content": f"hi {user}"}, headers=headers
        )
        assert said.status_code == 201, said.text
        assert said.json()["data"]["user"]["first_name"] == f"Fan{user}"
    async with runtime.sessions() as session:
        names = dict(
            (await session.execute(sa.select(User.id, User.first_name).where(User.id >= 100))).all()
        )
    assert names == {user: f"Fan{user}" for user in newcomers}


async def test_a_user_twice_in_one_batch_of_profiles_ends_with_their_last(
    client: httpx.AsyncClient, runtime: Runtime, app: Any
) -> None:
    """Two sign-ins of the same user with different names land in one batch: one statement
    may not update a row twice (PostgreSQL), so the batch writes the last, as in turn."""
    import asyncio

    from tajiri_live.core.auth import Principal

    writer = app.state.profile_writer
    user = 4242
    first = Principal(user_id=user, first_name="Kwanza", username="kw")
    last = Principal(user_id=user, first_name="Mwisho", username="kw")
    others = [Principal(user_id=5000 + i, first_name=f"N{i}") for i in range(5)]
    await asyncio.gather(*(writer.write(p) for p in [first, *others, last]))
    async with runtime.sessions() as session:
        stored = dict(
            (
                await session.execute(
                    sa.select(User.id, User.first_name).where(User.id.in_([user, 5000, 5004]))
                )
            ).all()
        )
    assert stored == {user: "Mwisho", 5000: "N0", 5004: "N4"}
