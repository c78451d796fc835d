"""PK battles over REST: invitations and their answers, scores from gift coins per side, the
end by time (once), by `end`, by a forfeit and by a stream's end, draws, analytics, and every
refusal (real sockets and restarts: test_battles_live)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tajiri_live.battles import service
from tajiri_live.core.clock import ManualClock
from tajiri_live.core.ratelimit import MemoryRateLimiter
from tajiri_live.realtime.events import (
    BATTLE_ACCEPTED,
    BATTLE_DECLINED,
    BATTLE_ENDED,
    BATTLE_INVITE,
    BATTLE_SCORE_UPDATE,
    Event,
)
from tajiri_live.streams.service import finish_ending
from tajiri_live.wallet.service import ledger_is_balanced

ASHA, BARAKA, CHIKU, FAN, ADMIN = 1, 2, 3, 4, 9
ROSE = 100  # the seeded catalog's rose costs this many coins


@pytest.fixture(autouse=True)
def generous_limits(runtime: Any) -> None:
    """Rate limits are tested on their own; elsewhere they stay out of the way."""
    runtime.limiter = MemoryRateLimiter(now=lambda: 0.0)
    runtime.settings.gift_limit = 10**6
    runtime.settings.battle_invite_limit = 10**6


async def live_stream(client: httpx.AsyncClient, auth: Any, owner: int, start: bool = True) -> int:
    headers = auth(owner, first_name=f"Owner{owner}")
    created = await client.post("/api/streams", json={"title": f"Show {owner}"}, headers=headers)
    stream_id = int(created.json()["data"]["id"])
    if start:
        assert (await client.post(f"/api/streams/{stream_id}/start", headers=headers)).is_success
    return stream_id


async def invite(
    client: httpx.AsyncClient, auth: Any, stream_id: int, opponent: Any, user: int
) -> httpx.Response:
    return await client.post(
        f"/api/streams/{stream_id}/battles/invite",
        json={"opponent_stream_id": opponent},
        headers=auth(user),
    )


async def act(
    client: httpx.AsyncClient, auth: Any, battle_id: int, action: str, user: int
) -> httpx.Response:
    return await client.post(f"/api/battles/{battle_id}/{action}", headers=auth(user))


async def fund(client: httpx.AsyncClient, auth: Any, user: int, coins: int) -> int:
    """Credit a fan; returns the rose's gift id."""
    await client.get("/api/streams", headers=auth(user))  # the user's row
    credited = await client.post(
        "/api/wallet/credit",
        json={"user_id": user, "amount": coins},
        headers=auth(ADMIN, admin=True),
    )
    assert credited.status_code == 200, credited.text
    gifts = (await client.get("/api/streams/gifts")).json()["data"]
    return int(next(g for g in gifts if g["slug"] == "rose")["id"])


async def gift(
    client: httpx.AsyncClient, auth: Any, stream_id: int, rose: int, quantity: int
) -> None:
    sent = await client.post(
        f"/api/streams/{stream_id}/gifts",
        json={"gift_id": rose, "quantity": quantity},
        headers=auth(FAN),
    )
    assert sent.status_code == 201, sent.text


async def battling(client: httpx.AsyncClient, auth: Any) -> tuple[int, int, int]:
    """Asha's stream (side 1) battling Baraka's (side 2): (a, b, battle id)."""
    a = await live_stream(client, auth, ASHA)
    b = await live_stream(client, auth, BARAKA)
    invited = await invite(client, auth, a, b, ASHA)
    assert invited.status_code == 201, invited.text
    battle_id = int(invited.json()["battle"]["id"])
    accepted = await act(client, auth, battle_id, "accept", BARAKA)
    assert accepted.status_code == 200, accepted.text
    return a, b, battle_id


def named(events: list[Event], name: str) -> list[Event]:
    return [e for e in events if e.name == name]


def on(events: list[Event], name: str, stream_id: int) -> list[Event]:
    return [e for e in named(events, name) if e.channel == f"stream.{stream_id}"]


