"""The plain WebSocket protocol on a real `serve` process (embedded default backends)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import websockets

from conftest import TEST_SECRET
from servers import ServerProcess
from tajiri_live.core.auth import TokenCodec
from tajiri_live.core.db import create_engine
from tajiri_live.core.settings import Settings
from tajiri_live.streams.models import StreamViewer
from wsclient import Viewer, refused_status

CREATOR, FAN, FRIEND = 1, 2, 3


@pytest.fixture(scope="module")
def tokens() -> TokenCodec:
    return TokenCodec(Settings(jwt_secret=TEST_SECRET))


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path, database_url).start()
    yield process
    process.stop()


@pytest.fixture
async def api(server: ServerProcess, tokens: TokenCodec) -> AsyncIterator[Any]:
    async with httpx.AsyncClient(base_url=server.url) as client:

        def as_user(user_id: int) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens.encode(user_id)}"}

        client.as_user = as_user  # type: ignore[attr-defined]
        yield client


async def new_stream(api: Any, **fields: Any) -> int:
    response = await api.post(
        "/api/streams", json={"title": "Live", **fields}, headers=api.as_user(CREATOR)
    )
    assert response.status_code == 201, response.text
    return int(response.json()["data"]["id"])


async def test_handshake_refusals_use_http_status_codes(
    server: ServerProcess, api: Any, tokens: TokenCodec
) -> None:
    public = await new_stream(api)
    private = await new_stream(api, privacy="private")
    cases = [
        (f"/streams/{public}?token=not-a-token", 401),
        (f"/streams/{public}?user_id=99&token={tokens.encode(FAN)}", 403),
        ("/streams/999999", 404),
        (f"/streams/{private}", 404),
        (f"/streams/{private}?token={tokens.encode(FAN)}", 404),
        ("/elsewhere", 404),
    ]
    for path, status in cases:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(server.ws + path)
        assert refused_status(refused.value) == status, path
    expired = tokens.encode(FAN, ttl_seconds=-5)
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(
            f"{server.ws}/streams/{public}",
            additional_headers={"Authorization": f"Bearer {expired}"},
        )
    assert refused_status(refused.value) == 401
    owner = await Viewer.connect(f"{server.ws}/streams/{private}?token={tokens.encode(CREATOR)}")
    assert (await owner.wait_for(lambda e: e["event"] == "connected"))["data"][
        "stream_id"
    ] == private
    await owner.close()


async def test_plain_get_on_socket_paths_is_426(server: ServerProcess) -> None:
    async with httpx.AsyncClient() as client:
        for path in ("/streams/1", "/streams/all"):
            response = await client.get(server.url + path)
            assert response.status_code == 426
            assert "WebSocket" in response.json()["message"]


async def test_connected_ping_and_malformed_frames(
    server: ServerProcess, api: Any, tokens: TokenCodec
) -> None:
    stream_id = await new_stream(api)
    viewer = await Viewer.connect(
        f"{server.ws}/streams/{stream_id}?user_id={FAN}&token={tokens.encode(FAN)}"
    )
    connected = await viewer.wait_for(lambda e: e["event"] == "connected")
    assert connected["data"]["stream_id"] == stream_id and connected["data"]["user_id"] == FAN
    await viewer.connection.send("{not json")
    await viewer.connection.send(b"\x00binary")
    await viewer.send("dance")
    await viewer.send("ping", {"timestamp": 1732550000123})
    pong = await viewer.wait_for(lambda e: e["event"] == "pong")
    assert pong["data"] == {"timestamp": 1732550000123}
    codes = [e["code"] for e in viewer.named("error")]
    assert codes == ["malformed", "malformed", "unknown_event"]
    assert "Traceback" not in server.log()
    await viewer.close()


async def test_status_changes_reach_viewers_and_the_global_feed(
    server: ServerProcess, api: Any, tokens: TokenCodec
) -> None:
    stream_id = await new_stream(api)
    viewer = await Viewer.connect(f"{server.ws}/streams/{stream_id}")
    feed = await Viewer.connect(f"{server.ws}/streams/all?token={tokens.encode(FAN)}")
    await viewer.wait_for(lambda e: e["event"] == "connected")
    await feed.wait_for(lambda e: e["event"] == "connected")
    await api.post(f"/api/streams/{stream_id}/start", headers=api.as_user(CREATOR))
    live = await viewer.wait_for(
        lambda e: e["event"] == "status_changed" and e["data"]["status"] == "live"
    )
    assert live["data"]["old_status"] == "pre_live"
    # Ingest off and no HLS server named: nothing can be played, so no (dead) link.
    assert live["data"]["playback_url"] is None and "playback_url" in live["data"]
    await feed.wait_for(
        lambda e: (
            e["event"] == "status_changed"
            and e["data"]["stream_id"] == stream_id
            and e["data"]["status"] == "live"
        )
    )
    await api.post(f"/api/streams/{stream_id}/end", headers=api.as_user(CREATOR))
    ended = await viewer.wait_for(
        lambda e: e["event"] == "status_changed" and e["data"]["status"] == "ended"
    )
    assert ended["data"]["duration"] is not None and ended["data"]["ended_at"]
    steps = [(d["old_status"], d["status"]) for d in viewer.named("status_changed")]
    assert steps == [
        ("scheduled", "pre_live"),
        ("pre_live", "live"),
        ("live", "ending"),
        ("ending", "ended"),
    ]
    await viewer.close()
    await feed.close()


async def test_viewer_counts_are_pushed_deduplicated_and_stored(
    server: ServerProcess, api: Any, tokens: TokenCodec, database_url: str
) -> None:
    stream_id = await new_stream(api)
    await api.post(f"/api/streams/{stream_id}/start", headers=api.as_user(CREATOR))
    url = f"{server.ws}/streams/{stream_id}"
    grid = await Viewer.connect(f"{server.ws}/streams/all?user_id={FAN}")
    await grid.wait_for(lambda e: e["event"] == "connected")
    fan_a = await Viewer.connect(f"{url}?token={tokens.encode(FAN)}")
    fan_b = await Viewer.connect(f"{url}?token={tokens.encode(FAN)}")  # same user, 2nd device
    friend = await Viewer.connect(f"{url}?token={tokens.encode(FRIEND)}")
    anonymous = await Viewer.connect(url)
    three = await anonymous.wait_for(
        lambda e: e["event"] == "viewer_count_updated" and e["data"]["current_viewers"] == 3
    )
    assert three["data"]["peak_viewers"] == 3
    await friend.close()
    await anonymous.close()
    await fan_a.wait_for(
        lambda e: (
            e["event"] == "viewer_count_updated"
            and e["data"]
            == {"stream_id": stream_id, "current_viewers": 1, "viewers_count": 1, "peak_viewers": 3}
        )
    )
    # The stream grid follows /streams/all and reads `viewers_count` (as an int).
    on_grid = await grid.wait_for(
        lambda e: e["event"] == "viewer_count_updated" and e["data"]["current_viewers"] == 1
    )
    assert on_grid["data"]["stream_id"] == stream_id and on_grid["data"]["viewers_count"] == 1
    await grid.close()
    counts = [d["current_viewers"] for d in fan_a.named("viewer_count_updated")]
    assert all(a != b for a, b in itertools.pairwise(counts))  # only changes
    assert max(counts) == 3
    shown = (await api.get(f"/api/streams/{stream_id}")).json()["data"]
    assert (shown["viewers_count"], shown["peak_viewers"]) == (1, 3)
    # Three visits: the fan's two devices are one person's one visit.
    assert shown["unique_viewers"] == 3 and shown["total_viewers"] == 3
    await fan_a.close()
    await fan_b.close()
    await asyncio.sleep(0.5)  # the session writer flushes every 0.1 s in tests

    engine = create_engine(database_url)
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                sa.text(
                    "SELECT user_id, left_at IS NOT NULL AS done, watch_duration "
                    "FROM stream_viewers WHERE stream_id = :s"
                ),
                {"s": stream_id},
            )
        ).all()
    await engine.dispose()
    assert sorted((r.user_id or 0) for r in rows) == [0, FAN, FRIEND]  # one row per visit
    assert all(bool(r.done) and r.watch_duration >= 0 for r in rows)


async def open_sessions(database_url: str, stream_id: int) -> list[Any]:
    """The stream's session rows, oldest first (user_id, joined_at and left_at, aware)."""
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                sa.select(StreamViewer.user_id, StreamViewer.joined_at, StreamViewer.left_at)
                .where(StreamViewer.stream_id == stream_id)
                .order_by(StreamViewer.id)
            )
        ).all()
    await engine.dispose()
    return list(rows)


