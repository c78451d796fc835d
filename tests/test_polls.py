"""Polls over REST: who may open and close them, one vote per user per poll, exact totals
under concurrency (a close racing the votes too), the events, and every refusal (sockets:
test_live_sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tajiri_live.core.ratelimit import MemoryRateLimiter
from tajiri_live.polls import service
from tajiri_live.realtime.events import POLL_CLOSED, POLL_CREATED, POLL_VOTE, Event
from tajiri_live.streams.service import finish_ending

OWNER, COHOST, FAN, OTHER, INVITED = 1, 2, 3, 4, 5


@pytest.fixture(autouse=True)
def generous_limits(runtime: Any) -> None:
    """Rate limits are tested on their own; elsewhere they stay out of the way."""
    runtime.limiter = MemoryRateLimiter(now=lambda: 0.0)
    runtime.settings.poll_vote_limit = 10**6
    runtime.settings.poll_create_limit = 10**6


async def live_stream(client: httpx.AsyncClient, auth: Any) -> int:
    created = await client.post("/api/streams", json={"title": "x"}, headers=auth(OWNER))
    stream_id = int(created.json()["data"]["id"])
    await client.post(f"/api/streams/{stream_id}/start", headers=auth(OWNER))
    return stream_id


async def add_cohost(
    client: httpx.AsyncClient, auth: Any, sid: int, user: int, accept: bool
) -> None:
    invited = await client.post(
        f"/api/streams/{sid}/cohosts", json={"user_id": user}, headers=auth(OWNER)
    )
    if accept:
        cohost_id = invited.json()["data"]["id"]
        answer = await client.put(
            f"/api/streams/{sid}/cohosts/{cohost_id}",
            json={"status": "accepted"},
            headers=auth(user),
        )
        assert answer.status_code == 200


async def open_poll(
    client: httpx.AsyncClient, auth: Any, sid: int, user: int = OWNER, **body: Any
) -> httpx.Response:
    body = body or {"question": "Wimbo gani ujao?", "options": ["Bongo", "Taarab", "Singeli"]}
    return await client.post(f"/api/streams/{sid}/polls", json=body, headers=auth(user))


async def vote(
    client: httpx.AsyncClient, auth: Any, sid: int, poll_id: int, option_id: int, user: int
) -> httpx.Response:
    return await client.post(
        f"/api/streams/{sid}/polls/{poll_id}/vote",
        json={"option_id": option_id},
        headers=auth(user),
    )


def named(events: list[Event], name: str) -> list[Event]:
    return [e for e in events if e.name == name]


async def together(
    calls: list[Awaitable[httpx.Response]], at_once: int = 12
) -> list[httpx.Response]:
    """Concurrent requests, a dozen in flight at a time: enough to batch the votes, few
    enough connections for a database server shared with other test runs."""
    gate = asyncio.Semaphore(at_once)

    async def one(call: Awaitable[httpx.Response]) -> httpx.Response:
        async with gate:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))


async def test_a_poll_is_opened_voted_on_and_closed_with_the_contract_shapes(
    app: FastAPI, client: httpx.AsyncClient, auth: Any, events: list[Event]
) -> None:
    sid = await live_stream(client, auth)
    created = await open_poll(client, auth, sid)
    assert created.status_code == 201, created.text
    body = created.json()
    poll = body["data"]
    assert body["poll"] == poll and body["success"] is True
    assert set(poll) >= {
        "id",
        "stream_id",
        "question",
        "options",
        "is_closed",
        "created_by",
        "created_at",
    }
    assert poll["stream_id"] == sid and poll["created_by"] == OWNER and poll["is_closed"] is False
    assert [o["text"] for o in poll["options"]] == ["Bongo", "Taarab", "Singeli"]
    assert all(o["votes"] == 0 and isinstance(o["id"], int) for o in poll["options"])
    bongo, taarab, _ = (o["id"] for o in poll["options"])

    (opened,) = named(events, POLL_CREATED)
    assert opened.channel == f"stream.{sid}"
    assert opened.data["poll_id"] == poll["id"] and opened.data["created_by"] == OWNER
    assert opened.data["options"] == poll["options"] and opened.data["question"] == poll["question"]

    first = await vote(client, auth, sid, poll["id"], bongo, FAN)
    assert first.status_code == 200, first.text
    counted = first.json()["poll"]
    assert {o["id"]: o["votes"] for o in counted["options"]} == {
        o["id"]: int(o["id"] == bongo) for o in poll["options"]
    }
    assert counted["voted_option_id"] == bongo and counted["total_votes"] == 1
    second = await vote(client, auth, sid, poll["id"], taarab, OTHER)
    assert second.status_code == 200
    await app.state.coalescer.flush()
    totals = {e.data["option_id"]: e.data["votes"] for e in named(events, POLL_VOTE)}
    assert totals == {bongo: 1, taarab: 1}
    last = named(events, POLL_VOTE)[-1]
    assert last.data["user_id"] == OTHER and last.data["poll_id"] == poll["id"]
    assert last.latest_key == f"poll_vote:{poll['id']}:{taarab}" and last.version == 1

    closed = await client.post(f"/api/streams/{sid}/polls/{poll['id']}/close", headers=auth(OWNER))
    assert closed.status_code == 200 and closed.json()["poll"]["is_closed"] is True
    again = await client.post(f"/api/streams/{sid}/polls/{poll['id']}/close", headers=auth(OWNER))
    assert again.status_code == 200  # closing a closed poll changes nothing...
    (final,) = named(events, POLL_CLOSED)  # ...and is announced once
    assert final.data["is_closed"] is True and final.data["total_votes"] == 2
    assert final.data["final_results"] == final.data["options"]
    assert {o["id"]: o["votes"] for o in final.data["options"]}[bongo] == 1

    listed = (await client.get(f"/api/streams/{sid}/polls", headers=auth(FAN))).json()
    assert listed["polls"] == listed["data"] and listed["data"][0]["voted_option_id"] == bongo
    shown = (await client.get(f"/api/streams/{sid}/polls/{poll['id']}")).json()["poll"]
    assert shown["total_votes"] == 2 and shown["voted_option_id"] is None  # anonymous


async def test_only_the_broadcaster_opens_and_closes_polls(
    client: httpx.AsyncClient, auth: Any
) -> None:
    sid = await live_stream(client, auth)
    await add_cohost(client, auth, sid, COHOST, accept=True)
    await add_cohost(client, auth, sid, INVITED, accept=False)
    fan = await open_poll(client, auth, sid, FAN)
    assert fan.status_code == 403 and "owner and co-hosts" in fan.json()["message"]
    assert (await open_poll(client, auth, sid, INVITED)).status_code == 403  # not accepted
    unsigned = await client.post(
        f"/api/streams/{sid}/polls", json={"question": "q", "options": ["a", "b"]}
    )
    assert unsigned.status_code == 401
    by_cohost = await open_poll(client, auth, sid, COHOST)
    assert by_cohost.status_code == 201 and by_cohost.json()["poll"]["created_by"] == COHOST
    poll_id = by_cohost.json()["poll"]["id"]
    refused = await client.post(f"/api/streams/{sid}/polls/{poll_id}/close", headers=auth(FAN))
    assert refused.status_code == 403
    admin = await client.post(
        f"/api/streams/{sid}/polls/{poll_id}/close", headers=auth(OTHER, admin=True)
    )
    assert admin.status_code == 200  # an administrator may close (moderation), not open


async def test_bad_polls_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient, auth: Any, runtime: Any, events: list[Event]
) -> None:
    sid = await live_stream(client, auth)
    cases = {
        "one option": {"question": "q", "options": ["only"]},
        "fifty options": {"question": "q", "options": [f"option {n}" for n in range(50)]},
        "no options": {"question": "q"},
        "not a list": {"question": "q", "options": "a,b"},
        "blank option": {"question": "q", "options": ["a", "  "]},
        "repeated option": {"question": "q", "options": ["Ndiyo", "ndiyo "]},
        "long option": {"question": "q", "options": ["a", "b" * 101]},
        "blank question": {"question": "   ", "options": ["a", "b"]},
        "long question": {"question": "q" * 256, "options": ["a", "b"]},
    }
    for case, body in cases.items():
        answer = await open_poll(client, auth, sid, **body)
        assert answer.status_code == 422, case
        problem = answer.json()
        assert problem["errors"] and problem["message"], case
    fifty = await open_poll(client, auth, sid, question="q", options=[f"o{n}" for n in range(50)])
    assert fifty.json()["errors"]["options"] == ["The options may not have more than 6 items."]
    one = await open_poll(client, auth, sid, question="q", options=["only"])
    assert one.json()["errors"]["options"] == ["The options must have at least 2 items."]
    async with runtime.sessions() as session:
        assert await service.list_polls(session, stream_id=sid, viewer_id=None) == []
    assert not named(events, POLL_CREATED)


async def test_polls_need_a_live_stream_and_one_is_open_at_a_time(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    created = await client.post("/api/streams", json={"title": "x"}, headers=auth(OWNER))
    sid = created.json()["data"]["id"]
    early = await open_poll(client, auth, sid)
    assert early.status_code == 409 and "scheduled" in early.json()["message"]
    await client.post(f"/api/streams/{sid}/start", headers=auth(OWNER))
    first = await open_poll(client, auth, sid)
    assert first.status_code == 201
    second = await open_poll(client, auth, sid)
    assert second.status_code == 409 and "close it first" in second.json()["message"]
    runtime.settings.poll_max_open = 2
    assert (await open_poll(client, auth, sid)).status_code == 201
    assert (await open_poll(client, auth, sid)).status_code == 409
    async with runtime.sessions() as session:
        polls = await service.list_polls(session, stream_id=sid, viewer_id=None)
    assert len(polls) == 2  # the refused ones left nothing behind
    await client.post(f"/api/streams/{sid}/end", headers=auth(OWNER))
    ending = await open_poll(client, auth, sid)
    assert ending.status_code == 409


async def test_concurrent_opens_leave_one_open_poll(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    sid = await live_stream(client, auth)
    answers = await together([open_poll(client, auth, sid) for _ in range(8)])
    assert sorted(a.status_code for a in answers) == [201] + [409] * 7
    async with runtime.sessions() as session:
        assert len(await service.list_polls(session, stream_id=sid, viewer_id=None)) == 1


async def test_bad_votes_are_refused_with_readable_messages(
    client: httpx.AsyncClient, auth: Any, runtime: Any, clock: Any
) -> None:
    sid = await live_stream(client, auth)
    other_sid = await live_stream(client, auth)
    poll = (await open_poll(client, auth, sid)).json()["poll"]
    elsewhere = (await open_poll(client, auth, other_sid)).json()["poll"]
    option = poll["options"][0]["id"]

    foreign_option = await vote(client, auth, sid, poll["id"], elsewhere["options"][0]["id"], FAN)
    assert foreign_option.status_code == 422
    assert foreign_option.json()["errors"]["option_id"] == [
        "The selected option is not one of this poll's options."
    ]
    other_stream = await vote(
        client, auth, sid, elsewhere["id"], elsewhere["options"][0]["id"], FAN
    )
    assert other_stream.status_code == 404 and other_stream.json()["message"] == "Poll not found."
    missing = await vote(client, auth, sid, 10**9, option, FAN)
    assert missing.status_code == 404
    no_option = await client.post(
        f"/api/streams/{sid}/polls/{poll['id']}/vote", json={}, headers=auth(FAN)
    )
    assert no_option.status_code == 422 and "option_id" in no_option.json()["errors"]
    anonymous = await client.post(
        f"/api/streams/{sid}/polls/{poll['id']}/vote", json={"option_id": option}
    )
    assert anonymous.status_code == 401

    assert (await vote(client, auth, sid, poll["id"], option, FAN)).status_code == 200
    twice = await vote(client, auth, sid, poll["id"], poll["options"][1]["id"], FAN)
    assert (
        twice.status_code == 409
        and twice.json()["message"] == "You have already voted in this poll."
    )

    await client.post(
        f"/api/streams/{sid}/bans", json={"user_id": OTHER, "reason": "spam"}, headers=auth(OWNER)
    )
    banned = await vote(client, auth, sid, poll["id"], option, OTHER)
    assert banned.status_code == 403 and "banned" in banned.json()["message"]
    await client.post(
        f"/api/streams/{sid}/mutes", json={"user_id": COHOST, "minutes": 5}, headers=auth(OWNER)
    )
    muted = await vote(client, auth, sid, poll["id"], option, COHOST)
    assert muted.status_code == 403 and muted.json()["muted_until"]

    await client.post(f"/api/streams/{sid}/polls/{poll['id']}/close", headers=auth(OWNER))
    late = await vote(client, auth, sid, poll["id"], option, INVITED)
    assert late.status_code == 409 and late.json()["message"] == "This poll is closed."
    async with runtime.sessions() as session:
        assert await service.vote_total(session, poll["id"]) == 1  # nothing half-written
        final = await service.load_poll(session, stream_id=sid, poll_id=poll["id"])
    assert sum(o.votes for o in final.options) == 1


async def test_votes_are_exact_under_concurrency_and_batched(
    app: FastAPI, client: httpx.AsyncClient, auth: Any, runtime: Any, events: list[Event]
) -> None:
    sid = await live_stream(client, auth)
    poll = (await open_poll(client, auth, sid)).json()["poll"]
    options = [o["id"] for o in poll["options"]]
    voters = list(range(100, 400))
    writer = app.state.poll_votes.writer
    batches_before = writer.batches
    # every voter once, and a third of them a second time at the same moment
    attempts = [(user, options[user % 3]) for user in voters] + [
        (user, options[(user + 1) % 3]) for user in voters[::3]
    ]
    answers = await together(
        [vote(client, auth, sid, poll["id"], option, user) for user, option in attempts]
    )
    codes = [a.status_code for a in answers]
    assert codes.count(200) == len(voters) and codes.count(409) == len(voters[::3])
    assert writer.batches - batches_before < len(voters)  # group commit, not one per vote
    async with runtime.sessions() as session:
        assert await service.vote_total(session, poll["id"]) == len(voters)
        counted = await service.load_poll(session, stream_id=sid, poll_id=poll["id"])
    totals = {o.id: o.votes for o in counted.options}
    assert sum(totals.values()) == len(voters)
    # whichever of a voter's two attempts won, each option's total equals its rows
    await app.state.coalescer.flush()
    last_seen: dict[int, int] = {}
    for event in named(events, POLL_VOTE):
        last_seen[event.data["option_id"]] = max(
            last_seen.get(event.data["option_id"], 0), event.data["votes"]
        )
    assert last_seen == totals
    published = len(named(events, POLL_VOTE))
    assert published < len(voters)  # coalesced: fewer events than votes


async def test_a_close_racing_the_votes_announces_exactly_what_was_counted(
    client: httpx.AsyncClient, auth: Any, runtime: Any, events: list[Event]
) -> None:
    sid = await live_stream(client, auth)
    poll = (await open_poll(client, auth, sid)).json()["poll"]
    options = [o["id"] for o in poll["options"]]

    async def close_soon() -> httpx.Response:
        await asyncio.sleep(0)
        return await client.post(
            f"/api/streams/{sid}/polls/{poll['id']}/close", headers=auth(OWNER)
        )

    calls = [vote(client, auth, sid, poll["id"], options[u % 3], u) for u in range(500, 700)]
    calls.insert(100, close_soon())  # in the middle of the stream of votes
    answers = await together(calls)
    closed = answers.pop(100)
    votes = answers
    assert closed.status_code == 200
    assert {a.status_code for a in votes} == {200, 409}  # some before the close, some after
    accepted = sum(a.status_code == 200 for a in votes)
    assert all("closed" in a.json()["message"] for a in votes if a.status_code == 409)
    (final,) = named(events, POLL_CLOSED)
    async with runtime.sessions() as session:
        assert await service.vote_total(session, poll["id"]) == accepted
    assert final.data["total_votes"] == accepted
    assert sum(o["votes"] for o in final.data["final_results"]) == accepted


async def test_open_polls_close_when_the_stream_ends(
    client: httpx.AsyncClient, auth: Any, runtime: Any, clock: Any, events: list[Event]
) -> None:
    sid = await live_stream(client, auth)
    poll = (await open_poll(client, auth, sid)).json()["poll"]
    await vote(client, auth, sid, poll["id"], poll["options"][2]["id"], FAN)
    await client.post(f"/api/streams/{sid}/end", headers=auth(OWNER))
    during_outro = await client.get(f"/api/streams/{sid}/polls/{poll['id']}")
    assert during_outro.json()["poll"]["is_closed"] is False  # the outro may still count
    clock.advance(runtime.settings.outro_seconds + 1)
    await finish_ending(runtime)
    (final,) = named(events, POLL_CLOSED)
    assert final.data["poll_id"] == poll["id"] and final.data["total_votes"] == 1
    shown = (await client.get(f"/api/streams/{sid}/polls/{poll['id']}")).json()["poll"]
    assert shown["is_closed"] is True and shown["closed_at"]
    late = await vote(client, auth, sid, poll["id"], poll["options"][0]["id"], OTHER)
    assert late.status_code == 409


async def test_votes_and_polls_have_rate_limits(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    runtime.settings.poll_vote_limit = 2
    runtime.settings.poll_create_limit = 1
    sid = await live_stream(client, auth)
    poll = (await open_poll(client, auth, sid)).json()["poll"]
    option = poll["options"][0]["id"]
    codes = [(await vote(client, auth, sid, poll["id"], option, FAN)).status_code for _ in range(3)]
    assert codes == [200, 409, 429]
    await client.post(f"/api/streams/{sid}/polls/{poll['id']}/close", headers=auth(OWNER))
    limited = await open_poll(client, auth, sid)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