async def test_super_chats_count_their_coins_on_their_side(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    """A super chat is paid in coins like a gift: its coins join its stream's score in the
    paying transaction, and one refused for want of coins adds nothing."""
    runtime.settings.coins_per_tzs = 2
    a, b, battle_id = await battling(client, auth)
    rose = await fund(client, auth, FAN, 5_000)
    await gift(client, auth, a, rose, 3)  # 300 coins to side 1
    paid = await client.post(
        f"/api/streams/{b}/super-chats",
        json={"message": "Baraka juu!", "amount": 2_000},
        headers=auth(FAN),
    )
    assert paid.status_code == 201, paid.text  # 4,000 coins to side 2
    short = await client.post(
        f"/api/streams/{a}/super-chats",
        json={"message": "Asha!", "amount": 1_000},
        headers=auth(FAN),
    )
    assert short.status_code == 402, short.text  # 700 coins left: nothing moves
    shown = (await client.get(f"/api/battles/{battle_id}", headers=auth(FAN))).json()["data"]
    scores = {shown[side]["id"]: shown[side]["score"] for side in ("stream_1", "stream_2")}
    assert scores == {a: 300, b: 4_000}, shown
    async with runtime.sessions() as session:
        assert await ledger_is_balanced(session)


async def test_a_battle_is_invited_accepted_scored_per_side_and_ends_by_time_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: Any,
    runtime: Any,
    clock: ManualClock,
    events: list[Event],
) -> None:
    a = await live_stream(client, auth, ASHA)
    b = await live_stream(client, auth, BARAKA)
    invited = await invite(client, auth, a, b, ASHA)
    assert invited.status_code == 201, invited.text
    body = invited.json()
    battle = body["data"]
    assert body["battle"] == battle and body["success"] is True
    assert (battle["stream_id_1"], battle["stream_id_2"], battle["status"]) == (a, b, "pending")
    assert battle["created_at"] and battle["expires_at"] and battle["started_at"] is None
    battle_id = battle["id"]
    (offer,) = named(events, BATTLE_INVITE)  # to Baraka's sockets on his stream only
    assert offer.channel == f"stream.{b}" and offer.to_users == (BARAKA,)
    assert offer.data["battle_id"] == battle_id and offer.data["opponent_id"] == ASHA
    assert offer.data["opponent_name"] == f"Owner{ASHA}" and offer.data["stream_id"] == b

    accepted = await act(client, auth, battle_id, "accept", BARAKA)
    assert accepted.status_code == 200, accepted.text
    running = accepted.json()["battle"]
    assert running["status"] == "active" and running["started_at"]
    assert running["ends_at"] == (clock.now() + timedelta(seconds=300)).isoformat().replace(
        "+00:00", "Z"
    )
    told = {e.channel: e.data for e in named(events, BATTLE_ACCEPTED)}
    assert told[f"stream.{a}"]["opponent_id"] == BARAKA  # each side hears of the other
    assert told[f"stream.{a}"]["opponent_name"] == f"Owner{BARAKA}"
    assert told[f"stream.{b}"]["opponent_id"] == ASHA

    rose = await fund(client, auth, FAN, 10_000)
    await gift(client, auth, a, rose, 3)
    await gift(client, auth, b, rose, 1)
    await gift(client, auth, a, rose, 2)
    await app.state.coalescer.flush()
    mine_a = on(events, BATTLE_SCORE_UPDATE, a)[-1].data
    mine_b = on(events, BATTLE_SCORE_UPDATE, b)[-1].data
    assert (mine_a["my_score"], mine_a["opponent_score"]) == (500, 100)
    assert (mine_b["my_score"], mine_b["opponent_score"]) == (100, 500)
    assert on(events, BATTLE_SCORE_UPDATE, a)[-1].version == 600
    shown = (await client.get(f"/api/battles/{battle_id}")).json()["battle"]
    assert shown["stream_1"] == {
        "id": a,
        "name": f"Show {ASHA}",
        "user_id": ASHA,
        "user_name": f"Owner{ASHA}",
        "score": 500,
    }
    assert shown["stream_2"]["score"] == 100 and shown["status"] == "active"
    current = (await client.get(f"/api/streams/{b}/battles/current")).json()["battle"]
    assert current["id"] == battle_id

    clock.advance(299)
    assert await service.finish_due(runtime) == 0  # not yet
    clock.advance(2)
    assert await service.finish_due(runtime) == 1
    assert await service.finish_due(runtime) == 0  # once
    ended = (await client.get(f"/api/battles/{battle_id}")).json()["battle"]
    assert ended["status"] == "ended" and ended["end_reason"] == "time"
    assert ended["winner_stream_id"] == a and ended["winner_id"] == ASHA
    assert ended["final_scores"] == {"stream_1": 500, "stream_2": 100}
    assert ended["ended_at"] == running["ends_at"]  # on time, however late the job ran
    finals = {e.channel: e.data for e in named(events, BATTLE_ENDED)}
    assert len(named(events, BATTLE_ENDED)) == 2
    assert finals[f"stream.{a}"]["winner_id"] == ASHA
    assert (finals[f"stream.{a}"]["my_score"], finals[f"stream.{a}"]["opponent_score"]) == (
        500,
        100,
    )
    assert (finals[f"stream.{b}"]["my_score"], finals[f"stream.{b}"]["opponent_score"]) == (
        100,
        500,
    )

    # after the end, gifts are gifts: no score moves, and both streams may battle again
    await gift(client, auth, b, rose, 7)
    assert (await client.get(f"/api/battles/{battle_id}")).json()["battle"]["stream_2"][
        "score"
    ] == 100
    again = await invite(client, auth, b, a, BARAKA)
    assert again.status_code == 201, again.text
    async with runtime.sessions() as session:
        assert await service.stream_stats(session, a) == {
            "fought": 1,
            "won": 1,
            "points": 500,
        }
        assert await service.stream_stats(session, b) == {
            "fought": 1,
            "won": 0,
            "points": 100,
        }
        assert await ledger_is_balanced(session)
    report = await client.get(f"/api/streams/{a}/analytics", headers=auth(ASHA))
    assert report.status_code == 200, report.text
    assert report.json()["data"]["battles"] == {"fought": 1, "won": 1, "points": 500}