async def test_a_rest_join_and_a_socket_are_one_viewer_and_the_broadcaster_none(
    server: ServerProcess, api: Any, tokens: TokenCodec, database_url: str
) -> None:
    """The bar: a person with a REST join and a socket, plus the broadcaster's socket (and the
    creator's console on the same socket), read `current_viewers: 1`."""
    stream_id = await new_stream(api)
    await api.post(f"/api/streams/{stream_id}/start", headers=api.as_user(CREATOR))
    url = f"{server.ws}/streams/{stream_id}"
    broadcaster = await Viewer.connect(f"{url}?token={tokens.encode(CREATOR)}")
    console = await Viewer.connect(f"{url}?token={tokens.encode(CREATOR)}")
    joined = await api.post(f"/api/streams/{stream_id}/join", headers=api.as_user(FAN))
    assert joined.json()["current_viewers"] == 1
    owner_join = await api.post(f"/api/streams/{stream_id}/join", headers=api.as_user(CREATOR))
    assert owner_join.json()["current_viewers"] == 1  # the owner is never a viewer
    fan = await Viewer.connect(f"{url}?token={tokens.encode(FAN)}")
    await fan.wait_for(lambda e: e["event"] == "connected")
    # Someone else arrives and leaves: the numbers around them show who counted.
    passerby = await Viewer.connect(url)
    two = await broadcaster.wait_for(
        lambda e: e["event"] == "viewer_count_updated" and e["data"]["current_viewers"] == 2
    )
    assert two["data"]["peak_viewers"] == 2
    await passerby.close()
    one = await fan.wait_for(
        lambda e: (
            e["event"] == "viewer_count_updated"
            and e["data"]["current_viewers"] == 1
            and e["data"]["peak_viewers"] == 2  # after the passer-by
        )
    )
    assert one["data"]["viewers_count"] == 1
    assert (await api.get(f"/api/streams/{stream_id}/check")).json()["current_viewers"] == 1
    watching = await api.get(f"/api/streams/{stream_id}/viewers", headers=api.as_user(CREATOR))
    assert [v["user_id"] for v in watching.json()["data"]] == [FAN]  # once; not the owner

    await api.post(f"/api/streams/{stream_id}/leave", headers=api.as_user(FAN))
    await asyncio.sleep(0.5)
    assert (await api.get(f"/api/streams/{stream_id}/check")).json()["current_viewers"] == 1
    await fan.close()  # the socket was the last thing holding the fan
    await broadcaster.wait_for(
        lambda e: e["event"] == "viewer_count_updated" and e["data"]["current_viewers"] == 0
    )
    await asyncio.sleep(0.3)
    rows = await open_sessions(database_url, stream_id)
    assert [r.user_id for r in rows] == [FAN, None]  # one visit each; none for the creator
    assert all(r.left_at is not None for r in rows)
    shown = (await api.get(f"/api/streams/{stream_id}")).json()["data"]
    assert (shown["peak_viewers"], shown["total_viewers"]) == (2, 2)
    await broadcaster.close()
    await console.close()


