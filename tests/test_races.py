"""Concurrent requests that raced into a 500 (issue 16): each answers as the REST contract says
(200/201, or 404/409 for the loser of a race), never 500. Real concurrency against the app;
the races only show on PostgreSQL (TAJIRI_TEST_DATABASE_URL), SQLite serialises writers."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import func, select

from tajiri_live.engagement.models import StreamLike
from tajiri_live.moderation.models import StreamRestriction
from tajiri_live.wallet.service import balance_of, ledger_is_balanced

OWNER, FAN, ADMIN = 1, 2, 9
NEWCOMER = 4242  # a user nobody has seen: their row is made by the first request


async def new_stream(client: httpx.AsyncClient, auth: Any) -> int:
    created = await client.post("/api/streams", json={"title": "x"}, headers=auth(OWNER))
    assert created.status_code == 201, created.text
    return int(created.json()["data"]["id"])


def codes(answers: list[httpx.Response]) -> list[int]:
    return [a.status_code for a in answers]


async def test_concurrent_bans_and_mutes_of_a_new_user_all_succeed(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    """Before: 1 x 201 and 7 x 500 (the user's row inserted twice, then a delete-then-insert
    of the restriction raced)."""
    stream_id = await new_stream(client, auth)
    for _ in range(2):  # the second round: the user exists, the restrictions race alone
        answers = await asyncio.gather(
            *(
                client.post(
                    f"/api/streams/{stream_id}/{kind}",
                    json={"user_id": NEWCOMER, "reason": "spam"},
                    headers=auth(OWNER),
                )
                for kind in ("bans", "mutes") * 4
            )
        )
        assert codes(answers) == [201] * 8, [a.text for a in answers if a.status_code != 201]
    async with runtime.sessions() as session:
        kinds = list(
            await session.scalars(
                select(StreamRestriction.kind).where(StreamRestriction.user_id == NEWCOMER)
            )
        )
    assert sorted(kinds) == ["ban", "mute"]  # one of each: a new one replaces the old


async def test_concurrent_credits_for_a_new_user_all_land(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    """Before: 4 of 5 answered 500 (`pk_users`) and their coins were not credited."""
    answers = await asyncio.gather(
        *(
            client.post(
                "/api/wallet/credit",
                json={"user_id": NEWCOMER, "amount": 10},
                headers=auth(ADMIN, admin=True),
            )
            for _ in range(5)
        )
    )
    assert codes(answers) == [200] * 5, [a.text for a in answers]
    async with runtime.sessions() as session:
        assert await balance_of(session, NEWCOMER) == 50
        assert await ledger_is_balanced(session)


async def test_concurrent_likes_by_one_user_never_fail_and_count_right(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    """Before: 1 x 200 and 5 x 500 (the unique key raised at an autoflush, outside the
    handler meant for it). Whatever the interleaving, the count is the rows."""
    stream_id = await new_stream(client, auth)
    for _ in range(3):
        answers = await asyncio.gather(
            *(client.post(f"/api/streams/{stream_id}/like", headers=auth(FAN)) for _ in range(6))
        )
        assert codes(answers) == [200] * 6, [a.text for a in answers]
        async with runtime.sessions() as session:
            rows = await session.scalar(
                select(func.count(StreamLike.id)).where(StreamLike.stream_id == stream_id)
            )
        shown = (await client.get(f"/api/streams/{stream_id}", headers=auth(FAN))).json()["data"]
        assert rows in (0, 1)
        assert shown["likes_count"] == rows
        assert shown["is_liked"] is (rows == 1)


async def test_deleting_a_stream_while_it_changes_status_answers_404_or_409(
    client: httpx.AsyncClient, auth: Any
) -> None:
    """Before: the loser's refresh of a row deleted under it answered 500 ('Could not refresh
    instance'); and a delete that read `scheduled` could remove a stream started meanwhile."""
    racers = (
        ("POST", "start", None),
        ("POST", "cancel", None),
        ("PATCH", "status", {"status": "pre_live"}),
    )
    for method, action, body in racers * 3:
        stream_id = await new_stream(client, auth)
        deleted, moved = await asyncio.gather(
            client.delete(f"/api/streams/{stream_id}", headers=auth(OWNER)),
            client.request(
                method, f"/api/streams/{stream_id}/{action}", json=body, headers=auth(OWNER)
            ),
        )
        assert deleted.status_code in (200, 404, 409), deleted.text
        assert moved.status_code in (200, 404, 409), moved.text
        after = await client.get(f"/api/streams/{stream_id}", headers=auth(OWNER))
        if deleted.status_code == 200:  # the delete won: the stream is gone for everyone
            assert moved.status_code == 404 or after.status_code == 404
            assert after.status_code == 404
        else:  # the move won first: the stream is still there, in its new status
            assert after.status_code == 200
            assert after.json()["data"]["status"] != "scheduled"


async def test_concurrent_invites_of_one_cohost_answer_201_once_then_409(
    client: httpx.AsyncClient, auth: Any
) -> None:
    """Before: a read, then an insert; the losers hit the unique key (500). One upsert now:
    the losers find the invitation the winner made and say so."""
    stream_id = await new_stream(client, auth)
    # The invitee has a row (a new user's insert would queue the invitations behind it).
    assert (await client.get("/api/streams", headers=auth(FAN))).status_code == 200
    answers = await asyncio.gather(
        *(
            client.post(
                f"/api/streams/{stream_id}/cohosts",
                json={"user_id": FAN},
                headers=auth(OWNER),
            )
            for _ in range(4)
        )
    )
    assert sorted(codes(answers)) == [201, 409, 409, 409], [a.text for a in answers]
    refused = [a.json()["message"] for a in answers if a.status_code == 409]
    assert refused == ["This user is already invited."] * 3


async def test_concurrent_preference_changes_leave_one_choice(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    """A choice with a null part (every streamer) is replaced by a delete then an insert; NULLs
    never conflict in the unique key, so two at once both inserted: two answers for one
    question. One user's changes now run one at a time."""
    from tajiri_live.notifications.models import NotificationPreference

    url = f"/api/users/{FAN}/notification-preferences"
    answers = await asyncio.gather(
        *(
            client.put(url, json={"type": "now_live", "enabled": n % 2 == 0}, headers=auth(FAN))
            for n in range(6)
        )
    )
    assert codes(answers) == [200] * 6, [a.text for a in answers]
    async with runtime.sessions() as session:
        rows = await session.scalar(
            select(func.count(NotificationPreference.id)).where(
                NotificationPreference.user_id == FAN
            )
        )
    assert rows == 1