async def test_nodes_racing_to_end_a_battle_end_it_once(
    client: httpx.AsyncClient, auth: Any, runtime: Any, clock: ManualClock, events: list[Event]
) -> None:
    """The job on several nodes at once, and an owner's forfeit in the same moment: one of
    them ends the battle, the others change nothing and announce nothing."""
    _, _, battle_id = await battling(client, auth)
    clock.advance(301)
    racers = [service.finish_due(runtime) for _ in range(4)]
    forfeit = act(client, auth, battle_id, "forfeit", ASHA)
    *ended, forfeited = await asyncio.gather(*racers, forfeit)
    assert sum(ended) + (forfeited.status_code == 200) == 1
    assert forfeited.status_code in (200, 409)
    assert len(named(events, BATTLE_ENDED)) == 2  # one per side
    battle = (await client.get(f"/api/battles/{battle_id}")).json()["battle"]
    assert battle["end_reason"] == "time"  # a forfeit after the time ran out is too late
    assert battle["winner_stream_id"] is None  # 0 to 0


async def test_coins_after_the_time_ran_out_do_not_count_even_before_the_job_runs(
    client: httpx.AsyncClient, auth: Any, runtime: Any, clock: ManualClock
) -> None:
    a, b, battle_id = await battling(client, auth)
    rose = await fund(client, auth, FAN, 10_000)
    await gift(client, auth, b, rose, 1)
    clock.advance(300)
    await gift(client, auth, a, rose, 5)  # the battle is over; the job has not run yet
    assert await service.finish_due(runtime) == 1
    ended = (await client.get(f"/api/battles/{battle_id}")).json()["battle"]
    assert ended["final_scores"] == {"stream_1": 0, "stream_2": 100}
    assert ended["winner_stream_id"] == b