async def test_anonymous_viewers_count_at_most_three_per_address(
    server: ServerProcess, api: Any
) -> None:
    stream_id = await new_stream(api)
    await api.post(f"/api/streams/{stream_id}/start", headers=api.as_user(CREATOR))
    url = f"{server.ws}/streams/{stream_id}"

    def from_address(address: str) -> dict[str, Any]:
        # The tests connect from 127.0.0.1, a trusted proxy by default: it names the client.
        return {"additional_headers": {"X-Forwarded-For": f"6.6.6.6, {address}"}}

    script = [await Viewer.connect(url, **from_address("198.51.100.7")) for _ in range(5)]
    other = await Viewer.connect(url, **from_address("203.0.113.9"))
    three_plus_one = await other.wait_for(
        lambda e: e["event"] == "viewer_count_updated" and e["data"]["current_viewers"] == 4
    )
    assert three_plus_one["data"]["peak_viewers"] == 4
    for viewer in script:  # they all watch; only three of them count
        await viewer.wait_for(lambda e: e["event"] == "connected")
    await asyncio.sleep(0.5)
    assert (await api.get(f"/api/streams/{stream_id}/check")).json()["current_viewers"] == 4
    for viewer in [*script, other]:
        await viewer.close()


async def test_rest_join_and_leave_status_codes(server: ServerProcess, api: Any) -> None:
    stream_id = await new_stream(api)
    fan = api.as_user(FAN)
    early = await api.post(f"/api/streams/{stream_id}/join", json={"user_id": FAN}, headers=fan)
    assert early.status_code == 409
    assert early.json()["stream_status"] == "scheduled" and "scheduled_at" in early.json()
    assert (await api.post("/api/streams/999999/join", headers=fan)).status_code == 404
    spoofed = await api.post(f"/api/streams/{stream_id}/join", json={"user_id": 77}, headers=fan)
    assert spoofed.status_code == 403
    await api.post(f"/api/streams/{stream_id}/start", headers=api.as_user(CREATOR))
    joined = await api.post(f"/api/streams/{stream_id}/join", json={"user_id": FAN}, headers=fan)
    assert joined.status_code == 200
    body = joined.json()
    assert body["current_viewers"] == 1 and body["viewer_token"]
    assert body["playback_url"] is None  # no ingest, no HLS server named: nothing to play
    assert body["websocket"]["channel"] == f"stream.{stream_id}"
    left = await api.post(f"/api/streams/{stream_id}/leave", json={"user_id": FAN}, headers=fan)
    assert left.status_code == 200
    await api.post(f"/api/streams/{stream_id}/end", headers=api.as_user(CREATOR))
    late = await api.post(f"/api/streams/{stream_id}/join", headers=fan)
    assert late.status_code == 410
    assert late.json()["stream_ended"] is True
    assert {"ended_at", "duration", "total_viewers", "peak_viewers"} <= set(late.json())


