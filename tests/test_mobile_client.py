"""The shipped mobile client, replayed call by call exactly as its livestream service sends
them (no Authorization header; ids in bodies and queries; multipart for create), against a
real `serve` with legacy client identity on."""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import websockets
from PIL import Image

from servers import ServerProcess
from wsclient import Viewer, refused_status

CREATOR, FAN, COHOST = 7, 8, 9
JSON = {"Content-Type": "application/json"}  # what the client's http.post sets


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path, database_url, TAJIRI_LEGACY_CLIENT_IDENTITY="true").start()
    yield process
    process.stop()


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{server.url}/api") as client:
        yield client


def cover() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 9), "orange").save(buffer, format="JPEG")
    return buffer.getvalue()


async def create_stream(http: httpx.AsyncClient, title: str, **extra: str) -> dict[str, object]:
    """`createStream`: a MultipartRequest with the caller's user_id among the fields."""
    fields = {
        "user_id": str(CREATOR),
        "title": title,
        "description": "Live kutoka Dar",
        "category": "music",
        "tags[0]": "bongo",
        "tags[1]": "live",
        "privacy": "public",
        "is_recorded": "1",
        "allow_comments": "1",
        "allow_gifts": "1",
        **extra,
    }
    answer = await http.post(
        "/streams", data=fields, files={"thumbnail": ("cover.jpg", cover(), "image/jpeg")}
    )
    assert answer.status_code == 201, answer.text
    data = answer.json()["data"]
    assert isinstance(data, dict)
    return data


