"""Polls, Q&A and health on real sockets: a replay of the mobile client (its messages sent,
every frame parsed cast for cast as websocket_service.dart does, on the plain and the Pusher
path), refusals as `error` events, events for the hosts alone, and pusher-js with both
event-name sets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import TEST_SECRET
from dartclient import CastFailed, Parsed, parse, parse_pusher
from jsclient import JsClient
from servers import ServerProcess
from tajiri_live.core.auth import TokenCodec
from tajiri_live.core.settings import Settings
from wsclient import Viewer

OWNER, COHOST, FAN, OTHER, MUTED = 1, 2, 3, 4, 5


@pytest.fixture
def tokens() -> TokenCodec:
    return TokenCodec(Settings(jwt_secret=TEST_SECRET))


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path, database_url, TAJIRI_REALTIME_COALESCE_MS="50").start()
    yield process
    process.stop()


@pytest.fixture
async def api(server: ServerProcess, tokens: TokenCodec) -> AsyncIterator[Any]:
    async with httpx.AsyncClient(base_url=f"{server.url}/api") as client:

        def as_user(user_id: int, **claims: Any) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens.encode(user_id, **claims)}"}

        client.as_user = as_user  # type: ignore[attr-defined]
        yield client


async def live_stream(api: Any, start: bool = True) -> int:
    created = await api.post("/streams", json={"title": "Live"}, headers=api.as_user(OWNER))
    stream_id = int(created.json()["data"]["id"])
    if start:
        await api.post(f"/streams/{stream_id}/start", headers=api.as_user(OWNER))
    return stream_id


async def connect(
    server: ServerProcess, tokens: TokenCodec, stream_id: int, user: int | None
) -> Viewer:
    query = f"?token={tokens.encode(user, username=f'u{user}')}" if user is not None else ""
    viewer = await Viewer.connect(f"{server.ws}/streams/{stream_id}{query}")
    await viewer.wait_for(lambda e: e["event"] == "connected")
    return viewer


def parsed(viewer: Viewer, name: str) -> list[Parsed]:
    """Every frame of that name, as the client parses it (a cast failure fails the test)."""
    return [p for p in (parse(json.dumps(e)) for e in viewer.events) if p.event == name]


def every_frame_parses(viewer: Viewer, pusher: bool = False) -> int:
    count = 0
    for frame in viewer.events:
        (parse_pusher if pusher else parse)(json.dumps(frame))
        count += 1
    return count


async def test_the_client_replay_sends_every_message_and_parses_every_event(
    server: ServerProcess, api: Any, tokens: TokenCodec
) -> None:
    stream_id = await live_stream(api)
    owner = await connect(server, tokens, stream_id, OWNER)
    fan = await connect(server, tokens, stream_id, FAN)
    other = await connect(server, tokens, stream_id, OTHER)
    anonymous = await connect(server, tokens, stream_id, None)
    pusher = await Viewer.connect(f"{server.ws}/app/tajiri-live?protocol=7")
    await pusher.send("pusher:subscribe", {"channel": f"stream.{stream_id}"})
    await pusher.wait_for(lambda e: e["event"] == "pusher_internal:subscription_succeeded")
    everyone = (owner, fan, other, anonymous)

    # createPoll / votePoll / closePoll
    await owner.send("create_poll", {"question": "Wimbo gani?", "options": ["Bongo", "Taarab"]})
    for viewer in everyone:
        await viewer.wait_for(lambda e: e["event"] == "poll_created")
    (created,) = parsed(anonymous, "poll_created")
    poll_id = created.value["poll_id"]
    bongo, taarab = (o["id"] for o in created.value["options"])
    assert created.value["created_by"] == OWNER and created.value["question"] == "Wimbo gani?"
    await fan.send("vote_poll", {"poll_id": poll_id, "option_id": bongo})
    await other.send("vote_poll", {"poll_id": poll_id, "option_id": taarab})
    await owner.send("vote_poll", {"poll_id": poll_id, "option_id": taarab})
    for viewer in (*everyone, pusher):

        def two_for_taarab(e: dict[str, Any]) -> bool:
            data = e["data"] if isinstance(e["data"], dict) else json.loads(e["data"])
            return e["event"] == "poll_vote" and data["option_id"] == taarab and data["votes"] == 2

        await viewer.wait_for(two_for_taarab)
    votes = parsed(anonymous, "poll_vote")
    assert {v.value["option_id"] for v in votes} == {bongo, taarab}
    assert all(
        v.value["poll_id"] == poll_id and v.value["user_id"] in (FAN, OTHER, OWNER) for v in votes
    )
    await owner.send("close_poll", {"poll_id": poll_id})
    for viewer in everyone:
        await viewer.wait_for(lambda e: e["event"] == "poll_closed")
    (closed,) = parsed(fan, "poll_closed")
    assert closed.value["is_closed"] is True
    assert {o["id"]: o["votes"] for o in closed.value["options"]} == {bongo: 1, taarab: 2}

    # submitQuestion / upvoteQuestion / answerQuestion
    await fan.send("submit_question", {"question": "Umeanza lini?"})
    await anonymous.wait_for(lambda e: e["event"] == "question_submitted")
    (asked,) = parsed(anonymous, "question_submitted")
    assert asked.value["username"] == f"u{FAN}" and asked.value["is_answered"] is False
    question_id = asked.value["question_id"]
    await other.send("upvote_question", {"question_id": question_id})
    await anonymous.wait_for(lambda e: e["event"] == "question_upvoted")
    assert parsed(anonymous, "question_upvoted")[-1].value == {
        "question_id": question_id,
        "upvotes": 1,
    }
    await owner.send("answer_question", {"question_id": question_id})
    await anonymous.wait_for(lambda e: e["event"] == "question_answered")
    (answered,) = parsed(anonymous, "question_answered")
    assert answered.value["is_answered"] is True and answered.value["upvotes"] == 1

    # the heartbeat, on both paths
    await fan.send("ping", {"timestamp": "2026-11-29T10:00:00.000"})
    await fan.wait_for(lambda e: e["event"] == "pong")
    await pusher.send("ping", {"timestamp": "2026-11-29T10:00:00.000"})
    pong = await pusher.wait_for(lambda e: e["event"] == "pong")
    assert json.loads(pong["data"])["timestamp"] == "2026-11-29T10:00:00.000"
    # a plain action on the Pusher path: an `error` event, never a pusher:error
    await pusher.send("vote_poll", {"poll_id": poll_id, "option_id": bongo})
    refused = await pusher.wait_for(lambda e: e["event"] == "error")
    assert json.loads(refused["data"])["event"] == "vote_poll"
    assert not [e for e in pusher.events if e["event"] == "pusher:error"]

    await pusher.wait_for(lambda e: e["event"] == "question_answered")
    for viewer in everyone:
        assert every_frame_parses(viewer) > 5
    assert every_frame_parses(pusher, pusher=True) > 5
    assert not [e for e in owner.events if e["event"] == "error"]

    # the REST twins answer with the documented shapes
    polls = (await api.get(f"/streams/{stream_id}/polls")).json()
    assert polls["success"] is True and polls["polls"][0]["id"] == poll_id
    questions = (await api.get(f"/streams/{stream_id}/questions")).json()
    assert questions["questions"][0]["username"] == f"u{FAN}"
    for viewer in (*everyone, pusher):
        await viewer.close()


async def test_refused_messages_answer_an_error_and_keep_the_socket(
    server: ServerProcess, api: Any, tokens: TokenCodec
) -> None:
    stream_id = await live_stream(api)
    later = await live_stream(api, start=False)
    owner = await connect(server, tokens, stream_id, OWNER)
    fan = await connect(server, tokens, stream_id, FAN)
    muted = await connect(server, tokens, stream_id, MUTED)
    anonymous = await connect(server, tokens, stream_id, None)
    on_later = await connect(server, tokens, later, OWNER)

    async def refused(viewer: Viewer, event: str, data: dict[str, Any]) -> dict[str, Any]:
        before = len([e for e in viewer.events if e["event"] == "error"])
        await viewer.send(event, data)
        await viewer.wait_for(
            lambda e: (
                e["event"] == "error"
                and len([x for x in viewer.events if x["event"] == "error"]) > before
            )
        )
        error: dict[str, Any] = [e for e in viewer.events if e["event"] == "error"][-1]["data"]
        assert error["event"] == event and error["message"]
        return error

    assert (await refused(anonymous, "vote_poll", {"poll_id": 1, "option_id": 1}))[
        "code"
    ] == "unauthenticated"
    assert (await refused(fan, "create_poll", {"question": "q", "options": ["a", "b"]}))[
        "code"
    ] == "forbidden"
    one = await refused(owner, "create_poll", {"question": "q", "options": ["a"]})
    assert one["code"] == "invalid" and one["errors"]["options"]
    many = await refused(
        owner, "create_poll", {"question": "q", "options": [str(n) for n in range(50)]}
    )
    assert many["code"] == "invalid"
    assert (await refused(on_later, "create_poll", {"question": "q", "options": ["a", "b"]}))[
        "code"
    ] == "conflict"

    await owner.send("create_poll", {"question": "Ndiyo?", "options": ["Ndiyo", "Hapana"]})
    created = await fan.wait_for(lambda e: e["event"] == "poll_created")
    poll_id = created["data"]["poll_id"]
    yes, no = (o["id"] for o in created["data"]["options"])
    assert (await refused(fan, "vote_poll", {"poll_id": poll_id}))["code"] == "invalid"
    assert (await refused(fan, "vote_poll", {"poll_id": poll_id, "option_id": 10**9}))[
        "code"
    ] == "invalid"
    assert (await refused(fan, "vote_poll", {"poll_id": 10**9, "option_id": yes}))[
        "code"
    ] == "not_found"
    await fan.send("vote_poll", {"poll_id": poll_id, "option_id": yes})
    twice = await refused(fan, "vote_poll", {"poll_id": poll_id, "option_id": no})
    assert (
        twice["code"] == "conflict" and twice["message"] == "You have already voted in this poll."
    )
    await api.post(
        f"/streams/{stream_id}/mutes",
        json={"user_id": MUTED, "minutes": 5},
        headers=api.as_user(OWNER),
    )
    silenced = await refused(muted, "vote_poll", {"poll_id": poll_id, "option_id": yes})
    assert silenced["code"] == "forbidden" and silenced["muted_until"]
    assert (await refused(muted, "submit_question", {"question": "hello"}))["code"] == "forbidden"
    await owner.send("close_poll", {"poll_id": poll_id})
    await fan.wait_for(lambda e: e["event"] == "poll_closed")
    closed = await refused(owner, "vote_poll", {"poll_id": poll_id, "option_id": yes})
    assert closed["code"] == "conflict" and closed["message"] == "This poll is closed."

    assert (await refused(fan, "submit_question", {"question": ""}))["code"] == "invalid"
    assert (await refused(fan, "submit_question", {"question": "x" * 10_240}))["code"] == "invalid"
    await fan.send("submit_question", {"question": "Swali langu"})
    asked = await owner.wait_for(lambda e: e["event"] == "question_submitted")
    question_id = asked["data"]["question_id"]
    own = await refused(fan, "upvote_question", {"question_id": question_id})
    assert own["code"] == "forbidden" and "own question" in own["message"]
    assert (await refused(fan, "answer_question", {"question_id": question_id}))[
        "code"
    ] == "forbidden"

    for viewer in (owner, fan, muted, anonymous):
        await viewer.send("ping", {"timestamp": 1})
        await viewer.wait_for(lambda e: e["event"] == "pong")  # every socket stayed open
    polls = (await api.get(f"/streams/{stream_id}/polls")).json()["data"]
    assert [p["total_votes"] for p in polls] == [1]  # nothing half-written
    for viewer in (owner, fan, muted, anonymous, on_later):
        await viewer.close()


async def test_health_warnings_reach_the_hosts_sockets_only(
    server: ServerProcess, api: Any, tokens: TokenCodec
) -> None:
    stream_id = await live_stream(api)
    owner = await connect(server, tokens, stream_id, OWNER)
    cohost = await connect(server, tokens, stream_id, COHOST)  # a viewer, for now
    fan = await connect(server, tokens, stream_id, FAN)
    anonymous = await connect(server, tokens, stream_id, None)
    invited = await api.post(
        f"/streams/{stream_id}/cohosts", json={"user_id": COHOST}, headers=api.as_user(OWNER)
    )
    accepted = await api.put(
        f"/streams/{stream_id}/cohosts/{invited.json()['data']['id']}",
        json={"status": "accepted"},
        headers=api.as_user(COHOST),
    )
    assert accepted.status_code == 200
    reported = await api.post(
        f"/streams/{stream_id}/health",
        json={
            "network_quality": "Poor",
            "bitrate": 120,
            "fps": 11,
            "dropped_frames": 40,
            "latency": 6.5,
        },
        headers=api.as_user(COHOST),
    )
    assert reported.status_code == 200, reported.text
    for host in (owner, cohost):
        warning = await host.wait_for(lambda e: e["event"] == "stream_health_warning")
        assert (
            warning["data"]["network_quality"] == "poor"
            and warning["data"]["stream_id"] == stream_id
        )
    # a broadcast after it: whoever got it and no warning before it never gets the warning
    await api.post(
        f"/streams/{stream_id}/comments", json={"content": "after"}, headers=api.as_user(OWNER)
    )
    for viewer in (fan, anonymous):
        await viewer.wait_for(lambda e: e["event"] == "new_comment")
        assert not [e for e in viewer.events if e["event"] == "stream_health_warning"]
    for viewer in (owner, cohost, fan, anonymous):
        await viewer.close()


async def test_pusher_js_hears_the_new_events_under_both_names_and_hosts_events_once_signed(
    server: ServerProcess, api: Any, tokens: TokenCodec
) -> None:
    stream_id = await live_stream(api)
    viewer = await JsClient.start(server, subscribe=[{"channel": f"stream.{stream_id}"}])
    host = await JsClient.start(
        server,
        token=tokens.encode(OWNER),
        subscribe=[{"channel": f"stream.{stream_id}"}, {"channel": f"private-user.{OWNER}"}],
    )
    echo = await JsClient.start(
        server,
        mode="echo",
        subscribe=[
            {
                "channel": f"stream.{stream_id}",
                "events": ["PollCreated", "PollVoted", "PollClosed", "QuestionSubmitted"],
            }
        ],
    )
    try:
        await viewer.subscribed(f"stream.{stream_id}")
        await host.subscribed(f"private-user.{OWNER}")
        await echo.subscribed(f"stream.{stream_id}")
        created = await api.post(
            f"/streams/{stream_id}/polls",
            json={"question": "Ndiyo?", "options": ["Ndiyo", "Hapana"]},
            headers=api.as_user(OWNER),
        )
        poll = created.json()["poll"]
        await api.post(
            f"/streams/{stream_id}/polls/{poll['id']}/vote",
            json={"option_id": poll["options"][0]["id"]},
            headers=api.as_user(FAN),
        )
        await api.post(f"/streams/{stream_id}/polls/{poll['id']}/close", headers=api.as_user(OWNER))
        await api.post(
            f"/streams/{stream_id}/questions", json={"question": "Swali?"}, headers=api.as_user(FAN)
        )
        for name in ("poll_created", "poll_vote", "poll_closed", "question_submitted"):
            await viewer.wait_for(lambda line, n=name: line.get("event") == n)  # type: ignore[misc]
        for name in ("PollCreated", "PollVoted", "PollClosed", "QuestionSubmitted"):
            heard = await echo.wait_for(lambda line, n=name: line.get("event") == n)  # type: ignore[misc]
            assert heard["data"]["stream_id"] == stream_id
        await viewer.wait_for(lambda line: line.get("event") == "App\\Events\\PollClosed")
        vote = next(line for line in viewer.lines if line.get("event") == "poll_vote")
        assert vote["data"]["votes"] == 1 and vote["data"]["user_id"] == FAN

        await api.post(
            f"/streams/{stream_id}/health", json={"bitrate": 50}, headers=api.as_user(OWNER)
        )
        warned = await host.wait_for(lambda line: line.get("event") == "stream_health_warning")
        assert warned["channel"] == f"stream.{stream_id}"
        await host.wait_for(lambda line: line.get("event") == "App\\Events\\StreamHealthWarning")
        await api.post(
            f"/streams/{stream_id}/comments", json={"content": "x"}, headers=api.as_user(FAN)
        )
        await viewer.wait_for(lambda line: line.get("event") == "new_comment")
        assert not viewer.events("stream_health_warning")  # anonymous: not a host
    finally:
        for client in (viewer, host, echo):
            await client.close()


def test_client_cast_emulation_catches_what_the_client_would_drop() -> None:
    """The replay's own check: a wrong type, a missing field or a null where the client
    casts `as int` / `as String` is caught."""
    good = {"event": "poll_vote", "data": {"poll_id": 1, "option_id": 2, "user_id": 3, "votes": 4}}
    assert parse(json.dumps(good)).value["votes"] == 4
    for bad in (
        {**good["data"], "votes": "4"},
        {**good["data"], "votes": 4.0},
        {**good["data"], "user_id": None},
        {k: v for k, v in good["data"].items() if k != "option_id"},
    ):
        with pytest.raises(CastFailed):
            parse(json.dumps({"event": "poll_vote", "data": bad}))
    with pytest.raises(CastFailed):
        parse(
            json.dumps(
                {
                    "event": "question_submitted",
                    "data": {"question_id": 1, "user_id": 2, "username": None, "question": "q"},
                }
            )
        )