async def test_reactions_over_the_socket_share_the_rest_rules(
    server: ServerProcess, api: Any, tokens: TokenCodec
) -> None:
    stream_id = await new_stream(api)
    await api.post(f"/api/streams/{stream_id}/start", headers=api.as_user(CREATOR))
    fan = await Viewer.connect(f"{server.ws}/streams/{stream_id}?token={tokens.encode(FAN)}")
    watcher = await Viewer.connect(f"{server.ws}/streams/{stream_id}")
    anonymous = await Viewer.connect(f"{server.ws}/streams/{stream_id}")
    for viewer in (fan, watcher, anonymous):
        await viewer.wait_for(lambda e: e["event"] == "connected")
    await fan.send("reaction", {"reaction_type": "fire"})
    seen = await watcher.wait_for(lambda e: e["event"] == "reaction")
    assert seen["data"] == {"stream_id": stream_id, "user_id": FAN, "reaction_type": "fire"}
    await anonymous.send("reaction", {"reaction_type": "fire"})
    refused = await anonymous.wait_for(lambda e: e["event"] == "error")
    assert refused["data"]["code"] == "unauthenticated"
    await fan.send("reaction", {"reaction_type": "angry"})
    invalid = await fan.wait_for(lambda e: e["event"] == "error")
    assert invalid["data"]["code"] == "invalid"
    for _ in range(12):  # the default limit is 10 a second, REST and socket together
        await fan.send("reaction", {"reaction_type": "clap"})
    limited = await fan.wait_for(
        lambda e: e["event"] == "error" and e["data"]["code"] == "rate_limited"
    )
    assert limited["data"]["retry_after"] >= 1
    await fan.send("ping", {"timestamp": 5})
    await fan.wait_for(lambda e: e["event"] == "pong")  # still connected
    # A pong answers at once; the socket's queued reactions may still be being stored.
    for _ in range(100):
        stream = (await api.get(f"/api/streams/{stream_id}")).json()["data"]
        if "clap" in stream["reaction_counts"]:
            break
        await asyncio.sleep(0.1)
    assert stream["reaction_counts"]["fire"] == 1
    assert 1 <= stream["reaction_counts"]["clap"] <= 9
    for viewer in (fan, watcher, anonymous):
        await viewer.close()