async def test_a_draw_has_no_winner_and_end_is_for_the_battling_owners(
    client: httpx.AsyncClient, auth: Any, events: list[Event]
) -> None:
    a, b, battle_id = await battling(client, auth)
    rose = await fund(client, auth, FAN, 10_000)
    await gift(client, auth, a, rose, 2)
    await gift(client, auth, b, rose, 2)
    stranger = await act(client, auth, battle_id, "end", CHIKU)
    assert stranger.status_code == 403 and "owners" in stranger.json()["message"]
    ended = await act(client, auth, battle_id, "end", BARAKA)
    assert ended.status_code == 200, ended.text
    battle = ended.json()["battle"]
    assert battle["winner_stream_id"] is None and battle["winner_id"] is None
    assert battle["final_scores"] == {"stream_1": 200, "stream_2": 200}
    assert battle["end_reason"] == "ended" and battle["ended_at"]
    assert {e.data["winner_id"] for e in named(events, BATTLE_ENDED)} == {None}
    again = await act(client, auth, battle_id, "end", ASHA)  # ending an ended battle: no change
    assert again.status_code == 200 and len(named(events, BATTLE_ENDED)) == 2


async def test_a_forfeit_gives_the_other_side_the_win_whatever_the_scores(
    client: httpx.AsyncClient, auth: Any, events: list[Event]
) -> None:
    a, b, battle_id = await battling(client, auth)
    rose = await fund(client, auth, FAN, 10_000)
    await gift(client, auth, a, rose, 5)
    forfeited = await act(client, auth, battle_id, "forfeit", ASHA)
    assert forfeited.status_code == 200, forfeited.text
    battle = forfeited.json()["battle"]
    assert battle["winner_stream_id"] == b and battle["winner_id"] == BARAKA
    assert battle["end_reason"] == "forfeit" and battle["final_scores"]["stream_1"] == 500
    twice = await act(client, auth, battle_id, "forfeit", BARAKA)
    assert twice.status_code == 409 and "ended" in twice.json()["message"]
    assert len(named(events, BATTLE_ENDED)) == 2


async def test_a_stream_that_ends_forfeits_and_cancels_its_invitations(
    client: httpx.AsyncClient, auth: Any, runtime: Any, clock: ManualClock, events: list[Event]
) -> None:
    a, b, battle_id = await battling(client, auth)
    c = await live_stream(client, auth, CHIKU)
    d = await live_stream(client, auth, FAN)
    pending = (await invite(client, auth, c, d, CHIKU)).json()["battle"]["id"]
    assert (await client.post(f"/api/streams/{b}/end", headers=auth(BARAKA))).is_success
    assert (await client.post(f"/api/streams/{d}/end", headers=auth(FAN))).is_success
    clock.advance(runtime.settings.outro_seconds + 1)
    await finish_ending(runtime)  # the outro is over: the streams are ended
    battle = (await client.get(f"/api/battles/{battle_id}")).json()["battle"]
    assert battle["status"] == "ended" and battle["end_reason"] == "stream_ended"
    assert battle["winner_stream_id"] == a
    assert {e.data["winner_id"] for e in named(events, BATTLE_ENDED)} == {ASHA}
    cancelled = (await client.get(f"/api/battles/{pending}")).json()["battle"]
    assert cancelled["status"] == "cancelled"
    late = await act(client, auth, pending, "accept", FAN)
    assert late.status_code == 409 and "cancelled" in late.json()["message"]
    assert (await invite(client, auth, a, c, ASHA)).status_code == 201  # both are free again


async def test_declined_invitations_tell_the_inviter_and_free_both_streams(
    client: httpx.AsyncClient, auth: Any, events: list[Event]
) -> None:
    a = await live_stream(client, auth, ASHA)
    b = await live_stream(client, auth, BARAKA)
    battle_id = (await invite(client, auth, a, b, ASHA)).json()["battle"]["id"]
    declined = await act(client, auth, battle_id, "decline", BARAKA)
    assert declined.status_code == 200 and declined.json()["battle"]["status"] == "declined"
    (told,) = named(events, BATTLE_DECLINED)
    assert told.channel == f"stream.{a}" and told.to_users == (ASHA,)
    late = await act(client, auth, battle_id, "accept", BARAKA)
    assert late.status_code == 409 and late.json()["message"] == "This invitation was declined."
    assert (await invite(client, auth, b, a, BARAKA)).status_code == 201


