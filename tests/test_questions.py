"""Q&A over REST: asking (moderated like comments, with its own limit), upvoting once and
never one's own, answering and dismissing by the broadcaster, the list's order, the events
(sockets: test_live_sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tajiri_live.core.ratelimit import MemoryRateLimiter
from tajiri_live.realtime.events import (
    QUESTION_ANSWERED,
    QUESTION_DISMISSED,
    QUESTION_SUBMITTED,
    QUESTION_UPVOTED,
    Event,
)
from tajiri_live.streams.service import finish_ending

OWNER, COHOST, FAN, OTHER, THIRD = 1, 2, 3, 4, 5


@pytest.fixture(autouse=True)
def generous_limits(runtime: Any) -> None:
    runtime.limiter = MemoryRateLimiter(now=lambda: 0.0)
    runtime.settings.question_limit = 10**6
    runtime.settings.upvote_limit = 10**6


async def live_stream(client: httpx.AsyncClient, auth: Any) -> int:
    created = await client.post("/api/streams", json={"title": "x"}, headers=auth(OWNER))
    sid = int(created.json()["data"]["id"])
    await client.post(f"/api/streams/{sid}/start", headers=auth(OWNER))
    return sid


async def ask(
    client: httpx.AsyncClient, auth: Any, sid: int, user: int, text: str, **claims: Any
) -> httpx.Response:
    return await client.post(
        f"/api/streams/{sid}/questions", json={"question": text}, headers=auth(user, **claims)
    )


async def upvote(
    client: httpx.AsyncClient, auth: Any, sid: int, qid: int, user: int
) -> httpx.Response:
    return await client.post(f"/api/streams/{sid}/questions/{qid}/upvote", headers=auth(user))


def named(events: list[Event], name: str) -> list[Event]:
    return [e for e in events if e.name == name]


async def test_ask_upvote_answer_and_list_with_the_contract_shapes(
    app: FastAPI, client: httpx.AsyncClient, auth: Any, events: list[Event]
) -> None:
    sid = await live_stream(client, auth)
    asked = await ask(client, auth, sid, FAN, "  Umeanza lini kuimba?  ", username="neema")
    assert asked.status_code == 201, asked.text
    question = asked.json()["question"]
    assert asked.json()["data"] == question
    assert set(question) >= {
        "id",
        "stream_id",
        "user_id",
        "question",
        "upvotes",
        "is_answered",
        "created_at",
    }
    assert question["question"] == "Umeanza lini kuimba?" and question["username"] == "neema"
    assert question["upvotes"] == 0 and question["is_answered"] is False
    # a user with no username at all is still named by a string
    nameless = await ask(client, auth, sid, OTHER, "Na wewe je?")
    assert nameless.json()["question"]["username"] == f"user{OTHER}"

    (submitted, _) = named(events, QUESTION_SUBMITTED)
    assert submitted.data["question_id"] == question["id"] and submitted.data["username"] == "neema"
    assert submitted.data["is_answered"] is False and submitted.data["upvotes"] == 0
    assert named(events, QUESTION_SUBMITTED)[1].data["username"] == f"user{OTHER}"

    qid = question["id"]
    up = await upvote(client, auth, sid, qid, OTHER)
    assert up.status_code == 200 and up.json()["upvotes"] == 1
    up = await upvote(client, auth, sid, qid, THIRD)
    assert up.json()["upvotes"] == 2
    await app.state.coalescer.flush()
    counted = named(events, QUESTION_UPVOTED)
    assert counted[-1].data == {
        "question_id": qid,
        "stream_id": sid,
        "upvotes": 2,
        "timestamp": counted[-1].data["timestamp"],
    }
    assert len(counted) <= 2 and counted[-1].latest_key == f"question_upvoted:{qid}"

    listed = (await client.get(f"/api/streams/{sid}/questions", headers=auth(OTHER))).json()
    assert listed["questions"] == listed["data"]
    assert [q["id"] for q in listed["data"]] == [qid, nameless.json()["question"]["id"]]
    assert listed["data"][0]["has_upvoted"] is True and listed["data"][1]["has_upvoted"] is False

    answered = await client.post(f"/api/streams/{sid}/questions/{qid}/answer", headers=auth(OWNER))
    assert answered.status_code == 200 and answered.json()["question"]["is_answered"] is True
    again = await client.post(f"/api/streams/{sid}/questions/{qid}/answer", headers=auth(OWNER))
    assert again.status_code == 200
    (done,) = named(events, QUESTION_ANSWERED)  # announced once
    assert done.data["is_answered"] is True and done.data["username"] == "neema"
    assert done.data["upvotes"] == 2 and done.data["question"] == "Umeanza lini kuimba?"
    # answered questions go last, whatever their upvotes
    order = (await client.get(f"/api/streams/{sid}/questions")).json()["data"]
    assert [q["id"] for q in order] == [nameless.json()["question"]["id"], qid]


async def test_the_list_is_most_upvoted_first(client: httpx.AsyncClient, auth: Any) -> None:
    sid = await live_stream(client, auth)
    ids = [
        (await ask(client, auth, sid, 10 + n, f"swali {n}")).json()["question"]["id"]
        for n in range(4)
    ]
    for voter in range(20, 23):
        await upvote(client, auth, sid, ids[2], voter)
    await upvote(client, auth, sid, ids[3], 20)
    order = [q["id"] for q in (await client.get(f"/api/streams/{sid}/questions")).json()["data"]]
    assert order == [ids[2], ids[3], ids[0], ids[1]]


async def test_upvotes_once_never_ones_own_and_exact_under_concurrency(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    sid = await live_stream(client, auth)
    qid = (await ask(client, auth, sid, FAN, "Swali?")).json()["question"]["id"]
    own = await upvote(client, auth, sid, qid, FAN)
    assert (
        own.status_code == 403 and own.json()["message"] == "You cannot upvote your own question."
    )
    assert (await upvote(client, auth, sid, qid, OTHER)).status_code == 200
    twice = await upvote(client, auth, sid, qid, OTHER)
    assert twice.status_code == 409 and "already upvoted" in twice.json()["message"]
    assert (await upvote(client, auth, sid, 10**9, OTHER)).status_code == 404
    gate = asyncio.Semaphore(10)

    async def one(user: int) -> httpx.Response:
        async with gate:
            return await upvote(client, auth, sid, qid, user)

    answers = await asyncio.gather(*(one(u) for u in [*range(100, 160), *range(100, 130)]))
    codes = [a.status_code for a in answers]
    assert codes.count(200) == 60 and codes.count(409) == 30
    listed = (await client.get(f"/api/streams/{sid}/questions")).json()["data"]
    assert listed[0]["upvotes"] == 61


async def test_questions_are_moderated_like_comments(
    client: httpx.AsyncClient, auth: Any, runtime: Any, events: list[Event]
) -> None:
    sid = await live_stream(client, auth)
    empty = await ask(client, auth, sid, FAN, "   ")
    assert empty.status_code == 422 and "question" in empty.json()["errors"]
    huge = await ask(client, auth, sid, FAN, "x" * 10_240)
    assert huge.status_code == 422
    assert huge.json()["errors"]["question"] == [
        "The question may not be greater than 300 characters."
    ]
    missing = await client.post(f"/api/streams/{sid}/questions", json={}, headers=auth(FAN))
    assert missing.status_code == 422
    masked = await ask(client, auth, sid, FAN, "what the fuck is this")
    assert (
        masked.status_code == 201
        and masked.json()["question"]["question"] == "what the **** is this"
    )
    repeated = await ask(client, auth, sid, FAN, "what the fuck is this")
    assert repeated.status_code == 422
    assert repeated.json()["errors"]["question"] == ["Looks like spam: you already said that."]
    links = await ask(client, auth, sid, FAN, "see http://a.example http://b.example www.c.example")
    assert links.status_code == 422 and "links" in links.json()["message"]
    runtime.settings.bad_word_action = "reject"
    rejected = await ask(client, auth, sid, OTHER, "wewe ni malaya")
    assert (
        rejected.status_code == 422
        and rejected.json()["message"] == "Please keep the chat respectful."
    )

    await client.post(
        f"/api/streams/{sid}/bans", json={"user_id": OTHER, "reason": "troll"}, headers=auth(OWNER)
    )
    banned = await ask(client, auth, sid, OTHER, "hello?")
    assert banned.status_code == 403 and "banned" in banned.json()["message"]
    await client.post(
        f"/api/streams/{sid}/mutes", json={"user_id": THIRD, "minutes": 3}, headers=auth(OWNER)
    )
    muted = await ask(client, auth, sid, THIRD, "hello?")
    assert muted.status_code == 403 and muted.json()["muted_until"]
    qid = masked.json()["question"]["id"]
    assert (await upvote(client, auth, sid, qid, OTHER)).status_code == 403
    assert (await upvote(client, auth, sid, qid, THIRD)).status_code == 403

    log = (await client.get(f"/api/streams/{sid}/moderation-log", headers=auth(OWNER))).json()
    blocked = [
        (e["action"], e["target_user_id"], e["reason"])
        for e in log["data"]
        if e["action"] == "question_blocked"
    ]
    assert sorted(blocked) == sorted(
        [
            ("question_blocked", FAN, "repeated text"),
            ("question_blocked", FAN, "too many links"),
            ("question_blocked", OTHER, "bad words"),
        ]
    )
    assert len(named(events, QUESTION_SUBMITTED)) == 1  # only the masked one was asked
    listed = (await client.get(f"/api/streams/{sid}/questions")).json()["data"]
    assert [q["id"] for q in listed] == [qid]


async def test_questions_have_their_own_rate_limit(
    client: httpx.AsyncClient, auth: Any, runtime: Any
) -> None:
    runtime.settings.question_limit = 1
    sid = await live_stream(client, auth)
    assert (await ask(client, auth, sid, FAN, "one")).status_code == 201
    second = await ask(client, auth, sid, FAN, "two")
    assert second.status_code == 429 and second.json()["retry_after"] >= 1
    # comments are limited apart
    comment = await client.post(
        f"/api/streams/{sid}/comments", json={"content": "hi"}, headers=auth(FAN)
    )
    assert comment.status_code == 201


async def test_answer_and_dismiss_are_the_broadcasters(
    client: httpx.AsyncClient, auth: Any, events: list[Event]
) -> None:
    sid = await live_stream(client, auth)
    invited = await client.post(
        f"/api/streams/{sid}/cohosts", json={"user_id": COHOST}, headers=auth(OWNER)
    )
    await client.put(
        f"/api/streams/{sid}/cohosts/{invited.json()['data']['id']}",
        json={"status": "accepted"},
        headers=auth(COHOST),
    )
    qid = (await ask(client, auth, sid, FAN, "Swali la kwanza")).json()["question"]["id"]
    spam = (await ask(client, auth, sid, OTHER, "Nunua sasa")).json()["question"]["id"]
    by_fan = await client.post(f"/api/streams/{sid}/questions/{qid}/answer", headers=auth(OTHER))
    assert by_fan.status_code == 403 and "owner and co-hosts" in by_fan.json()["message"]
    by_cohost = await client.post(
        f"/api/streams/{sid}/questions/{qid}/answer", headers=auth(COHOST)
    )
    assert by_cohost.status_code == 200

    refused = await client.post(f"/api/streams/{sid}/questions/{spam}/dismiss", headers=auth(FAN))
    assert refused.status_code == 403
    dismissed = await client.post(
        f"/api/streams/{sid}/questions/{spam}/dismiss",
        json={"reason": "advertising"},
        headers=auth(OWNER),
    )
    assert dismissed.status_code == 200
    (gone,) = named(events, QUESTION_DISMISSED)
    assert gone.data["question_id"] == spam and gone.data["stream_id"] == sid
    listed = (await client.get(f"/api/streams/{sid}/questions")).json()["data"]
    assert [q["id"] for q in listed] == [qid]
    assert (await upvote(client, auth, sid, spam, THIRD)).status_code == 404
    again = await client.delete(f"/api/streams/{sid}/questions/{spam}", headers=auth(OWNER))
    assert again.status_code == 404
    log = (await client.get(f"/api/streams/{sid}/moderation-log", headers=auth(OWNER))).json()[
        "data"
    ]
    entry = next(e for e in log if e["action"] == "question_dismissed")
    assert entry["question_id"] == spam and entry["target_user_id"] == OTHER
    assert entry["actor_id"] == OWNER and entry["reason"] == "advertising"


async def test_questions_close_with_the_stream(
    client: httpx.AsyncClient, auth: Any, runtime: Any, clock: Any
) -> None:
    sid = await live_stream(client, auth)
    qid = (await ask(client, auth, sid, FAN, "Kabla ya mwisho")).json()["question"]["id"]
    await client.post(f"/api/streams/{sid}/end", headers=auth(OWNER))
    clock.advance(runtime.settings.outro_seconds + 1)
    await finish_ending(runtime)
    late = await ask(client, auth, sid, OTHER, "Baada ya mwisho")
    assert late.status_code == 403 and "ended" in late.json()["message"]
    assert (await upvote(client, auth, sid, qid, OTHER)).status_code == 403
    listed = (await client.get(f"/api/streams/{sid}/questions")).json()["data"]
    assert [q["id"] for q in listed] == [qid]  # still readable after the stream