async def test_after_kill_9_and_a_restart_no_ghost_is_left(
    server: ServerProcess, api: Any, tokens: TokenCodec, database_url: str
) -> None:
    """One node on the embedded backends (SQLite in the SQLite run), killed and restarted: the
    sessions it left open end at its last heartbeat, the counts and the viewers list are right
    at once, and the viewers who come back make no peak above the real one."""
    stream_id = await new_stream(api)
    await api.post(f"/api/streams/{stream_id}/start", headers=api.as_user(CREATOR))
    url = f"{server.ws}/streams/{stream_id}"

    async def connect_all() -> list[Viewer]:
        viewers = [
            await Viewer.connect(f"{url}?token={tokens.encode(uid)}") for uid in (FAN, FRIEND)
        ]
        viewers.append(await Viewer.connect(url))
        return viewers

    viewers = await connect_all()
    await viewers[0].wait_for(
        lambda e: e["event"] == "viewer_count_updated" and e["data"]["current_viewers"] == 3
    )
    await asyncio.sleep(0.5)  # the session rows are written
    assert len([r for r in await open_sessions(database_url, stream_id) if r.left_at is None]) == 3

    server.kill()
    killed_at = datetime.now(UTC)
    for viewer in viewers:
        await viewer.close()
    assert len([r for r in await open_sessions(database_url, stream_id) if r.left_at is None]) == 3
    server.start()  # the same node slot: its predecessor is dead, and known
    rows = await open_sessions(database_url, stream_id)
    assert len(rows) == 3 and all(r.left_at is not None for r in rows)
    # Closed at the last heartbeat (every 0.2 s here), not at the restart.
    for row in rows:
        assert killed_at - timedelta(seconds=5) <= row.left_at <= killed_at
        # Watched until then: the kill came ≥ 0.5 s after the join and the last heartbeat at
        # most 0.2 s before it (plus the loop's jitter), never a visit cut at its start.
        assert row.left_at - row.joined_at >= timedelta(seconds=0.25)
    watching = await api.get(f"/api/streams/{stream_id}/viewers", headers=api.as_user(CREATOR))
    assert watching.json()["data"] == []

    for _ in range(50):  # the stored 3 is corrected by the next count (every 0.2 s here)
        check = (await api.get(f"/api/streams/{stream_id}/check")).json()
        if check["current_viewers"] == 0:
            break
        await asyncio.sleep(0.1)
    assert check["current_viewers"] == 0 and check["peak_viewers"] == 3
    feed = await Viewer.connect(f"{server.ws}/streams/all")
    await feed.wait_for(lambda e: e["event"] == "connected")
    viewers = await connect_all()  # everyone comes back
    back = await feed.wait_for(
        lambda e: e["event"] == "viewer_count_updated" and e["data"]["current_viewers"] == 3
    )
    assert back["data"]["peak_viewers"] == 3  # not 6: no ghost was counted
    shown = (await api.get(f"/api/streams/{stream_id}")).json()["data"]
    assert (shown["viewers_count"], shown["peak_viewers"]) == (3, 3)
    for viewer in [*viewers, feed]:
        await viewer.close()