async def test_every_call_of_the_client_works_without_a_token_except_money(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    later = (datetime.now() + timedelta(days=2)).isoformat()  # Dart's toIso8601String()
    stream = await create_stream(http, "Jioni ya muziki")
    upcoming = await create_stream(http, "Kesho", scheduled_at=later)
    sid, other = stream["id"], upcoming["id"]
    assert stream["user_id"] == CREATOR
    assert stream["stream_key"] is None  # a claimed id never sees the key (it publishes as owner)

    # getStreams / getLiveStreams / getUpcomingStreams / getUserStreams / getStream / checkStream
    listing = await http.get(f"/streams?current_user_id={CREATOR}")
    assert listing.status_code == 200 and listing.json()["success"] is True
    upcoming_list = await http.get(f"/streams?status=scheduled&current_user_id={FAN}")
    assert other in [s["id"] for s in upcoming_list.json()["data"]]
    mine = await http.get(f"/streams/user/{CREATOR}")
    assert {s["id"] for s in mine.json()["data"]} >= {sid, other}
    shown = await http.get(f"/streams/{sid}?current_user_id={CREATOR}")
    assert shown.status_code == 200 and shown.json()["data"]["user_id"] == CREATOR
    assert (await http.get(f"/streams/{sid}/check")).json()["exists"] is True

    # startStream: no body at all; the stream's owner is the one who starts it
    started = await http.post(f"/streams/{sid}/start")
    assert started.status_code == 200, started.text
    assert started.json()["data"]["status"] == "live"
    live = await http.get(f"/streams?status=live&current_user_id={FAN}")
    assert sid in [s["id"] for s in live.json()["data"]]

    # joinStream / likeStream / addComment / getComments / pinComment
    joined = await http.post(f"/streams/{sid}/join", headers=JSON, json={"user_id": FAN})
    assert joined.status_code == 200, joined.text
    assert joined.json()["viewer_token"] and joined.json()["websocket"]["url"]
    liked = await http.post(f"/streams/{sid}/like", headers=JSON, json={"user_id": FAN})
    assert liked.status_code == 200 and liked.json()["is_liked"] is True
    comment = await http.post(
        f"/streams/{sid}/comments", headers=JSON, json={"user_id": FAN, "content": "Safi sana!"}
    )
    assert comment.status_code == 201, comment.text
    assert comment.json()["data"]["user_id"] == FAN
    comments = await http.get(f"/streams/{sid}/comments")
    assert [c["content"] for c in comments.json()["data"]] == ["Safi sana!"]
    pinned = await http.post(f"/streams/{sid}/comments/{comment.json()['data']['id']}/pin")
    assert pinned.status_code == 200, pinned.text

    # getAvailableGifts, then sendGift: money needs a verified token, and says so
    gifts = (await http.get("/streams/gifts")).json()["data"]
    gift = await http.post(
        f"/streams/{sid}/gifts",
        headers=JSON,
        json={"sender_id": FAN, "gift_id": gifts[0]["id"], "quantity": 1, "message": "Hongera"},
    )
    assert gift.status_code == 401
    assert "token" in gift.json()["message"] and "coins" in gift.json()["message"]

    # inviteCohost (the owner invites; the body's user_id is the invitee) / respond / remove
    invited = await http.post(f"/streams/{sid}/cohosts", headers=JSON, json={"user_id": COHOST})
    assert invited.status_code == 201, invited.text
    cohost_id = invited.json()["data"]["id"]
    answered = await http.put(
        f"/streams/{sid}/cohosts/{cohost_id}", headers=JSON, json={"status": "accepted"}
    )
    assert answered.status_code == 200 and answered.json()["data"]["status"] == "accepted"
    removed = await http.delete(f"/streams/{sid}/cohosts/{cohost_id}")
    assert removed.status_code == 200, removed.text

    # getViewers / leaveStream / endStream
    viewers = await http.get(f"/streams/{sid}/viewers")
    assert viewers.status_code == 200 and viewers.json()["success"] is True
    left = await http.post(f"/streams/{sid}/leave", headers=JSON, json={"user_id": FAN})
    assert left.status_code == 200
    ended = await http.post(f"/streams/{sid}/end")
    assert ended.status_code == 200 and ended.json()["data"]["status"] == "ending"

    # updateStream / deleteStream on the upcoming one
    updated = await http.put(
        f"/streams/{other}", headers=JSON, json={"title": "Kesho jioni", "description": "Njoo"}
    )
    assert updated.status_code == 200 and updated.json()["data"]["title"] == "Kesho jioni"
    deleted = await http.delete(f"/streams/{other}")
    assert deleted.status_code == 200 and deleted.json()["success"] is True

    # Operators see the mode and how much traffic still uses it.
    root = server.url
    async with httpx.AsyncClient() as plain:
        ready = (await plain.get(f"{root}/ready")).json()
        assert ready["identity"]["legacy_client_identity"] is True
        metrics = (await plain.get(f"{root}/metrics")).text
    counted = re.search(r"^tajiri_auth_legacy_requests_total (\d+)$", metrics, re.M)
    assert counted is not None and int(counted.group(1)) >= 15
    assert "TAJIRI_LEGACY_CLIENT_IDENTITY is on" in server.log()


async def test_the_client_sockets_with_user_id(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    stream = await create_stream(http, "Soketi")
    sid = stream["id"]
    assert (await http.post(f"/streams/{sid}/start")).status_code == 200
    feed = await Viewer.connect(f"{server.ws}/streams/all?user_id={FAN}")
    viewer = await Viewer.connect(f"{server.ws}/streams/{sid}?user_id={FAN}")
    hello = await viewer.wait_for(lambda e: e["event"] == "connected")
    assert hello["data"]["user_id"] == FAN
    await viewer.send("ping", {"timestamp": "2026-11-29T10:00:00.000"})
    await viewer.wait_for(lambda e: e["event"] == "pong")
    await viewer.send("reaction", {"reaction_type": "fire"})
    reaction = await viewer.wait_for(lambda e: e["event"] == "reaction")
    assert reaction["data"]["user_id"] == FAN
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{server.ws}/streams/{sid}?user_id=abc")
    assert refused_status(refused.value) == 400
    await viewer.close()
    await feed.close()
    async with httpx.AsyncClient() as plain:
        metrics = (await plain.get(f"{server.url}/metrics")).text
    assert re.search(r"^tajiri_auth_legacy_sockets_total [2-9]", metrics, re.M)


async def test_a_claimed_id_on_a_socket_may_watch_and_take_part_but_not_host(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    """A `?user_id=` socket does what the client's REST calls without a token do: a viewer's
    actions (react, ask, upvote, vote) work; a host's (polls, answering, dismissing) need a
    token, as their REST twins do, even when the claimed id is the owner's."""
    stream = await create_stream(http, "Soketi")
    sid = stream["id"]
    assert (await http.post(f"/streams/{sid}/start")).status_code == 200
    claimed_owner = await Viewer.connect(f"{server.ws}/streams/{sid}?user_id={CREATOR}")
    fan = await Viewer.connect(f"{server.ws}/streams/{sid}?user_id={FAN}")
    for viewer in (claimed_owner, fan):
        await viewer.wait_for(lambda e: e["event"] == "connected")
    host_actions = {
        "create_poll": {"question": "Wimbo gani?", "options": ["A", "B"]},
        "close_poll": {"poll_id": 1},
        "answer_question": {"question_id": 1},
        "dismiss_question": {"question_id": 1},
    }
    for name, data in host_actions.items():
        await claimed_owner.send(name, data)
        refused = await claimed_owner.wait_for(
            lambda e, name=name: e["event"] == "error" and f'"event": "{name}"' in json.dumps(e)
        )
        assert refused["data"]["code"] == "unauthenticated", refused
        assert "token" in refused["data"]["message"]
    await fan.send("submit_question", {"question": "Mnatoka wapi?"})
    asked = await fan.wait_for(lambda e: e["event"] == "question_submitted")
    await claimed_owner.send("upvote_question", {"question_id": asked["data"]["question_id"]})
    await claimed_owner.wait_for(lambda e: e["event"] == "question_upvoted")
    assert not [e for e in claimed_owner.events if e["event"] == "poll_created"]
    await claimed_owner.close()
    await fan.close()


async def test_a_token_decides_alone_and_the_mode_is_off_by_default(
    tmp_path: Path, server: ServerProcess, http: httpx.AsyncClient, database_url: str
) -> None:
    stream = await create_stream(http, "Token")
    sid = stream["id"]
    assert (await http.post(f"/streams/{sid}/start")).status_code == 200
    # With a (bad) token, the body's id counts for nothing.
    forged = await http.post(
        f"/streams/{sid}/join",
        headers={**JSON, "Authorization": "Bearer not-a-token"},
        json={"user_id": FAN},
    )
    assert forged.status_code == 401
    (tmp_path / "strict").mkdir()
    strict = ServerProcess(tmp_path / "strict", database_url).start()
    try:
        async with httpx.AsyncClient(base_url=f"{strict.url}/api") as client:
            refused = await client.post(f"/streams/{sid}/join", headers=JSON, json={"user_id": 8})
            assert refused.status_code == 401
            assert (await client.post(f"/streams/{sid}/end")).status_code == 401
        anonymous = await Viewer.connect(f"{strict.ws}/streams/{sid}?user_id={FAN}")
        hello = await anonymous.wait_for(lambda e: e["event"] == "connected")
        assert hello["data"]["user_id"] is None  # the claimed id is ignored, not trusted
        await anonymous.close()
    finally:
        strict.stop()