async def test_bad_battles_are_refused_with_readable_messages_and_change_nothing(
    client: httpx.AsyncClient, auth: Any, runtime: Any, clock: ManualClock, events: list[Event]
) -> None:
    a = await live_stream(client, auth, ASHA)
    a2 = await live_stream(client, auth, ASHA)
    b = await live_stream(client, auth, BARAKA)
    c = await live_stream(client, auth, CHIKU)
    idle = await live_stream(client, auth, FAN, start=False)

    def refused(answer: httpx.Response, status: int, words: str) -> None:
        assert answer.status_code == status, answer.text
        assert words in answer.json()["message"], answer.json()["message"]

    # battling yourself: the same stream, or another of your own
    itself = await invite(client, auth, a, a, ASHA)
    refused(itself, 422, "cannot battle itself")
    assert itself.json()["errors"]["opponent_stream_id"] == ["A stream cannot battle itself."]
    refused(await invite(client, auth, a, a2, ASHA), 422, "cannot battle yourself")
    # a stream that is not live, on either side; a stream that is not there; a bad body
    refused(await invite(client, auth, a, idle, ASHA), 409, "opponent's stream is scheduled")
    refused(await invite(client, auth, idle, a, FAN), 409, "your stream is scheduled")
    refused(await invite(client, auth, a, 999_999, ASHA), 422, "does not exist")
    refused(await invite(client, auth, a, "two", ASHA), 422, "opponent stream id")
    refused(await invite(client, auth, a, None, ASHA), 422, "opponent stream id")
    refused(await invite(client, auth, a, b, BARAKA), 403, "Only the stream's owner")
    anonymous = await client.post(
        f"/api/streams/{a}/battles/invite", json={"opponent_stream_id": b}
    )
    assert anonymous.status_code == 401
    assert not named(events, BATTLE_INVITE)

    battle_id = (await invite(client, auth, a, b, ASHA)).json()["battle"]["id"]
    # one battle per stream at a time, invitations included, on either side
    refused(await invite(client, auth, c, b, CHIKU), 409, "opponent's stream is already in a")
    refused(await invite(client, auth, a, c, ASHA), 409, "Your stream is already in a battle")
    # someone else's invitation: the inviter, or a stranger
    refused(await act(client, auth, battle_id, "accept", ASHA), 403, "invited stream's owner")
    refused(await act(client, auth, battle_id, "accept", CHIKU), 403, "invited stream's owner")
    refused(await act(client, auth, battle_id, "decline", CHIKU), 403, "invited stream's owner")
    refused(await act(client, auth, battle_id, "end", ASHA), 409, "pending, not running")
    refused(await act(client, auth, battle_id, "forfeit", ASHA), 409, "pending, not running")
    refused(await act(client, auth, 999_999, "accept", BARAKA), 404, "Battle")
    assert (await client.get("/api/battles/0")).status_code == 422

    # after expiry
    clock.advance(runtime.settings.battle_invite_ttl_seconds)
    refused(await act(client, auth, battle_id, "accept", BARAKA), 409, "invitation expired at")
    refused(await act(client, auth, battle_id, "decline", BARAKA), 409, "invitation expired at")
    assert (await client.get(f"/api/battles/{battle_id}")).json()["battle"]["status"] == "expired"
    assert not named(events, BATTLE_ACCEPTED)

    # accepting twice
    second = (await invite(client, auth, a, b, ASHA)).json()["battle"]["id"]
    assert (await act(client, auth, second, "accept", BARAKA)).status_code == 200
    refused(await act(client, auth, second, "accept", BARAKA), 409, "already accepted")
    refused(await act(client, auth, second, "decline", BARAKA), 409, "already accepted")
    assert len(named(events, BATTLE_ACCEPTED)) == 2  # one per side, once


async def test_invitations_have_a_rate_limit(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    runtime.settings.battle_invite_limit = 2
    a = await live_stream(client, auth, ASHA)
    b = await live_stream(client, auth, BARAKA)
    for _ in range(2):
        battle_id = (await invite(client, auth, a, b, ASHA)).json()["battle"]["id"]
        await act(client, auth, battle_id, "decline", BARAKA)
    limited = await invite(client, auth, a, b, ASHA)
    assert limited.status_code == 429, limited.text
